"""--EXPLAIN and --STEP (issue 19): each step of run, exec and rm explained on
stderr with what the kernel holds after it, read back from the kernel.

What is asserted: the values shown are the kernel's, not the code's (state
changed behind bocker's back by wrappers on PATH shows up; inodes, addresses
and capabilities match what the container itself sees); stdout, the log and
the --TRACE lines are the same with and without it; --STEP waits for Enter on a
terminal and never without one; the recording the side-by-side page shows
(fixtures/explain/, tests/explain_record.py) is what bocker.py prints today.
"""
import os
import pty
import re
import select
import shlex
import shutil
import subprocess

import pytest

from support import BOCKER, CONTAINERS, STORE, Result, clean_env, unclash
from explain_record import FIXTURES, blocks, record, shown, wait_for
from golden import Normaliser, diff

RUN_STEPS = ['veth', 'netns', 'overlay', 'files', 'cgroups', 'container', 'cleanup']
PROMPT = b'--STEP: press Enter for the next step (ctrl-C stops)'
AGAIN = b'--STEP: only Enter goes on; ctrl-C stops'
# pid 1 says it runs (tmp/ready: Box.wait_ready), then waits on its stdin, a pipe held open
READ_LINE = 'touch /tmp/ready; read line'


def kernel(block):
    """The `kernel` field of a block: its lines, the key column taken off."""
    lines = [l[8:] for l in block]
    keys = [l[:8].strip() for l in block]
    start = keys.index('kernel')
    end = next((i for i in range(start + 1, len(keys)) if keys[i]), len(keys))
    return lines[start:end]


def namespaces(block):
    """{name: (inode, how)} from a block's namespace table."""
    found = {}
    for line in kernel(block):
        m = re.match(r'  (\w+) +(\w+:\[\d+\]) +(.*)$', line)
        if m:
            found[m.group(1)] = (m.group(2), m.group(3))
    return found


def wrapper(directory, name, script):
    """An executable NAME in directory that stands in for the real one."""
    path = os.path.join(directory, name)
    with open(path, 'w') as f:
        f.write('#!/bin/sh\n' + script)
    os.chmod(path, 0o755)


@pytest.mark.flavours
def test_explain_reads_the_kernel_not_the_code(box, busybox, tmp_path):
    """Wrappers on PATH change what the kernel holds behind bocker's back: cgset
    writes cpu.shares=300 where 512 was asked, ip puts veth0 on br2, not br1.
    --EXPLAIN shows what the kernel holds; without the wrappers, what was asked."""
    img = box.init(busybox)
    r = box.sh('ip link add br2 type bridge && ip link set br2 up')
    assert r.code == 0, r
    wrap = str(tmp_path)
    wrapper(wrap, 'cgset', 'for a; do shift; case $a in cpu.shares=*) a=cpu.shares=300;; esac; '
            'set -- "$@" "$a"; done\nexec %s "$@"\n' % shutil.which('cgset'))
    wrapper(wrap, 'ip', 'if [ "$*" = "-batch -" ]; then\n'
            '  sed "s/ master br1\\$/ master br2/" | %s -batch -; exit $?\nfi\n'
            'exec %s "$@"\n' % (shutil.which('ip'), shutil.which('ip')))
    for env, master, shares in (({'PATH': wrap + ':' + os.environ['PATH']}, 'br2', '300'),
                                ({}, 'br1', '512')):
        before = set(box.containers())
        r = box.bocker('--EXPLAIN', 'run', img, 'echo hi', env=env)
        assert r.code == 0 and unclash(r.out, bool(before)) == 'hi\n', r
        ps = (set(box.containers()) - before).pop()
        b = blocks(r.err)
        assert '  master: %s' % master in kernel(b['veth']), b['veth']
        assert 'br1 ports: %s' % ('none' if master == 'br2' else 'veth0_' + ps) in kernel(b['veth'])
        assert box.cgroup('cpu', ps, 'cpu.shares') == shares        # the kernel agrees
        want = 'cpu:/{0}  /sys/fs/cgroup/cpu/{0}: cpu.shares = {1}'.format(ps, shares)
        assert want + ', 0 processes' in kernel(b['cgroups']), b['cgroups']
        assert '  ' + want in kernel(b['container']), b['container']


