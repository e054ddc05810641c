"""bocker on a cgroup v2 only host (issue 7, "Today's hosts: cgroup v2").

On v2 a container gets one cgroup, ps_N, with the cpu and memory controllers
(v2 has no cpuacct: cpu accounting is built in), made and used with the same
cgroup-tools: cgcreate -g cpu,memory:/ps_N, cgset -r cpu.weight=W ps_N and
cgset -r memory.max=B ps_N, cgexec -g cpu,memory:ps_N, cgdelete -g cpu,memory:/ps_N.
    cpu.weight = 1 + ((CPU_SHARE - 2) * 9999) / 262142   (runc's and crun's; integer
                 division, the shares clamped to 2..262144 first: 2 -> 1, 512 -> 20,
                 1024 -> 39, 262144 -> 10000, the most the kernel takes)
    memory.max = MEM_LIMIT * 1000000   (the kernel keeps whole pages: it reads
                                        back rounded down to a multiple of 4096)
A container's /proc/self/cgroup is the single line 0::/.../ps_N.

This module has two faces, chosen when it is imported:
- On this machine (hybrid: v1 controllers) it holds ONE test, which boots a
  cgroup v2 only kernel in a VM (tests/vm.py: virtme-ng, QEMU, Debian's kernel
  with cgroup_no_v1=all) and runs there with pytest this same module and the
  suite's tests marked v2 (VM_FILES; conftest.py deselects the others there),
  those in sandboxes (tests/sandbox.py) as here.
- Inside that VM (BOCKER_VM=cgroup-v2 set by the outer test, and the host is
  v2 only) it holds the real tests, which drive bocker.sh as a black box. The VM
  is their sandbox: its root is this machine's, read-only, with throwaway
  overlays; here /var/lib/bocker and /run/netns get a tmpfs and br1 is made,
  and whatever a test leaves is removed after it.
`make test-v2` (python tests/test_cgroup_v2.py) runs the VM part alone, with
the guest's output on the terminal; BOCKER_SKIP_VM=1 skips the outer test.
"""
import io
import os
import re
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import vm  # noqa: E402
from support import unclash  # noqa: E402

BOCKER = os.path.join(ROOT, 'bocker.sh')
STORE = '/var/lib/bocker'
CGROOT = '/sys/fs/cgroup'
MARK = ('BOCKER_VM', 'cgroup-v2')        # set in the guest by the outer test
VM_TIMEOUT = 1140                         # boot (~30 s) + the inner tests: make test stays under 20 min


def cgroup_mode(mountinfo='/proc/self/mountinfo'):
    """'v1', 'hybrid', 'v2' or 'none', from the cgroup mounts (proc(5)
    mountinfo: the filesystem type follows ' - '). v1 mounts are `cgroup`, the
    unified hierarchy is `cgroup2`; v2 only means cgroup2 on /sys/fs/cgroup and
    no v1 hierarchy (a `name=systemd` v1 mount alone still counts as v1)."""
    v1 = v2_root = v2_elsewhere = False
    with open(mountinfo) as f:
        for line in f:
            left, right = line.split(' - ', 1)
            fstype = right.split()[0]
            if fstype == 'cgroup':
                v1 = True
            elif fstype == 'cgroup2':
                if left.split()[4] == CGROOT:
                    v2_root = True
                else:
                    v2_elsewhere = True
    if v1:
        return 'hybrid' if (v2_root or v2_elsewhere) else 'v1'
    return 'v2' if v2_root else 'none'


IN_VM = os.environ.get(MARK[0]) == MARK[1]


def _summary(output):
    """pytest's closing line ('=== 3 failed, 5 passed in 61.20s ===')."""
    found = re.findall(r'^=+ (.*\bin [0-9.]+s.*?) =+\s*$', output, re.M)
    return found[-1] if found else None


