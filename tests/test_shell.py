"""`make shell`, the learner's door: a shell in a fresh sandbox with br1 and a
busybox image, after installing only what bocker itself needs. Driven with
commands on stdin (a pipe), as a learner would type them. Needs root."""
import glob
import os
import re
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

RUN_PKGS = ['iproute2', 'util-linux', 'cgroup-tools', 'busybox-static', 'jq', 'uuid-runtime',
            'python3-venv']
TEST_ONLY = ['qemu-system-x86', 'linux-image-amd64', 'chromium', 'podman', 'skopeo',
             'docker-registry', 'requirements.txt']


def dry_run(target):
    """What `make TARGET` would run, had nothing been made yet (-B)."""
    r = subprocess.run(['make', '-n', '-B', target], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_make_shell_installs_only_what_bocker_needs():
    out = dry_run('shell')
    words = set(re.findall(r'[\w.+-]+', out))
    assert all(p in words for p in RUN_PKGS), out
    assert not [p for p in TEST_ONLY if p in words], out
    assert 'requirements-run.txt' in words, out


def test_make_test_and_demo_still_install_everything():
    for target in ('test', 'demo'):
        words = set(re.findall(r'[\w.+-]+', dry_run(target)))
        assert all(p in words for p in RUN_PKGS + TEST_ONLY), target


def make_shell(commands):
    r = subprocess.run(['make', '--no-print-directory', 'shell'], cwd=ROOT, input=commands,
                       capture_output=True, text=True, timeout=300, env=ENV)
    return r.returncode, r.stdout, r.stderr


# The sandboxes these tests open are named with this tag (SANDBOX_TAG): other
# test runs on this machine may have sandboxes of their own open meanwhile.
TAG = 'shelltest%d' % os.getpid()
ENV = dict(os.environ, SANDBOX_TAG=TAG)


def host_leftovers():
    """What these tests' sandboxes could leave on the host: mounts of the
    store and netns, network namespaces, their cgroups (any layout), and
    containers' cgroups outside any sandbox."""
    with open('/proc/self/mountinfo') as f:
        mounts = [l.split()[4] for l in f if l.split()[4].startswith(('/var/lib/bocker', '/run/netns'))]
    cgroups = []
    for dirpath, dirs, _ in os.walk('/sys/fs/cgroup'):
        cgroups += [os.path.join(dirpath, d) for d in dirs if TAG in d
                    or (d.startswith('ps_') and 'bocker-sandbox-' not in dirpath)]
        dirs[:] = [d for d in dirs if not d.startswith('bocker-sandbox-')]
    netns = os.listdir('/run/netns') if os.path.isdir('/run/netns') else []
    return {'mounts': mounts, 'cgroups': cgroups, 'netns': netns}


def test_make_shell_gives_a_shell_where_a_container_runs():
    before = set(glob.glob('/tmp/bocker-shell.*'))
    code, out, err = make_shell(
        'bocker.sh run $IMG true; echo "run-exit=$?"\n'
        'bocker.sh run $IMG "ip -4 -o addr show; hostname" \n'
        'bocker.sh images\n'
        'ip -br addr show br1\n'
        'echo "exit-of-last=$(bocker.sh run $IMG false >/dev/null; echo $?)"\n')
    assert code == 0, (out, err)
    welcome, _, rest = out.partition('\n\n  bocker.sh images')
    assert re.search(r'A busybox image is ready: IMG=img_[0-9]+\. Try:', welcome), out
    for hint in ("bocker.sh --EXPLAIN run $IMG 'hostname; ps'", 'labs/01-uts-ipc.sh',
                 'compat/side-by-side --colour run | less -R', 'make side-by-side', 'make shell-join',
                 os.path.join(ROOT, 'side-by-side.html')):
        assert hint in out, hint
    assert 'run-exit=0\n' in rest, out
    assert re.search(r'inet 172\.18\.0\.[0-9]+/24', rest), out      # the container's address
    img = re.search(r'IMG=(img_[0-9]+)', welcome)[1]
    assert re.search(r'^%s\t\t/tmp/bocker-shell\.\w+/busybox$' % img, rest, re.M), out
    assert re.search(r'^br1 +[A-Z]+ +172\.18\.0\.1/24', rest, re.M), out
    assert 'exit-of-last=0' in rest                                  # run ends 0, as the bash
    assert set(glob.glob('/tmp/bocker-shell.*')) == before          # its work dir is gone
    assert host_leftovers() == {'mounts': [], 'cgroups': [], 'netns': []}


def banner_commands(banner):
    """The bocker.sh commands the banner tells to try, as written (the text
    before a run of spaces; a note's `then: ...` is a command too), ps_N
    standing for the running container."""
    cmds = []
    for line in banner.splitlines():
        if not line.startswith('  bocker.sh '):
            continue
        parts = re.split(r'\s{2,}', line.strip(), maxsplit=1)
        cmds.append(parts[0])
        if len(parts) > 1 and parts[1].startswith('then: '):
            cmds.append(parts[1][len('then: '):])
    return cmds


def test_every_command_the_banner_gives_runs_as_written():
    """Each `bocker.sh ...` line of make shell's banner, typed into the shell
    as it stands (ps_N: the container the banner's `sleep 300 &` started),
    does what the banner says: busybox's applets only (no `ip -br`)."""
    code, out, err = make_shell('true\n')
    assert code == 0, err
    cmds = banner_commands(out)
    assert len(cmds) >= 7, cmds
    script = ['ps_N() { bocker.sh ps | awk \'/sleep 300/ {print $1}\'; }']
    for n, cmd in enumerate(cmds):
        if 'ps_N' in cmd:
            cmd = 'sleep 3; ' * ('exec' in cmd) + cmd.replace('ps_N', '$(ps_N)')
        sep = ' ' if cmd.endswith('&') else '; '
        script.append('echo "== %d"; %s%secho "== status $?"' % (n, cmd, sep))
    script.append('wait')
    code, out, err = make_shell('\n'.join(script) + '\n')
    assert code == 0, (out, err)
    body = out.split('\n== 0\n', 1)[1]
    results = re.findall(r'(.*?)== status (\d+)\n(?:== \d+\n)?', body, re.S)
    assert len(results) == len(cmds), (cmds, out)
    for cmd, (text, status) in zip(cmds, results):
        assert status == '0', (cmd, text, err)
        assert 'Usage:' not in text and 'usage:' not in text, (cmd, text)
    joined = dict(zip(cmds, (t for t, _ in results)))
    assert re.search(r'inet 172\.18\.0\.[0-9]+/24', joined["bocker.sh run $IMG 'ip addr; cat /proc/self/cgroup; ls /proc'"])
    assert 'sleep 300' in joined['bocker.sh ps; bocker.sh exec ps_N ps']
    assert re.search(r'Removed: ps_[0-9]+', joined['bocker.sh logs ps_N; bocker.sh rm ps_N'])
    assert 'hostname' in err        # --EXPLAIN's steps, on stderr


@pytest.mark.v2
def test_make_shell_join_opens_a_second_shell_in_the_same_sandbox():
    """What the banner says to do from another terminal: make shell-join (the
    sandbox's holder named, as with several open), a shell in the same
    sandbox; a container it runs shows in the first shell's ps."""
    first = subprocess.Popen(['make', '--no-print-directory', 'shell'], cwd=ROOT, env=ENV,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        first.stdin.write('echo ready\n')
        first.stdin.flush()
        banner = ''
        while not banner.endswith('ready\n'):
            line = first.stdout.readline()
            assert line, (banner, first.stderr.read())
            banner += line
        holder = re.search(r'tests/sandbox\.py --join ([0-9]+) -- fixtures/shell\.sh --joined', banner)
        assert holder, banner
        r = subprocess.run(['make', '--no-print-directory', 'shell-join', 'HOLDER=' + holder[1]],
                           cwd=ROOT, input='bocker.sh run $IMG "echo from-the-second"\n', env=ENV,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert 'joined bocker\'s sandbox (holder %s)' % holder[1] in r.stdout, r.stdout
        assert r.stdout.endswith('from-the-second\n'), r.stdout
        # as the README writes it, no holder named: the one sandbox open
        r = subprocess.run(['make', '--no-print-directory', 'shell-join'], cwd=ROOT, env=ENV,
                           input='echo "in=$SANDBOX_HOLDER $IMG"\n', capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert r.stdout.endswith('in=%s %s\n' % (holder[1], re.search(r'IMG=(img_[0-9]+)',
                                                                     banner)[1])), r.stdout
        out, err = first.communicate('bocker.sh ps\n', timeout=300)
        assert first.returncode == 0, err
        assert re.search(r'^ps_[0-9]+\t\techo from-the-second$', out, re.M), out
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert host_leftovers() == {'mounts': [], 'cgroups': [], 'netns': []}


@pytest.mark.v2
def test_make_demo_runs_every_command_and_leaves_nothing():
    """The README's first command, from this clone: every bocker command once,
    in a sandbox that leaves nothing behind (on a v2 only host too)."""
    r = subprocess.run(['make', '--no-print-directory', 'demo'], cwd=ROOT, capture_output=True, env=ENV,
                       text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    for step in ('bocker.sh init ', 'bocker.sh images', 'bocker.sh --MEM_LIMIT=64', 'bocker.sh ps',
                 'bocker.sh logs ', 'bocker.sh commit ', 'bocker.sh rm ', 'hello from the outside world',
                 'host-setup: undone'):
        assert step in r.stdout, step
    assert host_leftovers() == {'mounts': [], 'cgroups': [], 'netns': []}


def test_make_shell_passes_the_exit_status_on():
    code, _out, err = make_shell('exit 3\n')
    assert code != 0, err