@pytest.mark.flavours
def test_explain_leaves_stdout_the_log_and_the_trace_as_they_are(box, busybox):
    img = box.init(busybox)
    cmd = 'echo out; echo err >&2; ls /; cat /etc/resolv.conf; exit 3'
    got = {}
    for extra in ([], ['--EXPLAIN']):
        before = set(box.containers())
        r = box.bocker('--TRACE', *extra, 'run', img, cmd)
        ps = (set(box.containers()) - before).pop()
        with open(box.path('%s/%s/%s.log' % (CONTAINERS, ps, ps)), 'rb') as f:
            log = f.read()
        n = Normaliser()
        trace = [n.text(l) for l in r.err.splitlines() if l.startswith('+ ')]
        rest = [l for l in r.err.splitlines() if not l.startswith('+ ')]
        got[bool(extra)] = (unclash(r.out, bool(before)), r.code, log, trace, rest)
    (out0, code0, log0, trace0, rest0), (out1, code1, log1, trace1, rest1) = got[False], got[True]
    assert (out1, code1, log1) == (out0, code0, log0)
    assert out0.encode() == log0 and log0.startswith(b'out\nerr\n')
    assert trace1 == trace0 and any(' master br1' in l for l in trace0)
    assert rest0 == []
    text = '\n'.join(rest1) + '\n'
    assert list(blocks(text)) == RUN_STEPS
    assert all(l.startswith('=== run ') for l in rest1 if l.startswith('='))


@pytest.mark.flavours
def test_explain_shows_what_the_container_itself_sees(box, busybox, tmp_path):
    """Namespace inodes, capabilities, address and cgroup values in the explain
    output are those the container's own processes read, and the caller's."""
    img = box.init(busybox)
    # pid 1 waits for a line on stdin until --EXPLAIN has shown it (a command
    # that ends at once may be gone before its capabilities can be read)
    cmd = ('read go; for n in cgroup ipc mnt net pid user uts; do readlink /proc/self/ns/$n; '
           'done; grep CapBnd /proc/self/status; ip -4 -o addr show')
    with open(tmp_path / 'out', 'wb') as out, open(tmp_path / 'err', 'wb') as err:
        p = box.popen([BOCKER, '--EXPLAIN', '--CPU_SHARE=256', '--MEM_LIMIT=48', 'run', img, cmd],
                      stdin=subprocess.PIPE, stdout=out, stderr=err, start_new_session=True)
        try:
            wait_for(lambda: shown(tmp_path / 'err', 'container'), "run's container step")
            p.stdin.write(b'go\n')
        finally:
            p.stdin.close()
            assert p.wait(timeout=60) == 0
    r = Result((tmp_path / 'out').read_text(), (tmp_path / 'err').read_text(), 0)
    ps = box.containers()[0]
    b = blocks(r.err)
    seen = r.out.splitlines()
    ns = namespaces(b['container'])
    caller = {n: box.sh('readlink /proc/self/ns/' + n).out.strip() for n in ns}
    for line in seen[:7]:
        name = line.split(':')[0]
        inode, how = ns[name]
        assert inode == line, (name, inode, line)
        if name in ('cgroup', 'ipc', 'mnt', 'net', 'pid', 'uts'):
            assert how == 'new (this process: %s)' % caller[name] != 'new (this process: %s)' % inode
        else:
            assert how == 'the same as this process' and caller[name] == inode
    capbnd = seen[7].split()[1]
    assert any(l.startswith('  bounding set (CapBnd %s)' % capbnd) for l in kernel(b['container']))
    kept = next(l for l in kernel(b['container']) if 'bounding set' in l).split(': ', 1)[1].split()
    assert 'chown' in kept and 'sys_admin' not in kept and 'sys_chroot' not in kept
    dropped = next(l for l in kernel(b['container']) if l.startswith('  dropped')).split(': ', 1)[1]
    assert 'sys_admin' in dropped.split()
    addr = re.search(r'veth1_%s\s+inet (\S+)' % ps, r.out).group(1)
    # up: the flag ip set; the operstate follows it through the kernel's linkwatch,
    # which may take up to a second: read at once, it may still show another
    assert [l for l in kernel(b['netns']) if re.fullmatch(
        r'  veth1_%s: up \(operstate [A-Z]+\), inet %s' % (ps, re.escape(addr)), l)]
    assert any(l.startswith('  route: default via 172.18.0.1 dev veth1_' + ps)
               for l in kernel(b['netns']))
    # 48 MB asked; the kernel keeps whole pages (47996928 with 4 KiB pages):
    # the explanation shows the kernel's number, never the one asked for
    mem = box.cgroup('memory', ps, 'memory.limit_in_bytes')
    assert int(mem) <= 48000000 and '48000000' not in r.err.replace(mem, '')
    assert '  memory:/{0}  /sys/fs/cgroup/memory/{0}: memory.limit_in_bytes = {1}'.format(
        ps, mem) in kernel(b['container'])
    assert '  cpu:/{0}  /sys/fs/cgroup/cpu/{0}: cpu.shares = 256'.format(ps) in kernel(b['container'])
    # the overlay's layers as mountinfo has them, and the copy-up of resolv.conf
    assert '  upperdir=%s/%s/upper' % (CONTAINERS, ps) in kernel(b['overlay'])
    # row 13: the image itself is the bottom lower layer; merged shows its inodes
    assert '  lowerdir=%s/%s/lower:%s/overlay/%s' % (CONTAINERS, ps, STORE, img) \
        in kernel(b['overlay'])
    same = [re.fullmatch(r'  merged(/\S+): inode (\d+); %s(/\S+): inode (\d+): the very file, '
                         r'not a copy' % img, l) for l in kernel(b['overlay'])]
    same = [m.groups() for m in same if m]
    assert len(same) == 1 and same[0][0] == same[0][2] and same[0][1] == same[0][3], same
    assert same[0][1] == str(os.stat(box.path('%s/overlay/%s%s' % (STORE, img, same[0][0]))).st_ino)
    assert "upper/etc/resolv.conf: 'nameserver 114.114.114.114'" in kernel(b['files'])
    assert 'veth0_%s: gone (if_nametoindex(3) knows no such link)' % ps in kernel(b['cleanup'])


