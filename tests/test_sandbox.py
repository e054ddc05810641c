"""The harness itself: a sandbox leaves nothing on the host, even when a
container still runs as it closes. Needs root."""
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from support import BOCKER, IN_V2_VM, ROOT, Box
from sandbox import ENGINE_CONTROLLERS, V2_CONTROLLERS, Sandbox, layout

SANDBOX = os.path.join(ROOT, 'tests', 'sandbox.py')


def host_state():
    """Everything a bocker run could leave on the host."""
    def cgroups():
        # ours only: other test runs on this machine may have sandboxes open
        mine = 'bocker-sandbox-%d-' % os.getpid()
        found = []
        tops = [t for t in ('cpu', 'cpuacct', 'memory', 'pids')
                if os.path.isdir('/sys/fs/cgroup/' + t)] or ['']   # v2: one hierarchy
        for top in tops:
            for dirpath, dirs, _ in os.walk('/sys/fs/cgroup/' + top):
                dirs[:] = [d for d in dirs if not d.startswith('bocker-sandbox') or
                           d.startswith(mine)]
                found += [os.path.join(dirpath, d) for d in dirs
                          if d.startswith(('ps_', 'bocker-sandbox'))]
        return sorted(found)
    with open('/proc/self/mountinfo') as f:
        mounts = sorted(line.split()[4] for line in f)
    return {
        'netns': subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout,
        'links': sorted(os.listdir('/sys/class/net')),
        'mounts': mounts,
        # v2: what the sandbox enabled on the way down is disabled again
        'subtree_control': [open(os.path.join(d, 'cgroup.subtree_control')).read()
                            for d in ('/sys/fs/cgroup',) if layout() == 'v2'],
        'cgroups': cgroups(),
        # the mount points may stay, empty: nothing may be left in them
        'store': os.path.exists('/var/lib/bocker') and sorted(os.listdir('/var/lib/bocker')) or [],
        'run_netns': os.path.exists('/run/netns') and sorted(os.listdir('/run/netns')) or [],
    }


@pytest.mark.v2
def test_nothing_is_left_on_the_host(busybox):
    before = host_state()
    with Sandbox() as sb:
        box = Box(sb)
        img = box.init(busybox)
        ps, r = box.run_container(img, 'echo hi')
        assert r.out == 'hi\n'
        # a second container still running when the sandbox closes
        p = box.popen([BOCKER, 'run', img, 'sleep 600'], stdin=subprocess.DEVNULL,
                      stdout=subprocess.DEVNULL)
        inside = host_state()
        assert inside['links'] == before['links']       # veths live in the sandbox
    p.wait(timeout=30)
    assert host_state() == before


@pytest.mark.v2
def test_the_sandbox_is_private(busybox):
    with Sandbox() as sb:
        box = Box(sb)
        assert box.links() == ['br1', 'lo']
        if sb.layout == 'v1':      # at the root of its cgroup namespace in each hierarchy
            assert box.sh('cat /proc/self/cgroup').out.count(':/\n') >= 3
        else:                      # v2: in the leaf init of the sandbox's cgroup
            assert box.sh('cat /proc/self/cgroup').out == '0::/init\n'
            assert box.read('/sys/fs/cgroup/cgroup.subtree_control').split() == \
                list(V2_CONTROLLERS)
        assert box.sh('ip -o -4 addr show br1').out.split()[3] == '172.18.0.1/24'
        assert box.images() == [] and box.containers() == []
    assert not any(p.startswith('/var/lib/bocker') for p in host_state()['mounts'])


