"""Nothing reaches the caller or the host (issue 24): the tests run as an
attacker inside a container would, with the checks container audit tools make
(amicontained, deepce). A static program, tests/probe.c, built here with gcc
and copied into the busybox test image as /bin/probe, makes the system calls
and ioctls that C code in a container would make; each test says what it
tries and from where:

1. the caller's terminal, session and process group: pid 1 and exec'd
   commands in sessions of their own (setsid(2)), TIOCSTI into the caller's
   terminal refused (ioctl_tty(2)), `kill 0` reaches no process of the caller;
2. the masks on /proc bound from the container's own /dev/null, read-only:
   the host's /dev/null cannot be changed from a container;
3. a seccomp filter modelled on Docker's default profile, and keyrings: the
   caller's key cannot be read;
4. a pids limit (cgroup pids controller), which exec joins;
5. a clean environment: nothing of the caller's but TERM, with a terminal;
6. no packet sockets, no raw socket but ICMP's, no IP_HDRINCL (CAP_NET_RAW
   kept for busybox's ping, row 43), ping still working;
7. pivot_root: the container's mount namespace holds no root of the host's;
8. /sys: a read-only sysfs of the container's own network namespace, and the
   container's own cgroups (cgroup_namespaces(7));
and beside podman and Docker: the same probes in `podman run` and `docker run`
of the same image, bocker.py at least as strict as the stricter engine in each.
What the new session must not break, an interactive shell in run and exec
typed at a terminal, is tested here too.

Every test but those beside the engines runs in both sandbox flavours. Needs root and gcc (with the static
libc, libc6-dev). Only the sandbox's bridge address, 172.18.0.1, is pinged.
"""
import fcntl
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import termios
import time

import pytest

from support import BOCKER, CONTAINERS, HERE, READY, clean_env
from engines import alive

pytestmark = pytest.mark.flavours

PROBE_C = os.path.join(HERE, 'probe.c')
BRIDGE = '172.18.0.1'                      # the sandbox's br1: never any other address
DOCKER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
CAP_NET_RAW = 13
# capabilities(7), by number
CAP_NAMES = ('chown', 'dac_override', 'dac_read_search', 'fowner', 'fsetid', 'kill', 'setgid',
             'setuid', 'setpcap', 'linux_immutable', 'net_bind_service', 'net_broadcast',
             'net_admin', 'net_raw', 'ipc_lock', 'ipc_owner', 'sys_module', 'sys_rawio',
             'sys_chroot', 'sys_ptrace', 'sys_pacct', 'sys_admin', 'sys_boot', 'sys_nice',
             'sys_resource', 'sys_time', 'sys_tty_config', 'mknod', 'lease', 'audit_write',
             'audit_control', 'setfcap', 'mac_override', 'mac_admin', 'syslog', 'wake_alarm',
             'block_suspend', 'audit_read', 'perfmon', 'bpf', 'checkpoint_restore')

# What Docker's default seccomp profile (moby's profiles/seccomp/default.json)
# does to each call the probe makes, for a container without CAP_SYS_ADMIN:
# EPERM, but clone3, which it answers ENOSYS so that libc falls back to clone;
# personality is allowed with the personas 32-bit programs use (0x0008,
# PER_LINUX32) and refused with others (0x400000, READ_IMPLIES_EXEC).
# unshare and clone ask for a user namespace (CLONE_NEWUSER); socket_vsock is
# socket(AF_VSOCK).
BLOCKED = ('bpf', 'perf_event_open', 'userfaultfd', 'io_uring_setup', 'open_by_handle_at',
           'add_key', 'keyctl', 'request_key', 'unshare', 'setns', 'mount', 'umount2',
           'pivot_root', 'chroot', 'reboot', 'init_module', 'finit_module', 'delete_module',
           'kexec_load', 'swapon', 'acct', 'clock_settime', 'settimeofday', 'clone',
           'socket_vsock', 'personality_0x400000')
DOCKER_PROFILE = dict({name: 'EPERM' for name in BLOCKED},
                      clone3='ENOSYS', personality_0x0008='OK')


# --------------------------------------------------------------------------- the probe

def build_probe(directory):
    """tests/probe.c built static (the image has no libc) in directory; its path.
    (Plain functions, so that the cgroup v2 VM's tests can use them too.)"""
    assert shutil.which('gcc'), 'needs gcc and libc6-dev (make test installs them)'
    out = os.path.join(str(directory), 'probe')
    subprocess.run(['gcc', '-static', '-O2', '-Wall', '-o', out, PROBE_C], check=True)
    return out


def add_probe(image, probe, directory):
    """A copy of the image directory at directory/image, the probe in it as
    /bin/probe; its path."""
    d = os.path.join(str(directory), 'image')
    subprocess.run(['cp', '-a', image, d], check=True)
    shutil.copy(probe, d + '/bin/probe')
    os.chmod(d + '/bin/probe', 0o755)
    return d


@pytest.fixture(scope='session')
def probe_bin(tmp_path_factory):
    """The probe, built once per session."""
    return build_probe(tmp_path_factory.mktemp('probe'))


