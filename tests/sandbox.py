#!/usr/bin/env python3
"""A throwaway host for bocker: private network, mount and cgroup namespaces.

bocker (the reference and bocker.py) changes the host: it makes veths, network
namespaces, overlay mounts and cgroups, and writes under /var/lib/bocker. Every
test and demo runs inside a sandbox made here, so none of that reaches the host:

- network namespace (ip-netns(8), network_namespaces(7)): its own lo and a bridge
  br1 172.18.0.1/24, so container traffic never leaves the sandbox;
- mount namespace (mount_namespaces(7)) with private propagation: tmpfs on
  /var/lib/bocker and /run/netns, a fresh sysfs, and the cgroup hierarchies
  mounted again;
- cgroup namespace (cgroup_namespaces(7)) rooted at a cgroup made for this
  sandbox under the caller's own, so `cgcreate -g cpu,cpuacct,memory:/ps_N`
  nests there instead of at the host's root.

Both cgroup layouts (cgroups(7)):
- v1 (and hybrid hosts, whose controllers are v1's): a cgroup of the sandbox's
  own in each hierarchy of cpu, cpuacct, memory and pids, each mounted again
  inside. With engines=True (`--engines`) the sandbox has its own cgroup in
  every v1 controller a container engine uses (devices, freezer, blkio, cpuset
  too: dockerd refuses to start without the devices controller, runc puts each
  container in all of them), and only those are mounted, so dockerd's and
  podman's cgroups nest there too.
- v2 only (Debian 12, Ubuntu 22.04 and later, Fedora, RHEL 9): one hierarchy.
  The sandbox's cgroup SB is made under the caller's own, and cpu, memory and
  pids (engines: cpuset and io too) are enabled in cgroup.subtree_control of
  every cgroup from the root down to SB, so SB's children (the containers'
  ps_N) get them. v2's "no internal processes" rule (the kernel's
  Documentation/admin-guide/cgroup-v2.rst) lets a cgroup that hands
  controllers to its children hold no process itself (the root excepted): the
  sandbox's own processes (the holder, every command run in it) live in the
  leaf SB/init, so a shell in the sandbox reads `0::/init` in /proc/self/cgroup.
  Where the caller's own cgroup holds processes (a login session's scope), it
  must be delegated (systemd's Delegate=yes marks it with the xattr
  trusted.delegate): its processes are moved into its leaf `bocker-caller`
  first. The CLI starts itself in such a scope with systemd-run when it has
  to. The controllers a sandbox enabled are disabled again on close (where no
  other cgroup still uses them).
  The engines run there as well: podman with crun or runc, dockerd with its
  cgroupfs driver.
Engines sandboxes also have their own tmpfs on /run, /var/lib/containers and
/etc/docker, where the engines keep state at fixed paths.

A holder process keeps the namespaces alive; commands join them with nsenter(1)
after moving into the sandbox's cgroups. Closing the sandbox kills every process
left in those cgroups (containers included) and removes the cgroups, and so
leaves the host as it was (but for the empty mount points /var/lib/bocker and
/run/netns, and /var/lib/containers and /etc/docker with engines=True, which
stay: removing one would detach another sandbox's tmpfs).

What the host lacks (root, CAP_SYS_ADMIN, a tool, a controller, a writable
cgroup filesystem, namespaces the kernel grants) the CLI says in one line on
stderr (after the failing tool's own, if one failed) and exits 2.

Flavours of the same private host:
- 'sandbox': a fresh sysfs, so /sys/class/net shows the sandbox's own links;
- 'unshare': the caller's /sys left as it was, as in a user's plain
  `unshare --net --mount` shell: sysfs shows the network namespace of whoever
  mounted it (the host's), not the sandbox's. Only the cgroup hierarchies under
  /sys/fs/cgroup are mounted again (so cgroups still nest in the sandbox's).
  Code that reads the network through /sys breaks here, as it would for users.

CLI:  tests/sandbox.py [--no-br1] [--flavour sandbox|unshare] [--engines]
                       [--store-size SIZE | --store-dir DIR] -- COMMAND [ARG...]
      tests/sandbox.py --join [PID] [-- COMMAND [ARG...]]
                       a shell (or COMMAND) in a sandbox already open: the one
                       whose holder is PID, else the only one open
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

CONTROLLERS = ('cpu', 'cpuacct', 'memory', 'pids')   # what bocker's cgroups use (v1)
# what dockerd and runc use besides (cgroups(7) lists the v1 controllers)
ENGINE_CONTROLLERS = CONTROLLERS + ('cpuset', 'devices', 'freezer', 'blkio')
# v2 has no cpuacct (cpu counts), devices (a BPF program) nor freezer (cgroup.freeze)
V2_CONTROLLERS = ('cpu', 'memory', 'pids')
V2_ENGINE_CONTROLLERS = V2_CONTROLLERS + ('cpuset', 'io')
CGROOT = '/sys/fs/cgroup'
LEAF = 'init'                  # v2: the sandbox's own processes (see above)
CALLER_LEAF = 'bocker-caller'  # v2: a delegated caller's processes (see above)
ENGINE_DIRS = ('/var/lib/containers', '/etc/docker')   # see _inside
STORE = '/var/lib/bocker'
NETNS_DIR = '/run/netns'
FLAVOURS = ('sandbox', 'unshare')
HOLDER_MARK = '--inside'       # in the holder's argv: how --join finds sandboxes
NAME_PREFIX = 'bocker-sandbox-'


class HostLacks(RuntimeError):
    """Something the sandbox needs is missing on this host: one line saying
    what and how to get it."""


class NeedsDelegation(HostLacks):
    """v2: the caller's cgroup holds processes and is not delegated."""


