#!/usr/bin/env python3
"""A throwaway host for bocker: private network, mount and cgroup namespaces.

bocker (the reference and bocker.py) changes the host: it makes veths, network
namespaces, overlay mounts and cgroups, and writes under /var/lib/bocker. Every
test and demo runs inside a sandbox made here, so none of that reaches the host:

- network namespace (ip-netns(8), network_namespaces(7)): its own lo and a bridge
  br1 172.18.0.1/24, so container traffic never leaves the sandbox;
- mount namespace (mount_namespaces(7)) with private propagation: tmpfs on
  /var/lib/bocker and /run/netns, a fresh sysfs, and the cgroup v1 hierarchies
  mounted again;
- cgroup namespace (cgroup_namespaces(7)) rooted at a cgroup made for this
  sandbox under the caller's own, so `cgcreate -g cpu,cpuacct,memory:/ps_N`
  nests there instead of at the host's root. With engines=True (`--engines`)
  the sandbox has its own cgroup in every v1 controller a container engine
  uses (devices, pids, freezer, blkio, cpuset too: dockerd refuses to start
  without the devices controller, runc puts each container in all of them),
  and only those are mounted, so dockerd's and podman's cgroups nest there too.
  Such a sandbox also has its own tmpfs on /run, /var/lib/containers and
  /etc/docker, where the engines keep state at fixed paths.

A holder process keeps the namespaces alive; commands join them with nsenter(1)
after moving into the sandbox's cgroups. Closing the sandbox kills every process
left in those cgroups (containers included) and removes the cgroups, and so
leaves the host as it was (but for the empty mount points /var/lib/bocker and
/run/netns, and /var/lib/containers and /etc/docker with engines=True, which
stay: removing one would detach another sandbox's tmpfs).

Flavours of the same private host:
- 'sandbox': a fresh sysfs, so /sys/class/net shows the sandbox's own links;
- 'unshare': the caller's /sys left as it was, as in a user's plain
  `unshare --net --mount` shell: sysfs shows the network namespace of whoever
  mounted it (the host's), not the sandbox's. Only the cgroup hierarchies under
  /sys/fs/cgroup are mounted again (so cgroups still nest in the sandbox's).
  Code that reads the network through /sys breaks here, as it would for users.

CLI:  tests/sandbox.py [--no-br1] [--flavour sandbox|unshare] [--engines]
                       [--store-size SIZE | --store-dir DIR] -- COMMAND [ARG...]
"""
import argparse
import os
import signal
import subprocess
import sys
import time

CONTROLLERS = ('cpu', 'cpuacct', 'memory', 'pids')   # what bocker's cgroups use
# what dockerd and runc use besides (cgroups(7) lists the v1 controllers)
ENGINE_CONTROLLERS = CONTROLLERS + ('cpuset', 'devices', 'freezer', 'blkio')
ENGINE_DIRS = ('/var/lib/containers', '/etc/docker')   # see _inside
STORE = '/var/lib/bocker'
NETNS_DIR = '/run/netns'
FLAVOURS = ('sandbox', 'unshare')


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


def _own_cgroup(controller):
    """This process's cgroup path in a v1 hierarchy (proc(5), /proc/self/cgroup)."""
    with open('/proc/self/cgroup') as f:
        for line in f:
            _n, ctrls, path = line.rstrip('\n').split(':', 2)
            if controller in ctrls.split(','):
                return path
    return '/'


class Sandbox:
    """One private host. Use as a context manager; run commands with .run()."""

    def __init__(self, br1=True, store_size=None, store_dir=None, flavour='sandbox',
                 engines=False):
        if flavour not in FLAVOURS:
            raise ValueError('unknown sandbox flavour %r' % flavour)
        self.br1 = br1
        self.engines = engines
        self.controllers = ENGINE_CONTROLLERS if engines else CONTROLLERS
        self.flavour = flavour
        self.store_size = store_size
        self.store_dir = store_dir
        self.name = 'bocker-sandbox-%d-%d' % (os.getpid(), time.monotonic_ns())
        self.cgroup_dirs = []
        self.holder = None

    # -- life cycle ---------------------------------------------------------
    def __enter__(self):
        hier = _v1_hierarchies(self.controllers)
        missing = [c for c in self.controllers if c not in hier]
        if missing:
            raise RuntimeError('sandbox needs cgroup v1 controllers: %s' % ','.join(missing))
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
                    with open(os.path.join(os.path.dirname(path), knob)) as f:
                        value = f.read()
                    with open(os.path.join(path, knob), 'w') as f:
                        f.write(value)
        # Mount points for the private tmpfs. They stay (empty) afterwards:
        # removing one would detach the tmpfs of a sandbox running beside us.
        for d in (STORE, NETNS_DIR) + (ENGINE_DIRS if self.engines else ()):
            os.makedirs(d, exist_ok=True)
        args = [sys.executable, os.path.abspath(__file__), '--inside']
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
            self.__exit__(None, None, None)
            raise RuntimeError('sandbox setup failed')
        return self

    def __exit__(self, *exc):
        if self.holder:
            self.holder.stdin.close()
            self.holder.wait()
        self._kill_all()
        for path in reversed(self.cgroup_dirs):
            _rmdir_tree(path)

    def _join(self):
        """preexec_fn: move the child into the sandbox's cgroups (cgroups(7))."""
        for path in self.cgroup_dirs:
            with open(os.path.join(path, 'cgroup.procs'), 'w') as f:
                f.write(str(os.getpid()))

    def _pids(self):
        pids = set()
        for top in self.cgroup_dirs:
            for dirpath, _dirs, _files in os.walk(top):
                try:
                    with open(os.path.join(dirpath, 'cgroup.procs')) as f:
                        pids.update(int(p) for p in f.read().split())
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


def _inside(br1, store_size, store_dir=None, flavour='sandbox', engines=False):
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
        _sh('umount', '--recursive', '--lazy', '/sys/fs/cgroup')
    _sh('mount', '-t', 'tmpfs', '-o', 'mode=755', 'cgroup', '/sys/fs/cgroup')
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


def main():
    global _HOST_HIER
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--inside', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--no-br1', action='store_true', help='do not make bridge br1')
    ap.add_argument('--store-size', help='size of the tmpfs on /var/lib/bocker')
    ap.add_argument('--flavour', choices=FLAVOURS, default='sandbox',
                    help="'unshare' keeps the caller's /sys, as a plain unshare shell does")
    ap.add_argument('--store-dir', help='bind-mount this (empty) directory on /var/lib/bocker '
                    'instead of a tmpfs')
    ap.add_argument('--engines', action='store_true',
                    help='cgroups of its own in every controller docker and podman use')
    ap.add_argument('command', nargs='*')
    a = ap.parse_args()
    if a.inside:
        # Still the host's mounts here: read the hierarchies before replacing them.
        _HOST_HIER = _v1_hierarchies(ENGINE_CONTROLLERS if a.engines else CONTROLLERS)
        _inside(not a.no_br1, a.store_size, a.store_dir, a.flavour, a.engines)
        sys.stdout.write('ready\n')
        sys.stdout.flush()
        sys.stdin.read()          # hold the namespaces until the owner closes stdin
        return 0
    if not a.command:
        ap.error('a command is needed')
    with Sandbox(br1=not a.no_br1, store_size=a.store_size, store_dir=a.store_dir,
                 flavour=a.flavour, engines=a.engines) as sb:
        return sb.run(a.command).returncode


if __name__ == '__main__':
    sys.exit(main())