@pytest.fixture(scope='session')
def probe_image(busybox, probe_bin, tmp_path_factory):
    """The busybox test image with the probe as /bin/probe."""
    return add_probe(busybox, probe_bin, tmp_path_factory.mktemp('probe-image'))


def answers(out):
    """{NAME: VALUE} from the probe's NAME=VALUE lines (and any other
    NAME=VALUE line a test's shell prints), the last of each name winning."""
    return dict(m.groups() for m in re.finditer(r'^([A-Za-z_0-9]+)=(.*?)\r?$', out, re.M))


# --------------------------------------------------------------------------- helpers

def run_and_exec(box, img, script):
    """script's output as a run's command, then as an exec's in a running
    container of the same image."""
    _, r = box.run_container(img, script)
    run, uuid = start(box, img)
    try:
        x = box.bocker('exec', uuid, 'sh', '-c', script)
    finally:
        stop(box, run, uuid)
    return r.out, x.out


def start(box, img, *opts, env=None):
    """A container of img running READY (removed by stop()); (run, uuid)."""
    before = set(box.containers())
    run = box.popen([BOCKER, *opts, 'run', img, READY], stdout=subprocess.DEVNULL, env=env)
    uuid = box.wait_ready()
    assert uuid not in before
    return run, uuid


def stop(box, run, uuid):
    box.bocker('rm', uuid)
    run.wait(timeout=60)


def pid_1(box, uuid):
    """The host's pid of the container's pid 1: in its memory cgroup (v1;
    v2: its one cgroup), the process whose last NSpid is 1 (proc(5))."""
    v1 = box.exists('/sys/fs/cgroup/memory')
    with open(box.path('/sys/fs/cgroup/%s%s/cgroup.procs' % ('memory/' if v1 else '', uuid))) as f:
        pids = f.read().split()
    for pid in pids:
        try:
            with open('/proc/%s/status' % pid) as f:
                nspid = [l.split()[1:] for l in f if l.startswith('NSpid:')][0]
        except (OSError, IndexError):
            continue
        if len(nspid) > 1 and nspid[-1] == '1':
            return int(pid)
    raise AssertionError('no pid 1 among %s' % pids)


def wait_pid_1(box, uuid, timeout=30):
    """pid_1(), once the container's pid 1 is there."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pid_1(box, uuid)
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stat_fields(pid):
    """/proc/PID/stat after the command's name: state, ppid, pgrp, session,
    tty_nr, ... (proc(5)), as ints where they are numbers."""
    with open('/proc/%d/stat' % pid) as f:
        rest = f.read().rsplit(')', 1)[1].split()
    return {'pgrp': int(rest[2]), 'session': int(rest[3]), 'tty_nr': int(rest[4])}


class Pty:
    """argv in the sandbox on a pty of its own: its session leader, the pty its
    controlling terminal, as a terminal starts a shell."""

    def __init__(self, box, argv, env=None):
        self.master, slave = os.openpty()
        sb = box.sb

        def child():
            sb._join()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        self.proc = subprocess.Popen(sb.argv(argv), stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=child,
                                     env=clean_env(env))
        os.close(slave)
        self.seen = b''

    def type(self, text):
        os.write(self.master, text.encode())

    def read_until(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            assert time.monotonic() < deadline, self.seen.decode('utf-8', 'replace')
            try:
                self.seen += os.read(self.master, 4096)
            except OSError:                    # EIO: the other side is gone
                break
        return self.seen.decode('utf-8', 'replace')

    def drain(self, timeout=5):
        """What is left once the other side has closed the pty (EIO), or
        after timeout."""
        deadline = time.monotonic() + timeout
        while select.select([self.master], [], [], max(0, deadline - time.monotonic()))[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        return self.seen.decode('utf-8', 'replace')

    def close(self):
        os.close(self.master)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def on_a_terminal(box, *args, until):
    """bocker.sh ARGS as the session leader of a pty (as a shell runs a job);
    what it wrote there once `until` shows and it has ended."""
    term = Pty(box, [BOCKER, *args])
    try:
        seen = term.read_until(until)
        assert term.proc.wait(timeout=60) == 0, seen
        return term.drain()
    finally:
        term.close()


# --- 1. The caller's terminal, session and process group ----------------------------

def test_pid_1_and_exec_have_sessions_of_their_own_and_no_terminal(box, probe_image):
    """From a terminal (bocker the session leader of a pty): the container's
    pid 1, and a command exec starts, each lead a session of their own
    (setsid(2): getsid(0) == getpid(), in its own process group), with no
    controlling terminal (tty_nr 0; /dev/tty gives ENXIO, tty(4); TIOCSTI
    into the terminal on its stdin fails, ioctl_tty(2)). Seen from
    the host: pid 1's session and group are neither bocker's nor the
    terminal's. The reference's pid 1 was in the caller's session, the
    caller's terminal its controlling tty."""
    img = box.init(probe_image)
    seen = on_a_terminal(box, 'run', img, 'probe tiocsti 0 "#\\n"; exec probe sid',
                         until='dev_tty=')
    got = answers(seen)
    assert (got['pid'], got['sid'], got['pgrp']) == ('1', '1', '1'), seen
    assert (got['tty_nr'], got['dev_tty']) == ('0', 'ENXIO'), seen
    assert got['tiocsti'] != 'OK', seen
    run, uuid = start(box, img)
    try:
        seen = on_a_terminal(box, 'exec', uuid, 'probe', 'sid', until='dev_tty=')
        got = answers(seen)
        assert got['pid'] != '1' and got['sid'] == got['pid'] == got['pgrp'], seen
        assert (got['tty_nr'], got['dev_tty']) == ('0', 'ENXIO'), seen
        # from the host: pid 1 of a run started from a terminal
        before = set(box.containers())
        term = Pty(box, [BOCKER, 'run', img, 'echo up; exec sleep 600'])
        try:
            term.read_until('up')
            (other,) = set(box.containers()) - before
            pid = wait_pid_1(box, other)
            mine, caller = stat_fields(pid), stat_fields(term.proc.pid)
            assert mine['session'] == pid and mine['pgrp'] == pid, (mine, caller)
            assert mine['tty_nr'] == 0 and caller['tty_nr'] != 0, (mine, caller)
            box.bocker('rm', other)
        finally:
            term.close()
    finally:
        stop(box, run, uuid)