def _v1_hierarchies(controllers=CONTROLLERS):
    """{controller: (mount point, super options)} of the host's cgroup v1 mounts."""
    found = {}
    with open('/proc/self/mountinfo') as f:
        for line in f:
            left, right = line.split(' - ')
            fstype, _source, opts = right.split()
            if fstype != 'cgroup':
                continue
            mnt = left.split()[4]
            for opt in opts.split(','):
                if opt in controllers:
                    found[opt] = (mnt, opts)
    return found


def _v2_mounted():
    """Is cgroup2 mounted on /sys/fs/cgroup (a v2 only host; proc(5) mountinfo)?"""
    with open('/proc/self/mountinfo') as f:
        for line in f:
            left, right = line.split(' - ')
            if right.split()[0] == 'cgroup2' and left.split()[4] == CGROOT:
                return True
    return False


def _own_cgroup(controller):
    """This process's cgroup path in a v1 hierarchy (proc(5), /proc/self/cgroup);
    controller '' is the v2 hierarchy (the line 0::PATH)."""
    with open('/proc/self/cgroup') as f:
        for line in f:
            n, ctrls, path = line.rstrip('\n').split(':', 2)
            if (controller in ctrls.split(',')) if controller else n == '0':
                return path
    return '/'


def _read(path):
    with open(path) as f:
        return f.read()


def _write(path, text):
    with open(path, 'w') as f:
        f.write(text)


def layout(engines=False):
    """'v1' or 'v2': the cgroup layout the sandbox uses here, or HostLacks.
    v1 where the host has the v1 hierarchies (a hybrid host too: its
    controllers are v1's), v2 where cgroup2 alone is on /sys/fs/cgroup."""
    wanted = ENGINE_CONTROLLERS if engines else CONTROLLERS
    hier = _v1_hierarchies(wanted)
    if hier:
        missing = [c for c in wanted if c not in hier]
        if missing:
            raise HostLacks('cgroup v1 controllers %s are not mounted (a v1 host mounts each '
                            'under /sys/fs/cgroup: see cgroups(7))' % ','.join(missing))
        return 'v1'
    if _v2_mounted():
        have = _read(CGROOT + '/cgroup.controllers').split()
        want = V2_ENGINE_CONTROLLERS if engines else V2_CONTROLLERS
        missing = [c for c in want if c not in have]
        if missing:
            raise HostLacks('cgroup v2 controllers %s are not available in %s/cgroup.controllers '
                            '(a kernel built without them, or taken by a v1 mount)'
                            % (','.join(missing), CGROOT))
        return 'v2'
    raise HostLacks('no cgroup hierarchy on %s (mount cgroup2 there: '
                    'mount -t cgroup2 none %s)' % (CGROOT, CGROOT))