def test_an_engines_sandbox_keeps_the_engines_state_in(busybox):
    """engines=True: a cgroup of its own in every controller runc uses, and
    its own /run, /var/lib/containers and /etc/docker, so what a container
    engine keeps there never shows on the host; bocker runs there as well."""
    before = host_state()
    marks = ['/run/bocker-engines-mark', '/var/lib/containers/bocker-engines-mark',
             '/etc/docker/bocker-engines-mark']
    with Sandbox(engines=True) as sb:
        box = Box(sb)
        inside = [line.split(':')[1:] for line in box.sh('cat /proc/self/cgroup').out.split()]
        with open('/proc/%d/cgroup' % sb.holder.pid) as f:     # seen from the host
            outside = [line.rstrip('\n').split(':')[1:] for line in f]
        for ctrl in ENGINE_CONTROLLERS:
            assert [path for ctrls, path in inside if ctrl in ctrls.split(',')] == ['/'], inside
            (path,) = [path for ctrls, path in outside if ctrl in ctrls.split(',')]
            assert path.endswith('/' + sb.name), (ctrl, path)
        r = box.sh('touch %s && ls /run/netns' % ' '.join(marks))
        assert r.code == 0, r
        assert [m for m in marks if os.path.exists(m)] == []
        ps, r = box.run_container(box.init(busybox), 'echo hi')
        assert r.out == 'hi\n', r
    assert host_state() == before
    assert sb.cgroup_dirs and [d for d in sb.cgroup_dirs if os.path.exists(d)] == []


