"""Faults and abuse: concurrency, failures half-way, kills, a full disk, and
attempts to escape. After each case the sandbox is searched for leftovers
(netns, veths, mounts, cgroups, files); the run ends with a report of every case
(conftest's `report`). Needs root."""
import os
import re
import signal
import subprocess
import sys

import pytest

from support import (BOCKER, CONTAINERS, OVERLAY, READY, ROOT, STORE, Box, remove_everything,
                     unclash)
from sandbox import Sandbox


def container_pid(box, ps):
    r = box._run([sys.executable, '-c', 'import sys; sys.path.insert(0, %r); import bocker; '
                  'print(bocker.container_pid(%r))' % (ROOT, ps)])
    return int(r.out)


def rm_all(box):
    for c in box.containers():
        r = box.bocker('rm', c)
        assert (r.out, r.code) == ('Removed: %s\n' % c, 0), r


def test_twenty_runs_at_once(box, busybox, report):
    img = box.init(busybox)
    procs = [box.popen([BOCKER, 'run', img, 'echo start-%d; ip -o -4 addr show; sleep 0.3; echo end-%d'
                        % (i, i)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(20)]
    # ids clash now and then: each clash prints a line first, then it retries
    outs = [unclash(p.communicate(timeout=120)[0], True) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ids = box.containers()
    assert len(ids) == 20
    addresses = set()
    for i, out in enumerate(outs):
        assert out.startswith('start-%d\n' % i) and out.endswith('end-%d\n' % i), out
    for ps in ids:
        log = box.read('%s/%s/%s.log' % (CONTAINERS, ps, ps))
        assert re.match(r'start-\d+\n', log) and re.search(r'end-\d+\n$', log), log
        addresses.add(re.search(r'inet (172\.18\.0\.\d+)/24', log).group(1))
    assert len(addresses) == 20 and '172.18.0.1' not in addresses
    rm_all(box)
    report('20 runs at once: distinct ids and addresses, logs complete', box)


def test_runs_commits_rms_and_inits_at_once(box, busybox, report):
    """Issue 25's concurrency case: a dozen runs, two inits, and a commit and
    an rm of each of three containers, all at once. Each command ends as it
    would alone, or (a commit whose container an rm took first) refuses in
    the bash's words; what images and ps then list is whole, and rm takes
    all of it."""
    img = box.init(busybox)
    old = [box.run_container(img, 'echo old-%d > /made' % i)[0] for i in range(3)]

    def start(*args):
        return box.popen([BOCKER, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    runs = [start('run', img, 'echo run-%d; sleep 0.2' % i) for i in range(12)]
    inits = [start('init', busybox) for _ in range(2)]
    pairs = [(start('commit', ps, 'img_%d' % i), start('rm', ps)) for i, ps in enumerate(old, 1)]
    for i, p in enumerate(runs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and unclash(out, True) == 'run-%d\n' % i, (out, err)
    for p in inits:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and re.fullmatch(r'Created: img_\d+\n', out), (out, err)
    for i, (commit, rm) in enumerate(pairs, 1):
        out, err = commit.communicate(timeout=120)
        rm_out, rm_err = rm.communicate(timeout=120)
        assert (rm_out, rm.returncode) == ('Removed: %s\n' % old[i - 1], 0), rm_err
        if commit.returncode == 0:         # it copied first: the whole container
            assert out == 'Created: img_%d\n' % i, (out, err)
            assert box.read('%s/img_%d/made' % (OVERLAY, i)) == 'old-%d\n' % (i - 1)
        else:                              # the rm took it first
            assert (out, commit.returncode) == (
                "No container named '%s' exists\n" % old[i - 1], 1), (out, err)
    # (a run may draw the id of one the rm took: the count, not the names)
    assert len(box.containers()) == 12, box.containers()
    left = remove_everything(box)          # each listed whole, each removed, nothing left
    assert not left, left
    report('12 runs, 2 inits, 3 commits and 3 rms at once', box)


def test_rm_while_another_run_starts(box, busybox, report):
    img = box.init(busybox)
    a, _ = box.run_container(img, 'true')
    p = box.popen([BOCKER, 'run', img, 'echo b-ran'], stdout=subprocess.PIPE, text=True)
    r = box.bocker('rm', a)
    out = unclash(p.communicate(timeout=60)[0], True)      # a is there: a clash may be
    assert r.out == 'Removed: %s\n' % a and out == 'b-ran\n'
    assert len(box.containers()) == 1
    rm_all(box)
    report('rm of one container while another run starts', box)


def test_kill_9_of_bocker_during_run(box, busybox, report):
    img = box.init(busybox)
    p = box.popen([BOCKER, 'run', img, READY], stdout=subprocess.DEVNULL)
    ps = box.wait_ready()
    p.send_signal(signal.SIGKILL)                 # bocker.py itself (the shim execs it)
    p.wait()
    assert box.netns() == ['netns_' + ps]         # run had no chance to clean up
    assert box.bocker('ps').out.splitlines()[1] == '%s\t\t%s' % (ps, READY)
    r = box.bocker('rm', ps)
    assert (r.out, r.err, r.code) == ('Removed: %s\n' % ps, '', 0), r.err
    report('kill -9 of bocker.py during run, then rm', box)


def test_container_killed_from_outside(box, busybox, report):
    img = box.init(busybox)
    p = box.popen([BOCKER, 'run', img, READY], stdout=subprocess.PIPE, text=True)
    ps = box.wait_ready()
    os.kill(container_pid(box, ps), signal.SIGKILL)
    p.communicate(timeout=30)
    assert p.returncode == 0
    assert box.bocker('ps').out.splitlines()[1].startswith(ps)
    assert box.netns() == []                      # run cleaned up as usual
    r = box.bocker('rm', ps)
    assert (r.out, r.code) == ('Removed: %s\n' % ps, 0)
    report("container's pid 1 killed from outside, then rm", box)


def test_rm_when_the_parts_are_already_gone(box, busybox, report):
    img = box.init(busybox)
    ps, _ = box.run_container(img, 'true')
    box.sh('umount %s/%s/merged' % (CONTAINERS, ps))
    for c in ('cpu', 'cpuacct', 'memory'):
        box.sh('cgdelete -g %s:/%s' % (c, ps))
    r = box.bocker('rm', ps)
    assert (r.out, r.err, r.code) == ('Removed: %s\n' % ps, '', 0)
    report('rm of a container whose mount, netns and cgroups are gone', box)


@pytest.mark.parametrize('tool, stage', [('mount', 'the overlay mount'),
                                         ('cgcreate', 'cgcreate'),
                                         ('cgset', 'cgset')])
def test_failure_half_way_leaves_nothing(box, busybox, tmp_path, report, tool, stage):
    """A tool on PATH that fails: run stops with its message and status and
    removes what it had made (veth, netns, mount, cgroups, directory)."""
    fake = tmp_path / tool
    fake.write_text('#!/bin/sh\necho "%s: refused by the test" >&2\nexit 9\n' % tool)
    fake.chmod(0o755)
    img = box.init(busybox)
    r = box.bocker('run', img, 'echo never', env={'PATH': '%s:%s' % (tmp_path, os.environ['PATH'])})
    assert r.code == 9 and '%s: refused by the test' % tool in r.err and 'never' not in r.out
    report('run failing at %s' % stage, box)


def test_no_free_bridge_leaves_nothing(busybox, report):
    with Sandbox(br1=False) as sb:
        box = Box(sb)
        img = box.init(busybox)
        r = box.bocker('run', img, 'echo never')
        assert r.code != 0 and r.err
        report('run without bridge br1', box)


def test_out_of_space_init_and_commit(busybox, tmp_path, report):
    with Sandbox(store_size='12m') as sb:
        box = Box(sb)
        free = os.statvfs(box.path(STORE)).f_bfree
        big = tmp_path / 'big'
        subprocess.run(['cp', '-a', busybox, str(big)], check=True)
        (big / 'blob').write_bytes(os.urandom(14 * 1024 * 1024))
        r = box.bocker('init', str(big))
        assert r.code == 1 and r.out == '' and 'No space left' in r.err, r
        assert box.images() == [] and os.statvfs(box.path(STORE)).f_bfree == free
        report('init into a full store', box)
        img = box.init(busybox)
        ps, _ = box.run_container(img, 'head -c 6000000 /bin/busybox > /a; cat /a /a > /b')
        before = os.statvfs(box.path(STORE)).f_bfree
        r = box.bocker('commit', ps, 'img_1')
        assert r.code == 1 and 'No space left' in r.err, r
        assert box.images() == [img] and os.statvfs(box.path(STORE)).f_bfree == before
        rm_all(box)
        report('commit into a full store', box)


def test_commit_does_not_follow_an_img_source_symlink(box, busybox, tmp_path, report):
    secret = tmp_path / 'host-file'
    secret.write_text('host: secret\n')
    img = box.init(busybox)
    ps, _ = box.run_container(img, 'rm /img.source; ln -s %s /img.source' % secret)
    r = box.bocker('commit', ps, 'img_2')
    assert (r.out, r.code) == ('Created: img_2\n', 0)
    assert secret.read_text() == 'host: secret\n'
    assert not os.path.lexists(box.path(OVERLAY + '/img_2/img.source'))
    assert 'secret' not in box.bocker('images').out
    rm_all(box)
    report('commit of a container whose img.source links to a host file', box)


def test_container_cannot_mount_or_use_sysrq(box, busybox, report):
    """Capabilities are dropped once /proc is mounted (setpriv): mounting a
    tmpfs or remounting anything fails, and /proc/sysrq-trigger is read-only.
    Only the harmless key `h` (help) is ever written."""
    img = box.init(busybox)
    ps, r = box.run_container(
        img, 'mount -t tmpfs tmpfs /mnt && echo MOUNTED; '
             'mount -o remount,rw / && echo REMOUNTED; '
             'if [ -e /proc/sysrq-trigger ]; then echo h > /proc/sysrq-trigger && echo SYSRQ; fi; '
             'echo done')
    assert 'MOUNTED' not in r.out and 'REMOUNTED' not in r.out and 'SYSRQ' not in r.out
    assert r.out.endswith('done\n')
    rm_all(box)
    report('container mounting tmpfs, remounting /, writing sysrq', box)
