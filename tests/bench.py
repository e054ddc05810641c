#!/usr/bin/env python3
"""make bench: bocker.py against the reference, the same operations in one
sandbox, interleaved (reference, bocker.py, reference, ...), several rounds.
Prints the median time of each, the ratio bocker.py / reference against the
target (issue 12), the floor where one is measured, and bocker.py's peak memory
(maximum resident set, from GNU time) per operation.

The floor, timed in the same rounds: for run, the system commands bocker.py
runs, alone, from bash (tests/floor_run.sh); for init, `cp -rf --reflink=auto`
alone; for help, images and ps, the shim's bash starting the interpreter that
does nothing (bash bocker.sh's `exec python3 -I -c pass`); for pull, its one
system command, download-frozen-image-v2, alone.
The distribution tree is `debootstrap --variant=minbase bookworm`, cached
outside the project (BENCH_TREE, made by `make bench` when missing); the
40,000-entry image (as many entries as a python or node base image) is busybox
and 400 directories of 99 small files, made once and cached beside it
(BENCH_TREE40, made here when missing). After the rows, run's cost against the
image's size: each run row's median for the reference, bocker.py and the peers.

Peers, timed in the same rounds as each `run` row: `docker run --rm
--network none` (a dockerd of the bench's own) and `podman run --rm` (runc,
--network none) of the same image, exported by compat/export-image and
loaded into each (tests/engines.py says how they are run), with the overlay
storage drivers (docker overlay2, podman overlay: the image's layers are the
lower layers, nothing copied per container), or vfs (a copy of the image per
container) where overlay cannot be used (BENCH_PEER_DRIVER=vfs forces it).
Each gets a row under bocker.py's, its time in the bocker.py column, its ratio
to the reference. They need the sandbox's engines=True (the Makefile passes
--engines): dockerd wants cgroups of its own in every controller.

Run inside a sandbox (the Makefile does):
    python3 tests/sandbox.py --engines -- python3 tests/bench.py
A benchmark, not a test: nothing here asserts a time.
"""
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from support import BOCKER, REFERENCE, ROOT, STORE  # noqa: E402  (the tests' own paths)
ROUNDS = int(os.environ.get('BENCH_ROUNDS', '5'))   # BENCH_ONLY: see bench()
TREE = os.environ.get('BENCH_TREE', '/var/cache/bocker-bench/bookworm-minbase')
TREE40 = os.environ.get('BENCH_TREE40', os.path.join(os.path.dirname(TREE), 'synthetic-40000'))
FLOOR_RUN = os.path.join(HERE, 'floor_run.sh')
# issue 12: bocker.py / reference at most this
TARGETS = {'run, busybox image': 0.8, 'run, 200 MB image': 0.25, 'run, distribution tree': 0.25,
           'run, 40,000-entry image': 0.25,
           'init, 200 MB': 1.0, 'init, distribution tree': 1.0, 'images': 1.5, 'help': 2.0,
           'ps, 100 containers': 0.2, 'pull, 200 MB in 5 layers': 0.7}
ENV = {k: v for k, v in os.environ.items() if k != 'PYTHONUNBUFFERED'}
ENV['PATH'] = os.path.join(ROOT, 'compat') + ':' + ENV['PATH']   # the reference's pull helper


def tool(which):
    return ['bash', REFERENCE] if which == 'ref' else [BOCKER]


def python():
    """The interpreter the shim runs."""
    venv = os.path.join(ROOT, '.venv', 'bin', 'python')
    return venv if os.access(venv, os.X_OK) else 'python3'


def timed_floor(argv):
    """Seconds of a floor command (no output kept)."""
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    elapsed = time.perf_counter() - t
    if r.returncode:
        raise SystemExit('bench: floor %s failed: %s' % (argv, r.stderr.decode()[-500:]))
    return elapsed


class Failed(Exception):
    """An operation failed."""


