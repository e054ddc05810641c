"""A container's life as runtimes keep it (issue 18): signals to a foreground
run or exec, exec inside the container's cgroups, no host block device, a
/dev of its own, hard links kept. Cases taken from the runtimes' own suites:
runc's tests/integration (kill.bats, exec.bats, dev.bats), podman's
test/system (032-sig-proxy.bats, 050-stop.bats, 075-exec.bats, 130-kill.bats)
and moby's integration-cli (docker_cli_run_test.go, docker_cli_exec_test.go).

Signals reach bocker the way users send them: a terminal's ctrl-C (a pty whose
line discipline sends SIGINT to its foreground process group, termios(3)),
`kill`, and a closed terminal (SIGHUP when the pty's master closes, pty(7)).
Every test runs in both sandbox flavours. Needs root, like the suite.
"""
import os
import signal
import stat
import subprocess
import time

import pytest

from support import (BOCKER, CONTAINERS, OVERLAY, Terminal, after_a_normal_end, container_processes,
                     new_container, running_container)

pytestmark = pytest.mark.flavours
GRACE = '--STOP_TIMEOUT=2'


# --- 1. Signals to a foreground run ------------------------------------------------

def run_on_a_terminal(box, busybox, command, send, code):
    """`run IMG COMMAND` on a terminal of its own; once it says up, send(the
    terminal); the run exits with code, leaving what a normal end leaves.
    The container's id."""
    img = box.init(busybox)
    term = Terminal(box, GRACE, 'run', img, command)
    try:
        term.read_until('up')
        uuid = new_container(box)
        send(term)
        assert term.wait() == code
        after_a_normal_end(box, uuid)
    finally:
        term.close()
    return uuid


@pytest.mark.v2(flavours=('sandbox',))
def test_ctrl_c_stops_the_container_and_cleans_up_as_a_normal_end(box, busybox):
    """The reference's run, on ctrl-C, waits for pid 1 (which ignores SIGINT)
    to end by itself; bocker.py passes SIGINT on, waits out the grace, kills
    what is left and exits 130, leaving what a normal end leaves."""
    # the terminal's SIGINT reaches every process of the run; these ignore it
    uuid = run_on_a_terminal(box, busybox, 'trap "" INT; echo up; sleep 60', Terminal.ctrl_c, 130)
    assert box.bocker('logs', uuid).out == 'up\n'
    commit = box.bocker('commit', uuid, 'img_1')
    assert commit.code == 0, commit
    assert box.bocker('rm', uuid).code == 0
    assert box.leftovers() == {}


def test_a_second_ctrl_c_ends_the_grace_at_once(box, busybox):
    """podman's 032-sig-proxy and Docker's CLI: a second ctrl-C does not wait.
    With a grace of 600 s the run ends within the test's 60 s only if the
    second ctrl-C kills at once."""
    img = box.init(busybox)
    term = Terminal(box, '--STOP_TIMEOUT=600', 'run', img, 'trap "" INT; echo up; sleep 300')
    try:
        term.read_until('up')
        uuid = new_container(box)
        term.ctrl_c()
        time.sleep(0.5)
        assert term.proc.poll() is None        # in its grace
        term.ctrl_c()
        assert term.wait(timeout=60) == 130
        after_a_normal_end(box, uuid)
    finally:
        term.close()


def test_the_signal_is_passed_on_to_pid_1(box, busybox):
    """A pid 1 with a handler gets the signal sent to the run alone (not to the
    whole group: `kill` to bocker's pid), ends by itself, and the run exits
    128+N (runc's kill.bats, podman's 130-kill.bats)."""
    img = box.init(busybox)
    for sig, name in ((signal.SIGINT, 'INT'), (signal.SIGTERM, 'TERM')):
        before = box.containers()
        run = box.popen([BOCKER, '--STOP_TIMEOUT=600', 'run', img,
                         'trap "echo got %s; exit 3" %s; echo up; while :; do sleep 0.1; done'
                         % (name, name)], stdout=subprocess.PIPE)
        uuid = new_container(box, before)
        assert run.stdout.readline() == b'up\n'
        run.send_signal(sig)
        assert run.wait(timeout=60) == 128 + sig
        assert run.stdout.read() == b'got %s\n' % name.encode()
        after_a_normal_end(box, uuid)
        assert box.bocker('logs', uuid).out == 'up\ngot %s\n' % name


