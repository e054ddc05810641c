"""Kills at every step (issue 25). Each command is killed with SIGKILL at its
K-th checkpoint, for K = 1, 2, ... until it runs to its end: bocker.py's test
hook (BOCKER_TEST_HOOK=kill:K, checkpoint()) kills it before each system
command and between the steps of init, commit, rm and stop that run none. After each
kill, what `images` and `ps` list must be whole, `rm` must take all of it (and
the container or image the command was making, by name), and then nothing may
be left: no directory or hidden leftover in the store, mount, netns, veth,
cgroup or process. `stop:K` stops a run at a step instead, so an rm can be made
to meet it there. Needs root; every case runs in the suite's sandbox."""
import os
import re
import signal
import subprocess
import time

import pytest

from support import (BOCKER, CONTAINERS, FIRED, HOOK, OVERLAY, READY, Box, fired, freezer_cgroups,
                     hooked, kill_at_every_step, processes, remove_everything)
from sandbox import Sandbox


def image_ids(box):
    return [n for n in box.images() if n.startswith('img_')]


@pytest.fixture
def big(busybox, tmp_path):
    """busybox and 300 small files: a copy long enough to be killed in."""
    d = tmp_path / 'big'
    subprocess.run(['cp', '-a', busybox, str(d)], check=True)
    (d / 'many').mkdir()
    for i in range(300):
        (d / 'many' / str(i)).write_text('%d\n' % i)
    return str(d)


def test_init_killed_at_every_step(box, big, report):
    def check(_made):
        for img in image_ids(box):         # listed only when whole
            assert box.read('%s/%s/img.source' % (OVERLAY, img)) == big + '\n'
            assert len(box.ls('%s/%s/many' % (OVERLAY, img))) == 300
    steps = kill_at_every_step(box, lambda _: ['init', big], check=check)
    assert steps == ['init-mkdir', 'init-copied', 'image-source', 'image-proc',
                     'image-claimed']
    report('init killed at each of its %d steps, then images and rm' % len(steps), box)


def test_rm_of_an_image_killed_at_every_step(box, busybox, report):
    steps = kill_at_every_step(box, lambda img: ['rm', img], prepare=lambda: box.init(busybox),
                               known=lambda img: [img])
    assert steps == ['rm-checked', 'rm-renamed', 'rm-removed']
    report('rm of an image killed at each of its %d steps' % len(steps), box)


# rm's cgdelete calls in the sandbox: the bash's, one each for cpuacct and memory
# (row 5), one for the pids hierarchy (row 42)
RM_CGDELETES = ['cgdelete'] * 4


def test_rm_of_a_container_killed_at_every_step(box, busybox, report):
    def prepare():
        img = box.init(busybox)
        return img, box.run_container(img, 'true')[0]
    steps = kill_at_every_step(box, lambda made: ['rm', made[1]], prepare=prepare,
                               known=lambda made: made)
    assert steps == ['rm-locked', 'rm-stopped', 'umount', 'rm-removed', 'rm-said'] + RM_CGDELETES
    report('rm of a container killed at each of its %d steps' % len(steps), box)