def timed(which, *args, env=None):
    """Seconds, and bocker.py's max RSS in kB (GNU time; the shim execs python)."""
    argv = ['/usr/bin/time', '-f', '%M', '-o', '/tmp/bench-rss'] + tool(which) + list(args)
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(ENV, **(env or {})))
    elapsed = time.perf_counter() - t
    if r.returncode:
        raise Failed('bench: %s %s failed: %s' % (which, args, r.stderr.decode()[-500:]))
    with open('/tmp/bench-rss') as f:
        rss = int(f.read().split()[-1])
    return elapsed, rss, r.stdout.decode()


def new_ids(before, kind):
    now = set(os.listdir(STORE + ('/overlay' if kind == 'img' else '/containers')))
    return sorted(n for n in now - before if n.startswith(kind + '_'))


def listing(kind):
    return set(os.listdir(STORE + ('/overlay' if kind == 'img' else '/containers')))


def rm(which, name):
    subprocess.run(tool(which) + ['rm', name], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=ENV)


def bench(name, op, cleanup=None, rounds=ROUNDS, floor=None, floor_cleanup=None,
          peers=None):
    """op(which) -> (seconds, rss); interleaved rounds; floor() -> seconds, timed
    in the same rounds; peers: {label: () -> seconds}, each timed in the same
    rounds too, after bocker.py, and given a row of its own.
    BENCH_ONLY=WORD: only the rows whose name has WORD."""
    if os.environ.get('BENCH_ONLY', '') not in name:
        return ''
    peers = peers() if callable(peers) else (peers or {})
    times = {'ref': [], 'py': [], 'floor': []}
    times.update({label: [] for label in peers})
    rss = []
    for _ in range(rounds):
        for which in ('ref', 'py', 'floor'):
            if which == 'floor':
                if floor:
                    times['floor'].append(floor())
                    if floor_cleanup:
                        floor_cleanup()
                continue
            t, m = attempt(op, which)
            times[which].append(t)
            if which == 'py':
                rss.append(m)
            if cleanup:
                cleanup(which)
        for label, peer in peers.items():
            times[label].append(peer())
    ref, py = statistics.median(times['ref']), statistics.median(times['py'])
    target = TARGETS.get(name)
    verdict = '' if target is None else '≤ %s — %s' % (target, 'met' if py / ref <= target
                                                        else '**missed**')
    fl = '%.3f' % statistics.median(times['floor']) if times['floor'] else ''
    row = '| %s | %.3f | %.3f | %.2f | %s | %s | %d |' % (name, ref, py, py / ref, verdict, fl,
                                                         max(rss) // 1024)
    print(row, flush=True)
    MEDIANS[name] = {'reference': ref, 'bocker.py': py}
    for label in peers:
        t = statistics.median(times[label])
        MEDIANS[name][label.split(' run ')[0]] = t
        peer_row = '| ↳ %s | %.3f | %.3f | %.2f | | | |' % (label, ref, t, t / ref)
        print(peer_row, flush=True)
        row += '\n' + peer_row
    return row


MEDIANS = {}                 # row name: {'reference', 'bocker.py', peer: median}


def attempt(op, which):
    """op(which); the reference's init and run fail now and then by design (an
    id that is taken makes init call bocker_run, DIVERGENCES.md): try again."""
    for tries in range(3):
        try:
            return op(which)
        except Failed as e:
            if which != 'ref' or tries == 2:
                raise SystemExit(str(e))
            sys.stderr.write('%s; trying again\n' % str(e).split('\n')[0])


def timed_peer(argv, env=None):
    """Seconds of a peer engine's command (no output kept)."""
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=dict(ENV, **(env or {})))
    elapsed = time.perf_counter() - t
    if r.returncode:
        raise SystemExit('bench: peer %s failed: %s' % (argv, r.stderr.decode()[-500:]))
    return elapsed