CAP_SYS_ADMIN = 21     # capabilities(7): unshare(2), mount(2), setns(2) need it


def _has_cap_sys_admin():
    """Does this process hold CAP_SYS_ADMIN (CapEff in /proc/self/status, proc(5))?"""
    with open('/proc/self/status') as f:
        eff = next(l.split()[1] for l in f if l.startswith('CapEff:'))
    return bool(int(eff, 16) >> CAP_SYS_ADMIN & 1)


def check_host():
    """HostLacks naming the first thing missing: root, the tools, the cgroups."""
    if os.geteuid() != 0:
        raise HostLacks('run as root (namespaces, mounts and cgroups need it)')
    if not _has_cap_sys_admin():
        raise HostLacks('root without CAP_SYS_ADMIN (a container not started with '
                        '--privileged?): namespaces and mounts need it; run on the host')
    for tool, pkg in (('unshare', 'util-linux'), ('nsenter', 'util-linux'),
                      ('ip', 'iproute2'), ('mount', 'mount')):
        if not shutil.which(tool):
            raise HostLacks('%s is missing (apt-get install %s, or make run-deps)' % (tool, pkg))


def _delegated(path):
    """Is this cgroup delegated to whoever runs in it (systemd's Delegate=yes
    sets the xattr trusted.delegate=1 on it: systemd.resource-control(5))?"""
    try:
        return os.getxattr(path, 'trusted.delegate') == b'1'
    except OSError:
        return False