@pytest.mark.v2(flavours=('sandbox',))
def test_sigterm_without_a_handler_kills_after_the_grace(box, busybox):
    """`timeout 5 bocker run ...` sends SIGTERM: the reference dies and leaves
    the container running with its veth and netns; bocker.py ends it."""
    img = box.init(busybox)
    # as `timeout` sends it, once the container runs (not after a fixed time:
    # a slow host may not have started it by then)
    run = box.popen([BOCKER, GRACE, 'run', img, 'echo up; sleep 60'], stdout=subprocess.PIPE)
    try:
        assert run.stdout.readline() == b'up\n'
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 143
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        run.stdout.close()
    (uuid,) = box.containers()
    after_a_normal_end(box, uuid)
    assert box.bocker('logs', uuid).out == 'up\n'


@pytest.mark.v2(flavours=('sandbox',))
def test_a_closed_terminal_ends_the_run_cleanly(box, busybox):
    """SIGHUP: the terminal is gone (the pty's master closed). unshare dies
    of it at once; bocker.py still stops the container and cleans up, and the
    log keeps what the container wrote after the terminal went."""
    # the trap is set before `up` is said: a SIGHUP before it would find pid 1
    # with no handler, and the kernel drops such a signal to a namespace's init
    uuid = run_on_a_terminal(box, busybox, 'trap "echo hup; exit 0" HUP; echo up; '
                             'while :; do sleep 0.1; done', Terminal.hang_up, 129)
    assert box.bocker('logs', uuid).out == 'up\nhup\n'


# --- 1b. Signals to exec -------------------------------------------------------------

@pytest.mark.v2(flavours=('sandbox',))
def test_exec_passes_a_signal_on_and_returns_128_plus_n(box, busybox):
    """podman's 075-exec and runc's exec.bats: the exec'd command gets the
    signal; exec returns 128+N; nothing it started stays in the container."""
    run, uuid = running_container(box, busybox)
    before = container_processes(box, uuid)
    try:
        ex = box.popen([BOCKER, '--STOP_TIMEOUT=600', 'exec', uuid, 'sh', '-c',
                        'trap "echo got TERM; exit 0" TERM; echo up; '
                        'while :; do sleep 0.1; done'], stdout=subprocess.PIPE)
        assert ex.stdout.readline() == b'up\n'
        ex.send_signal(signal.SIGTERM)
        assert ex.wait(timeout=60) == 143
        assert ex.stdout.read() == b'got TERM\n'
        assert container_processes(box, uuid) == before
    finally:
        box.bocker('rm', uuid)
        run.wait(timeout=60)


def test_ctrl_c_on_exec_ends_a_command_that_ignores_it(box, busybox):
    """A terminal's ctrl-C kills nsenter (it has no handler); the command,
    which ignores SIGINT, comes to bocker.py (a child subreaper), and the
    grace ends it: exec returns 130 and leaves no process behind."""
    run, uuid = running_container(box, busybox)
    before = container_processes(box, uuid)
    term = Terminal(box, GRACE, 'exec', uuid, 'sh', '-c',
                    'trap "" INT; echo up; while :; do sleep 0.1; done')
    try:
        term.read_until('up')
        term.ctrl_c()
        assert term.wait() == 130
        assert container_processes(box, uuid) == before
    finally:
        term.close()
        box.bocker('rm', uuid)
        run.wait(timeout=60)


# --- 2. exec inside the container's cgroups ---------------------------------------