# What runs in the VM besides this module's own tests: the suite's tests marked
# v2 (conftest.py deselects the rest there), chosen so that every command (the
# bash's and those beyond it), the lifecycle cases, the labs, make shell and
# make demo run on a v2 only host, each in a sandbox as here (docs/HACKING.md
# has the list).
VM_FILES = ('tests/test_sandbox.py', 'tests/test_commands.py', 'tests/test_lifecycle.py',
            'tests/test_labs.py', 'tests/test_shell.py', 'tests/test_isolation.py',
            'tests/test_detached.py', 'tests/test_terminal.py')


def run_in_vm(out=None, files=None):
    """Boot the VM and run this module's inner tests and the suite's v2 tests
    there (pytest -v, the guest's output streamed to out); a vm.Result."""
    argv = [os.path.join(ROOT, '.venv', 'bin', 'python'), '-m', 'pytest', '-v', '-rfE',
            '--tb=short', '--durations=10', '-p', 'no:cacheprovider',
            ] + list(VM_FILES if files is None else files) + [
            # last: its tests use the VM's own namespaces (tmpfs on the store,
            # br1), which the sandboxed tests before it must not see
            os.path.relpath(os.path.abspath(__file__), ROOT)]
    return vm.run(argv, cwd=ROOT, env={MARK[0]: MARK[1], 'PYTHONDONTWRITEBYTECODE': '1'},
                  timeout=VM_TIMEOUT, out=out)


def report_line(r):
    boot = '%.0f s' % r.boot_seconds if r.boot_seconds is not None else 'never came up'
    summary = _summary(r.output) or 'no pytest summary (exit status %d)' % r.code
    return 'cgroup v2 VM: boot %s, whole run %.0f s; inner tests: %s' % (boot, r.seconds, summary)


if not IN_VM:
    # ---- on this machine: the one test that runs the rest in the VM ----------

    # The VM's run, started in a thread as soon as the suite is collected
    # (conftest.py: start_vm_run(), the test moved last), so the emulated guest
    # works while the rest of the suite runs here: on two cores the whole takes
    # some 10 minutes where one after the other took 16.
    VM_RUN = {}

    def start_vm_run():
        """Boot the VM and run its tests in a thread; the test waits for it."""
        import threading

        def go():
            try:
                vm.check()
                VM_RUN['result'] = run_in_vm(out=VM_RUN['output'])
            except vm.VMUnavailable as e:
                VM_RUN['unavailable'] = str(e)
            except Exception as e:             # the test says so: nothing lost in the thread
                VM_RUN['unavailable'] = 'the VM run failed: %r' % e
        if 'thread' not in VM_RUN:
            VM_RUN['output'] = io.StringIO()   # shown by the test, as its own output
            VM_RUN['thread'] = threading.Thread(target=go, name='cgroup-v2-vm', daemon=True)
            VM_RUN['thread'].start()

    def test_cgroup_v2_host_in_vm(request):
        """Boot a cgroup v2 only kernel and run this module's tests there.
        BOCKER_SKIP_VM=1 skips it (to iterate on the rest of the suite)."""
        if os.environ.get('BOCKER_SKIP_VM') == '1':
            pytest.skip('BOCKER_SKIP_VM=1')
        start_vm_run()                         # unless conftest.py started it already
        VM_RUN['thread'].join()
        sys.stdout.write(VM_RUN['output'].getvalue())
        if 'unavailable' in VM_RUN:
            pytest.fail(VM_RUN['unavailable'], pytrace=False)
        r = VM_RUN['result']
        line = report_line(r)

        class _Report:
            @staticmethod
            def pytest_terminal_summary(terminalreporter):
                terminalreporter.write_line(line)
        request.config.pluginmanager.register(_Report(), 'cgroup-v2-vm-report')
        assert r.code == 0, line


