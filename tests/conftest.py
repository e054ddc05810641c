"""Fixtures: a fresh sandbox per test, the busybox test image, and runners that
drive bocker.sh and the reference bash script as black boxes (the sh package).

Needs root (namespaces, mounts, cgroups), like bocker itself; CI runs as root.
The reference is found through BOCKER_REFERENCE (default
../shared/reference/bocker from the project root); the tests that compare with
it say so in their names and run in CI, where shared/ lies beside the clone.
"""
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import sh

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from sandbox import FLAVOURS, Sandbox  # noqa: E402

BOCKER = os.path.join(ROOT, 'bocker.sh')
REFERENCE = os.path.abspath(os.environ.get(
    'BOCKER_REFERENCE', os.path.join(ROOT, '..', 'shared', 'reference', 'bocker')))
STORE = '/var/lib/bocker'
OVERLAY = STORE + '/overlay'          # images: img_N
CONTAINERS = STORE + '/containers'    # containers: ps_N
# A container command that says it runs (Box.wait_ready sees the file), then
# stays until stopped.
READY = 'touch /tmp/ready; sleep 600'
# What run prints first when the random id it drew is taken (both tools), then
# it draws again. Ids are random (42002-42254): a test compares run's output
# through unclash() wherever the store already held a container.
CONFLICT = 'UUID conflict, retrying...\n'


def unclash(out, possible):
    """run's stdout without the CONFLICT lines that lead it, where a clash
    was possible (the store held a container when run started). Where none
    was possible they stay, and fail an exact comparison."""
    return re.sub(r'\A(?:%s)+' % re.escape(CONFLICT), '', out) if possible else out


def clean_env(extra=None):
    """The caller's environment without BOCKER_* and without
    PYTHONUNBUFFERED (users' machines do not set it; output order must hold)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('BOCKER_') and k != 'PYTHONUNBUFFERED'}
    env.update(extra or {})
    return env


@dataclass
class Result:
    out: str
    err: str
    code: int


class Box:
    """A sandbox with helpers to run bocker in it and to look at its files."""

    def __init__(self, sb):
        self.sb = sb

    def path(self, p):
        """A path inside the sandbox's mount namespace, reachable from here."""
        return '/proc/%d/root%s' % (self.sb.holder.pid, p)

    def _run(self, argv, env=None, stdin=b'', timeout=120, cwd=None):
        nsenter = sh.Command('nsenter')
        r = nsenter(*self.sb.argv(argv, cwd)[1:], _ok_code=range(256), _return_cmd=True,
                    _env=clean_env(env), _in=stdin, _timeout=timeout,
                    _preexec_fn=self.sb._join)
        return Result(r.stdout.decode('utf-8', 'replace'),
                      r.stderr.decode('utf-8', 'replace'), r.exit_code)

    def bocker(self, *args, _tool=None, **kw):
        """bocker.sh ARGS inside the sandbox (or another copy of it: _tool)."""
        return self._run([_tool or BOCKER, *args], **kw)

    def ref(self, *args, **kw):
        """The reference bash script ARGS inside the sandbox."""
        return self._run(['bash', REFERENCE, *args], **kw)

    def sh(self, script, **kw):
        return self._run(['sh', '-c', script], **kw)

    def popen(self, argv, env=None, **kw):
        return self.sb.popen(argv, env=clean_env(env), **kw)

    def ls(self, p):
        try:
            return sorted(os.listdir(self.path(p)))
        except FileNotFoundError:
            return []

    def read(self, p):
        with open(self.path(p)) as f:
            return f.read()

    def exists(self, p):
        return os.path.lexists(self.path(p))

    def images(self):
        return self.ls(OVERLAY)

    def containers(self):
        return self.ls(CONTAINERS)

    def wait_ready(self, timeout=20):
        """The id of the first container whose command has made /tmp/ready
        inside it (READY does that first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for c in self.containers():
                if self.exists('%s/%s/merged/tmp/ready' % (CONTAINERS, c)):
                    return c
            time.sleep(0.05)
        raise AssertionError('no container made /tmp/ready within %d s' % timeout)

    @property
    def layout(self):
        """'v1' or 'v2': the sandbox's cgroups (tests/sandbox.py)."""
        return self.sb.layout

    def cgroup_dir(self, controller, name):
        """Where cgroup NAME of controller is, inside the sandbox: v1 a
        hierarchy per controller, v2 the one hierarchy (controller unused)."""
        if self.layout == 'v2':
            return '/sys/fs/cgroup/%s' % name
        return '/sys/fs/cgroup/%s/%s' % (controller, name)

    def cgroup(self, controller, name, knob):
        return self.read('%s/%s' % (self.cgroup_dir(controller, name), knob)).strip()

    def ps_cgroups(self):
        """Every ps_ cgroup in the sandbox (v1: as CONTROLLER/ps_N)."""
        if self.layout == 'v2':
            return [d for d in self.ls('/sys/fs/cgroup') if d.startswith('ps_')]
        return [c + '/' + d for c in ('cpu', 'cpuacct', 'memory', 'pids')
                for d in self.ls('/sys/fs/cgroup/' + c) if d.startswith('ps_')]

    def mounts(self):
        with open('/proc/%d/mountinfo' % self.sb.holder.pid) as f:
            return [line.split()[4] for line in f]

    def links(self):
        """The network interfaces in the sandbox's network namespace, from
        /proc/PID/net/dev of a process in it (not /sys/class/net: in the
        'unshare' flavour sysfs is the host's)."""
        with open('/proc/%d/net/dev' % self.sb.holder.pid) as f:
            return sorted(line.split(':')[0].strip() for line in f.readlines()[2:])

    def netns(self):
        return self.ls('/run/netns')

    def leftovers(self):
        """What a removed container could leave: netns, veths, mounts under the
        store, ps_ cgroups, container dirs, half-made images. Empty when clean."""
        found = {
            'netns': self.netns(),
            'links': [l for l in self.links() if l not in ('br1', 'lo')],
            'mounts': [m for m in self.mounts() if m.startswith(STORE + '/')],
            'cgroups': self.ps_cgroups(),
            'containers': self.containers(),
            'hidden': [n for n in self.images() if n.startswith('.')],
        }
        return {k: v for k, v in found.items() if v}

    def init(self, directory, tool='bocker'):
        r = getattr(self, tool)('init', directory)
        assert r.code == 0 and r.out.startswith('Created: img_'), r
        return r.out.split()[1]

    def run_container(self, img, *cmd, tool='bocker', **kw):
        """run IMG CMD...; returns (ps_N, result), stdout through unclash()."""
        before = set(self.containers())
        r = getattr(self, tool)('run', img, *cmd, **kw)
        new = set(self.containers()) - before
        assert len(new) == 1, (r, new)
        r.out = unclash(r.out, bool(before))
        return new.pop(), r


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