def test_nothing_the_container_types_reaches_the_callers_shell(box, probe_image, tmp_path):
    """The attack of issue 24: an interactive shell on a terminal runs
    `bocker.sh run IMG ...` and then `bocker.sh exec ...`; in each the probe
    pushes `touch FILE` and a newline into the terminal's input with
    ioctl(0, TIOCSTI) (ioctl_tty(2)). Were it let through, the shell would
    read it once bocker returns and run it as root on the host. TIOCSTI
    fails (the terminal is not the container's controlling terminal), and
    the shell runs nothing it did not get from the test."""
    img = box.init(probe_image)
    run, uuid = start(box, img)
    shell = Pty(box, ['sh', '-i'], env={'PS1': '$ ', 'ENV': ''})
    typed = {what: str(tmp_path / ('typed-by-' + what)) for what in ('run', 'exec')}
    try:
        shell.type("%s run %s 'probe tiocsti 0 \"touch %s\\n\"'; echo run-$((40+2))-ended\n"
                   % (shlex.quote(BOCKER), img, typed['run']))
        shell.read_until('run-42-ended')
        shell.type("%s exec %s probe tiocsti 0 'touch %s\\n'; echo exec-$((40+2))-ended\n"
                   % (shlex.quote(BOCKER), uuid, typed['exec']))
        shell.read_until('exec-42-ended')
        # anything pushed is in the input before this line: read and run first
        shell.type('echo checked-$((6*7))\n')
        seen = shell.read_until('checked-42')
        results = re.findall(r'tiocsti=([A-Z]+)', seen)   # after a prompt, maybe
        assert len(results) == 2 and 'OK' not in results, seen
        for what, path in typed.items():
            assert not os.path.exists(path), '%s typed into the caller\'s shell: %s' % (what, seen)
    finally:
        shell.close()
        stop(box, run, uuid)


def test_an_interactive_shell_in_a_container_still_works_from_a_terminal(box, probe_image):
    """What the new session must not break: `run IMG sh` and `exec ps_N sh`
    typed at a terminal read the commands typed there (the terminal still
    their stdin, though not their controlling terminal) and answer them; the
    shell's exit ends the run (status 0, as the bash's `|| true`) and the exec
    (the shell's status)."""
    img = box.init(probe_image)
    run, uuid = start(box, img)
    try:
        for argv, code in (([BOCKER, 'run', img, 'sh'], 0), ([BOCKER, 'exec', uuid, 'sh'], 3)):
            term = Pty(box, argv)
            try:
                term.type('echo answer-$((6*7))\n')
                term.read_until('answer-42')
                term.type('exit 3\n')
                assert term.proc.wait(timeout=60) == code, term.drain()
            finally:
                term.close()
    finally:
        stop(box, run, uuid)


CALLER = '''sleep 600 </dev/null >/dev/null 2>&1 &
echo $! > "$1"; shift
"$@"
echo "returned=$?"'''