class Sandbox:
    """One private host. Use as a context manager; run commands with .run()."""

    def __init__(self, br1=True, store_size=None, store_dir=None, flavour='sandbox',
                 engines=False):
        if flavour not in FLAVOURS:
            raise ValueError('unknown sandbox flavour %r' % flavour)
        self.br1 = br1
        self.engines = engines
        self.flavour = flavour
        self.store_size = store_size
        self.store_dir = store_dir
        # SANDBOX_TAG=WORD in the environment: WORD in the name too, so a
        # caller (a test of make shell) can tell its sandboxes from others'
        tag = os.environ.get('SANDBOX_TAG', '')
        self.name = '%s%s%d-%d' % (NAME_PREFIX, tag + '-' if tag.isalnum() else '',
                                   os.getpid(), time.monotonic_ns())
        self.layout = None
        self.controllers = ()
        self.cgroup_dirs = []      # the sandbox's own cgroups (v2: one), removed on close
        self.join_dirs = []        # where its processes go (v2: the leaf SB/init)
        self.enabled = []          # v2: (cgroup, controller) this sandbox enabled
        self.holder = None

    # -- life cycle ---------------------------------------------------------
    def __enter__(self):
        check_host()
        self.layout = layout(self.engines)
        try:
            if self.layout == 'v1':
                self._make_v1()
            else:
                self._make_v2()
            self._start_holder()
        except OSError as e:
            # a cgroup filesystem mounted read-only (as in a container), a
            # controller the kernel refuses to hand down: one line
            self.__exit__(None, None, None)
            raise HostLacks('cannot make the sandbox\'s cgroups: %s: %s (a read-only cgroup '
                            'filesystem, as in a container: run on the host)'
                            % (e.filename or '', e.strerror)) from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _make_v1(self):
        self.controllers = ENGINE_CONTROLLERS if self.engines else CONTROLLERS
        hier = _v1_hierarchies(self.controllers)
        seen = set()
        for ctrl in self.controllers:
            mnt, opts = hier[ctrl]
            if mnt in seen:
                continue
            seen.add(mnt)
            path = os.path.join(mnt + _own_cgroup(ctrl), self.name)
            os.mkdir(path)
            self.cgroup_dirs.append(path)
            if 'cpuset' in opts.split(','):
                # a new v1 cpuset has no cpus and no memory nodes, and takes
                # no task until it has both: its parent's (cpuset(7))
                for knob in ('cpuset.cpus', 'cpuset.mems'):
                    _write(os.path.join(path, knob),
                           _read(os.path.join(os.path.dirname(path), knob)))
        self.join_dirs = list(self.cgroup_dirs)

    def _make_v2(self):
        """SB under the caller's cgroup, the controllers enabled from the root
        down to it (cgroup.subtree_control: a controller is enabled for the
        children, and only where the parent has it), its processes in SB/init."""
        self.controllers = V2_ENGINE_CONTROLLERS if self.engines else V2_CONTROLLERS
        own = _own_cgroup('')
        parts = [p for p in own.split('/') if p]
        if parts[-1:] == [CALLER_LEAF] and _delegated(CGROOT + '/' + '/'.join(parts[:-1])):
            parts.pop()     # moved to the leaf by an earlier sandbox: its delegated parent
        chain = [CGROOT + ''.join('/' + p for p in parts[:i]) for i in range(len(parts) + 1)]
        if parts and _read(chain[-1] + '/cgroup.procs').split():
            # the caller's cgroup holds processes: they must go to a leaf first
            if not _delegated(chain[-1]):
                raise NeedsDelegation(
                    'cgroup v2: the caller\'s cgroup %s holds processes and is not delegated, '
                    'so it cannot hand controllers to a sandbox (the "no internal processes" '
                    'rule); start it in a delegated scope: systemd-run --scope -p Delegate=yes '
                    '--quiet COMMAND' % own)
            leaf = chain[-1] + '/' + CALLER_LEAF
            os.makedirs(leaf, exist_ok=True)
            for _ in range(10):
                pids = _read(chain[-1] + '/cgroup.procs').split()
                if not pids:
                    break
                for pid in pids:
                    try:
                        _write(leaf + '/cgroup.procs', pid)
                    except OSError:
                        pass     # gone already
        for cg in chain:
            have = _read(cg + '/cgroup.subtree_control').split()
            for ctrl in self.controllers:
                if ctrl not in have:
                    _write(cg + '/cgroup.subtree_control', '+' + ctrl)
                    self.enabled.append((cg, ctrl))
        path = chain[-1] + '/' + self.name
        os.mkdir(path)
        self.cgroup_dirs.append(path)
        os.mkdir(path + '/' + LEAF)
        # the holder joins SB itself (so its cgroup namespace is rooted at SB),
        # then moves to SB/init; SB hands the controllers on once empty
        self.join_dirs = [path]

    def _start_holder(self):
        # Mount points for the private tmpfs. They stay (empty) afterwards:
        # removing one would detach the tmpfs of a sandbox running beside us.
        for d in (STORE, NETNS_DIR) + (ENGINE_DIRS if self.engines else ()):
            os.makedirs(d, exist_ok=True)
        args = [sys.executable, os.path.abspath(__file__), HOLDER_MARK, '--layout', self.layout]
        if not self.br1:
            args.append('--no-br1')
        if self.store_size:
            args += ['--store-size', self.store_size]
        if self.store_dir:
            args += ['--store-dir', self.store_dir]
        args += ['--flavour', self.flavour]
        if self.engines:
            args.append('--engines')
        self.holder = subprocess.Popen(
            ['unshare', '--net', '--mount', '--cgroup', '--propagation', 'private', '--'] + args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=self._join)
        ready = self.holder.stdout.readline()
        if ready.strip() != b'ready':
            raise HostLacks('could not set up the sandbox\'s namespaces and mounts '
                            '(the line above says why)')
        if self.layout == 'v2':
            sb = self.cgroup_dirs[0]
            self.join_dirs = [sb + '/' + LEAF]
            _write(sb + '/cgroup.subtree_control',
                   ' '.join('+' + c for c in self.controllers))

    def __exit__(self, *exc):
        if self.holder:
            self.holder.stdin.close()
            self.holder.wait()
        self._kill_all()
        for path in reversed(self.cgroup_dirs):
            _rmdir_tree(path)
        # v2: what this sandbox enabled, deepest first; a controller another
        # cgroup below still uses stays (the kernel refuses: EBUSY)
        for cg, ctrl in reversed(self.enabled):
            try:
                _write(cg + '/cgroup.subtree_control', '-' + ctrl)
            except OSError:
                pass

    def _join(self):
        """preexec_fn: move the child into the sandbox's cgroups (cgroups(7))."""
        for path in self.join_dirs:
            _write(os.path.join(path, 'cgroup.procs'), str(os.getpid()))

    def _pids(self):
        pids = set()
        for top in self.cgroup_dirs:
            for dirpath, _dirs, _files in os.walk(top):
                try:
                    pids.update(int(p) for p in _read(os.path.join(dirpath, 'cgroup.procs')).split())
                except OSError:
                    pass
        return pids

    def _kill_all(self):
        for _ in range(200):
            pids = self._pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        raise RuntimeError('sandbox %s: processes survive SIGKILL' % self.name)

    # -- use ----------------------------------------------------------------
    def argv(self, argv, cwd=None):
        """The nsenter(1) command line that runs argv inside the sandbox."""
        return ['nsenter', '-t', str(self.holder.pid), '-n', '-m', '-C',
                '--wd=%s' % (cwd or os.getcwd()), '--'] + list(argv)

    def run(self, argv, cwd=None, **kw):
        """subprocess.run inside the sandbox (in its cgroups, namespaces)."""
        kw.setdefault('preexec_fn', self._join)
        return subprocess.run(self.argv(argv, cwd), **kw)

    def popen(self, argv, cwd=None, **kw):
        kw.setdefault('preexec_fn', self._join)
        return subprocess.Popen(self.argv(argv, cwd), **kw)


