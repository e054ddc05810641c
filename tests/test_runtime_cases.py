"""Cases from the runtimes' own test suites (issue 18), restated for bocker:
runc's tests/integration (exec.bats, kill.bats, dev.bats, mask.bats), podman's
test/system (030-run, 032-sig-proxy, 075-exec, 130-kill) and moby's
integration-cli (docker_cli_run_test.go, docker_cli_exec_test.go). Each test
names the cases it takes; the cases already pinned elsewhere (tests/
test_lifecycle.py, test_commands.py, test_hardening.py) are not repeated.

What differs from those runtimes by design stays as the reference has it: `run`
exits 0 whatever its command's status (the bash's `|| true`), and the command
gets the caller's environment and the caller's terminal (chroot(1) and
nsenter(1) pass both on). Every test runs in both sandbox flavours. Needs root.
"""
import hashlib
import re
import os
import select
import signal
import subprocess
import tempfile
import time

import pytest

import engines

from support import (BOCKER, CONTAINERS, Terminal, after_a_normal_end, cgroup_procs, container_processes,
                     new_container, running_container)

pytestmark = pytest.mark.flavours


@pytest.fixture
def container(box, busybox):
    """A running container (its command: touch /tmp/ready; sleep 600), removed
    afterwards; its id."""
    run, uuid = running_container(box, busybox)
    yield uuid
    box.bocker('rm', uuid)
    run.wait(timeout=60)


def rest_of(pipe, timeout=30):
    """What is left to read from pipe until its writers close it, or what came
    within timeout if one stays open (a command left running holds it)."""
    deadline, got = time.monotonic() + timeout, b''
    while select.select([pipe], [], [], max(0, deadline - time.monotonic()))[0]:
        chunk = os.read(pipe.fileno(), 65536)
        if not chunk:
            break
        got += chunk
    return got


alive = engines.alive


# --- exec: its status, and commands that cannot run -----------------------------------

def test_exec_returns_its_commands_status(box, container):
    """runc's exec.bats "runc exec [exit codes]" (false 1, exit 42) and moby's
    TestExecExitStatus (exit 23): the status of the command, 128+N when a
    signal ended it (as a shell gives it), nothing else printed."""
    for argv, code in ((['true'], 0), (['false'], 1), (['sh', '-c', 'exit 42'], 42),
                       (['sh', '-c', 'exit 23'], 23), (['sh', '-c', 'kill -TERM $$'], 128 + 15),
                       (['sh', '-c', 'kill -KILL $$'], 128 + 9)):
        r = box.bocker('exec', container, *argv)
        assert (r.out, r.err, r.code) == ('', '', code), (argv, r)


def test_exec_of_a_command_that_cannot_run(box, container):
    """podman's 075-exec "basic test" (/etc: 126, /no/such/command: 127) and
    "does not leak session IDs on invalid command", moby's TestExecStartFails
    (a name PATH does not find), runc's exec.bats "[execve error]" (a script
    whose interpreter is missing: one line of error). The words and statuses
    are chroot(1)'s, which the reference's exec ends in; nothing stays behind
    in the container."""
    before = container_processes(box, container)
    made = box.bocker('exec', container, 'sh', '-c',
                      'printf "#!/mmnnttbb foo bar\\nsh\\n" > /run.sh; chmod +x /run.sh')
    assert made.code == 0, made
    for name, code, why in (('/no/such/command', 127, 'No such file or directory'),
                            ('no-such-cmd', 127, 'No such file or directory'),
                            ('/etc', 126, 'Permission denied'),
                            ('/run.sh', 127, 'No such file or directory')):
        r = box.bocker('exec', container, name)
        assert (r.out, r.err, r.code) == \
            ('', "chroot: failed to run command '%s': %s\n" % (name, why), code), r
    assert container_processes(box, container) == before


# --- stdin ----------------------------------------------------------------------------

def test_stdin_reaches_execs_command(box, container):
    """podman's 075-exec "cat from stdin" (a line; 1.5 MB through dd, checked
    by its sha512) and "exec/run - missing output" (20 KB back out whole),
    moby's TestExecInteractive (a shell reads commands from stdin and ends
    when stdin closes)."""
    r = box.bocker('exec', container, 'cat', stdin=b'a line from stdin\n')
    assert (r.out, r.code) == ('a line from stdin\n', 0), r
    big = os.urandom(1500 * 1024)
    r = box.bocker('exec', container, 'dd', 'of=/tmp/bigfile', 'bs=512', stdin=big)
    assert r.code == 0 and r.err.startswith('3000+0 records in\n3000+0 records out\n'), r
    r = box.bocker('exec', container, 'sha512sum', '/tmp/bigfile')
    assert r.out.split()[0] == hashlib.sha512(big).hexdigest(), r
    text = big[:15 * 1024].hex()[:20 * 1024] + '\n'
    r = box.bocker('exec', container, 'sh', '-c', 'cat > /tmp/text; cat /tmp/text',
                   stdin=text.encode())
    assert r.out == text
    shell = box.popen([BOCKER, 'exec', container, 'sh'], stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE)
    answers(shell, b'echo $((6 * 7))\n', b'42\n')