def test_kill_0_inside_reaches_no_process_of_the_caller(box, probe_image, tmp_path):
    """`kill -USR1 0` and `kill -9 0` (kill(2): pid 0 is the sender's process
    group) in a run's pid 1 and in an exec'd command. The caller, a shell
    with a job of its own in its process group (a `sleep`, as a user's shell
    has its pipeline's other members), survives, and so does its job; the
    run returns as after a normal end and leaves no veth nor netns. In the
    reference the caller and its group were killed, the veth and netns
    left behind."""
    img = box.init(probe_image)
    for argv in (['run', img, 'kill -USR1 0; kill -9 0; echo survived'],
                 ['exec', None, 'sh', '-c', 'kill -USR1 0; kill -9 0']):
        keeper = None
        if argv[0] == 'exec':
            keeper, argv[1] = start(box, img)
        job = tmp_path / 'job'
        caller = box.popen(['sh', '-c', CALLER, 'caller', str(job), BOCKER, *argv],
                           stdout=subprocess.PIPE, start_new_session=True)
        try:
            out = caller.communicate(timeout=120)[0].decode()
            sleep = int(job.read_text())
            assert caller.returncode == 0 and 'returned=' in out, (argv, caller.returncode, out)
            assert alive(sleep), 'the caller\'s job was killed from the container'
            if argv[0] == 'run':
                assert 'survived' in out and 'returned=0' in out, out
                assert not box.netns() and not [l for l in box.links() if l.startswith('veth')]
        finally:
            if caller.poll() is None:
                caller.kill()
                caller.wait()
            if job.exists():
                try:
                    os.kill(int(job.read_text()), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            if keeper:
                stop(box, keeper, argv[1])


# --- 2. The host's /dev/null under /proc ------------------------------------------------

def masked_files():
    """The masked /proc files this kernel has (runc's list; proc(5))."""
    return [n for n in ('keys', 'timer_list', 'timer_stats', 'sched_debug', 'latency_stats',
                        'kcore') if os.path.isfile('/proc/' + n)]


def test_proc_masks_are_the_containers_own_dev_null_read_only(box, probe_image):
    """The attack of issue 24: `touch -d 2001-02-03 /proc/keys` from a
    container changed the host's /dev/null (the mask was a writable bind of
    it; `chmod 000` would have broken /dev/null for the whole host). In run
    and in exec, touching each masked file fails (read-only), the host's
    /dev/null keeps its mode, owner and times, and each mask is, in the
    container's mount table, a read-only mount from the device of the
    container's own /dev (its tmpfs), not the host's devtmpfs. The host's
    /dev/null is put back should it change."""
    names = masked_files()
    assert 'keys' in names
    before = os.stat('/dev/null')
    touch = ' '.join('touch -d 2001-02-03 /proc/%s; echo %s=$?;' % (n, n) for n in names)
    img = box.init(probe_image)
    run, uuid = start(box, img)
    try:
        _, r = box.run_container(img, touch)
        x = box.bocker('exec', uuid, 'sh', '-c', touch)
        after = os.stat('/dev/null')
        for out in (r.out, x.out):
            got = answers(out)
            assert all(got.get(n) not in (None, '0') for n in names), out
        assert (after.st_mode, after.st_uid, after.st_gid, after.st_mtime_ns) == \
            (before.st_mode, before.st_uid, before.st_gid, before.st_mtime_ns)
        with open('/proc/%d/mountinfo' % pid_1(box, uuid)) as f:
            table = [line.split() for line in f]
        dev = [m[2] for m in table if m[4] == '/dev']
        assert len(dev) == 1, table
        for n in names:
            mask = [m for m in table if m[4] == '/proc/' + n]
            assert mask, (n, table)
            assert mask[-1][2] == dev[0], ('/proc/%s is not bound from the container\'s /dev'
                                           % n, mask[-1], dev)
            assert 'ro' in mask[-1][5].split(','), mask[-1]
    finally:
        stop(box, run, uuid)
        now = os.stat('/dev/null')
        if (now.st_mtime_ns, now.st_atime_ns) != (before.st_mtime_ns, before.st_atime_ns):
            os.utime('/dev/null', ns=(before.st_atime_ns, before.st_mtime_ns))
        if now.st_mode != before.st_mode:
            os.chmod('/dev/null', before.st_mode & 0o7777)
        if (now.st_uid, now.st_gid) != (before.st_uid, before.st_gid):
            os.chown('/dev/null', before.st_uid, before.st_gid)


# --- 3. Seccomp and keyrings -------------------------------------------------------------

def test_a_seccomp_filter_refuses_what_dockers_profile_refuses(box, probe_image):
    """/proc/self/status shows `Seccomp: 2` (a filter, proc(5)) in pid 1,
    in a command of run and in an exec'd one; the probe's calls get what
    Docker's default profile gives them (DOCKER_PROFILE): EPERM for the
    keyrings, bpf, perf_event_open, userfaultfd, io_uring, user namespaces,
    module and clock calls, AF_VSOCK sockets..., ENOSYS for clone3. Each call
    is made with arguments that change nothing were it let through."""
    img = box.init(probe_image)
    calls = ' '.join(DOCKER_PROFILE)
    script = ('grep -h "^Seccomp:" /proc/1/status /proc/self/status | tr -d "\\t "; '
              'probe syscall ' + calls)
    for out in run_and_exec(box, img, script):
        assert out.splitlines()[:2] == ['Seccomp:2', 'Seccomp:2'], out
        got = answers(out)
        wrong = {n: (got.get(n), want) for n, want in DOCKER_PROFILE.items()
                 if got.get(n) != want}
        assert wrong == {}, 'got, wanted: %r' % wrong


KEY_CALLER = r'''
import ctypes, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_add_key, SYS_keyctl = 248, 250
GET_KEYRING_ID, JOIN_SESSION_KEYRING, UNLINK = 0, 1, 9
SESSION = ctypes.c_long(-3)


def check(ret, what):
    if ret < 0:
        raise OSError(ctypes.get_errno(), what)
    return ret


# a session keyring of this caller's own (keyrings(7)), holding one key
check(libc.syscall(ctypes.c_long(SYS_keyctl), ctypes.c_long(JOIN_SESSION_KEYRING), None), 'join')
ring = check(libc.syscall(ctypes.c_long(SYS_keyctl), ctypes.c_long(GET_KEYRING_ID), SESSION,
                          ctypes.c_long(0)), 'keyring')
secret = sys.argv[1].encode()
key = check(libc.syscall(ctypes.c_long(SYS_add_key), b'user', b'probe-secret', secret,
                         ctypes.c_long(len(secret)), SESSION), 'add_key')
try:
    print('caller_session=%d\ncaller_key=%d' % (ring, key), flush=True)
    code = subprocess.call([a.replace('@KEY@', str(key)) for a in sys.argv[2:]])
finally:
    check(libc.syscall(ctypes.c_long(SYS_keyctl), ctypes.c_long(UNLINK), ctypes.c_long(key),
                       ctypes.c_long(ring)), 'unlink')
sys.exit(code)
'''


def test_the_callers_keys_are_out_of_reach(box, probe_image):
    """The attack of issue 24: the container read a key its caller had added
    to its session keyring (keyrings(7)). The caller here adds one to a
    session keyring of its own, then runs and execs the probe: the
    container's session keyring is not the caller's (keyctl refused, or
    another keyring), KEYCTL_READ of the key fails (EPERM: keyctl is refused,
    as in Docker), its secret shows nowhere, and /proc/keys is empty. The key
    is unlinked afterwards."""
    img = box.init(probe_image)
    secret = 'probe-secret-%d' % os.getpid()
    script = 'probe keyring; probe readkey @KEY@; echo keys=$(wc -c < /proc/keys)'
    run, uuid = start(box, img)
    try:
        for argv in ([BOCKER, 'run', img, script], [BOCKER, 'exec', uuid, 'sh', '-c', script]):
            r = box._run([sys.executable, '-I', '-c', KEY_CALLER, secret, *argv])
            got = answers(r.out)
            assert r.code == 0 and 'caller_key' in got, r
            assert got.get('session_keyring') not in (None, got['caller_session']), r.out
            assert got.get('readkey') == 'EPERM', r.out
            assert got.get('keys') == '0', r.out
            assert secret not in r.out and secret not in r.err, r
    finally:
        stop(box, run, uuid)


# --- 4. A pids limit ----------------------------------------------------------------------

FORK = 'i=0; while [ $i -lt 40 ]; do sleep 600 & i=$((i+1)); done; echo started=$i'


def cgroup_knob(box, uuid, controller, knob):
    """A knob of the container's cgroup, read from the host (the sandbox):
    v1 in the controller's hierarchy, v2 in the one unified hierarchy."""
    if box.exists('/sys/fs/cgroup/' + controller):
        return box.read('/sys/fs/cgroup/%s/%s/%s' % (controller, uuid, knob)).strip()
    return box.read('/sys/fs/cgroup/%s/%s' % (uuid, knob)).strip()


def test_a_pids_limit_stops_a_fork_bomb_in_run_and_exec(box, probe_image):
    """`--PIDS_LIMIT=20` and BOCKER_PIDS_LIMIT=20: a container's shell that
    starts 40 background sleeps cannot fork past 20 processes (the pids
    controller's pids.max: fork(2) fails with EAGAIN, busybox says `can't
    fork`); nor can a shell exec starts in it, which the same limit holds.
    By default the limit is 2048 (podman's), seen from the host and inside,
    and 40 sleeps start. rm removes the pids cgroup with the others."""
    img = box.init(probe_image)
    for how in (dict(opts=['--PIDS_LIMIT=20']), dict(env={'BOCKER_PIDS_LIMIT': '20'})):
        r = box.bocker(*how.get('opts', []), 'run', img, FORK, env=how.get('env'))
        assert "can't fork" in r.out and 'started=40' not in r.out, (how, r)
    run, uuid = start(box, img, '--PIDS_LIMIT=20')
    try:
        assert cgroup_knob(box, uuid, 'pids', 'pids.max') == '20'
        x = box.bocker('exec', uuid, 'sh', '-c', FORK)
        assert "can't fork" in x.out + x.err and 'started=40' not in x.out, x
        assert int(cgroup_knob(box, uuid, 'pids', 'pids.current')) <= 20
    finally:
        stop(box, run, uuid)
    assert not box.exists('/sys/fs/cgroup/pids/' + uuid), 'rm left the pids cgroup'
    run, uuid = start(box, img)
    try:
        assert cgroup_knob(box, uuid, 'pids', 'pids.max') == '2048'
        x = box.bocker('exec', uuid, 'sh', '-c', 'cat /sys/fs/cgroup/pids/pids.max '
                       '2>/dev/null || cat /sys/fs/cgroup/pids.max')
        assert x.out == '2048\n', x
    finally:
        stop(box, run, uuid)
    _, r = box.run_container(img, FORK)
    assert 'started=40' in r.out, r


# --- 5. The caller's environment ----------------------------------------------------------

def environment(out):
    return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)