def _rmdir_tree(path):
    """Remove a cgroup and its children, deepest first (cgroup dirs hold no files)."""
    for dirpath, dirs, _files in os.walk(path, topdown=False):
        for _ in range(100):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)   # a killed task can take a moment to leave


def _sh(*argv):
    subprocess.run(argv, check=True)


def _inside(br1, store_size, store_dir=None, flavour='sandbox', engines=False, lay='v1'):
    """Runs as the holder, already in the new namespaces: build the private host."""
    # 'sandbox': a sysfs for this network namespace. 'unshare': the host's sysfs
    # stays, as in a plain `unshare --net --mount` shell.
    # Then cgroup hierarchies rooted at the sandbox's cgroup (a mount made
    # inside a cgroup namespace shows its root). The host's cgroup mounts go
    # first: libcgroup reads /proc/mounts and is confused by hierarchies
    # mounted twice.
    if flavour == 'sandbox':
        _sh('umount', '--recursive', '--lazy', '/sys')
        _sh('mount', '-t', 'sysfs', 'sysfs', '/sys')
    else:
        _sh('umount', '--recursive', '--lazy', CGROOT)
    if lay == 'v2':
        # one hierarchy; its root here is the sandbox's cgroup SB. The holder
        # moves to the leaf SB/init, so SB can hand controllers to its children.
        _sh('mount', '-t', 'cgroup2', 'cgroup2', CGROOT)
        _write(CGROOT + '/' + LEAF + '/cgroup.procs', str(os.getpid()))
    else:
        _sh('mount', '-t', 'tmpfs', '-o', 'mode=755', 'cgroup', CGROOT)
        done = set()
        for ctrl, (mnt, opts) in _v1_hierarchies_from_host().items():
            if mnt in done:
                continue
            done.add(mnt)
            os.makedirs(mnt, exist_ok=True)
            _sh('mount', '-t', 'cgroup', '-o', opts, 'cgroup', mnt)
    if store_dir:                  # a disk-backed store, as on a real host (the bench)
        _sh('mount', '--bind', store_dir, STORE)
    else:
        size = ['-o', 'size=%s' % store_size] if store_size else []
        _sh('mount', '-t', 'tmpfs', *size, 'bocker', STORE)
    os.makedirs(STORE + '/overlay')
    os.makedirs(STORE + '/containers')
    if engines:
        # The engines' fixed paths, private to the sandbox and gone with it:
        # /run (containerd's shim sockets in /run/containerd/s, runc's
        # /run/runc, /run/docker, /run/containers), the blob cache
        # /var/lib/containers/cache of podman and skopeo, and /etc/docker
        # (dockerd writes its key.json there, and would read a daemon.json).
        _sh('mount', '-t', 'tmpfs', '-o', 'mode=755', 'run', '/run')
        os.makedirs(NETNS_DIR)
        for d in ENGINE_DIRS:
            _sh('mount', '-t', 'tmpfs', '-o', 'mode=755', 'engine', d)
    _sh('mount', '-t', 'tmpfs', 'netns', NETNS_DIR)
    _sh('ip', 'link', 'set', 'lo', 'up')
    if br1:
        _sh('ip', 'link', 'add', 'br1', 'type', 'bridge')
        _sh('ip', 'addr', 'add', '172.18.0.1/24', 'dev', 'br1')
        _sh('ip', 'link', 'set', 'br1', 'up')