class Peers:
    """dockerd and podman with everything under the store's filesystem
    (STORE/peers, as the images and containers they are compared with), each
    image loaded into both from compat/export-image, with the overlay storage
    drivers (else vfs: see why_vfs). for_image(img) gives the {label: () ->
    seconds} of bench() for one image; close() stops dockerd and removes it all."""

    def __init__(self, images):
        self.images, self.top, self.dockerd = images, STORE + '/peers', None
        self.runs, self.why_vfs = {}, ''

    def start(self):
        import engines
        driver = os.environ.get('BENCH_PEER_DRIVER', 'overlay')
        for tries in (driver, 'vfs'):
            try:
                self.load(engines, tries)
                return
            except (RuntimeError, subprocess.CalledProcessError) as e:
                if tries == 'vfs':
                    raise SystemExit('bench: peers: %s' % e)
                self.why_vfs = 'the overlay drivers failed here (%s): vfs' % str(e)[-300:]
                sys.stderr.write('bench: %s\n' % self.why_vfs)
                self.close()

    def load(self, engines, driver):
        docker_driver = 'overlay2' if driver == 'overlay' else driver
        os.makedirs(self.top + '/docker')
        self.dockerd = engines.Dockerd(self.top + '/docker', driver=docker_driver)
        podman, env = engines.podman(self.top + '/podman', '/run/bocker-bench-podman', driver)
        for n, img in enumerate(self.images):
            name = 'localhost/bench-%d:v1' % n
            tar = self.top + '/image.tar'
            with open(tar, 'wb') as f:
                subprocess.run([os.path.join(ROOT, 'compat', 'export-image'), img, name],
                               stdout=f, check=True, env=ENV)
            for load in (self.dockerd.docker + ['load', '-q', '-i', tar],
                         podman + ['load', '-q', '-i', tar]):
                subprocess.run(load, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               check=True, env=dict(ENV, **env))
            os.unlink(tar)
            docker_run = self.dockerd.docker + ['run', '--rm', '--network', 'none', name, 'true']
            podman_run = podman + engines.podman_run() + [name, 'true']
            self.runs[img] = {
                'docker run --rm --network none (%s)' % docker_driver:
                    lambda argv=docker_run: timed_peer(argv),
                'podman run --rm --network none (runc, %s)' % driver:
                    lambda argv=podman_run: timed_peer(argv, env)}

    def for_image(self, img):
        if not self.runs:
            self.start()
        return self.runs[img]

    def close(self):
        if self.dockerd:
            self.dockerd.stop()
            self.dockerd = None
        self.runs = {}
        subprocess.run(['rm', '-rf', self.top], check=True)


def make_images(work):
    busybox = os.path.join(work, 'busybox')
    subprocess.run([os.path.join(ROOT, 'fixtures', 'busybox-rootfs'), busybox], check=True)
    big = os.path.join(work, 'big')
    subprocess.run(['cp', '-a', busybox, big], check=True)
    os.mkdir(os.path.join(big, 'data'))
    for i in range(200):
        with open(os.path.join(big, 'data', 'f%03d' % i), 'wb') as f:
            f.write(os.urandom(1 << 20))
    return busybox, big


def synthetic_tree(busybox):
    """TREE40: busybox and 400 directories of 99 files (1 KB or less each):
    some 40,000 entries, as many as a python or node base image has. Made once
    (under a temporary name, then renamed), kept for the next bench."""
    if os.path.isdir(TREE40):
        return TREE40
    tmp = TREE40 + '.tmp'
    subprocess.run(['rm', '-rf', tmp], check=True)
    os.makedirs(os.path.dirname(TREE40), exist_ok=True)
    subprocess.run(['cp', '-a', busybox, tmp], check=True)
    for d in range(400):
        top = '%s/usr/lib/synthetic/d%03d' % (tmp, d)
        os.makedirs(top)
        for f in range(99):
            with open('%s/f%02d.py' % (top, f), 'w') as out:
                out.write('# %d/%d\n' % (d, f) * (1 + (d * 99 + f) % 60))
    os.rename(tmp, TREE40)
    return TREE40


def entries(top):
    """How many entries a tree has (directories, files, links)."""
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(top))


def init_image(directory):
    before = listing('img')
    subprocess.run(tool('ref') + ['init', directory], check=True, stdout=subprocess.DEVNULL, env=ENV)
    return new_ids(before, 'img')[0]


