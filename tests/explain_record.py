#!/usr/bin/env python3
"""Record what `--EXPLAIN` shows, for the side-by-side page's "what you'd see".

One fixed scenario in a fresh sandbox (tests/sandbox.py): init the busybox
test image, then

    bocker.sh --EXPLAIN run IMG 'echo hello; read line'   (in the background;
                                   its stdin a pipe held open, so pid 1 waits)
    bocker.sh --EXPLAIN exec ps_N cat /etc/resolv.conf    (once run has shown
                                   its container step)
    bocker.sh --EXPLAIN rm ps_N   (stops it; the run then cleans up and ends)

Each command's stderr (all of --EXPLAIN's output, nothing else) is written to
fixtures/explain/{run,exec,rm}.txt, after a first line `$ bocker.sh ...`
naming the command, normalised: ids as the golden files number them (img_1,
ps_1, IP_1, MAC_1: tests/golden.py), process ids PID_k, namespace inodes
NS_k, files' inode numbers INODE_k, random MACs (a veth's own, before bocker
sets one) MAC_RANDOM, each by first appearance over the three files in that
order. The block format is
described in /work/notes/explain-format.md; blocks() splits a file into them.

    tests/explain_record.py            record into fixtures/explain/
    tests/explain_record.py --show     print, write nothing
tests/test_explain.py::test_recorded_explain_output_is_current records it
again and compares. Needs root, like the tests.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from support import BOCKER, Box  # noqa: E402
from golden import Normaliser  # noqa: E402
from sandbox import Sandbox  # noqa: E402

FIXTURES = os.path.join(ROOT, 'fixtures', 'explain')
RUN_CMD = 'echo hello; read line'
EXEC_CMD = ('cat', '/etc/resolv.conf')
HEADER_RE = re.compile(r'^=== (\w+) (\d+)/(\d+) \[([\w-]+)\] (.*)$')


class ExplainNormaliser(Normaliser):
    """The golden files' normaliser, and what differs on every run here:
    process ids, namespace inodes, files' inode numbers, the random MACs of a
    new veth pair."""

    def __init__(self):
        super().__init__()
        self.pids = {}
        self.inodes = {}
        self.files = {}                 # a file's inode number (stat(2)'s st_ino)

    def text(self, s):
        s = super().text(s)

        def number(table, prefix):
            def sub(m):
                table.setdefault(m.group(2), '%s%d' % (prefix, len(table) + 1))
                return m.group(1) + table[m.group(2)] + m.group(3)
            return sub
        s = re.sub(r'(\b[a-z_]+:\[)([0-9]+)(\])', number(self.inodes, 'NS_'), s)
        s = re.sub(r'(\bpid |/proc/|\bNSpid |\bsession |\bprocess group )([0-9]{2,})(\b)',
                   number(self.pids, 'PID_'), s)
        s = re.sub(r'(\binode )([0-9]+)(\b)', number(self.files, 'INODE_'), s)   # row 13
        return re.sub(r'\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b', 'MAC_RANDOM', s)


def blocks(text):
    """{step id: the block's lines} of a recorded file (or any --EXPLAIN
    output): each block from its `=== ` header to the blank line after it."""
    found, current = {}, None
    for line in text.split('\n'):
        m = HEADER_RE.match(line)
        if m:
            current = found.setdefault(m.group(4), [])
        if current is not None:
            if line == '':
                current = None
            else:
                current.append(line)
    return found


def shown(path, step):
    """Has the file at path (a command's stderr) the whole block of step?"""
    with open(path) as f:
        return re.search(r'\[%s\].*?\n\n' % re.escape(step), f.read(), re.S) is not None


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError('explain_record: %s did not happen' % what)


def build_image(directory):
    subprocess.run([os.path.join(ROOT, 'fixtures', 'busybox-rootfs'), directory],
                   check=True, stdout=subprocess.DEVNULL)


def record(flavour='sandbox'):
    """{'run': text, 'exec': text, 'rm': text}: the scenario's normalised stderr."""
    with tempfile.TemporaryDirectory(prefix='explain-record-') as tmp, \
            Sandbox(flavour=flavour) as sb:
        build_image(tmp + '/busybox')
        box = Box(sb)
        img = box.init(tmp + '/busybox')
        run_err = tmp + '/run.err'
        with open(run_err, 'wb') as err:
            run = box.popen([BOCKER, '--EXPLAIN', 'run', img, RUN_CMD], env={'TERM': 'xterm'},
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_for(lambda: shown(run_err, 'container'), "run's container step")
            ps = box.containers()[0]
            ex = box.bocker('--EXPLAIN', 'exec', ps, *EXEC_CMD)
            rm = box.bocker('--EXPLAIN', 'rm', ps)
            assert ex.code == 0 and rm.code == 0, (ex, rm)
        finally:
            run.stdin.close()
            run.wait(timeout=60)
        with open(run_err) as f:
            run_text = f.read()
    n = ExplainNormaliser()
    n.register(img)
    out = {}
    for name, argv, text in (
            ('run', ['run', img, "'%s'" % RUN_CMD], run_text),
            ('exec', ['exec', ps] + list(EXEC_CMD), ex.err),
            ('rm', ['rm', ps], rm.err)):
        out[name] = n.text('$ bocker.sh --EXPLAIN %s\n%s' % (' '.join(argv), text))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--show', action='store_true', help='print, write nothing')
    ap.add_argument('--flavour', default='sandbox', choices=('sandbox', 'unshare'))
    a = ap.parse_args()
    got = record(a.flavour)
    for name, text in got.items():
        if a.show:
            sys.stdout.write(text)
            continue
        os.makedirs(FIXTURES, exist_ok=True)
        with open(os.path.join(FIXTURES, name + '.txt'), 'w', encoding='utf-8') as f:
            f.write(text)
        print('wrote fixtures/explain/%s.txt' % name)
    return 0


if __name__ == '__main__':
    sys.exit(main())