def test_nothing_of_the_callers_environment_but_term(box, probe_image):
    """The attack of issue 24: a secret exported in the caller's shell was in
    the container's `env`, in run and in exec. Now a container's command
    gets what Docker gives: PATH (Docker's default), HOME=/root, HOSTNAME
    (the container's hostname), and the caller's TERM only when the command
    reads a terminal (run and exec typed at a pty; not with stdin a pipe,
    though TERM is set); nothing else of the caller's (a shell adds PWD and
    SHLVL itself). From the host: pid 1's
    /proc/PID/environ holds no secret either."""
    img = box.init(probe_image)
    secret = 'probe-secret-%d' % os.getpid()
    env = {'PROBE_SECRET': secret, 'TERM': 'xterm-probe', 'PATH': os.environ['PATH']}
    shell_adds = {'PWD', 'SHLVL', '_'}
    show = 'env; echo uname=$(hostname)'

    def on_a_pty(*args):
        term = Pty(box, [BOCKER, *args], env=env)
        try:
            seen = term.read_until('uname=')
            assert term.proc.wait(timeout=60) == 0, seen
            return term.drain()
        finally:
            term.close()
    run, uuid = start(box, img, env=env)
    try:
        for how, out in (('run', box.run_container(img, show, env=env)[1].out),
                         ('exec', box.bocker('exec', uuid, 'sh', '-c', show, env=env).out),
                         ('run on a pty', on_a_pty('run', img, show)),
                         ('exec on a pty', on_a_pty('exec', uuid, 'sh', '-c', show))):
            got = environment(out)
            hostname = got.pop('uname')
            want = {'PATH', 'HOME', 'HOSTNAME'} | ({'TERM'} if 'pty' in how else set())
            assert set(got) - shell_adds == want, (how, out)
            assert (got['PATH'], got['HOME'], got.get('TERM')) == \
                (DOCKER_PATH, '/root', 'xterm-probe' if 'pty' in how else None), (how, out)
            assert got['HOSTNAME'] == hostname != '', (how, out)
            assert secret not in out, (how, out)
        with open('/proc/%d/environ' % pid_1(box, uuid), 'rb') as f:
            assert secret.encode() not in f.read()
    finally:
        stop(box, run, uuid)


