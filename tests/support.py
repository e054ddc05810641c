"""The tests' library: what test modules, conftest.py's fixtures and the
scripts beside them (golden.py, bench.py, explain_record.py) share.

conftest.py holds pytest's hooks and fixtures only, and a test module its own
tests and what only it uses; whatever two of them use lives here and is
imported from here. No module imports a test module or conftest.py
(tests/test_support.py checks it). The other helpers stay modules of their
own topic: sandbox.py (the sandboxes), registry.py (a registry and the images
pushed to it), engines.py (Docker and podman), golden.py (the golden
scenarios), vm.py (the cgroup v2 VM).

Sections: paths and words; running bocker in a sandbox (Box); containers as
the lifecycle tests watch them; the test hook that kills at every step; a
registry in the sandbox, and pull from it; image trees and the engines.
"""
import ctypes
import fcntl
import hashlib
import itertools
import os
import queue
import re
import stat
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass

import sh


# --- Paths and words ------------------------------------------------------------------

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import engines  # noqa: E402  (tests/engines.py)
import registry  # noqa: E402  (tests/registry.py)

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

# Set by tests/test_cgroup_v2.py in the cgroup v2 only VM it boots: there only
# the tests marked v2 run (the VM is emulated: the whole suite would not fit).
IN_V2_VM = os.environ.get('BOCKER_VM') == 'cgroup-v2'


# --- Running bocker in a sandbox ------------------------------------------------------

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


# bocker.py's own commands, which help lists after the bash's, each marked
# "(beyond the bash)" (compat/DIVERGENCES.md row 53).
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


# --- Containers as the lifecycle tests watch them -------------------------------------