def fake_containers(n):
    """n container directories as run leaves them, for ps (only the listing matters)."""
    for i in range(n):
        d = '%s/containers/ps_%d' % (STORE, 50000 + i)
        os.makedirs(d, exist_ok=True)
        with open('%s/ps_%d.cmd' % (d, 50000 + i), 'w') as f:
            f.write('echo container %d\n' % i)


def clear_fake_containers():
    import shutil
    for n in os.listdir(STORE + '/containers'):
        if n.startswith('ps_5'):
            shutil.rmtree(STORE + '/containers/' + n)


def floor_run(img):
    """tests/floor_run.sh as a floor for run IMG true, and its cleanup."""
    c = STORE + '/containers/floor_7'

    def floor():
        return timed_floor([FLOOR_RUN, img, '7', 'true'])

    def cleanup():
        subprocess.run(['umount', c + '/merged'], check=True)
        subprocess.run(['cgdelete', '-g', 'cpu,cpuacct,memory:/floor_7'],
                       stderr=subprocess.DEVNULL)
        for ctrl in ('cpuacct', 'memory'):
            subprocess.run(['cgdelete', '-g', '%s:/floor_7' % ctrl], stderr=subprocess.DEVNULL)
        subprocess.run(['rm', '-rf', c], check=True)
    return floor, cleanup


def floor_cp(src, dst):
    """`cp -rf --reflink=auto SRC/* DST` alone, as a floor for init."""
    def floor():
        os.mkdir(dst)
        return timed_floor(['bash', '-c', 'cp -rf --reflink=auto "$1"/* "$2"', 'cp', src, dst])
    return floor, lambda: subprocess.run(['rm', '-rf', dst], check=True)


def floor_start():
    """The shim's bash starting an interpreter that does nothing."""
    return timed_floor(['bash', '-c', 'exec "$1" -I -c pass', 'floor', python()])


def pull_setup(work):
    """A 200 MB image of 5 layers in a registry on 127.0.0.1 (this sandbox's own)."""
    import registry
    handle = registry.start_registry(os.path.join(work, 'registry'))
    layers = [registry.busybox_layer(compress=True)]
    for n in range(5):
        layers.append(registry.make_layer({'data%d/f%02d' % (n, i): os.urandom(1 << 20)
                                           for i in range(40)}))
    registry.push_image(handle.url, 'big', 'v1', layers)
    return handle