_HOST_HIER = None


def _v1_hierarchies_from_host():
    return _HOST_HIER


# -- joining a sandbox that is open (`make shell-join`) -----------------------

def holders(mine=True):
    """The pids of the sandboxes' holders running here, oldest first: those
    this copy of sandbox.py made (mine), or any."""
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            argv = _read('/proc/%s/cmdline' % pid).split('\0')
        except OSError:
            continue
        if HOLDER_MARK in argv and any(a == os.path.abspath(__file__) if mine
                                       else a.endswith('/sandbox.py') for a in argv):
            found.append(int(pid))
    return sorted(found)


def join_argv(pid, argv):
    """nsenter(1) into the holder's network, mount and cgroup namespaces."""
    return ['nsenter', '-t', str(pid), '-n', '-m', '-C', '--wd=%s' % os.getcwd(), '--'] + argv


def join_cgroups(pid):
    """Move this process into the sandbox's cgroups the holder pid is in (its
    /proc/PID/cgroup, read from the host's cgroup namespace)."""
    v1 = _v1_hierarchies(ENGINE_CONTROLLERS)
    for line in _read('/proc/%d/cgroup' % pid).splitlines():
        n, ctrls, path = line.split(':', 2)
        if NAME_PREFIX not in path:
            continue            # a hierarchy the sandbox has no cgroup of its own in
        if v1 and ctrls.split(',')[0] in v1:
            _write(v1[ctrls.split(',')[0]][0] + path + '/cgroup.procs', str(os.getpid()))
        elif not v1 and n == '0':
            _write(CGROOT + path + '/cgroup.procs', str(os.getpid()))


def join(pid, command):
    """Run command (default: a login shell) in the open sandbox of holder pid."""
    if pid is None:
        found = holders()
        if not found:
            raise HostLacks('no sandbox is open (make shell opens one)')
        if len(found) > 1:
            raise HostLacks('%d sandboxes are open (holders %s): name one, '
                            'tests/sandbox.py --join PID' % (len(found), ' '.join(map(str, found))))
        pid = found[0]
    elif pid not in holders(mine=False):
        raise HostLacks('%d is no sandbox\'s holder (open: %s)'
                        % (pid, ' '.join(map(str, holders(mine=False))) or 'none'))
    argv = command or [os.environ.get('SHELL') or '/bin/bash']
    env = dict(os.environ, SANDBOX_HOLDER=str(pid))
    return subprocess.run(join_argv(pid, argv), env=env,
                          preexec_fn=lambda: join_cgroups(pid)).returncode