@pytest.mark.flavours
def test_explain_reads_pid_1s_session_and_whether_the_hosts_root_is_there(box, busybox, tmp_path):
    """The container step's session line is pid 1's /proc/PID/stat (its
    session and process group: its own pid), and its root line says whether
    the host's root is among pid 1's mounts by looking: not after
    pivot_root, but a `-v /:/host:ro` (the host's root bound in) puts it
    there, at /host, and the line says so."""
    img = box.init(busybox)
    for opts, where in (([], 'is not among them'), (['-v', '/:/host:ro'], 'is mounted at /host')):
        err = tmp_path / ('err%d' % len(opts))
        with open(err, 'wb') as f:
            p = box.popen([BOCKER, '--EXPLAIN', 'run', *opts, img, 'read go'], stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=f, start_new_session=True)
        try:
            wait_for(lambda: shown(err, 'container'), "run's container step")
            p.stdin.write(b'go\n')
        finally:
            p.stdin.close()
            assert p.wait(timeout=60) == 0, err.read_text()
        lines = kernel(blocks(err.read_text())['container'])
        pid = re.match(r'pid (\d+): ', lines[0]).group(1)
        assert 'session (/proc/{0}/stat): session {0} (its own: it leads it), process group {0} '\
            '(its own), no controlling terminal; this process is in another'.format(pid) in lines, lines
        root = [l for l in lines if l.startswith('root (/proc/%s/mountinfo): ' % pid)]
        assert len(root) == 1 and root[0].endswith("; the host's root (what / is here) " + where), lines