@pytest.mark.v2(flavours=('sandbox',))
def test_exec_runs_in_the_containers_cgroups_and_its_memory_limit(box, busybox):
    """runc's and Docker's exec join the container's cgroups: cpu, cpuacct,
    memory and pids. A 60 MB buffer started by exec is OOM-killed at a 20 MB limit, as
    in the container itself, and the container's pid 1 lives on."""
    run, uuid = running_container(box, busybox, '--MEM_LIMIT=20')
    before = container_processes(box, uuid)
    try:
        r = box.bocker('exec', uuid, 'cat', '/proc/self/cgroup')
        # in the container's cgroup namespace (row 45), rooted at ps_N: `/` is
        # ps_N itself (a cgroup outside it would read /../NAME)
        lines = dict(l.split(':', 2)[1:] for l in r.out.splitlines())
        for controller in ('cpu', 'cpuacct', 'memory', 'pids') if box.layout == 'v1' else ('',):
            assert lines[controller] == '/', r.out
        r = box.bocker('exec', uuid, 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=60M', 'count=1')
        assert r.code == 137, r
        # v1: memory.oom_control, v2: memory.events count the kills
        events = 'memory.oom_control' if box.layout == 'v1' else 'memory.events'
        oom = dict(l.split() for l in box.read(
            box.cgroup_dir('memory', uuid) + '/' + events).splitlines())
        assert int(oom['oom_kill']) >= 1, oom
        assert container_processes(box, uuid) == before
    finally:
        box.bocker('rm', uuid)
        run.wait(timeout=60)


# --- 3. No host block device ----------------------------------------------------------

@pytest.fixture
def loop_device(tmp_path):
    """A loop device of the host (standing in for its disk) over a file of
    known bytes (losetup(8)); detached afterwards."""
    backing = tmp_path / 'disk'
    backing.write_bytes(b'HOSTDISK' * 512 * 16)
    # where loop is a module (Debian's kernel, the v2 VM), load it; built in: nothing to do
    subprocess.run(['modprobe', 'loop'], capture_output=True)
    dev = subprocess.run(['losetup', '--find', '--show', str(backing)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield dev, backing
    finally:
        subprocess.run(['losetup', '-d', dev], check=True)


def test_no_container_opens_a_host_block_device(box, busybox, tmp_path, loop_device):
    """Docker stops this with its devices cgroup, podman also drops CAP_MKNOD;
    bocker.py drops CAP_MKNOD and mounts the container's root nodev: neither a
    node the container makes nor one its image ships reads or writes the
    loop device. The image keeps its node as a file of the image."""
    dev, backing = loop_device
    rdev = os.stat(dev).st_rdev
    major, minor = os.major(rdev), os.minor(rdev)
    src = tmp_path / 'image'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    os.mknod(src / 'disk', 0o600 | stat.S_IFBLK, rdev)
    img = box.init(str(src))
    shipped = os.lstat(box.path('%s/%s/disk' % (OVERLAY, img)))
    assert stat.S_ISBLK(shipped.st_mode) and shipped.st_rdev == rdev
    r = box.bocker('run', img, 'mknod /tmp/d b %d %d; echo mknod=$?; '
                   'head -c 8 /disk; echo head=$?; '
                   'echo WRITTEN | dd of=/disk conv=notrunc; echo dd=$?' % (major, minor))
    assert 'mknod=1' in r.out and 'head=1' in r.out and 'dd=1' in r.out, r.out
    assert 'HOSTDISK' not in r.out
    assert backing.read_bytes() == b'HOSTDISK' * 512 * 16
    with open(dev, 'rb') as f:
        assert f.read(8) == b'HOSTDISK'


# --- 4. A /dev of its own ---------------------------------------------------------------

DEVICES = {'null': (1, 3), 'zero': (1, 5), 'full': (1, 7), 'random': (1, 8),
           'urandom': (1, 9), 'tty': (5, 0)}


def test_every_container_gets_a_dev_as_runc_gives_one(box, busybox):
    """runc's dev.bats: character devices with their usual numbers, mode 0666;
    /dev/pts a devpts of its own with ptmx; /dev/shm a sticky tmpfs; the fd
    and std links. An image without /dev (pulled ones ship none) gets it too."""
    assert not os.path.exists(busybox + '/dev')
    img = box.init(busybox)
    r = box.bocker('run', img, 'for d in null zero full random urandom tty; do '
                   'stat -c "%n %F %t %T %a" /dev/$d; done; '
                   'for l in fd stdin stdout stderr ptmx; do echo "$l $(readlink /dev/$l)"; done; '
                   'stat -c "%a" /dev/shm; grep -E " /dev(/pts|/shm)? " /proc/mounts | cut -d" " -f2,3; '
                   'exec 3<>/dev/ptmx && ls /dev/pts; head -c 5 /dev/zero | od -An -tx1; '
                   'echo x > /dev/full; echo full=$?')
    out = r.out.splitlines()
    for name, (major, minor) in DEVICES.items():
        assert '/dev/%s character special file %x %x 666' % (name, major, minor) in out, r.out
    for link, target in (('fd', '/proc/self/fd'), ('stdin', '/proc/self/fd/0'),
                         ('stdout', '/proc/self/fd/1'), ('stderr', '/proc/self/fd/2'),
                         ('ptmx', 'pts/ptmx')):
        assert '%s %s' % (link, target) in out, r.out
    assert '1777' in out
    assert {'/dev tmpfs', '/dev/pts devpts', '/dev/shm tmpfs'} <= set(out), r.out
    assert '0' in out                          # the pty just opened: /dev/pts/0
    assert ' 00 00 00 00 00' in out
    assert 'full=1' in out


def test_dev_lands_neither_in_upper_nor_in_a_commit_and_exec_sees_it(box, busybox):
    """`echo x > /dev/null` made a regular file in upper, which commit baked
    into the image. Now /dev is the container's own: exec sees the same one
    (a file in /dev/shm), upper gets none of it, and nor does a commit."""
    run, uuid = running_container(box, busybox)
    try:
        assert box.bocker('exec', uuid, 'sh', '-c', 'echo x > /dev/null; echo shared > /dev/shm/a').code == 0
        r = box.bocker('exec', uuid, 'sh', '-c', 'stat -c "%F %t %T" /dev/null; cat /dev/shm/a')
        assert r.out == 'character special file 1 3\nshared\n', r
        assert box.bocker('commit', uuid, 'img_7').code == 0
        assert not box.exists('%s/%s/upper/dev' % (CONTAINERS, uuid))
        assert box.exists('%s/%s/upper/tmp/ready' % (CONTAINERS, uuid))
    finally:
        box.bocker('rm', uuid)
        run.wait(timeout=60)
    assert not box.exists(OVERLAY + '/img_7/dev')
    assert box.read(OVERLAY + '/img_7/tmp/ready') == ''


def test_commit_keeps_the_empty_dev_an_image_has(box, busybox, tmp_path):
    """Row 38 leaves out only the mount point run added: an image whose /dev
    is an empty directory (as debootstrap's and many tarballs' are) keeps it
    through commit, as the reference's commit keeps it; the container's
    /dev was its own tmpfs meanwhile."""
    src = tmp_path / 'with-dev'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    (src / 'dev').mkdir()
    img = box.init(str(src))
    assert box.ls('%s/%s/dev' % (OVERLAY, img)) == []
    uuid, r = box.run_container(img, 'stat -c %F /dev/null')
    assert r.out == 'character special file\n', r
    assert not box.exists('%s/%s/dev.mountpoint' % (CONTAINERS, uuid))
    assert box.bocker('commit', uuid, 'img_7').code == 0
    assert box.exists(OVERLAY + '/img_7/dev') and box.ls(OVERLAY + '/img_7/dev') == []
    # and of an image without one, the commit has none
    uuid, r = box.run_container(box.init(busybox), 'true')
    assert box.exists('%s/%s/dev.mountpoint' % (CONTAINERS, uuid))
    assert box.bocker('commit', uuid, 'img_8').code == 0
    assert not box.exists(OVERLAY + '/img_8/dev')


def test_proc_is_masked_as_runc_masks_it(box, busybox):
    """runc's mask.bats and Docker's TestRunWriteFilteredProc/ReadFilteredProc:
    the kernel's switches are read-only (here /proc/irq: the host's interrupt
    routing, written back with the value it has, so the host never changes if
    it were not), and what it shows of the host reads as nothing."""
    img = box.init(busybox)
    r = box.bocker('run', img, 'v=$(cat /proc/irq/default_smp_affinity); '
                   'echo "$v" > /proc/irq/default_smp_affinity; echo irq=$?; '
                   'for f in keys timer_list kcore; do [ -e /proc/$f ] && echo "$f=$(wc -c < /proc/$f)"; done; '
                   'for d in bus fs irq sys; do grep -q " /proc/$d proc ro," /proc/mounts && echo "$d ro"; done')
    out = r.out.splitlines()
    assert 'irq=1' in out and 'Read-only file system' in r.out, r.out
    for f in ('keys', 'timer_list', 'kcore'):
        if os.path.exists('/proc/' + f):
            assert '%s=0' % f in out, r.out
    for d in ('bus', 'fs', 'irq', 'sys'):
        if os.path.exists('/proc/' + d):
            assert '%s ro' % d in out, r.out


# --- 5. Hard links ---------------------------------------------------------------------

def test_init_commit_and_run_keep_hard_links(box, busybox, tmp_path):
    """cp -a and tar keep two names of one file as one inode; the reference's
    cp -rf made two files. init and commit keep it, as pull does; run shares
    the image itself (row 13)."""
    src = tmp_path / 'image'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    (src / 'srv').mkdir()
    (src / 'srv' / 'file').write_text('one inode\n')
    os.link(src / 'srv' / 'file', src / 'srv' / 'hard')
    img = box.init(str(src))

    def same(path):
        a, b = (os.lstat(box.path('%s/srv/%s' % (path, n))) for n in ('file', 'hard'))
        return a.st_ino == b.st_ino
    assert same('%s/%s' % (OVERLAY, img))
    uuid, r = box.run_container(img, 'stat -c %i /srv/file /srv/hard')
    first, second = r.out.split()
    assert first == second, r.out
    assert same('%s/%s/merged' % (CONTAINERS, uuid))
    assert box.bocker('commit', uuid, 'img_9').code == 0
    assert same(OVERLAY + '/img_9')
    assert os.lstat(box.path(OVERLAY + '/img_9/srv/file')).st_nlink == 2


def test_the_reference_loses_hard_links(box, busybox, tmp_path, reference):
    """The divergence, as the reference shows it (needs the reference)."""
    src = tmp_path / 'image'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    (src / 'a').write_text('x')
    os.link(src / 'a', src / 'b')
    img = box.init(str(src), tool='ref')
    a, b = (os.lstat(box.path('%s/%s/%s' % (OVERLAY, img, n))) for n in 'ab')
    assert a.st_ino != b.st_ino