# --- 6. CAP_NET_RAW ------------------------------------------------------------------------

def test_no_packet_sockets_nor_forged_headers_yet_ping_works(box, probe_image):
    """The attack of issue 24: packet sockets opened in a container (arping
    on br1 could spoof another container's address; a raw IP socket, or one
    with IP_HDRINCL, another container's source address). Row 43: bocker
    keeps CAP_NET_RAW as Docker does (busybox's ping needs its raw ICMP
    socket: the reference's and upstream's `ping` examples), and its seccomp
    filter refuses, in run and exec, every packet socket (AF_PACKET, IPv4's
    SOCK_PACKET), raw sockets of other protocols and IP_HDRINCL, with EPERM;
    option 3 of another level (TCP_CORK) still works. ping works both ways:
    busybox's raw socket, and an ICMP echo socket (icmp(7),
    net.ipv4.ping_group_range, set in the container's netns only, the host's
    left as it was) as iputils' ping uses one; both ping the sandbox's bridge."""
    with open('/proc/sys/net/ipv4/ping_group_range') as f:
        host_range = f.read()
    img = box.init(probe_image)
    script = ('grep "^CapBnd:" /proc/self/status | tr -d "\\t"; probe packet; probe ping %s; '
              'ping -c 1 -W 2 %s > /dev/null && echo busybox_ping=OK' % (BRIDGE, BRIDGE))
    for out in run_and_exec(box, img, script):
        got = dict(answers(out), **{k: v for k, v in (l.split(':', 1) for l in out.splitlines()
                                                       if l.startswith('CapBnd:'))})
        assert int(got['CapBnd'], 16) & 1 << CAP_NET_RAW, out      # kept, as Docker
        assert [got[k] for k in ('packet', 'inet_packet', 'raw_udp', 'raw_ip', 'hdrincl')] == \
            ['EPERM'] * 5, out
        assert [got[k] for k in ('raw_icmp', 'icmp_dgram', 'tcp_cork', 'ping')] == ['OK'] * 4, out
        assert 'busybox_ping=OK' in out, out
    with open('/proc/sys/net/ipv4/ping_group_range') as f:
        assert f.read() == host_range


# --- 7. pivot_root --------------------------------------------------------------------------