def answers(proc, line, reply):
    """proc (its stdin and stdout pipes) answers line with reply, then ends
    with status 0 once its stdin is closed."""
    try:
        proc.stdin.write(line)
        proc.stdin.flush()
        assert proc.stdout.readline() == reply
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


def test_stdin_reaches_runs_command(box, busybox):
    """moby's TestRunStdinPipe (piped in, found in the logs), podman's 030-run
    "run closes stdin", moby's TestRunExitOnStdinClose (cat ends when stdin
    closes, and so does the run) and TestRunStdinBlockedAfterContainerExit (a
    command that reads nothing ends the run though stdin stays open)."""
    img = box.init(busybox)
    uuid, r = box.run_container(img, 'cat', stdin=b'blahblah')
    assert (r.out, r.code) == ('blahblah', 0)
    assert box.bocker('logs', uuid).out == 'blahblah'
    cat = box.popen([BOCKER, 'run', img, 'cat'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    answers(cat, b'hello\n', b'hello\n')
    reader, writer = os.pipe()
    true = box.popen([BOCKER, 'run', img, 'true'], stdin=reader, stdout=subprocess.DEVNULL)
    os.close(reader)
    try:
        assert true.wait(timeout=30) == 0      # while the writer stays open
    finally:
        os.close(writer)
        true.kill()
        true.wait()


def test_big_output_is_neither_truncated_nor_held(box, busybox):
    """podman's 030-run "does not truncate or hang with big output": 700,000
    NUL bytes written one by one reach run's stdout and its log whole
    (stderr, dd's count, in both after them: the bash's 2>&1 | tee), and
    exec's stdout whole, with the count on its stderr."""
    img = box.init(busybox)
    dd = 'dd if=/dev/zero bs=1 count=700000'
    run = box.popen([BOCKER, 'run', img, dd], stdout=subprocess.PIPE)
    out = run.communicate(timeout=120)[0]
    assert run.returncode == 0
    (uuid,) = box.containers()
    with open(box.path('%s/%s/%s.log' % (CONTAINERS, uuid, uuid)), 'rb') as f:
        assert f.read() == out
    assert out.count(b'\0') == 700000 and out.startswith(b'\0' * 700000)
    assert b'700000+0 records in\n700000+0 records out\n' in out
    keeper, uuid = running_container(box, busybox)
    try:
        ex = box.popen([BOCKER, 'exec', uuid, 'sh', '-c', dd], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
        out, err = ex.communicate(timeout=120)
        assert (out, ex.returncode) == (b'\0' * 700000, 0)
        assert err.startswith(b'700000+0 records in\n700000+0 records out\n'), err
    finally:
        box.bocker('rm', uuid)
        keeper.wait(timeout=60)


def test_an_image_whose_proc_or_dev_is_no_directory_is_refused(box, busybox, tmp_path):
    """runc's mask.bats "[prohibit symlink /proc]" and "[prohibit symlink /sys]":
    a mount point that is a symlink would put the mount wherever it points.
    run refuses an image whose /proc or /dev is a link (absolute or relative)
    or a file: one line on stderr, exit 1, nothing made."""
    for name, make in (('proc', lambda p: os.symlink('elsewhere', p)),
                       ('dev', lambda p: os.symlink('/elsewhere', p)),
                       ('dev', lambda p: p.write_text('a file'))):
        src = tmp_path / ('image-%d' % len(os.listdir(tmp_path)))
        subprocess.run(['cp', '-a', busybox, str(src)], check=True)
        (src / 'elsewhere').mkdir()
        make(src / name)
        img = box.init(str(src))
        r = box.bocker('run', img, 'echo ran')
        assert (r.out, r.err, r.code) == \
            ('', "bocker.sh: image %s's /%s is not a directory: it cannot run a container\n"
             % (img, name), 1), r
        assert box.leftovers() == {}


# --- what the command starts with -------------------------------------------------------

def test_run_and_exec_start_at_the_root_with_an_environment_of_their_own(box, busybox, tmp_path):
    """runc's exec.bats "runc exec ls -la" and "--env", moby's TestRunRootWorkdir
    and TestExecEnv: the command starts in / of the container, wherever bocker
    was started from, and with the environment Docker gives (PATH, HOSTNAME,
    HOME; TERM only when stdin is a terminal, here a pipe), nothing else of
    the caller's (row 40: the reference passed the caller's whole
    environment on)."""
    img = box.init(busybox)
    env = {'RUNTIME_CASE': 'passed on', 'TERM': 'vt100'}
    show = 'pwd; echo "[$RUNTIME_CASE]"; echo "$PATH $HOME [$TERM]"'
    seen = '/\n[]\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /root []\n'
    uuid, r = box.run_container(img, show, env=env, cwd=str(tmp_path))
    assert r.out == seen, r
    run, uuid = running_container(box, busybox)
    try:
        r = box.bocker('exec', uuid, 'sh', '-c', show, env=env, cwd=str(tmp_path))
        assert r.out == seen, r
        r = box.bocker('exec', uuid, 'ls', '-a')
        assert {'.', '..', 'bin', 'etc', 'tmp'} <= set(r.out.split()), r
    finally:
        box.bocker('rm', uuid)
        run.wait(timeout=60)


def test_no_descriptor_of_the_caller_beyond_stdio_reaches_the_command(box, busybox, tmp_path):
    """runc's exec.bats "--preserve-fds" and podman's 030-run and 075-exec
    "--preserve-fd(s)": without the option, the command gets stdin, stdout
    and stderr only. A directory of the host left open in the container
    would lead out of its root (fchdir(2) and `..`); bocker has no option to
    pass one, so none passes, in run and in exec. (The reference's chroot
    passes every inherited descriptor on.)"""
    img = box.init(busybox)
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        probe = '[ -e /proc/self/fd/%d ] && echo passed on; echo checked' % fd
        run = box.popen([BOCKER, 'run', img, probe], stdout=subprocess.PIPE, pass_fds=[fd])
        assert run.communicate(timeout=60)[0] == b'checked\n'     # the store was empty: no clash
        (uuid,) = box.containers()
        assert box.bocker('logs', uuid).out == 'checked\n'
        keeper, uuid = running_container(box, busybox)
        try:
            ex = box.popen([BOCKER, 'exec', uuid, 'sh', '-c', probe], stdout=subprocess.PIPE,
                           pass_fds=[fd])
            assert ex.communicate(timeout=60)[0] == b'checked\n'
        finally:
            box.bocker('rm', uuid)
            keeper.wait(timeout=60)
    finally:
        os.close(fd)


CAPS = ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs')
CAP_MKNOD, CAP_SYS_ADMIN = 27, 21


def test_exec_has_no_more_privilege_than_pid_1(box, container):
    """moby's TestExecWithPrivileged (a command exec starts is held as the
    container is) and runc's exec (the process gets the container's
    capabilities): the same capability sets and no_new_privs as the
    container's pid 1 (proc(5): /proc/PID/status), and so neither mknod nor
    mount."""
    r = box.bocker('exec', container, 'grep', '-E', '^(%s):' % '|'.join(CAPS),
                   '/proc/1/status', '/proc/self/status')
    lines = r.out.splitlines()
    first = [l.split(':', 1)[1] for l in lines if l.startswith('/proc/1/')]
    mine = [l.split(':', 1)[1] for l in lines if l.startswith('/proc/self/')]
    assert len(first) == len(CAPS) and first == mine, r.out
    fields = dict(l.split(':\t') for l in mine)
    assert not int(fields['CapBnd'], 16) & (1 << CAP_MKNOD | 1 << CAP_SYS_ADMIN)
    assert fields['NoNewPrivs'] == '1'
    r = box.bocker('exec', container, 'sh', '-c', 'mknod /tmp/null c 1 3 && echo MADE; '
                   'mount -t tmpfs tmpfs /tmp && echo MOUNTED; grep -c " /tmp " /proc/mounts')
    assert r.out == '0\n', r
    assert 'mknod: /tmp/null: Operation not permitted' in r.err and 'mount: ' in r.err, r


def test_ps_in_a_container_sees_its_own_processes_only(box, container):
    """The container's pid namespace, which runc's kill.bats and moby's
    TestRunModePIDHost set against the host's: ps(1) in the container lists
    its pid 1 and itself, nothing of the host (pid_namespaces(7))."""
    r = box.bocker('exec', container, 'ps', '-o', 'pid,comm')
    rows = [line.split() for line in r.out.splitlines()[1:]]
    assert [pid for pid, _ in rows][:1] == ['1'] and len(rows) == 2, r.out
    assert rows[1][1] == 'ps' and rows[0][1] == 'sleep', r.out


# --- the end of a container -----------------------------------------------------------

def test_rm_ends_every_process_of_the_container_those_of_exec_too(box, busybox):
    """runc's kill.bats (after the kill no process of the container is left,
    cgroup.procs empty), moby's TestExecStopNotHanging (an exec running when
    its container stops returns), podman's 075-exec (exec'd processes do not
    outlive their container): rm of a running container ends its pid 1, a
    process exec left in the background and a foreground exec, which returns
    128+9, as the kernel ends the pid namespace with SIGKILL; the run says
    its container was removed and exits 137 (DIVERGENCES row 46)."""
    run, uuid = running_container(box, busybox)
    try:
        r = box.bocker('exec', uuid, 'sh', '-c', 'sleep 600 </dev/null >/dev/null 2>&1 &')
        assert r.code == 0, r
        ex = box.popen([BOCKER, 'exec', uuid, 'sh', '-c', 'echo up; sleep 300'],
                       stdout=subprocess.PIPE)
        assert ex.stdout.readline() == b'up\n'
        pids = cgroup_procs(box, uuid)
        inside = container_processes(box, uuid)
        assert inside.count('sleep 600') == 2, inside       # pid 1's and the one in the background
        r = box.bocker('rm', uuid)
        assert (r.out, r.code) == ('Removed: %s\n' % uuid, 0), r
        assert ex.wait(timeout=30) == 128 + 9
        assert run.wait(timeout=30) == 137     # its container removed under it: row 46
        assert [pid for pid in pids if alive(pid)] == []
        assert box.leftovers() == {}
    finally:
        box.bocker('rm', uuid)
        run.kill()
        run.wait()


# --- /dev -----------------------------------------------------------------------------

def test_devices_act_like_devices(box, busybox):
    """moby's TestRunThatCharacterDevicesActLikeCharacterDevices (dd from
    /dev/zero makes 5 KB of zeros), runc's dev.bats "[redundant default
    /dev/ptmx]" (ptmx is 5,2, mode 0666), and what null, random and urandom
    give (null(4), random(4))."""
    img = box.init(busybox)
    uuid, r = box.run_container(
        img, 'head -c 16 /dev/urandom | wc -c; head -c 16 /dev/random | wc -c; '
             'echo gone > /dev/null; wc -c < /dev/null; '
             'dd if=/dev/zero of=/zero bs=1k count=5 2>/dev/null; wc -c < /zero; '
             'tr -d "\\000" < /zero | wc -c; stat -L -c "%t %T %a" /dev/ptmx; '
             '(exec 3<>/dev/ptmx) && echo ptmx opens')
    assert [l.strip() for l in r.out.splitlines()] == \
        ['16', '16', '0', '5120', '0', '5 2 666', 'ptmx opens'], r.out


def test_dev_pts_and_dev_shm_are_the_containers_own(box, busybox):
    """devpts(5) newinstance, as runc and Docker mount it: a pty of the host
    is not among the container's /dev/pts; /dev/shm is a tmpfs of the
    container's (moby's TestRunMountShmMqueueFromHost sets the host's against
    it): a file of the host's /dev/shm is not in it, one made in it does not
    reach the host's."""
    img = box.init(busybox)
    master, slave = os.openpty()
    host_pty = os.ttyname(slave)
    with tempfile.NamedTemporaryFile(dir='/dev/shm', prefix='bocker-host-') as host_file:
        try:
            mark = 'made-in-the-container'
            uuid, r = box.run_container(
                img, 'ls /dev/pts; ls /dev/shm; echo made > /dev/shm/%s; ls /dev/shm' % mark)
        finally:
            os.close(master)
            os.close(slave)
        assert host_pty.startswith('/dev/pts/')
        assert r.out == 'ptmx\n%s\n' % mark, r.out
        assert os.path.basename(host_file.name) not in r.out
        assert not box.exists('/dev/shm/' + mark) and not os.path.exists('/dev/shm/' + mark)


def test_dev_tty_opens_no_terminal_of_the_callers(box, busybox):
    """runc's dev.bats "[redundant default /dev/tty]" and podman's 075-exec
    "--tty", without a terminal for the container: /dev/tty (5,0) is there,
    but it opens the controlling terminal of the process (tty(4)), and a
    container's command has none: it runs in a session of its own (setsid(2)),
    so nothing it writes there reaches the caller's terminal, as with
    `docker run` and `podman run` without -t (row 44)."""
    img = box.init(busybox)
    probe = '(echo to-the-tty > /dev/tty) 2>/dev/null || echo no-tty; ls -l /dev/tty; echo wrote'
    term = Terminal(box, 'run', img, probe)
    try:
        seen = term.read_until('wrote')
        assert term.wait() == 0
    finally:
        term.close()
    assert 'to-the-tty' not in seen and 'no-tty' in seen, seen
    assert re.search(r'^crw-rw-rw- .* 5, +0 .*/dev/tty\r?$', seen, re.M), seen
    run, uuid = running_container(box, busybox)
    term = Terminal(box, 'exec', uuid, 'sh', '-c', probe)
    try:
        seen = term.read_until('wrote')
        assert term.wait() == 0
        assert 'to-the-tty' not in seen and 'no-tty' in seen, seen
    finally:
        term.close()
        box.bocker('rm', uuid)
        run.wait(timeout=60)


# --- /proc ------------------------------------------------------------------------------

PROC_SYS = ('(exec 3>>/proc/sys/kernel/core_pattern) 2>&1; echo open=$?; '
            '(exec 3>>/proc/sys/kernel/panic) 2>&1; echo open=$?; '
            'umount /proc/sys 2>&1; echo umount=$?; '
            'mount -o remount,rw /proc/sys 2>/dev/null; echo remount=$?; '
            '(exec 3>>/proc/sys/kernel/core_pattern) 2>/dev/null; echo open=$?')


def test_proc_sys_stays_read_only_in_run_and_exec(box, container):
    """moby's TestRunWriteFilteredProc (core_pattern and modprobe cannot be
    opened for writing; kernel/panic here, as these kernels have no
    modprobe) and runc's mask.bats (a masked path cannot be unmounted,
    `Operation not permitted`, nor remounted): /proc/sys is a read-only bind
    mount the command cannot take away, in run and in exec. Only opened,
    never written: the host's values are never at risk."""
    img = box.images()[0]
    uuid, r = box.run_container(img, PROC_SYS)
    x = box.bocker('exec', container, 'sh', '-c', PROC_SYS)
    for out in (r.out, x.out):
        assert out.count('Read-only file system') == 2, out
        assert "can't unmount /proc/sys: Operation not permitted" in out, out
        assert [l for l in out.splitlines() if '=' in l] == \
            ['open=1', 'open=1', 'umount=1', 'remount=1', 'open=1'], out


# --- signals beyond INT, TERM and HUP -------------------------------------------------------

HANDLE = ('for s in USR1 USR2 QUIT; do trap "echo got $s; exit 0" $s; done; echo up; '
          'while :; do sleep 0.1; done')


@pytest.mark.parametrize('sig', [signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT],
                         ids=['USR1', 'USR2', 'QUIT'])
def test_a_signal_to_a_foreground_run_reaches_pid_1_before_the_run_returns(box, busybox, sig):
    """podman's 130-kill "test signal handling in containers" (USR1, USR2,
    QUIT... each reaches the container's command) and 032-sig-proxy, Docker's
    sig-proxy (the CLI forwards every signal it can catch): the signal sent to
    `bocker run` reaches pid 1, and the run returns only when its container
    has ended, leaving what a normal end leaves (issue 18: a run never
    returns while its container still runs)."""
    img = box.init(busybox)
    run = box.popen([BOCKER, '--STOP_TIMEOUT=600', 'run', img, HANDLE], stdout=subprocess.PIPE)
    try:
        uuid = new_container(box)
        assert run.stdout.readline() == b'up\n'
        run.send_signal(sig)
        run.wait(timeout=60)
        after_a_normal_end(box, uuid)
        assert rest_of(run.stdout) == b'got %s\n' % sig.name[3:].encode()
    finally:
        run.kill()
        run.wait()


@pytest.mark.parametrize('sig', [signal.SIGUSR1, signal.SIGQUIT], ids=['USR1', 'QUIT'])
def test_a_signal_to_exec_reaches_its_command_before_exec_returns(box, container, sig):
    """The same for exec (podman's 075-exec, runc's exec.bats: the exec'd
    process is the one signalled): exec returns only when its command has
    ended, and leaves no process of its own in the container."""
    before = container_processes(box, container)
    ex = box.popen([BOCKER, '--STOP_TIMEOUT=600', 'exec', container, 'sh', '-c', HANDLE],
                   stdout=subprocess.PIPE)
    try:
        assert ex.stdout.readline() == b'up\n'
        ex.send_signal(sig)
        ex.wait(timeout=60)
        assert container_processes(box, container) == before
        assert rest_of(ex.stdout) == b'got %s\n' % sig.name[3:].encode()
    finally:
        ex.kill()
        ex.wait()