class Terminal:
    """bocker.sh ARGS in the sandbox on a pty of its own: its session leader,
    the pty its controlling terminal, as a shell in a terminal starts a job."""

    def __init__(self, box, *args):
        self.master, slave = os.openpty()
        sb = box.sb

        def child():
            sb._join()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        self.proc = subprocess.Popen(sb.argv([BOCKER, *args]), stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True,
                                     preexec_fn=child, env=clean_env())
        os.close(slave)
        self.seen = b''

    def read_until(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            assert time.monotonic() < deadline, self.seen
            try:
                self.seen += os.read(self.master, 4096)
            except OSError:                    # EIO: the other side is gone
                break
        return self.seen.decode('utf-8', 'replace')

    def ctrl_c(self):
        os.write(self.master, b'\x03')

    def hang_up(self):
        os.close(self.master)
        self.master = None

    def wait(self, timeout=60):
        return self.proc.wait(timeout)

    def close(self):
        if self.master is not None:
            os.close(self.master)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def cgroup_procs(box, uuid):
    with open(box.path(box.cgroup_dir('memory', uuid) + '/cgroup.procs')) as f:
        return f.read().split()


def after_a_normal_end(box, uuid):
    """What a run leaves when its container ended: veth and netns gone, the
    directory, log, mount and cgroups kept, no process left in them."""
    assert box.leftovers().keys() <= {'mounts', 'cgroups', 'containers'}, box.leftovers()
    assert not [l for l in box.links() if uuid in l] and not box.netns()
    assert '%s/%s/merged' % (CONTAINERS, uuid) in box.mounts()
    assert cgroup_procs(box, uuid) == []


def new_container(box, before=()):
    for _ in range(400):
        new = set(box.containers()) - set(before)
        if new and box.exists('%s/%s/%s.log' % (CONTAINERS, min(new), min(new))):
            return new.pop()
        time.sleep(0.05)
    raise AssertionError('no container started')


def running_container(box, busybox, *opts):
    """A container running `sleep 600` under its sh, once the sleep is there
    (on a slow host sh may not have started it yet when /tmp/ready appears)."""
    img = box.init(busybox)
    run = box.popen([BOCKER, *opts, 'run', img, 'touch /tmp/ready; sleep 600'],
                    stdout=subprocess.DEVNULL)
    uuid = box.wait_ready()
    deadline = time.monotonic() + 60
    while 'sleep 600' not in container_processes(box, uuid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return run, uuid


def container_processes(box, uuid):
    """The commands of the processes in the container's cgroup."""
    found = []
    for pid in cgroup_procs(box, uuid):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                found.append(f.read().replace(b'\0', b' ').decode().strip())
        except OSError:
            pass
    return found


# --- The test hook: kills at every step (bocker.py's checkpoint()) --------------------

HOOK = 'BOCKER_TEST_HOOK'
FIRED = re.compile(r'test hook: (kill|stop) at (\d+) \((.*)\)\n')


def hooked(box, hook, *args, env=None):
    """bocker ARGS in the sandbox with the hook set (HOOK=kill:K or stop:K);
    a command killed by the hook has status -9."""
    r = box.sb.run([BOCKER, *args], env=clean_env(dict(env or {}, **{HOOK: hook})),
                   stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=120)
    return Result(r.stdout.decode('utf-8', 'replace'), r.stderr.decode('utf-8', 'replace'),
                  r.returncode)


def fired(r):
    """The step the hook killed the command at, or None: it ran to its end."""
    m = FIRED.search(r.err)
    return m.group(3) if m else None


def fired_in_logs(box):
    """The step the hook killed a supervisor at (its stderr is its
    container's log), or None."""
    for ps in box.containers():
        m = FIRED.search(box.read('%s/%s/%s.log' % (CONTAINERS, ps, ps)))
        if m:
            return m.group(3)
    return None


def processes(box, timeout=10):
    """The processes left in the sandbox's cgroups besides its holder, once
    the killed ones have gone (a SIGKILL takes effect when the kernel gets to
    it): empty when clean."""
    deadline = time.monotonic() + timeout
    while True:
        left = box.sb._pids() - {box.sb.holder.pid}
        if not left or time.monotonic() > deadline:
            return sorted(left)
        time.sleep(0.05)


def freezer_cgroups(box):
    return [d for d in box.ls('/sys/fs/cgroup/freezer') if d.startswith('ps_')]


def remove_everything(box, known=(), whole=True):
    """`images` and `ps` (each also sweeps what a killed command left), rm of
    each name they list and of the names the killed command was making; then
    nothing may be left. whole: a listed image or container is complete (its
    listing reads its img.source or command without an error)."""
    listed = []
    for command in ('ps', 'images'):       # containers first: an image in use stays (row 51)
        r = box.bocker(command)
        assert r.code == 0 and (r.err == '' or not whole), (command, r)
        listed += ids(r.out)
    for name in listed:
        r = box.bocker('rm', name)
        assert (r.out, r.err, r.code) == ('Removed: %s\n' % name, '', 0), (name, r)
    for name in sorted([n for n in known if n not in listed], key=lambda n: n[:3] != 'ps_'):
        r = box.bocker('rm', name)         # not listed: rm finds what remains, or nothing
        kind = 'image' if name.startswith('img_') else 'container'
        assert (r.out, r.code) in (('Removed: %s\n' % name, 0),
                                   ("No %s named '%s' exists\n" % (kind, name), 1)), (name, r)
    left = box.leftovers()
    left.update({k: v for k, v in (('processes', processes(box)),
                                   ('freezer', freezer_cgroups(box)),
                                   ('store', [n for n in box.ls(OVERLAY) + box.ls(CONTAINERS)]))
                 if v})
    return left


# --- A registry in the sandbox, and pull from it --------------------------------------

CLONE_NEWNET = 0x40000000


class InNetns:
    """A thread that lives in the sandbox's network namespace (setns(2) acts on
    the calling thread only), so the test can start a registry there and talk to
    it while the rest of the test process stays on the host's network."""

    def __init__(self, pid):
        self.jobs = queue.Queue()
        self.pid = pid
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open('/proc/%d/ns/net' % self.pid, os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), 'setns')
        os.close(fd)
        while True:
            job, box = self.jobs.get()
            if job is None:
                return
            try:
                box.put((True, job()))
            except BaseException as e:       # handed back to the caller
                box.put((False, e))

    def __call__(self, fn, *args, **kw):
        box = queue.Queue()
        self.jobs.put((lambda: fn(*args, **kw), box))
        ok, value = box.get()
        if not ok:
            raise value
        return value

    def close(self):
        self.jobs.put((None, None))
        self.thread.join()


class Registry:
    def __init__(self, worker, handle):
        self.worker, self.handle, self.url = worker, handle, handle.url

    def push(self, name, tag, layers, **kw):
        return self.worker(registry.push_image, self.url, name, tag, layers, **kw)

    def push_index(self, name, tag, manifests, **kw):
        return self.worker(registry.push_index, self.url, name, tag, manifests, **kw)


def registry_in_sandbox(box, tmp_path, auth=None):
    """docker-registry started on 127.0.0.1 in the box's network namespace,
    keeping its blobs under tmp_path/registry: (the worker thread in that
    namespace, the registry's handle)."""
    assert os.path.exists(registry.REGISTRY_BIN), \
        'needs docker-registry (apt-get install docker-registry; make test installs it)'
    worker = InNetns(box.sb.holder.pid)
    handle = worker(registry.start_registry, tmp_path / 'registry', auth=auth)
    return worker, handle


def pull(box, reg, name, tag, tool='bocker'):
    env = {'BOCKER_REGISTRY': reg.url,
           'PATH': os.path.join(ROOT, 'compat') + ':' + os.environ['PATH']}
    return getattr(box, tool)('pull', name, tag, env=env)


# --- Image trees, and the engines -----------------------------------------------------

def tree(top, skip=('img.source',)):
    """{relative path: (type, mode, uid, gid, what)} and the hard-link groups.
    what: sha256 of a file, a symlink's target, a device's numbers."""
    out, inodes = {}, {}
    for dirpath, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, top)
            if rel in skip:
                continue
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(kind):
                with open(p, 'rb') as f:
                    what = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(kind):
                what = os.readlink(p)
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                what = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                what = None
            mtime = None if stat.S_ISDIR(kind) else int(st.st_mtime)
            out[rel] = (kind, oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, what, mtime)
            if not stat.S_ISDIR(kind) and st.st_nlink > 1:
                inodes.setdefault(st.st_ino, set()).add(rel)
    return out, sorted(sorted(g) for g in inodes.values() if len(g) > 1)


