"""bocker.py and its suite wherever a user has them, not only where they were
written: a host without the project's .venv, a clone in a directory only root
may enter (a 0700 /root, or what mktemp -d makes) under a path with spaces, a
/tmp that already holds what others left. (The shell made by a plain
`unshare --net --mount` is the 'unshare' sandbox flavour, tests/sandbox.py.)
Needs root."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from support import REFERENCE, ROOT, STORE, clean_env

SKIP = shutil.ignore_patterns('.venv', '.git', '__pycache__', '*.html')


@pytest.fixture
def bare(tmp_path):
    """bocker.sh and bocker.py beside a .venv without the project's packages
    (no plumbum, no jq): what a host without `make deps` has."""
    d = tmp_path / 'bare'
    d.mkdir()
    for name in ('bocker.py', 'bocker.sh', 'compat'):
        src = os.path.join(ROOT, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, d / name)
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(d / '.venv')], check=True)
    r = subprocess.run([str(d / '.venv/bin/python'), '-c', 'import plumbum'], capture_output=True)
    assert r.returncode == 1, 'the bare .venv has plumbum'
    return str(d / 'bocker.sh')


def one_line(r, *names):
    assert (r.code, r.out) == (1, ''), r
    assert len(r.err.splitlines()) == 1 and 'Traceback' not in r.err, r
    assert 'make deps' in r.err and all(n in r.err for n in names), r


def test_missing_python_packages_are_named_and_nothing_is_made(box, busybox, bare):
    img = box.init(busybox)
    made, _ = box.run_container(img, 'echo hello')
    state = lambda: (box.images(), box.containers(), box.links(), box.netns(), box.mounts())
    before = state()
    # pull stops before its temporary directory and the download: the helper
    # on PATH notes any call (/tmp itself may change under other programs)
    helper = os.path.join(os.path.dirname(bare), 'bin', 'download-frozen-image-v2')
    os.mkdir(os.path.dirname(helper))
    with open(helper, 'w') as f:
        f.write('#!/bin/sh\necho "$@" >> %s.called\n' % helper)
    os.chmod(helper, 0o755)
    path = '%s:%s' % (os.path.dirname(helper), os.environ['PATH'])
    one_line(box.bocker('pull', 'busybox', 'latest', _tool=bare, env={'PATH': path}),
             'jq', 'plumbum')
    assert not os.path.exists(helper + '.called')
    one_line(box.bocker('run', img, 'true', _tool=bare), 'plumbum')
    one_line(box.bocker('exec', made, 'true', _tool=bare), 'plumbum')
    one_line(box.bocker('rm', made, _tool=bare), 'plumbum')
    assert state() == before
    # the commands that need neither keep working
    assert box.bocker('help', _tool=bare).code == 0
    assert box.bocker('images', _tool=bare).out == box.bocker('images').out
    assert box.bocker('ps', _tool=bare).out == box.bocker('ps').out
    assert box.bocker('logs', made, _tool=bare).out == 'hello\n'
    r = box.bocker('init', busybox, _tool=bare)
    assert r.code == 0 and r.out.startswith('Created: img_'), r


# The tests that once depended on where the clone was, or on what /tmp held.
FROM_A_CLONE = ['tests/test_host_setup.py::test_not_root_is_an_error',
                'tests/test_pull.py::test_pull_applies_whiteouts_and_runs',
                'tests/test_commands.py::test_exec_into_a_running_container_without_a_terminal']


def test_the_suite_passes_from_a_private_clone_with_spaces_and_a_busy_tmp():
    """A copy of the project in `mktemp -d` (mode 0700) under a path with
    spaces, with a stray UUID-named directory in /tmp (as a failed pull of the
    reference leaves): the tests that once depended on neither run from there."""
    private = tempfile.mkdtemp(prefix='bocker-clone-')
    stray = '/tmp/%s' % uuid.uuid4()
    try:
        assert os.stat(private).st_mode & 0o777 == 0o700
        clone = os.path.join(private, 'a clone with spaces')
        shutil.copytree(ROOT, clone, ignore=SKIP, symlinks=True)
        os.symlink(os.path.join(ROOT, '.venv'), os.path.join(clone, '.venv'))
        os.mkdir(stray)
        r = subprocess.run(
            [os.path.join(clone, '.venv', 'bin', 'python'), '-m', 'pytest', '-q', '-rA',
             '-p', 'no:cacheprovider', *FROM_A_CLONE],
            cwd=clone, capture_output=True, text=True, timeout=600,
            env=clean_env({'BOCKER_REFERENCE': REFERENCE}))
        # each of them ran (in as many flavours as it has) and passed: none failed
        # or was skipped
        passed = re.findall(r'^PASSED (\S+)', r.stdout, re.M)
        tail = r.stdout[-3000:] + r.stderr[-2000:]
        assert r.returncode == 0 and re.search(r'^%d passed in ' % len(passed), r.stdout, re.M), tail
        assert {re.sub(r'\[.*\]$', '', t) for t in passed} == set(FROM_A_CLONE), tail
        assert os.path.isdir(stray)            # what it did not make, it left
    finally:
        shutil.rmtree(private)
        if os.path.isdir(stray):
            os.rmdir(stray)


def test_a_store_reached_through_a_symlink(box, busybox, reference):
    """The mount table holds real paths: a store directory that is a symlink
    (a host that keeps its data elsewhere) still has its mounts found, so rm
    unmounts and removes the container, as the reference's umount does."""
    assert box.sh('cd %s && mv containers real && ln -s real containers' % STORE).code == 0
    img = box.init(busybox)
    for tool in ('ref', 'bocker'):
        ps, r = box.run_container(img, 'echo hi', tool=tool)
        assert r.out == 'hi\n', r
        r = box.bocker('rm', ps)
        assert (r.out, r.err, r.code) == ('Removed: %s\n' % ps, '', 0)
        assert box.leftovers() == {} and box.ls(STORE + '/real') == []