@pytest.mark.flavours
def test_explain_exec_and_rm_of_a_running_container(box, busybox):
    img = box.init(busybox)
    run = box.popen([BOCKER, '--EXPLAIN', 'run', img, READ_LINE], stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        ps = box.wait_ready()
        merged = '%s/%s/merged' % (CONTAINERS, ps)
        r = box.bocker('--EXPLAIN', 'exec', ps, 'sh', '-c',
                       'for n in ipc mnt net pid uts; do readlink /proc/self/ns/$n; done')
        assert r.code == 0, r
        b = blocks(r.err)
        assert list(b) == ['exec-found', 'exec-nsenter']
        pid = re.match(r'pid (\d+): NSpid \1 1 ', kernel(b['exec-found'])[0]).group(1)
        # its root: merged, by device and inode (the path reads / from here:
        # it is the root of the container's own mount namespace, pivot_root)
        assert box.sh('readlink /proc/%s/root' % pid).out.strip() == '/'
        assert box.sh('stat -L -c %%d:%%i /proc/%s/root' % pid).out == \
            box.sh('stat -c %%d:%%i %s' % merged).out
        assert re.search(r'NSpid:\s+%s\s+1\n' % pid, box.read('/proc/%s/status' % pid))
        ns = namespaces(b['exec-nsenter'])
        for line in r.out.splitlines():          # what the exec'd command is in
            name = line.split(':')[0]
            by = 'the join step' if name == 'mnt' else 'nsenter'
            assert ns[name] == (line, 'joined by ' + by), (name, ns[name], line)
            assert box.sh('readlink /proc/%s/ns/%s' % (pid, name)).out.strip() == line
        assert ns['user'][1] == 'not joined, the same'
        r = box.bocker('--EXPLAIN', 'rm', ps)
        assert r.code == 0 and r.out == 'Removed: %s\n' % ps, r
        b = blocks(r.err)
        assert list(b) == ['rm-found', 'rm-stop', 'rm-parts', 'rm-cgroups']
        assert kernel(b['rm-found'])[0].startswith('pid 1: host pid %s, ' % pid)
        assert 'veth0_%s: there' % ps in kernel(b['rm-found'])
        assert kernel(b['rm-stop'])[0] == 'pid %s: gone (killed)' % pid
        assert kernel(b['rm-parts']) == [
            '%s: not a mount point' % merged, '%s/%s: gone' % (CONTAINERS, ps),
            'netns_%s: gone (no such name in /run/netns)' % ps, 'veth0_%s: gone' % ps]
        assert all(l.endswith(': gone') for l in kernel(b['rm-cgroups'])) and \
            len(kernel(b['rm-cgroups'])) == 4        # cpu, cpuacct, memory, pids
        assert box.leftovers() == {}
    finally:
        run.stdin.close()
        err = run.stderr.read().decode()
        run.wait(timeout=60)
    b = blocks(err)
    assert list(b) == RUN_STEPS
    assert kernel(b['cleanup'])[:2] == [
        'veth0_%s: gone (if_nametoindex(3) knows no such link)' % ps,
        'netns_%s: gone from /run/netns; ip netns lists none' % ps]
    r = box.bocker('--EXPLAIN', 'rm', img)
    assert r.code == 0 and list(blocks(r.err)) == ['rm-image']
    assert kernel(blocks(r.err)['rm-image']) == ['%s/overlay/%s: gone' % (STORE, img)]


class Terminal:
    """argv in the sandbox with a pty as its controlling terminal (and its
    stdin, stdout and stderr), as in a user's shell."""

    def __init__(self, box, argv):
        argv = box.sb.argv(argv)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:                          # the child: the pty is its terminal
            try:
                box.sb._join()
                os.execvpe(argv[0], argv, clean_env())
            finally:
                os._exit(127)
        self.seen = b''

    def until(self, done):
        """Read until done(all read so far), or the end: done's verdict."""
        while not done(self.seen):
            ready, _w, _x = select.select([self.fd], [], [], 120)
            assert ready, 'stuck: %r' % self.seen
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:                        # EIO: the child side closed
                chunk = b''
            if not chunk:
                return done(self.seen)
            self.seen += chunk
        return True

    def type(self, keys):
        os.write(self.fd, keys)

    def close(self):
        """Wait for the end; its exit status."""
        _pid, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


@pytest.mark.flavours
def test_step_waits_for_enter_on_a_terminal(box, busybox):
    """On a terminal (a pty, the controlling one), --STEP stops after a step
    until Enter: the next step's change is not in the kernel before it."""
    img = box.init(busybox)
    t = Terminal(box, [BOCKER, '--STEP', 'run', img, 'echo hello'])
    try:
        assert t.until(lambda s: PROMPT in s)
        ps = re.search(rb'veth0_(ps_\d+)', t.seen).group(1).decode()
        assert b'[netns]' not in t.seen
        addr = box.sh('ip -n netns_%s -4 -o addr show' % ps)
        assert addr.code == 0 and '172.18.0.' not in addr.out, addr      # waiting
        t.type(b'y\n')                              # only Enter goes on
        assert t.until(lambda s: AGAIN in s)
        assert b'[netns]' not in t.seen and t.seen.count(PROMPT) == 1
        for prompts in range(2, 6):
            t.type(b'\n')
            assert t.until(lambda s: s.count(PROMPT) == prompts), t.seen
            if prompts == 2:
                assert b'[netns]' in t.seen and b'[overlay]' not in t.seen
                addr = box.sh('ip -n netns_%s -4 -o addr show' % ps)
                assert '172.18.0.%d/24' % int(ps[-3:]) in addr.out, addr   # went on
        t.type(b'\n')
        assert not t.until(lambda s: False)        # to the end, no prompt more
    finally:
        code = t.close()
    assert code == 0
    text = t.seen.decode().replace('\r\n', '\n')
    assert t.seen.count(PROMPT) == 5 and 'hello\n' in text
    assert list(blocks(text)) == RUN_STEPS


@pytest.mark.flavours
def test_step_interrupted_at_a_prompt_leaves_nothing(box, busybox, report):
    """^C while --STEP waits (after the overlay step): run ends with 130 and
    takes away the veth, netns, mount and directory it made, as a failing step."""
    img = box.init(busybox)
    t = Terminal(box, [BOCKER, '--STEP', 'run', img, 'echo hello'])
    try:
        for prompts in range(1, 4):
            assert t.until(lambda s: s.count(PROMPT) == prompts)
            if prompts < 3:
                t.type(b'\n')
        assert b'[overlay]' in t.seen and box.netns() and box.containers()
        t.type(b'\x03')                           # the terminal's ^C: SIGINT
        assert not t.until(lambda s: False)
    finally:
        code = t.close()
    assert code == 130 and b'hello' not in t.seen
    report('--STEP run, ^C at the third prompt', box)


@pytest.mark.flavours
def test_step_never_waits_without_a_terminal(box, busybox, tmp_path):
    """No controlling terminal (a new session), stdin a pipe left open: --STEP
    explains every step and never waits (stdin is the container's, not read)."""
    img = box.init(busybox)
    with open(tmp_path / 'out', 'wb') as out, open(tmp_path / 'err', 'wb') as err:
        p = box.popen([BOCKER, '--STEP', 'run', img, 'echo hello'], stdin=subprocess.PIPE,
                      stdout=out, stderr=err, start_new_session=True)
        try:
            code = p.wait(timeout=120)
        finally:
            p.stdin.close()
    text = (tmp_path / 'err').read_text()
    assert code == 0 and (tmp_path / 'out').read_text() == 'hello\n'
    assert list(blocks(text)) == RUN_STEPS and 'press Enter' not in text


@pytest.mark.flavours
def test_recorded_explain_output_is_current(flavour):
    """fixtures/explain/ (the page's "what you'd see") is what the scenario of
    tests/explain_record.py prints now; record it again with that script."""
    got = record(flavour)
    assert sorted(got) == sorted(n[:-4] for n in os.listdir(FIXTURES))
    for name, text in got.items():
        path = os.path.join(FIXTURES, name + '.txt')
        with open(path, encoding='utf-8') as f:
            want = f.read()
        assert text == want, '\n' + diff(want, text, path)


def test_explain_labels_the_masks_and_prints_removed_after_its_step(box, busybox):
    """"mounts it sees" says which /proc mounts are runc's masks (and which
    read-only again); `--EXPLAIN rm` prints `Removed:` after the step whose
    bash line echoes it, before the cgroups' step (stdout and stderr on one
    pipe, in the order written)."""
    img = box.init(busybox)
    r = box.bocker('--EXPLAIN', 'run', img, 'sleep 2')     # long enough to be looked at
    mounts = r.err.split('mounts it sees', 1)[1].split('\n\n', 1)[0]
    for point in ('/proc/keys', '/proc/timer_list'):
        line = [l for l in mounts.splitlines() if l.split()[:1] == [point]]
        assert line and line[0].endswith('(a mask: /dev/null bound over it, reads as nothing)'), mounts
    assert re.search(r'/proc/sys +proc +ro\S* +\(read-only again', mounts), mounts
    (ps,) = box.containers()
    both = box.sh('%s --EXPLAIN rm %s 2>&1' % (shlex.quote(BOCKER), ps))
    assert both.code == 0, both
    parts = both.out.index('=== rm 3/4'), both.out.index('Removed: %s\n' % ps), both.out.index('=== rm 4/4')
    assert parts == tuple(sorted(parts)), both.out