@pytest.mark.v2(flavours=('sandbox',))
def test_the_containers_mount_namespace_holds_no_root_of_the_hosts(box, probe_image):
    """The attack of issue 24: `nsenter -t PID -m ls /` from the host listed
    the host's files: the container's mount namespace still had the host's
    root (chroot(2) only moved the process's root). After pivot_root(2) and
    the old root detached, the namespace's root is the container's: nsenter
    lists the container's files (what the host sees in merged) and, entering
    its pid namespace too, /proc/self/mountinfo has no mount of the host's
    root file system; exec lands in the same root."""
    img = box.init(probe_image)
    run, uuid = start(box, img)
    try:
        pid = str(pid_1(box, uuid))
        merged = set(box.ls('%s/%s/merged' % (CONTAINERS, uuid)))
        r = box._run(['nsenter', '-t', pid, '-m', 'ls', '-A', '/'])
        assert set(r.out.split()) == merged, r
        with open('/proc/self/mountinfo') as f:
            host_root = [l.split()[2:4] for l in f if l.split()[4] == '/'][-1]
        r = box._run(['nsenter', '-t', pid, '-m', '-p', 'cat', '/proc/self/mountinfo'])
        table = [l.split() for l in r.out.splitlines()]
        assert table and host_root not in [m[2:4] for m in table], (host_root, r.out)
        roots = [m for m in table if m[4] == '/']
        assert roots and roots[-1][roots[-1].index('-') + 1] == 'overlay', r.out
        with open('/proc/%s/mountinfo' % pid) as f:      # pid 1's own view
            assert host_root not in [l.split()[2:4] for l in f]
        x = box.bocker('exec', uuid, 'ls', '-A', '/')
        assert set(x.out.split()) == merged, x
    finally:
        stop(box, run, uuid)


# --- 8. /sys and the container's cgroups --------------------------------------------------

SYS = ('ls -1 /sys/class/net; grep " /sys " /proc/mounts | cut -d" " -f3,4 | cut -d, -f1; '
       'cat /sys/class/net/lo/mtu > /sys/class/net/lo/mtu; echo write=$?; '
       'echo memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || '
       'cat /sys/fs/cgroup/memory.max); cat /proc/self/cgroup')


