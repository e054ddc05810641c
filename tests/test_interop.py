"""State made by the reference works with bocker.py and the reverse: the same
layout under /var/lib/bocker, the same cgroup, netns and veth names. Needs root
and the reference script (BOCKER_REFERENCE)."""
import os

import pytest

from support import STORE

# Each test that uses a sandbox runs in both flavours (tests/sandbox.py): a
# fresh sysfs, and the host's /sys as in a plain `unshare --net --mount` shell.
pytestmark = pytest.mark.flavours


def test_reference_image_runs_under_bocker_py(box, busybox, reference):
    img = box.init(busybox, tool='ref')
    assert box.bocker('images').out == 'IMAGE_ID\t\tSOURCE\n%s\t\t%s\n' % (img, busybox)
    ps, r = box.run_container(img, 'cat /etc/hostname')
    assert (r.out, r.code) == ('bocker-test\n', 0)


def test_bocker_py_image_runs_under_the_reference(box, busybox, reference):
    img = box.init(busybox)
    assert box.ref('images').out == 'IMAGE_ID\t\tSOURCE\n%s\t\t%s\n' % (img, busybox)
    ps, r = box.run_container(img, 'cat /etc/hostname', tool='ref')
    assert (r.out, r.code) == ('bocker-test\n', 0)
    assert box.ref('rm', img).out == 'Removed: %s\n' % img
    assert box.images() == []


def test_reference_container_under_bocker_py(box, busybox, reference):
    img = box.init(busybox, tool='ref')
    ps, _ = box.run_container(img, 'echo from-ref > /mark; echo logged', tool='ref')
    assert box.bocker('ps').out == 'CONTAINER_ID\t\tCOMMAND\n%s\t\techo from-ref > /mark; echo logged\n' % ps
    assert box.bocker('logs', ps).out == 'logged\n'
    assert box.bocker('commit', ps, 'img_5').out == 'Created: img_5\n'
    _, r = box.run_container('img_5', 'cat /mark')
    assert r.out == 'from-ref\n'
    assert box.bocker('rm', ps).out == 'Removed: %s\n' % ps
    assert ps not in box.containers()
    assert not any(ps in m for m in box.mounts())
    assert not os.path.exists(box.path('/sys/fs/cgroup/memory/' + ps))


def test_bocker_py_container_under_the_reference(box, busybox, reference):
    img = box.init(busybox)
    ps, _ = box.run_container(img, 'echo from-py > /mark; echo logged')
    assert box.ref('ps').out == 'CONTAINER_ID\t\tCOMMAND\n%s\t\techo from-py > /mark; echo logged\n' % ps
    assert box.ref('logs', ps).out == 'logged\n'
    assert box.ref('commit', ps, 'img_6').out == 'Created: img_6\n'
    _, r = box.run_container('img_6', 'cat /mark', tool='ref')
    assert r.out == 'from-py\n'
    # The reference's rm of a container unmounts and deletes it, then fails on
    # `ip netns del` (see its README): the directory is gone all the same.
    box.ref('rm', ps)
    assert ps not in box.containers()
    assert box.exists(STORE + '/overlay/' + img)      # the image's files are intact
    assert box.read(STORE + '/overlay/%s/etc/hostname' % img) == 'bocker-test\n'