def in_delegated_scope(argv):
    """The CLI again, in a transient systemd scope delegated to it
    (systemd-run(1) --scope: same terminal, same environment), where the
    caller's cgroup cannot hand controllers on; None without systemd."""
    if os.environ.get('SANDBOX_SCOPE') or not os.path.isdir('/run/systemd/system') \
            or not shutil.which('systemd-run'):
        return None
    return ['systemd-run', '--scope', '--quiet', '--collect', '-p', 'Delegate=yes',
            '--setenv=SANDBOX_SCOPE=1', '--', 'env', 'SANDBOX_SCOPE=1',
            sys.executable, os.path.abspath(__file__)] + argv


def main():
    global _HOST_HIER
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument(HOLDER_MARK, action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--layout', default='v1', help=argparse.SUPPRESS)
    ap.add_argument('--no-br1', action='store_true', help='do not make bridge br1')
    ap.add_argument('--store-size', help='size of the tmpfs on /var/lib/bocker')
    ap.add_argument('--flavour', choices=FLAVOURS, default='sandbox',
                    help="'unshare' keeps the caller's /sys, as a plain unshare shell does")
    ap.add_argument('--store-dir', help='bind-mount this (empty) directory on /var/lib/bocker '
                    'instead of a tmpfs')
    ap.add_argument('--engines', action='store_true',
                    help='cgroups of its own in every controller docker and podman use')
    ap.add_argument('--join', nargs='?', type=int, const=0, default=None, metavar='PID',
                    help='run COMMAND (default: a shell) in the open sandbox of holder PID '
                    '(none: the only one open)')
    ap.add_argument('command', nargs='*')
    a = ap.parse_args()
    if a.inside:
        # Still the host's mounts here: read the hierarchies before replacing them.
        _HOST_HIER = _v1_hierarchies(ENGINE_CONTROLLERS if a.engines else CONTROLLERS)
        try:
            _inside(not a.no_br1, a.store_size, a.store_dir, a.flavour, a.engines, a.layout)
        except (subprocess.CalledProcessError, OSError) as e:
            # the failing tool said why on stderr (a CalledProcessError);
            # the owner says the rest in one line (Sandbox._start_holder)
            if isinstance(e, OSError):
                sys.stderr.write('%s: %s\n' % (PROG, e))
            return 1
        sys.stdout.write('ready\n')
        sys.stdout.flush()
        sys.stdin.read()          # hold the namespaces until the owner closes stdin
        return 0
    try:
        if a.join is not None:
            check_host()
            return join(a.join or None, a.command)
        if not a.command:
            ap.error('a command is needed')
        sb = Sandbox(br1=not a.no_br1, store_size=a.store_size, store_dir=a.store_dir,
                     flavour=a.flavour, engines=a.engines)
        try:
            sb.__enter__()
        except NeedsDelegation:
            again = in_delegated_scope(sys.argv[1:])
            if not again:
                raise
            sys.stdout.flush()
            return subprocess.run(again).returncode
        try:
            # the command learns the holder's pid: how to join from elsewhere
            env = dict(os.environ, SANDBOX_HOLDER=str(sb.holder.pid))
            return sb.run(a.command, env=env).returncode
        finally:
            sb.__exit__(None, None, None)
    except HostLacks as e:
        sys.stderr.write('%s: %s\n' % (PROG, e))
        return 2
    except KeyboardInterrupt:
        return 130


PROG = 'tests/sandbox.py'

if __name__ == '__main__':
    sys.exit(main())