def test_sys_is_the_containers_own_read_only_with_its_own_cgroups(box, probe_image):
    """/sys in a container is a sysfs of its own network namespace (sysfs(5)
    shows the netns of whoever mounts it): /sys/class/net lists lo and
    veth1_ps_N alone, whatever the host's /sys shows (the 'unshare' flavour
    keeps the host's), and it is read-only: a write fails. Under
    /sys/fs/cgroup the container sees its own cgroup (a cgroup namespace,
    cgroup_namespaces(7)): the memory limit there is MEM_LIMIT * 1000000 as
    the kernel keeps it (rounded down to whole pages), and every line of
    /proc/self/cgroup reads `/`; in run and exec."""
    img = box.init(probe_image)
    page = os.sysconf('SC_PAGE_SIZE')
    want = str(100 * 1000000 // page * page)
    before = set(box.containers())
    r = box.bocker('--MEM_LIMIT=100', 'run', img, SYS)
    (uuid,) = set(box.containers()) - before
    run, keeper = start(box, img, '--MEM_LIMIT=100')
    try:
        x = box.bocker('exec', keeper, 'sh', '-c', SYS)
    finally:
        stop(box, run, keeper)
    for ps, out in ((uuid, r.out), (keeper, x.out)):
        lines = out.splitlines()
        got = answers(out)
        assert lines[:3] == ['lo', 'veth1_' + ps, 'sysfs ro'], out
        assert got['write'] != '0', out
        assert got['memory'] == want, out
        cgroups = [l for l in lines if re.match(r'^\d+:[^:]*:', l)]
        assert cgroups and all(l.endswith(':/') for l in cgroups), out


# --- Beside podman and Docker ---------------------------------------------------------------
# The same probes in `docker run` and `podman run` of the same image (exported
# with compat/export-image), in one engines sandbox for the module (see
# tests/test_engines.py and tests/engines.py): for each case bocker.py is at
# least as strict as the stricter engine.

# One run of the probes in a container, with no terminal, whatever runs it.
SIDE_BY_SIDE = ('echo seccomp=$(grep "^Seccomp:" /proc/self/status | tr -dc 0-9); '
                'echo capbnd=$(grep "^CapBnd:" /proc/self/status | cut -f2); '
                'probe syscall %s; probe packet; probe sid; probe keyring; '
                'touch -d 2001-02-03 /proc/keys 2>/dev/null; echo touch_keys=$?; '
                'echo pids_max=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || '
                'cat /sys/fs/cgroup/pids.max 2>/dev/null || echo none); '
                'echo sys=$(grep " /sys " /proc/mounts | cut -d" " -f3,4 | cut -d, -f1); '
                'echo env=$(env | cut -d= -f1 | sort | tr "\\n" " ")') % ' '.join(DOCKER_PROFILE)
PROBE_NAME = 'localhost/bocker-probe:v1'
REFUSED = {'EPERM', 'ENOSYS', 'EACCES'}


@pytest.fixture(scope='module')
def side_by_side(probe_image, tmp_path_factory):
    """{'bocker': answers, 'docker': answers, 'podman': answers} of
    SIDE_BY_SIDE, each run once, with a secret in the caller's environment."""
    import engines
    from sandbox import Sandbox
    from support import Box, Docker, left_running
    secret = {'PROBE_SECRET': 'probe-secret-%d' % os.getpid()}
    got = {}
    with Sandbox(engines=True) as sb:
        ebox = Box(sb)
        img = ebox.init(probe_image)
        _, r = ebox.run_container(img, SIDE_BY_SIDE, env=secret)
        got['bocker'] = r
        tar = str(tmp_path_factory.mktemp('probe-export') / 'probe.tar')
        r = ebox._run(['sh', '-c', 'exec "$0" "$@" > "$OUT"',
                       os.path.join(os.path.dirname(HERE), 'compat', 'export-image'), img,
                       PROBE_NAME], env={'OUT': tar})
        assert r.code == 0, r
        docker = Docker(ebox, tmp_path_factory.mktemp('docker'))
        try:
            assert docker('load', '-q', '-i', tar).code == 0
            got['docker'] = docker('run', '--rm', '--network', 'none', PROBE_NAME,
                                   '/bin/sh', '-c', SIDE_BY_SIDE, env=secret)
        finally:
            assert docker.stop() == []
        podman = engines.Podman(ebox, tmp_path_factory.mktemp('podman'), '/run/bocker-podman')
        assert podman('load', '-i', tar).code == 0
        podman.env.update(secret)
        got['podman'] = podman.run(PROBE_NAME, '/bin/sh', '-c', SIDE_BY_SIDE)
        assert left_running(ebox) == []
    for tool, r in got.items():
        assert r.code == 0 and secret['PROBE_SECRET'] not in r.out, (tool, r)
    return {tool: answers(r.out) for tool, r in got.items()}


# Where bocker.py is, on purpose, looser than the stricter engine, and the
# DIVERGENCES.md row that says why: podman drops CAP_NET_RAW, bocker.py keeps
# it for busybox's ping and refuses every other raw and packet socket instead.
LOOSER_BY_ROW = {'raw_icmp': 43, 'net_raw': 43}


def test_refused_where_an_engine_refuses_it(side_by_side):
    """Each call the probe makes (DOCKER_PROFILE, the raw and packet sockets,
    the keyring, touching /proc/keys, opening /dev/tty) that podman or Docker
    refuses, bocker.py refuses too, but where a row says why not
    (LOOSER_BY_ROW). (A refusal: EPERM, ENOSYS or EACCES; for touch a non-zero
    status, for /dev/tty any error.)"""
    def refused(name, value):
        if name in ('touch_keys', 'dev_tty'):
            return value not in ('OK', '0')
        return value in REFUSED
    looser = {}
    for name in list(DOCKER_PROFILE) + ['packet', 'raw_icmp', 'session_keyring', 'touch_keys',
                                        'dev_tty']:
        values = {t: a[name] for t, a in side_by_side.items()}
        if not refused(name, values['bocker']) and \
                any(refused(name, values[e]) for e in ('docker', 'podman')) and \
                name not in LOOSER_BY_ROW:
            looser[name] = values
    assert looser == {}, 'refused by an engine, not by bocker.py: %r' % looser


def test_no_capability_an_engine_drops_and_a_filter_as_theirs(side_by_side):
    """The bounding set holds no capability either engine drops
    (capabilities(7)); Seccomp: 2 where theirs is; pid 1's session is its
    own where theirs is (sid 1)."""
    caps = {t: int(a['capbnd'], 16) for t, a in side_by_side.items()}
    extra = caps['bocker'] & ~(caps['docker'] & caps['podman'])
    extra &= ~sum(1 << CAP_NAMES.index(name) for name in LOOSER_BY_ROW if name in CAP_NAMES)
    assert extra == 0, 'kept by bocker.py, dropped by an engine: %s' % [
        CAP_NAMES[bit] if bit < len(CAP_NAMES) else bit for bit in range(64) if extra >> bit & 1]
    for name, want in (('seccomp', '2'), ('sid', '1')):
        if any(side_by_side[e][name] == want for e in ('docker', 'podman')):
            assert side_by_side['bocker'][name] == want, (name, side_by_side)


def test_a_pids_limit_and_sys_no_looser_than_an_engines(side_by_side):
    """pids.max no higher than the lower of the engines' ('max': none); /sys
    read-only where theirs is; no variable in the environment that either
    engine leaves out (a shell's own PWD and SHLVL aside): podman's TERM
    without a terminal is not bocker's, as it is not Docker's (row 40)."""
    def limit(value):
        return float('inf') if value in ('max', 'none') else int(value)

    def each(name):
        return {t: a[name] for t, a in side_by_side.items()}
    assert limit(side_by_side['bocker']['pids_max']) <= min(
        limit(side_by_side[e]['pids_max']) for e in ('docker', 'podman')), each('pids_max')
    if any(side_by_side[e]['sys'] == 'sysfs ro' for e in ('docker', 'podman')):
        assert side_by_side['bocker']['sys'] == 'sysfs ro', each('sys')
    theirs = set(side_by_side['docker']['env'].split()) & set(side_by_side['podman']['env'].split())
    assert set(side_by_side['bocker']['env'].split()) - theirs - {'PWD', 'SHLVL'} == set(), \
        each('env')