def main():
    assert os.path.isfile(REFERENCE), 'reference not found: set BOCKER_REFERENCE'
    assert os.path.isdir(TREE), 'distribution tree not found: run make bench (BENCH_TREE)'
    work = tempfile.mkdtemp(prefix='bocker-bench-')
    busybox, big = make_images(work)
    tree40 = synthetic_tree(busybox)
    runs = [(busybox, 'run, busybox image'), (big, 'run, 200 MB image'),
            (TREE, 'run, distribution tree'), (tree40, 'run, 40,000-entry image')]
    images = {src: init_image(src) for src, _ in runs}
    big_img = images[big]
    rows = []
    print('| operation | reference (s) | bocker.py (s) | ratio | target | floor (s) | '
          'bocker.py peak RSS (MB) |')
    print('|---|---|---|---|---|---|---|')

    def run_op(img):
        def op(which):
            before = listing('ps')
            t, m, _ = timed(which, 'run', img, 'true')
            op.last = new_ids(before, 'ps')[0]
            return t, m
        return op
    wanted = [(src, name) for src, name in runs if os.environ.get('BENCH_ONLY', '') in name]
    peers = Peers([images[src] for src, _ in wanted])
    try:
        for src, name in runs:
            img = images[src]
            op = run_op(img)
            floor, floor_cleanup = floor_run(img)
            rows.append(bench(name, op, cleanup=lambda which, op=op: rm(which, op.last),
                              floor=floor, floor_cleanup=floor_cleanup,
                              peers=lambda img=img: peers.for_image(img)))
    finally:
        peers.close()

    for src, name in ((big, 'init, 200 MB'), (TREE, 'init, distribution tree')):
        def init_op(which, src=src):
            before = listing('img')
            t, m, _ = timed(which, 'init', src)
            init_op.last = new_ids(before, 'img')[0]
            return t, m
        floor, floor_cleanup = floor_cp(src, STORE + '/overlay/floor_cp')
        rows.append(bench(name, init_op, cleanup=lambda w, op=init_op: rm(w, op.last),
                          floor=floor, floor_cleanup=floor_cleanup))

    before = listing('ps')
    subprocess.run(tool('ref') + ['run', big_img, 'echo changed > /changed'], check=True,
                   stdout=subprocess.DEVNULL, env=ENV)
    big_ps = new_ids(before, 'ps')[0]

    def commit_op(which):
        t, m, _ = timed(which, 'commit', big_ps, 'img_1')
        return t, m
    rows.append(bench('commit, 200 MB container', commit_op, cleanup=lambda w: rm(w, 'img_1')))
    rm('py', big_ps)

    rows.append(bench('images', lambda w: timed(w, 'images')[:2], floor=floor_start))
    rows.append(bench('help', lambda w: timed(w, 'help')[:2], floor=floor_start))
    fake_containers(100)
    rows.append(bench('ps, 100 containers', lambda w: timed(w, 'ps')[:2], floor=floor_start))
    clear_fake_containers()

    handle = pull_setup(work)
    try:
        env = {'BOCKER_REGISTRY': handle.url}

        def pull_op(which):
            before = listing('img')
            t, m, _ = timed(which, 'pull', 'big', 'v1', env=env)
            pull_op.last = new_ids(before, 'img')[0]
            return t, m
        helper = subprocess.run(['bash', '-c', 'command -v download-frozen-image-v2'], env=ENV,
                                stdout=subprocess.PIPE, text=True).stdout.strip()

        def pull_floor():
            d = tempfile.mkdtemp(prefix='bocker-bench-pull-')
            try:
                return timed_floor(['env', 'BOCKER_REGISTRY=' + handle.url, helper, d, 'big:v1'])
            finally:
                subprocess.run(['rm', '-rf', d])
        rows.append(bench('pull, 200 MB in 5 layers', pull_op, rounds=max(3, ROUNDS // 2),
                          cleanup=lambda w: rm(w, pull_op.last), floor=pull_floor))
    finally:
        handle.stop()
    growth(runs, peers.why_vfs)
    print('\n↳: a peer engine, timed in the same rounds as the row above (its time in the '
          'bocker.py column, its ratio to the reference); the peers run without a network, '
          'bocker.py and the reference make a veth pair and a netns')
    print('measured on: %s, %d cores, %s, Python %s; %d rounds, medians; store: %s' % (
        platform.node(), os.cpu_count(), platform.release(), platform.python_version(), ROUNDS,
        store_kind()))


def growth(runs, why_vfs):
    """run's cost against the image's size, side by side: each run row's
    median for the reference, bocker.py and the peers, and each against its
    own run of busybox."""
    done = [(src, name) for src, name in runs if name in MEDIANS]
    if not done:
        return
    tools = list(MEDIANS[done[0][1]])
    print('\nrun against image size (medians, s; × its own run of busybox):\n')
    print('| image | entries | %s |' % ' | '.join(tools))
    print('|---|---|' + '---|' * len(tools))
    base = MEDIANS.get('run, busybox image', {})
    for src, name in done:
        cells = ['%.3f' % MEDIANS[name][t] + (' (%.1f×)' % (MEDIANS[name][t] / base[t])
                                               if base.get(t) else '') for t in tools]
        print('| %s | %s | %s |' % (name[5:], '{:,}'.format(entries(src)), ' | '.join(cells)))
    if why_vfs:
        print('\npeers: %s' % why_vfs)


def store_kind():
    """The filesystem type of the store (a disk directory under make bench)."""
    best = ('', '')
    with open('/proc/self/mountinfo') as f:
        for line in f:
            mnt, fstype = line.split()[4], line.split(' - ')[1].split()[0]
            if (STORE + '/').startswith(mnt.rstrip('/') + '/') and len(mnt) >= len(best[0]):
                best = (mnt, fstype)
    return best[1]


if __name__ == '__main__':
    main()
