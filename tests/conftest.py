"""pytest's hooks and fixtures: a fresh sandbox per test (box), the busybox
test image, the reference, a registry in the sandbox (reg), the hardening
report. Nothing else: what tests share besides fixtures (paths, Box and its
runners of bocker.sh and the reference, helpers) is in tests/support.py, and
nothing imports this file (tests/test_support.py checks it).

Needs root (namespaces, mounts, cgroups), like bocker itself; CI runs as root.
The reference is found through BOCKER_REFERENCE (default
../shared/reference/bocker from the project root); the tests that compare with
it say so in their names and run in CI, where shared/ lies beside the clone.
"""
import os
import subprocess

import pytest

from support import IN_V2_VM, REFERENCE, ROOT, Box, Registry, registry_in_sandbox
from sandbox import FLAVOURS, Sandbox

REPORT = []


@pytest.fixture
def report(request):
    """Lines for the hardening report printed at the end of the run."""
    def add(case, box):
        left = box.leftovers()
        REPORT.append('%-60s %s' % (case, 'nothing left' if not left else 'LEFT: %r' % left))
        assert not left, left
    return add


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section('hardening report: each case, then netns, links, '
                                 'mounts, cgroups and files checked')
        for line in REPORT:
            terminalreporter.write_line(line)


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'flavours: run the test once in each sandbox flavour (tests/sandbox.py)')
    config.addinivalue_line(
        'markers', 'v2: also run on a cgroup v2 only host, in the VM (tests/test_cgroup_v2.py); '
        'v2(flavours=("sandbox",)) limits a flavoured test to those flavours there')


def pytest_collection_modifyitems(config, items):
    """Here: the cgroup v2 VM's test goes last, its VM started now, to run
    while the rest does (test_cgroup_v2.start_vm_run()). In the v2 VM: only
    the tests marked v2 (and of a flavoured one, the flavours its mark names)."""
    if not IN_V2_VM:
        vm_tests = [item for item in items if item.name == 'test_cgroup_v2_host_in_vm']
        if vm_tests and os.environ.get('BOCKER_SKIP_VM') != '1':
            items[:] = [item for item in items if item not in vm_tests] + vm_tests
            if not config.option.collectonly:
                vm_tests[0].module.start_vm_run()
        return
    keep, drop = [], []
    for item in items:
        mark = item.get_closest_marker('v2')
        flavours = mark and mark.kwargs.get('flavours')
        callspec = getattr(item, 'callspec', None)
        flavour = callspec.params.get('flavour') if callspec else None
        ok = mark is not None and not (flavours and flavour and flavour not in flavours)
        (keep if ok else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_unconfigure(config):
    """A VM still running (the suite stopped early: -x, ctrl-C) is killed."""
    import vm
    vm.kill_all()


def pytest_generate_tests(metafunc):
    """A test marked `flavours` runs in each sandbox flavour (tests/sandbox.py):
    'sandbox' (a fresh sysfs) and 'unshare' (the host's /sys kept, as in a
    user's plain `unshare --net --mount` shell)."""
    if 'flavour' in metafunc.fixturenames and metafunc.definition.get_closest_marker('flavours'):
        metafunc.parametrize('flavour', FLAVOURS)


@pytest.fixture
def flavour():
    return 'sandbox'


@pytest.fixture
def box(flavour):
    with Sandbox(flavour=flavour) as sb:
        yield Box(sb)


@pytest.fixture(scope='session')
def busybox(tmp_path_factory):
    """The test image's directory, built by the fixtures/ recipe."""
    d = str(tmp_path_factory.mktemp('image') / 'busybox')
    subprocess.run([os.path.join(ROOT, 'fixtures', 'busybox-rootfs'), d], check=True)
    return d


@pytest.fixture
def reference():
    """The reference script; its absence fails the test (CI has it)."""
    assert os.path.isfile(REFERENCE), \
        'reference bocker not found at %s (set BOCKER_REFERENCE)' % REFERENCE
    return REFERENCE


@pytest.fixture
def reg(box, tmp_path):
    """docker-registry on 127.0.0.1 in the test's sandbox (support.Registry)."""
    worker, handle = registry_in_sandbox(box, tmp_path)
    yield Registry(worker, handle)
    worker(handle.stop)
    worker.close()