def sandbox_cli(*args, python=sys.executable, **kw):
    return subprocess.run([python, SANDBOX, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120, **kw)


@pytest.mark.v2
def test_what_the_host_lacks_is_one_line_and_a_non_zero_exit():
    """Not root: one line saying so, exit 2, no traceback, nothing run."""
    # the system's python3 (the .venv's may lie under root's home); sandbox.py needs no
    # package, and is read from a copy (the clone may lie in a 0700 directory)
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        shutil.copy(SANDBOX, d)
        r = subprocess.run(['/usr/bin/python3', os.path.join(d, 'sandbox.py'), '--', 'touch',
                            '/tmp/bocker-sandbox-ran'], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=120, user=65534, group=65534,
                           extra_groups=[])
    assert r.returncode == 2, r
    assert r.stderr == 'tests/sandbox.py: run as root (namespaces, mounts and cgroups need it)\n'
    assert not os.path.exists('/tmp/bocker-sandbox-ran')


# What a host may lack, each made in a mount namespace of the test's own
# (mount_namespaces(7)) or through PATH: {case: (shell lines run before the CLI
# (F: a file of the test's), PATH's first directory holds (tools), what the
# one line says)}.
LACKS = {
    'a tool': ('', ('unshare', 'nsenter', 'mount'), 'ip is missing (apt-get install iproute2'),
    'a controller': ('if [ -d /sys/fs/cgroup/memory ]; then umount /sys/fs/cgroup/memory; '
                     'else echo cpu pids > "$F"; mount --bind "$F" /sys/fs/cgroup/cgroup.controllers; fi',
                     None, 'controllers memory are not'),
    'a writable cgroup filesystem': ('m=/sys/fs/cgroup/memory; [ -d $m ] || m=/sys/fs/cgroup; '
                                     'mount -o remount,ro,bind $m', None, 'Read-only file system'),
    'CAP_SYS_ADMIN': ('set -- setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin "$@"', None,
                      'root without CAP_SYS_ADMIN'),
    'namespaces': ('', 'unshare', "could not set up the sandbox's namespaces"),
}


@pytest.mark.v2
@pytest.mark.parametrize('case', LACKS)
def test_what_else_the_host_lacks_is_one_line_and_nothing_left(case, tmp_path):
    """A tool, a cgroup controller, a writable cgroup filesystem (a
    container's is read-only), CAP_SYS_ADMIN, or namespaces the kernel refuses
    (a stand-in unshare that fails as a seccomp profile makes it fail): the
    CLI says what in one line (after the failing tool's own), exits 2, runs
    nothing, and leaves no cgroup."""
    setup, tools, says = LACKS[case]
    path = os.environ['PATH']
    if tools:
        bindir = tmp_path / 'bin'
        bindir.mkdir()
        if isinstance(tools, str):      # a stand-in that fails
            (bindir / tools).write_text('#!/bin/sh\necho "%s: %s failed: Operation not '
                                        'permitted" >&2\nexit 1\n' % (tools, tools))
            (bindir / tools).chmod(0o755)
        else:                           # only these tools on PATH
            for tool in tools:
                (bindir / tool).symlink_to(shutil.which(tool))
            path = ''
        path = str(bindir) + (':' + path if path else '')
    tag = 'lacks%d' % os.getpid()
    mark = tmp_path / 'ran'
    r = subprocess.run(
        [shutil.which('unshare'), '--mount', '--propagation', 'private', '/bin/sh', '-c',
         setup + '\nPATH=$P exec "$@"', 'sh', sys.executable, SANDBOX, '--', 'touch', str(mark)],
        env=dict(os.environ, F=str(tmp_path / 'controllers'), P=path, SANDBOX_TAG=tag),
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    ours = [l for l in r.stderr.splitlines() if l.startswith('tests/sandbox.py: ')]
    assert r.returncode == 2 and len(ours) == 1 and says in ours[0], r
    assert 'Traceback' not in r.stderr and len(r.stderr.splitlines()) <= 2, r.stderr
    assert not mark.exists()
    assert [d for d, _, _ in os.walk('/sys/fs/cgroup') if tag in d] == []


def test_join_runs_a_command_in_the_open_sandbox(busybox):
    """tests/sandbox.py --join PID (make shell-join): a second shell in the
    same sandbox, its network, store and cgroups; one line when none is open."""
    with Sandbox() as sb:
        box = Box(sb)
        img = box.init(busybox)
        r = sandbox_cli('--join', str(sb.holder.pid), '--', 'sh', '-c',
                        'ls /var/lib/bocker/overlay; ip -o -4 addr show br1; cat /proc/self/cgroup')
        assert r.returncode == 0, r
        assert img in r.stdout.split() and '172.18.0.1/24' in r.stdout, r.stdout
        if sb.layout == 'v2':
            assert r.stdout.endswith('0::/init\n'), r.stdout
    r = sandbox_cli('--join', str(sb.holder.pid), '--', 'true')
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'is no sandbox' in r.stderr, r


if IN_V2_VM:
    CG = '/sys/fs/cgroup'

    @pytest.mark.v2
    def test_v2_a_caller_in_a_cgroup_with_processes_needs_it_delegated():
        """v2's no internal processes rule: from a non-root cgroup that holds
        processes, a sandbox says what to do (one line); once the cgroup is
        marked delegated (trusted.delegate, as systemd's Delegate=yes marks
        it) the caller's processes move to its leaf and the sandbox opens."""
        caller = CG + '/bocker-test-caller'
        os.mkdir(caller)
        try:
            def in_caller():
                with open(caller + '/cgroup.procs', 'w') as f:
                    f.write(str(os.getpid()))
            r = sandbox_cli('--', 'true', preexec_fn=in_caller)
            assert r.returncode == 2 and r.stderr.count('\n') == 1, r
            assert 'holds processes and is not delegated' in r.stderr, r.stderr
            assert 'systemd-run --scope -p Delegate=yes' in r.stderr, r.stderr
            os.setxattr(caller, 'trusted.delegate', b'1')
            r = sandbox_cli('--', 'cat', '/proc/self/cgroup', preexec_fn=in_caller)
            assert (r.returncode, r.stdout) == (0, '0::/init\n'), r
            assert os.listdir(caller + '/bocker-caller') is not None
            with open(caller + '/cgroup.procs') as f:
                assert f.read() == ''
            # a caller already in that leaf (a second sandbox of the same
            # process): the sandbox goes beside it, under the delegated cgroup
            def in_leaf():
                with open(caller + '/bocker-caller/cgroup.procs', 'w') as f:
                    f.write(str(os.getpid()))
            r = sandbox_cli('--', 'cat', '/proc/self/cgroup', preexec_fn=in_leaf)
            assert (r.returncode, r.stdout) == (0, '0::/init\n'), r
        finally:
            for d in (caller + '/bocker-caller', caller):
                if os.path.isdir(d):
                    os.rmdir(d)
