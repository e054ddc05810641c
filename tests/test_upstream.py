"""The upstream bocker test suite's scenarios (p8952/bocker tests/), pointed at
bocker.sh, restated in pytest for this overlayfs variant: commit makes a new
image instead of replacing one, and the network stays inside the sandbox (the
ping goes to the bridge, not to the internet). Needs root."""
import subprocess
import time

import pytest

from support import BOCKER

# Each test that uses a sandbox runs in both flavours (tests/sandbox.py): a
# fresh sysfs, and the host's /sys as in a plain `unshare --net --mount` shell.
pytestmark = pytest.mark.flavours


def run_test(box, img, cmd, expect):
    """upstream bocker_run_test: run, find it in ps, look for expect in its logs."""
    box.bocker('run', img, cmd)
    ps = [l.split()[0] for l in box.bocker('ps').out.splitlines()[1:] if cmd in l][-1]
    return expect in box.bocker('logs', ps).out


def test_images(box, busybox):
    assert box.bocker('images').out.splitlines()[0] == 'IMAGE_ID\t\tSOURCE'
    img = box.init(busybox)
    assert img in box.bocker('images').out


def test_ps(box, busybox):
    assert box.bocker('ps').out.splitlines()[0] == 'CONTAINER_ID\t\tCOMMAND'
    img = box.init(busybox)
    box.bocker('run', img, 'echo tiny-ps-test')
    assert 'echo tiny-ps-test' in box.bocker('ps').out


def test_init(box, busybox):
    r = box.bocker('init', busybox)
    assert r.out.startswith('Created: img_')
    assert r.out.split()[1] in box.bocker('images').out


def test_run(box, busybox):
    img = box.init(busybox)
    assert run_test(box, img, 'echo foo', 'foo')
    assert run_test(box, img, 'uname', 'Linux')
    # upstream expects '3 (cat)' from bash as /bin/sh; busybox sh execs the last
    # command, so cat is pid 1 of the new pid namespace (the reference agrees).
    assert run_test(box, img, 'cat /proc/self/stat', '1 (cat)')
    assert run_test(box, img, 'ip addr', 'veth1_ps_')
    assert run_test(box, img, 'ping -c 1 172.18.0.1', '0% packet loss')


def test_rm(box, busybox):
    img = box.init(busybox)
    cmd = 'echo %d' % time.monotonic_ns()
    box.bocker('run', img, cmd)
    ps = [l.split()[0] for l in box.bocker('ps').out.splitlines() if cmd in l][0]
    assert box.bocker('images').out.count(img) == 1
    assert box.bocker('ps').out.count(cmd) == 1
    box.bocker('rm', ps)           # its container first: row 51
    box.bocker('rm', img)
    assert box.bocker('images').out.count(img) == 0
    assert box.bocker('ps').out.count(cmd) == 0


def test_commit(box, busybox):
    img = box.init(busybox)
    box.bocker('run', img, 'which wget2')
    ps = [l.split()[0] for l in box.bocker('ps').out.splitlines() if 'which wget2' in l][0]
    assert box.bocker('logs', ps).out == ''
    box.bocker('rm', ps)
    box.bocker('run', img, 'ln -s busybox /bin/wget2')
    ps = [l.split()[0] for l in box.bocker('ps').out.splitlines() if 'ln -s' in l][0]
    assert box.bocker('commit', ps, 'img_1').out == 'Created: img_1\n'
    box.bocker('run', 'img_1', 'which wget2')
    ps = [l.split()[0] for l in box.bocker('ps').out.splitlines() if 'which wget2' in l][0]
    assert box.bocker('logs', ps).out == '/bin/wget2\n'


def test_exec(box, busybox):
    img = box.init(busybox)
    p = box.popen([BOCKER, 'run', img, 'sleep 5 && ps aux'], stdin=subprocess.DEVNULL,
                  stdout=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline and 'sleep 5' not in box.bocker('ps').out:
        time.sleep(0.05)
    ps = [l.split()[0] for l in box.bocker('ps').out.splitlines() if 'sleep 5' in l][0]
    time.sleep(1)
    # upstream counts 4 lines of `ps aux`: header, the container's sh, ps, sleep
    out = box.bocker('exec', ps, 'ps', 'aux').out
    assert len(out.splitlines()) == 4, out
    p.kill()
    box.bocker('rm', ps)
    box.bocker('run', img, 'ps aux')
    ps = [l.split()[0] for l in box.bocker('ps').out.splitlines() if 'ps aux' in l][0]
    assert box.bocker('exec', ps, 'ps', 'aux').out == \
        "Container '%s' exists but is not running\n" % ps
    assert box.bocker('exec', 'foo', 'ps', 'aux').out == "No container named 'foo' exists\n"