def start(box, img, command=READY):
    """run IMG COMMAND in the background; (its process, its container's id)."""
    p = box.popen([BOCKER, 'run', img, command], stdin=subprocess.DEVNULL,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, box.wait_ready()


def test_rm_of_a_running_container_killed_at_every_step(box, busybox, report):
    runs = []

    def prepare():
        img = box.init(busybox)
        p, ps = start(box, img)
        runs.append(p)
        return img, ps
    steps = kill_at_every_step(box, lambda made: ['rm', made[1]], prepare=prepare,
                               known=lambda made: made)
    assert steps == ['rm-locked', 'rm-stopped', 'umount', 'rm-removed', 'rm-said'] + RM_CGDELETES
    for p in runs:                         # each run ended: its container was removed
        out, err = p.communicate(timeout=30)
        assert p.returncode == 137 and 'was removed while it ran' in err, (p.returncode, err)
        assert out == '', out              # no word of the killed unshare in its output
    report('rm of a running container killed at each of its %d steps' % len(steps), box)


def test_run_killed_at_every_step(box, busybox, report):
    steps = kill_at_every_step(
        box, lambda img: ['run', img, 'echo ran'], prepare=lambda: box.init(busybox),
        known=lambda img: [img] + box.containers(), whole=False)
    assert steps == ['ip', 'ip', 'mount', 'cgcreate', 'cgset', 'cgexec', 'ip'], steps
    report('run killed at each of its %d steps' % len(steps), box)


def test_exec_killed_at_every_step(box, busybox, report):
    def prepare():
        img = box.init(busybox)
        return img, start(box, img)[1]
    steps = kill_at_every_step(box, lambda made: ['exec', made[1], 'true'],
                               prepare=prepare, known=lambda made: made)
    assert steps == ['cgexec'], steps
    report('exec killed at each of its %d steps' % len(steps), box)


def detached(box, img, command):
    """run -d IMG COMMAND: its container's id."""
    r = box.bocker('run', '-d', img, command)
    assert r.code == 0 and r.err == '', r
    return r.out.strip()


def test_a_detached_run_killed_at_every_step(box, busybox, report):
    """run -d, and the supervisor it forks, killed at each step of either."""
    steps = kill_at_every_step(
        box, lambda img: ['run', '-d', img, 'echo ran'], prepare=lambda: box.init(busybox),
        known=lambda img: [img] + box.containers(), whole=False, detached=True)
    assert steps == ['ip', 'ip', 'mount', 'cgcreate', 'cgset', 'cgexec', 'ip'], steps
    report('run -d killed at each of its %d steps' % len(steps), box)


def test_stop_killed_at_every_step(box, busybox, report):
    def prepare():
        img = box.init(busybox)
        return img, detached(box, img, 'sleep 30')
    steps = kill_at_every_step(box, lambda made: ['stop', '-t', '0', made[1]],
                               prepare=prepare, known=lambda made: made)
    assert steps == ['stop-waited', 'stop-signalled', 'stop-killed'], steps
    report('stop killed at each of its %d steps' % len(steps), box)


def test_start_killed_at_every_step(box, busybox, report):
    def prepare():
        img = box.init(busybox)
        ps = detached(box, img, 'echo ran')
        assert not processes(box)          # it has ended
        return img, ps
    steps = kill_at_every_step(box, lambda made: ['start', made[1]], prepare=prepare,
                               known=lambda made: made, detached=True)
    assert steps == ['ip', 'ip', 'cgexec', 'ip'], steps   # its mount and cgroups are kept
    report('start killed at each of its %d steps' % len(steps), box)


def test_commit_killed_at_every_step(box, busybox, report):
    """A container that has ended (nothing to freeze)."""
    def prepare():
        img = box.init(busybox)
        return img, box.run_container(img, 'echo x > /made')[0]

    def check(made):
        for img in image_ids(box):         # the new image is listed only when whole
            if img != made[0]:
                assert box.read('%s/%s/made' % (OVERLAY, img)) == 'x\n'
                assert box.read('%s/%s/img.source' % (OVERLAY, img)) == busybox + '\n'
    steps = kill_at_every_step(box, lambda made: ['commit', made[1], 'img_1'],
                               prepare=prepare, known=lambda made: list(made) + ['img_1'],
                               check=check)
    assert steps == ['commit-mkdir', 'commit-copied', 'commit-source', 'commit-renamed']
    report('commit killed at each of its %d steps' % len(steps), box)


def freezer_state(box, ps):
    return box.read('/sys/fs/cgroup/freezer/%s/freezer.state' % ps).strip()


def counting(box, ps, wait=5):
    """Does the container's counter (COUNT below) go up within wait seconds?"""
    path = '%s/%s/merged/n' % (CONTAINERS, ps)
    before = box.read(path)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if box.read(path) != before:
            return True
        time.sleep(0.05)
    return False


COUNT = 'echo 0 > /n; touch /tmp/ready; i=0; while :; do i=$((i+1)); echo $i > /n.new; mv /n.new /n; done'


def test_commit_of_a_running_container_freezes_it_and_a_kill_leaves_it_thawed(busybox, report):
    """With a freezer hierarchy (v1; here an engines sandbox has one mounted)
    commit freezes the container while it copies: killed then, the container
    stays frozen until the next command, which thaws it; the image is one
    moment (its /n as the counter stood)."""
    with Sandbox(engines=True) as sb:
        box = Box(sb)
        img = box.init(busybox)
        p, ps = start(box, img, COUNT)
        try:
            frozen_then_thawed(box, img, p, ps, report)
        finally:                           # a frozen process outlives the sandbox's SIGKILL
            if os.path.exists(box.path('/sys/fs/cgroup/freezer/%s' % ps)):
                with open(box.path('/sys/fs/cgroup/freezer/%s/freezer.state' % ps), 'w') as f:
                    f.write('THAWED')


def frozen_then_thawed(box, img, p, ps, report):
    """The steps of the test above, in its sandbox."""
    assert counting(box, ps)
    r = hooked(box, 'kill:2', 'commit', ps, 'img_1')
    assert fired(r) == 'commit-frozen', r
    assert freezer_state(box, ps) == 'FROZEN' and not counting(box, ps, wait=1)
    left = [n for n in box.ls(OVERLAY) if n != img]
    assert len(left) == 1 and re.fullmatch(r'\.commit-[0-9]+-%s' % ps, left[0]), left
    r = box.bocker('ps')               # the next command thaws it, removes the copy
    assert r.code == 0 and ps in r.out
    assert freezer_state(box, ps) == 'THAWED' and counting(box, ps)
    assert box.ls(OVERLAY) == [img]
    r = box.bocker('commit', ps, 'img_1')
    assert (r.out, r.code) == ('Created: img_1\n', 0), r
    assert freezer_state(box, ps) == 'THAWED' and counting(box, ps)
    assert int(box.read(OVERLAY + '/img_1/n')) > 0
    r = box.bocker('rm', ps)
    assert (r.out, r.code) == ('Removed: %s\n' % ps, 0), r
    p.communicate(timeout=30)
    for name in ('img_1', img):
        assert box.bocker('rm', name).code == 0
    assert freezer_cgroups(box) == [] and processes(box) == []
    report('commit of a running container killed while frozen, then thawed', box)


@pytest.mark.parametrize('k', range(1, 7))
def test_rm_of_a_starting_container_leaves_no_process(box, busybox, report, k):
    """run stopped at its K-th step (the hook's stop:K: the veth, the netns,
    the mount, cgcreate, cgset, the cgexec that starts the container); rm of
    its container meanwhile, then the run goes on. rm waits for the run to
    start its command, then kills all of it: the command never runs, the run
    says so and fails, and nothing is left."""
    img = box.init(busybox)
    p = box.popen([BOCKER, 'run', img, 'echo started; sleep 5; echo ran'],
                  env={HOOK: 'stop:%d' % k}, stdin=subprocess.DEVNULL,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped = wait_stopped(box)
    ps = box.containers()[0]
    rm = box.popen([BOCKER, 'rm', ps], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True)
    wait_blocked(rm)                       # it waits for the run's lock
    os.kill(stopped, signal.SIGCONT)
    out, err = p.communicate(timeout=60)
    rm_out, rm_err = rm.communicate(timeout=60)
    assert FIRED.search(err), err
    assert (rm_out, rm.returncode) == ('Removed: %s\n' % ps, 0), rm_err
    assert rm_err == 'bocker.sh: %s is being started or committed: waiting for that to end\n' % ps
    assert p.returncode == 137 and 'container %s was removed while it ran' % ps in err, err
    assert out in ('', 'started\n'), out  # killed before 'ran'; nothing of unshare's
    left = remove_everything(box, [img, ps])
    assert not left, left
    report('rm of a container whose run is stopped at step %d' % k, box)


def test_a_run_and_an_rm_of_its_image_never_race(box, busybox, report):
    """Row 50: run holds its image (a shared flock) from its checks to its
    mount, rm an exclusive one. A run stopped before its mount: the rm of its
    image waits, then finds the image in use and refuses. An rm stopped
    before it removes the image: a run of it waits, then finds it gone."""
    img = box.init(busybox)
    p = box.popen([BOCKER, 'run', img, 'echo ran'], env={HOOK: 'stop:1'},
                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  text=True)
    stopped = wait_stopped(box)
    rm = box.popen([BOCKER, 'rm', img], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True)
    wait_blocked(rm)
    assert rm.poll() is None               # it waits for the run's mount
    os.kill(stopped, signal.SIGCONT)
    out, err = p.communicate(timeout=60)
    rm_out, rm_err = rm.communicate(timeout=60)
    assert (out, p.returncode) == ('ran\n', 0), err
    ps = box.containers()[0]
    assert (rm_out, rm.returncode) == ('', 1), rm_err
    assert rm_err == ('bocker.sh: %s is being mounted by a run: waiting for that to end\n'
                      'bocker.sh: image %s is in use by container %s: rm it first\n'
                      % (img, img, ps))
    assert box.images() == [img]
    assert box.bocker('rm', ps).code == 0
    # the other way round: rm stopped holding the image, before it removes it
    rm = box.popen([BOCKER, 'rm', img], env={HOOK: 'stop:1'}, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True)
    stopped = wait_stopped(box)
    p = box.popen([BOCKER, 'run', img, 'echo ran'], stdin=subprocess.DEVNULL,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_blocked(p)
    assert p.poll() is None                # it waits for the rm
    os.kill(stopped, signal.SIGCONT)
    rm_out, rm_err = rm.communicate(timeout=60)
    out, err = p.communicate(timeout=60)
    assert (rm_out, rm.returncode) == ('Removed: %s\n' % img, 0), rm_err
    assert (out, err, p.returncode) == ("No image named '%s' exists\n" % img, '', 1)
    left = remove_everything(box)
    assert not left, left
    report('a run and an rm of its image, each stopped while it holds the image', box)


def wait_stopped(box, timeout=30):
    """The pid of the bocker.py the hook stopped (state T in /proc/PID/stat)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in box.sb._pids():
            try:
                with open('/proc/%d/stat' % pid) as f:
                    if f.read().rsplit(')', 1)[1].split()[0] == 'T':
                        return pid
            except OSError:
                pass
        time.sleep(0.02)
    raise AssertionError('no process stopped by the hook')


def wait_blocked(proc, timeout=30):
    """Wait until proc (or a process under it) waits for a flock (a `->` line
    of /proc/locks), or has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        family = descendants(proc.pid)
        with open('/proc/locks') as f:
            for line in f:
                fields = line.split()
                if len(fields) > 5 and fields[1] == '->' and int(fields[5]) in family:
                    return
        time.sleep(0.02)


def descendants(pid):
    parents = {}
    for p in os.listdir('/proc'):
        try:
            with open('/proc/%s/stat' % p) as f:
                parents[int(p)] = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError):
            pass
    found = {pid}
    while True:
        more = {p for p, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more


def test_rm_takes_every_name_images_and_ps_list(box, busybox, report):
    """Entries made by hand (or another tool) that the listings show, img_* and
    ps_* but not img_ and digits: rm takes each; a name they do not list is
    still refused."""
    img = box.init(busybox)
    box.sh('cp -a %s/%s %s/img_old && mkdir %s/ps_old && echo cmd > %s/ps_old/ps_old.cmd'
           % (OVERLAY, img, OVERLAY, CONTAINERS, CONTAINERS))
    assert 'img_old\t\t' in box.bocker('images').out and \
        'ps_old\t\tcmd' in box.bocker('ps').out
    for name in ('img_old', 'ps_old'):
        r = box.bocker('rm', name)
        assert (r.out, r.err, r.code) == ('Removed: %s\n' % name, '', 0), r
    for name in ('img_old', 'ps_old', 'img_*', 'ps_..'):
        r = box.bocker('rm', name)
        assert r.code == 1 and r.out.startswith('No '), r
    assert box.images() == [img]
    assert box.bocker('rm', img).code == 0
    report('rm of an img_* and a ps_* made by hand', box)
