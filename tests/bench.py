#!/usr/bin/env python3
"""make bench: bocker.py against the reference, the same operations in one
sandbox, interleaved (reference, bocker.py, reference, ...), several rounds.
Prints the median time of each, the ratio bocker.py / reference, and
bocker.py's peak memory (maximum resident set, from GNU time) per operation.

Run inside a sandbox (the Makefile does): python3 tests/sandbox.py -- python3 tests/bench.py
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
from conftest import BOCKER, REFERENCE, ROOT, STORE  # noqa: E402  (the tests' own paths)
ROUNDS = int(os.environ.get('BENCH_ROUNDS', '5'))
ENV = {k: v for k, v in os.environ.items() if k != 'PYTHONUNBUFFERED'}
ENV['PATH'] = os.path.join(ROOT, 'compat') + ':' + ENV['PATH']   # the reference's pull helper


def tool(which):
    return ['bash', REFERENCE] if which == 'ref' else [BOCKER]


def timed(which, *args, env=None):
    """Seconds, and bocker.py's max RSS in kB (GNU time; the shim execs python)."""
    argv = ['/usr/bin/time', '-f', '%M', '-o', '/tmp/bench-rss'] + tool(which) + list(args)
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(ENV, **(env or {})))
    elapsed = time.perf_counter() - t
    if r.returncode:
        raise SystemExit('bench: %s %s failed: %s' % (which, args, r.stderr.decode()[-500:]))
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


def bench(name, op, cleanup=None, rounds=ROUNDS):
    """op(which) -> (seconds, rss); interleaved rounds."""
    times = {'ref': [], 'py': []}
    rss = []
    for _ in range(rounds):
        for which in ('ref', 'py'):
            t, m = op(which)
            times[which].append(t)
            if which == 'py':
                rss.append(m)
            if cleanup:
                cleanup(which)
    ref, py = statistics.median(times['ref']), statistics.median(times['py'])
    row = '| %s | %.3f | %.3f | %.2f | %d |' % (name, ref, py, py / ref, max(rss) // 1024)
    print(row, flush=True)
    return row


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
    work = tempfile.mkdtemp(prefix='bocker-bench-')
    busybox, big = make_images(work)
    small_img, big_img = init_image(busybox), init_image(big)
    rows = []
    print('| operation | reference (s) | bocker.py (s) | ratio | bocker.py peak RSS (MB) |')
    print('|---|---|---|---|---|')

    def run_op(img):
        def op(which):
            before = listing('ps')
            t, m, _ = timed(which, 'run', img, 'true')
            op.last = new_ids(before, 'ps')[0]
            return t, m
        return op
    for img, name in ((small_img, 'run, busybox image'), (big_img, 'run, 200 MB image')):
        op = run_op(img)
        rows.append(bench(name, op, cleanup=lambda which, op=op: rm(which, op.last)))

    def init_op(which):
        before = listing('img')
        t, m, _ = timed(which, 'init', big)
        init_op.last = new_ids(before, 'img')[0]
        return t, m
    rows.append(bench('init, 200 MB', init_op, cleanup=lambda w: rm(w, init_op.last)))

    before = listing('ps')
    subprocess.run(tool('ref') + ['run', big_img, 'echo changed > /changed'], check=True,
                   stdout=subprocess.DEVNULL, env=ENV)
    big_ps = new_ids(before, 'ps')[0]

    def commit_op(which):
        t, m, _ = timed(which, 'commit', big_ps, 'img_1')
        return t, m
    rows.append(bench('commit, 200 MB container', commit_op, cleanup=lambda w: rm(w, 'img_1')))
    rm('py', big_ps)

    rows.append(bench('images', lambda w: timed(w, 'images')[:2]))
    rows.append(bench('help', lambda w: timed(w, 'help')[:2]))
    for n in (10, 200):
        fake_containers(n)
        rows.append(bench('ps, %d containers' % n, lambda w: timed(w, 'ps')[:2]))
        clear_fake_containers()

    handle = pull_setup(work)
    try:
        env = {'BOCKER_REGISTRY': handle.url}

        def pull_op(which):
            before = listing('img')
            t, m, _ = timed(which, 'pull', 'big', 'v1', env=env)
            pull_op.last = new_ids(before, 'img')[0]
            return t, m
        rows.append(bench('pull, 200 MB in 5 layers', pull_op, rounds=max(3, ROUNDS // 2),
                          cleanup=lambda w: rm(w, pull_op.last)))
    finally:
        handle.stop()
    print('\nmeasured on: %s, %d cores, %s, Python %s; %d rounds, medians' % (
        platform.node(), os.cpu_count(), platform.release(), platform.python_version(), ROUNDS))


if __name__ == '__main__':
    main()