# Set by tests/test_cgroup_v2.py in the cgroup v2 only VM it boots: there only
# the tests marked v2 run (the VM is emulated: the whole suite would not fit).
IN_V2_VM = os.environ.get('BOCKER_VM') == 'cgroup-v2'


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'flavours: run the test once in each sandbox flavour (tests/sandbox.py)')
    config.addinivalue_line(
        'markers', 'v2: also run on a cgroup v2 only host, in the VM (tests/test_cgroup_v2.py); '
        'v2(flavours=("sandbox",)) limits a flavoured test to those flavours there')


def pytest_collection_modifyitems(config, items):
    """In the v2 VM: only the tests marked v2 (and of a flavoured one, the
    flavours its mark names)."""
    if not IN_V2_VM:
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


# bocker.py's own commands, which help lists after the bash's, each marked
# "(beyond the bash)" (compat/DIVERGENCES.md row 50).
BEYOND_HELP = [
    ('Stop a running container, which stays (beyond the bash):',
     'stop [-t <seconds>] <container_id or name>'),
    ('Start a stopped container again, detached (beyond the bash):', 'start <container_id or name>'),
    ('List containers with their name, state and address (beyond the bash):', 'ls'),
]


def help_text(prog, ours=True):
    """The help text as the reference prints it for a program name; ours:
    and then bocker.py's own commands, as bocker.py prints it."""
    entries = [
        ('Create an image from a directory:', 'init <directory>'),
        ('Pull an image from Docker Hub:', 'pull <name> <tag>'),
        ('Delete an image or container:', 'rm <image_id or container_id>'),
        ('List images:', 'images'),
        ('List containers:', 'ps'),
        ('Create a container:', 'run <image_id> <command>'),
        ('Execute a command in a running container:', 'exec <container_id> <command>'),
        ('View logs from a container:', 'logs <container_id>'),
        ('Commit a container to an image:', 'commit <container_id> <image_id>'),
        ('Display this message:', 'help'),
    ] + (BEYOND_HELP if ours else [])
    return ''.join('%s\n\t%s %s\n\n' % (title, prog, use) for title, use in entries)


def ids(text):
    return re.findall(r'\b(?:img|ps)_[0-9]+\b', text)