else:
    # ---- inside the VM: the real tests ---------------------------------------

    pytestmark = pytest.mark.v2
    PAGE = os.sysconf('SC_PAGE_SIZE')

    # cpu.weight for CPU_SHARE, worked out by hand from runc's formula
    # 1 + ((shares - 2) * 9999) / 262142 (integer division), the shares clamped
    # to 2..262144: the ends, 3, and 369, where 10000 in place of 9999 gives 15.
    WEIGHTS = {
        2: 1,                  # 1 + 0
        3: 1,                  # 1 + 9999 / 262142 = 1 + 0
        256: 10,               # 1 + 2539746 / 262142 = 1 + 9
        369: 14,               # 1 + 3669633 / 262142 = 1 + 13
        512: 20,               # 1 + 5099490 / 262142 = 1 + 19
        1024: 39,              # 1 + 10218978 / 262142 = 1 + 38
        262144: 10000,         # 1 + 262142 * 9999 / 262142 = 10000, cpu.weight's maximum
        262145: 10000,         # above the maximum: clamped to 262144 first
    }

    def memory_max(mb):
        return mb * 1000000 // PAGE * PAGE

    def sh(*argv, check=True, **kw):
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, **kw)
        if check and r.returncode:
            raise RuntimeError('%s: exit %d: %s' % (' '.join(argv), r.returncode, r.stdout))
        return r

    def env_for(extra=None):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith('BOCKER_') and k != 'PYTHONUNBUFFERED'}
        env.update(extra or {})
        return env

    def bocker(*args, env=None, timeout=180):
        """bocker.sh ARGS: (exit status, stdout, stderr)."""
        r = subprocess.run([BOCKER, *args], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, env=env_for(env), timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def ls(path):
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []

    def cgroup_dirs(name=None):
        """Every cgroup directory named ps_* (or name) in the v2 hierarchy."""
        found = []
        for dirpath, dirs, _files in os.walk(CGROOT):
            for d in dirs:
                if (d == name) if name else d.startswith('ps_'):
                    found.append(os.path.join(dirpath, d))
        return found

    def mounts_under(prefix):
        with open('/proc/self/mountinfo') as f:
            return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]

    def leftovers():
        """What a removed container could leave. Empty when clean."""
        found = {
            'netns': ls('/run/netns'),
            'links': [l for l in ls('/sys/class/net') if l not in ('br1', 'lo')],
            'mounts': mounts_under(STORE + '/'),
            'cgroups': cgroup_dirs(),
            'containers': ls(STORE + '/containers'),
        }
        return {k: v for k, v in found.items() if v}

    def read(path):
        with open(path) as f:
            return f.read().strip()

    def cgroup_line(output, uuid):
        """The container's cgroup, as the host names it, from the 0::PATH line
        of its /proc/self/cgroup in output: in its own cgroup namespace (row
        45) that line is 0::/, the namespace's root; on the host the cgroup
        is /UUID, where cgcreate made it under the hierarchy's root."""
        lines = [l for l in output.splitlines() if re.fullmatch(r'\d+:[^:]*:/.*', l)]
        assert lines, 'no /proc/self/cgroup line in %r' % output
        assert lines == [l for l in lines if l.startswith('0::')], \
            'a v2 only host has the one line 0::PATH: %r' % lines
        assert lines == ['0::/'], '%r: the container has no cgroup namespace of its own' % lines
        return '/' + uuid

    def new_container(before):
        new = set(ls(STORE + '/containers')) - set(before)
        assert len(new) == 1, new
        return new.pop()

    def clean_up(keep=None):
        """Remove whatever bocker (or a failed test) left: processes and cgroups
        named ps_*, mounts in the store, netns, veths, containers, and images
        but keep."""
        for cg in sorted(cgroup_dirs(), key=len, reverse=True):
            for _ in range(250):
                try:
                    with open(cg + '/cgroup.kill', 'w') as f:
                        f.write('1')
                    if not read(cg + '/cgroup.procs'):
                        os.rmdir(cg)
                        break
                except FileNotFoundError:
                    break
                except OSError:
                    pass
                time.sleep(0.02)
        for m in sorted(mounts_under(STORE + '/'), key=len, reverse=True):
            sh('umount', '-l', m, check=False)
        for ns in ls('/run/netns'):
            sh('ip', 'netns', 'del', ns, check=False)
        for link in ls('/sys/class/net'):
            if link not in ('lo', 'br1'):
                sh('ip', 'link', 'del', 'dev', link, check=False)
        sh('sh', '-c', 'rm -rf %s/containers/* %s/containers/.[!.]*' % (STORE, STORE), check=False)
        for name in ls(STORE + '/overlay'):      # every image but the session's
            if name != keep:
                sh('rm', '-rf', os.path.join(STORE, 'overlay', name), check=False)

    @pytest.fixture(scope='session')
    def v2host():
        """This VM as a bocker host: checked to be v2 only first, then a tmpfs
        store, a tmpfs /run/netns and the bridge br1."""
        mode = cgroup_mode()
        assert mode == 'v2', 'not a cgroup v2 only host (%s): not touching it' % mode
        for d in (STORE, '/run/netns'):
            os.makedirs(d, exist_ok=True)
            sh('mount', '-t', 'tmpfs', 'tmpfs', d)
        os.makedirs(STORE + '/overlay')
        os.makedirs(STORE + '/containers')
        sh('ip', 'link', 'set', 'lo', 'up')
        sh('ip', 'link', 'add', 'br1', 'type', 'bridge')
        sh('ip', 'addr', 'add', '172.18.0.1/24', 'dev', 'br1')
        sh('ip', 'link', 'set', 'br1', 'up')
        return STORE

    @pytest.fixture(scope='session')
    def busybox_dir(tmp_path_factory):
        """The test image's directory, from the fixtures/ recipe (as conftest's busybox)."""
        d = str(tmp_path_factory.mktemp('image') / 'busybox')
        subprocess.run([os.path.join(ROOT, 'fixtures', 'busybox-rootfs'), d], check=True)
        return d

    @pytest.fixture(scope='session')
    def image(v2host, busybox_dir):
        """One image for all the tests (an init costs seconds, emulated)."""
        code, out, err = bocker('init', busybox_dir)
        assert code == 0 and out.startswith('Created: img_'), (code, out, err)
        return out.split()[1]

    @pytest.fixture
    def img(image):
        """The image; after the test, whatever it left is removed."""
        yield image
        clean_up(keep=image)

    def run_container(img, command, args=(), env=None):
        """bocker.sh [ARGS] run IMG COMMAND: (ps_N, exit status, stdout, stderr)."""
        before = ls(STORE + '/containers')
        code, out, err = bocker(*args, 'run', img, command, env=env)
        assert code == 0, 'run failed: exit %d\nstdout: %s\nstderr: %s' % (code, out, err)
        return new_container(before), code, unclash(out, bool(before)), err

    # -- the host ------------------------------------------------------------

    def test_this_is_a_cgroup_v2_only_host_without_network():
        assert cgroup_mode() == 'v2'
        assert 'cgroup_no_v1=all' in read('/proc/cmdline').split()
        controllers = read(CGROOT + '/cgroup.controllers').split()
        assert 'cpu' in controllers and 'memory' in controllers, controllers
        assert not os.path.exists(CGROOT + '/cpu'), 'a v1 cpu hierarchy'
        # the VM must reach no network: only loopback (and br1, made here)
        assert set(ls('/sys/class/net')) <= {'lo', 'br1'}, ls('/sys/class/net')

    # -- run: the container's cgroup and its limits ----------------------------

    @pytest.mark.parametrize('args,env,shares,mb', [
        (('--MEM_LIMIT=16', '--CPU_SHARE=256'), None, 256, 16),
        ((), {'BOCKER_MEM_LIMIT': '32', 'BOCKER_CPU_SHARE': '1024'}, 1024, 32),
        ((), None, 512, 512),
    ], ids=['options', 'environment', 'defaults'])
    def test_run_puts_the_container_in_one_cgroup_with_its_limits(img, args, env, shares, mb):
        uuid, _code, out, err = run_container(img, 'cat /proc/self/cgroup', args, env)
        path = cgroup_line(out, uuid)
        cg = CGROOT + path
        assert os.path.isdir(cg), 'the cgroup %s is gone after run' % cg
        assert cgroup_dirs(uuid) == [cg], 'one cgroup per container: %r' % cgroup_dirs(uuid)
        enabled = read(cg + '/cgroup.controllers').split()
        assert 'cpu' in enabled and 'memory' in enabled, enabled
        assert read(cg + '/cpu.weight') == str(WEIGHTS[shares])
        assert read(cg + '/memory.max') == str(memory_max(mb))
        assert 'pids' in enabled and read(cg + '/pids.max') == '2048', enabled   # row 42
        assert err == '', err

    def test_the_container_reads_its_own_limits_at_sys_fs_cgroup(img):
        """Row 45: its cgroup, and only its, read-only at /sys/fs/cgroup."""
        uuid, code, out, err = run_container(
            img, 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; '
            '(echo 1 > /sys/fs/cgroup/pids.max) 2>/dev/null || echo read-only', ('--MEM_LIMIT=16', '--PIDS_LIMIT=64'))
        assert out.split('\n')[:3] == [str(memory_max(16)), '64', 'read-only'], (out, err)
        assert read(CGROOT + '/' + uuid + '/pids.max') == '64'

    def test_a_seccomp_filter_and_a_pids_limit_hold_on_v2(img):
        """Rows 42, 43 on v2: Seccomp 2 in a run; past pids.max a fork
        fails (busybox sh: can't fork)."""
        uuid, code, out, err = run_container(
            img, 'grep ^Seccomp: /proc/self/status; '
            'for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1 | grep -c "can.t fork"; true',
            ('--PIDS_LIMIT=6',))
        lines = out.split('\n')
        assert lines[0].split() == ['Seccomp:', '2'], (out, err)
        # unshare, sh and the pipe's two leave room for 2 of the 8 sleeps; the
        # first fork refused ends busybox's loop with one `can't fork`
        assert int(lines[1]) >= 1, (out, err)
        assert read(CGROOT + '/' + uuid + '/pids.max') == '6'

    def test_explain_reads_the_v2_knobs(img):
        """--EXPLAIN on v2 reads cpu.weight and memory.max back from the one
        cgroup, where cgroup2 is mounted (issue 19), and the container's
        /proc/PID/cgroup line 0::PATH."""
        uuid, _code, out, err = run_container(img, 'cat /proc/self/cgroup',
                                              ('--EXPLAIN', '--CPU_SHARE=1024', '--MEM_LIMIT=64'))
        path = cgroup_line(out, uuid)
        knobs = 'cpu.weight = %d, memory.max = %d, pids.max = 2048' % (WEIGHTS[1024], memory_max(64))
        assert '0::%s  %s%s: %s, 0 processes' % (path, CGROOT, path, knobs) in err, err
        assert '  0::%s  %s%s: %s\n' % (path, CGROOT, path, knobs) in err, err

    @pytest.mark.parametrize('shares', [2, 369, 262145])   # the low end, a rounding, the clamp
    def test_cpu_share_becomes_the_weight_runc_gives(img, shares):
        """bocker.py's cpu.weight, read from the container's cgroup, at the
        ends of the shares' range, in between, and above it."""
        uuid, _code, out, err = run_container(img, 'cat /proc/self/cgroup',
                                              ('--CPU_SHARE=%d' % shares,))
        assert read(CGROOT + cgroup_line(out, uuid) + '/cpu.weight') == str(WEIGHTS[shares])
        assert err == '', err

    def test_memory_limit_is_enforced(img):
        """Past memory.max the kernel OOM-kills in the container's cgroup: 80 MB
        written to the container's root (tmpfs-backed here) do not fit in 16 MB.
        (No `yes | head`: in the container SIGPIPE may be ignored, and a writer
        that never stops keeps a cgroup at its limit thrashing.)"""
        uuid, _code, out, _err = run_container(
            img, 'cat /proc/self/cgroup; i=0; while [ $i -lt 40 ]; do'
                 ' cat /bin/busybox >> /fill || break; i=$((i+1)); done; echo filled=$i',
            ('--MEM_LIMIT=16',))
        cg = CGROOT + cgroup_line(out, uuid)
        events = dict(l.split() for l in read(cg + '/memory.events').splitlines())
        assert int(events['max']) > 0 and int(events['oom_kill']) > 0, events
        assert 'filled=40' not in out, out

    # -- issue 25: commit freezes, rm of a starting container ------------------

    COUNT = 'echo 0 > /n; touch /tmp/ready; i=0; while :; do i=$((i+1)); echo $i > /n.new; mv /n.new /n; done'

    def start(img, command, hook=None):
        """run IMG COMMAND in the background: (its process, its container)."""
        before = ls(STORE + '/containers')
        p = subprocess.Popen([BOCKER, 'run', img, command], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env_for({'BOCKER_TEST_HOOK': hook} if hook else None))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            new = set(ls(STORE + '/containers')) - set(before)
            if new and (hook or os.path.exists('%s/containers/%s/merged/tmp/ready'
                                               % (STORE, next(iter(new))))):
                return p, new.pop()
            time.sleep(0.05)
        raise AssertionError('no container started')

    def counting(uuid, wait=10):
        path = '%s/containers/%s/merged/n' % (STORE, uuid)
        before = read(path)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if read(path) != before:
                return True
            time.sleep(0.1)
        return False

    def test_commit_freezes_a_running_container_and_a_kill_leaves_it_thawed(img):
        p, uuid = start(img, COUNT)
        cg = cgroup_dirs(uuid)[0]
        assert counting(uuid)
        code, out, err = bocker('commit', uuid, 'img_8', env={'BOCKER_TEST_HOOK': 'kill:2'})
        assert 'test hook: kill at 2 (commit-frozen)' in err, (code, out, err)
        assert 'frozen 1' in read(cg + '/cgroup.events').split('\n')
        assert not counting(uuid, wait=2)
        code, out, err = bocker('ps')          # the next command thaws it
        assert code == 0 and 'frozen 0' in read(cg + '/cgroup.events').split('\n')
        assert counting(uuid) and ls(STORE + '/overlay') == [img]
        code, out, err = bocker('commit', uuid, 'img_8')
        assert (code, out) == (0, 'Created: img_8\n'), (code, out, err)
        assert 'frozen 0' in read(cg + '/cgroup.events').split('\n') and counting(uuid)
        code, out, err = bocker('rm', uuid)
        assert (code, out) == (0, 'Removed: %s\n' % uuid), (code, out, err)
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 137 and 'removed while it ran' in err, (p.returncode, err)
        assert leftovers() == {}

    def test_rm_of_a_starting_container_leaves_no_process(img):
        """run stopped just before its cgexec (the test hook's 6th step), rm
        meanwhile: rm waits, then kills what the run starts; nothing runs on."""
        p, uuid = start(img, 'echo started; sleep 5; echo ran', hook='stop:6')
        deadline = time.monotonic() + 120
        while read('/proc/%d/stat' % p.pid).rsplit(')', 1)[1].split()[0] != 'T':
            assert time.monotonic() < deadline, 'the hook did not stop the run'
            time.sleep(0.05)
        rm = subprocess.Popen([BOCKER, 'rm', uuid], stdout=subprocess.PIPE, text=True,
                              stderr=subprocess.PIPE, env=env_for())
        while rm.poll() is None and ' -> FLOCK ' not in open('/proc/locks').read():
            assert time.monotonic() < deadline, 'rm neither waits nor ends'
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=180)
        rm_out, rm_err = rm.communicate(timeout=180)
        assert (rm.returncode, rm_out) == (0, 'Removed: %s\n' % uuid), rm_err
        assert p.returncode == 137 and 'removed while it ran' in err, (p.returncode, err)
        assert 'ran' not in out.split()
        assert commands_with('echo ran') == [] and leftovers() == {}

    def commands_with(text):
        """The processes whose command line holds text."""
        found = []
        for pid in ls('/proc'):
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    if text.encode() in f.read():
                        found.append(pid)
            except OSError:
                pass
        return found

    # exec, logs, commit, rm, the lifecycle cases and the labs run in the VM
    # as the suite's tests marked v2, each in a sandbox (VM_FILES).


if __name__ == '__main__':           # make test-v2: the VM part, output on the terminal
    try:
        result = run_in_vm()
    except vm.VMUnavailable as e:
        sys.stderr.write('tests/test_cgroup_v2.py: %s\n' % e)
        sys.exit(125)
    print(report_line(result))
    sys.exit(result.code)