class Docker(engines.Dockerd):
    """engines.Dockerd in the test's sandbox, with the tests' runners."""

    def __init__(self, box, top):
        self.box = box
        super().__init__(top, sandbox=box.sb)

    def __call__(self, *args, **kw):
        return self.box._run(self.docker + list(args), **kw)

    def sh(self, script, *args):
        """A shell line, $D standing for this docker."""
        return self.box._run(['sh', '-c', script, 'sh', *args], env={'D': ' '.join(self.docker)})



def left_running(box):
    """Processes in the sandbox's cgroups but its holder, after a moment to go."""
    for _ in range(100):
        pids = box.sb._pids() - {box.sb.holder.pid}
        if not pids:
            return []
        time.sleep(0.1)
    found = []
    for pid in pids:
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                found.append((pid, f.read().replace(b'\0', b' ').decode()))
        except OSError:
            pass
    return found


def kill_at_every_step(box, argv, prepare=lambda: None, known=lambda _made: (), whole=True,
                       check=lambda _made: None, detached=False):
    """Run `bocker ARGV` (ARGV: a function of what prepare() made) killed at
    its 1st, 2nd, ... checkpoint until it completes; after each kill,
    check(made) (what is listed is whole) and remove_everything (nothing
    left). Returns the steps killed at, in order. detached (run -d, start):
    the steps go on in the supervisor it forks, whose kill its container's
    log tells, once every process has ended."""
    steps = []
    for k in itertools.count(1):
        made = prepare()
        r = hooked(box, 'kill:%d' % k, *argv(made))
        step = fired(r)
        if detached and step is None:
            assert r.code == 0 and not processes(box), r
            step = fired_in_logs(box)
        if step is None:
            assert r.code == 0, r          # ran to its end
            left = remove_everything(box, known(made), whole)
            assert not left, ('after the whole command', left)
            return steps
        assert r.code == (0 if detached and not fired(r) else -9), r
        steps.append(step)
        check(made)
        left = remove_everything(box, known(made), whole)
        assert not left, ('killed at %d (%s)' % (k, step), left)
