"""The container engines that bocker's images are taken to, as the tests
(tests/test_engines.py) and the benchmark (tests/bench.py) run them: a dockerd
of our own and podman, each keeping everything under one directory. Run them
inside a sandbox made with engines=True (tests/sandbox.py): its own cgroups in
every controller runc uses, its own /run, /var/lib/containers and /etc/docker,
so nothing of theirs reaches the host. Needs docker.io, runc and podman.
"""
import os
import resource
import shutil
import signal
import subprocess
import time

# The docker.io package's client, of its daemon's version (another docker
# CLI may come first on PATH).
DOCKER = '/usr/bin/docker'
# podman 4 sets its own RLIMIT_NPROC to this at start (seen with strace); its
# containers cannot be given more (getrlimit(2): only CAP_SYS_RESOURCE raises
# a hard limit).
PODMAN_NPROC = 32768


def alive(pid):
    """Whether pid runs (a zombie waiting for its parent does not)."""
    try:
        with open('/proc/%s/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


class Dockerd:
    """One dockerd: data root, exec root, socket, pid file and log under top;
    no iptables, no bridge (containers run with --network none), vfs storage
    (no overlay mounts of its own; the benchmark also runs one with driver
    overlay2). Given no --containerd, it starts its own
    containerd, whose state lives under the exec root. sandbox: a
    tests/sandbox.py Sandbox to run in, None when already inside one."""

    def __init__(self, top, sandbox=None, timeout=60, driver='vfs'):
        if not (os.path.exists(DOCKER) and os.path.exists('/usr/sbin/dockerd')):
            raise RuntimeError('needs docker.io (apt-get install docker.io; make test does)')
        self.top = str(top)
        self.sock = 'unix://%s/docker.sock' % self.top
        self.docker = [DOCKER, '-H', self.sock]          # the client, for this daemon
        popen = sandbox.popen if sandbox else subprocess.Popen
        self._run = run = sandbox.run if sandbox else subprocess.run
        self._mountinfo = '/proc/%s/mountinfo' % (sandbox.holder.pid if sandbox else 'self')
        self.log = open(os.path.join(self.top, 'dockerd.log'), 'wb')
        self.proc = popen(['dockerd', '--data-root', self.top + '/data',
                           '--exec-root', self.top + '/exec', '-H', self.sock,
                           '--pidfile', self.top + '/docker.pid',
                           '--iptables=false', '--ip6tables=false', '--bridge=none',
                           '--storage-driver=' + driver],
                          stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while run(self.docker + ['version'], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL).returncode:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('dockerd did not start: ' + self.logged())
            time.sleep(0.2)
        self.children = []                               # its containerd
        for task in os.listdir('/proc/%d/task' % self.proc.pid):
            with open('/proc/%d/task/%s/children' % (self.proc.pid, task)) as f:
                self.children += [int(p) for p in f.read().split()]

    def logged(self):
        with open(os.path.join(self.top, 'dockerd.log'), 'rb') as f:
            return f.read()[-3000:].decode('utf-8', 'replace')

    def stop(self):
        """SIGTERM, as systemd stops it; then wait for its containerd, which
        it signals as it goes but does not wait for. Returns the pids still
        running (none)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()
        for pid in getattr(self, 'children', []):
            for _ in range(300):
                if not alive(pid):
                    break
                time.sleep(0.1)
        # Where the data root lies on a private mount, dockerd bind-mounts it
        # onto itself to make it rshared (mount_namespaces(7), shared
        # subtrees), and leaves that mount when it stops.
        with open(self._mountinfo) as f:
            if any(line.split()[4] == self.top + '/data' for line in f):
                self._run(['umount', self.top + '/data'], check=True)
        return [pid for pid in getattr(self, 'children', []) if alive(pid)]


def podman(top, runroot, driver='vfs'):
    """(argv, env) of a podman whose storage (vfs, or driver), temporary files and
    network configuration are under top, its run root at runroot (at most 50
    characters: in the sandbox's own /run), with its own storage.conf so no
    host setting applies; containers run by runc (crun refuses hybrid
    cgroups: `cgroups in hybrid mode not supported`) in cgroupfs cgroups;
    events go to a file."""
    top = str(top)
    os.makedirs(top + '/tmp', exist_ok=True)
    conf = top + '/storage.conf'
    with open(conf, 'w') as f:
        f.write('[storage]\ndriver = "%s"\nrunroot = "%s"\ngraphroot = "%s/root"\n'
                % (driver, runroot, top))
    argv = ['podman', '--root', top + '/root', '--runroot', runroot,
            '--tmpdir', top + '/libpod', '--storage-driver', driver,
            '--cgroup-manager', 'cgroupfs', '--events-backend', 'file',
            '--runtime', 'runc', '--network-config-dir', top + '/networks']
    return argv, {'CONTAINERS_STORAGE_CONF': conf, 'TMPDIR': top + '/tmp'}


def podman_run():
    """`run --rm` with no network, never a pull, no log, and limits this
    machine allows: root here may lack CAP_SYS_RESOURCE, and podman's default
    RLIMIT_NOFILE and RLIMIT_NPROC (1048576) then fail (`setrlimit
    RLIMIT_NOFILE: Operation not permitted`), so the hard limits instead,
    read now (nproc at most PODMAN_NPROC)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    if nproc == resource.RLIM_INFINITY or nproc > PODMAN_NPROC:
        nproc = PODMAN_NPROC
    if nofile == resource.RLIM_INFINITY:
        nofile = 1048576
    return ['run', '--rm', '--network', 'none', '--pull', 'never', '--log-driver', 'none',
            '--ulimit', 'nofile=%d:%d' % (nofile, nofile),
            '--ulimit', 'nproc=%d:%d' % (nproc, nproc)]


class Podman:
    """podman (as podman() sets it up) in a test's sandbox: Podman(ARGS...) runs
    it there, script= a shell line where $P stands for it; run() is podman_run()."""

    def __init__(self, box, top, runroot):
        assert shutil.which('podman'), 'needs podman (apt-get install podman; make test does)'
        self.box, self.top = box, top
        self.argv, self.env = podman(top, runroot)

    def __call__(self, *args, script=None):
        if script is not None:
            return self.box._run(['sh', '-c', script, 'sh', *args],
                                 env=dict(self.env, P=' '.join(self.argv)))
        return self.box._run(self.argv + list(args), env=self.env)

    def run(self, *args):
        return self(*podman_run(), *args)
