"""The article's labs (labs/NN-*.sh): each runs in a fresh sandbox and its
output, normalised, is the one recorded in fixtures/labs/NN-*.txt.

What varies from run to run is normalised: namespace inode numbers, SysV IPC
keys, MAC addresses (but 02:42:..., which bocker and the lab set), interface
indexes, link-local addresses, ping times, pids, dates, bocker.py line numbers,
the clone's path.
Numbers that stay the same but for the run are numbered in order of first
appearance (uts:[4026532250] -> uts:[ns1]), so the fixture still shows which
namespaces are the same and which differ.

Beside the comparison each lab's key lines are asserted on their own (the
kill, the whiteout, the ping, the namespaces that differ), and every bocker
line a lab points to must be a bash line bocker.py quotes (no MISSING).

Record the fixtures again: .venv/bin/python tests/test_labs.py --record
(review `git diff fixtures/labs` before committing). Needs root.
"""
import difflib
import glob
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from sandbox import Sandbox, layout  # noqa: E402

LABS = sorted(glob.glob(os.path.join(ROOT, 'labs', '[0-9][0-9]-*.sh')))
FIXTURES = os.path.join(ROOT, 'fixtures', 'labs')


def fixture_path(lab, lay='v1'):
    """The recorded output: fixtures/labs/NAME.txt, or on a cgroup v2 only
    host fixtures/labs/v2/NAME.txt where the lab shows v2's files."""
    name = os.path.basename(lab)[:-3] + '.txt'
    v2 = os.path.join(FIXTURES, 'v2', name)
    return v2 if lay == 'v2' and os.path.exists(v2) else os.path.join(FIXTURES, name)


class Numbering:
    """The same value gets the same name: the first seen PREFIX1, then PREFIX2."""

    def __init__(self, prefix):
        self.prefix, self.seen = prefix, {}

    def __call__(self, value):
        return self.seen.setdefault(value, '%s%d' % (self.prefix, len(self.seen) + 1))


def normalise(text):
    inodes, keys, macs, pids = Numbering('ns'), Numbering('KEY'), Numbering('MAC'), Numbering('PID')
    out = []
    after_pid = False
    for line in text.split('\n'):
        line = line.rstrip().replace(ROOT + '/', '')     # the clone's path
        if after_pid and re.fullmatch(r'[0-9]+', line):
            line = pids(line)
        after_pid = line.endswith('$ echo $$')
        line = re.sub(r'\b([a-z_]+):\[([0-9]+)\]', lambda m: '%s:[%s]' % (m[1], inodes(m[2])), line)
        line = re.sub(r'\b0x[0-9a-f]{8}\b', lambda m: keys(m[0]), line)
        line = re.sub(r'\b(?!02:42:)(?!00:00:00:00:00:00)(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b',
                      lambda m: macs(m[0]), line)
        line = re.sub(r'@if[0-9]+', '@ifN', line)
        line = re.sub(r'\bfe80::[0-9a-f:]+/64', 'fe80::LINKLOCAL/64', line)
        line = re.sub(r'time=[0-9.]+ ms', 'time=T ms', line)
        line = re.sub(r'= [0-9.]+/[0-9.]+/[0-9.]+ ms', '= T/T/T ms', line)
        line = re.sub(r'line [0-9]+: +([0-9]+) Killed +',
                      lambda m: 'line N: %s Killed ' % pids(m[1]), line)
        line = re.sub(r'\bbocker\.py:[0-9]+:', 'bocker.py:N:', line)
        # the OOM killer may take more than one of the hog's processes (the shell,
        # then yes or head while the first victim's memory is being reaped): a count
        # of one or more is the lesson, 0 stays 0 and fails the key line
        line = re.sub(r'^oom_kill [1-9][0-9]*$', 'oom_kill N', line)
        # ls -l: the link count and the date
        line = re.sub(r'^([-cdl][-rwxst]{9}) +[0-9]+ (.*?) [A-Z][a-z]{2} [ 0-9][0-9] (?:[0-9]{2}:[0-9]{2}| [0-9]{4}) ',
                      r'\1 N \2 DATE ', line)
        out.append(line)
    return '\n'.join(out)


def run_lab(lab):
    """The lab's output (stdout and stderr, in order), run in a fresh sandbox
    as `tests/sandbox.py --no-br1 -- labs/NN-name.sh` runs it."""
    with Sandbox(br1=False) as sb:
        r = sb.run([lab], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   stdin=subprocess.DEVNULL, timeout=120)
    return r.returncode, r.stdout.decode('utf-8', 'replace')


# the lines each lab exists to show, asserted beside the fixture comparison
KEY_LINES = {
    '01-uts-ipc': [r'\[shell B\] \$ hostname\nshell-B\n', r'\[shell A\] \$ hostname\nshell-A\n'],
    '02-veth-netns': [r'2 packets transmitted, 2 packets received, 0% packet loss',
                      r'ping: sendto: Network is unreachable',
                      r'default via 172\.19\.0\.1 dev veth1_c1'],
    '03-cgroup-memory': [r'Killed', r'\nexit status 137\n', r'\noom_kill N\n',
                         r'\nsurvived, 9999999 bytes\n'],
    '05-pivot-root': [r'\nafter the escape, a file only the host has is in reach: True\n# pivot_root',
                      r'\nafter the escape, a file only the host has is in reach: False\n'],
    '06-port-publish': [r'\$ get 127\.0\.0\.1:8080\nno answer \(curl exit 28\)\n',
                        r'MASQUERADE\n\$ get 127\.0\.0\.1:8080\nserved from the web namespace\n',
                        r'\n1 DNAT dpt:8080 to:172\.19\.0\.2:80\n'],
    '07-bind-mounts': [r'\$ show root/data\nroot/data ro private\n',
                       r'\nRead-only file system\n',
                       r'made-inside\n\$ ls root/data/sub\n# a shared',
                       r'\$ ls root/data/sub\nmade-inside\n\$ show'],
    '04-overlay': [r'\nc--------- N root root 0, 0 DATE upper/in_both\.txt\n',
                   r'\$ cat upper/in_lower\.txt\nlower\nchanged\n',
                   r'\$ cat lower/in_lower\.txt\nlower\n#'],
}


# In the cgroup v2 VM the labs whose output the cgroup layout changes: 03
# (cgroups) and 05 (the container's /sys/fs/cgroup); the others show
# namespaces, overlay, netfilter and mounts, the same on v2, and run here only
# (the VM's part must fit the suite's 20 minutes).
IN_VM_TOO = ('03-', '05-')


@pytest.mark.parametrize('lab', [pytest.param(lab, marks=pytest.mark.v2) if
                                 os.path.basename(lab).startswith(IN_VM_TOO) else lab
                                 for lab in LABS], ids=lambda p: os.path.basename(p)[:-3])
def test_lab_output_is_the_recorded_one(lab):
    code, out = run_lab(lab)
    assert code == 0, out
    got = normalise(out)
    name = os.path.basename(lab)[:-3]
    for pattern in KEY_LINES[name]:
        assert re.search(pattern, got), (pattern, got)
    assert 'MISSING' not in got
    assert got.count('#   bocker.py:N: ') >= 2, got     # it points to bocker's lines
    path = fixture_path(lab, layout())
    assert os.path.isfile(path), '%s missing: record it with tests/test_labs.py --record' % path
    with open(path, encoding='utf-8') as f:
        recorded = f.read()
    # the lines that differ, in full: the VM's short tracebacks cut a long comparison
    assert got == recorded, ''.join(difflib.unified_diff(
        recorded.splitlines(True), got.splitlines(True), path, 'this run'))


def test_each_lab_names_its_concept_man_pages_and_bocker_lines():
    for lab in LABS:
        with open(lab) as f:
            head = f.read().split('\nset -euo pipefail', 1)[0]
        assert re.match(r'#!/usr/bin/env bash\n# Lab [0-9]{2}: ', head), lab
        assert '# Concept: ' in head and '# Read: ' in head and '# In bocker: ' in head, lab
        assert 'https://man7.org/linux/man-pages/' in head, lab


def test_uts_ipc_namespaces_differ_as_the_article_shows():
    code, out = run_lab(os.path.join(ROOT, 'labs', '01-uts-ipc.sh'))
    assert code == 0, out
    ns = re.findall(r'^(uts|ipc):\[([0-9]+)\]$', out, re.M)
    a, b, joined = ns[0:2], ns[2:4], ns[4:6]
    assert a[0][1] != b[0][1] and a[1][1] != b[1][1]      # shell B: new uts and ipc
    assert joined == b                                    # nsenter joined B's
    assert re.search(r'^0x[0-9a-f]{8} ', out, re.M)       # the queue, in shell A


def test_a_lab_started_outside_a_sandbox_runs_itself_in_one():
    """As a learner runs it: labs/01-uts-ipc.sh from the host. It sets a
    hostname and makes a message queue, both in namespaces of its own."""
    before = (subprocess.run(['hostname'], capture_output=True, text=True).stdout,
              subprocess.run(['ipcs', '-q'], capture_output=True, text=True).stdout)
    r = subprocess.run([os.path.join(ROOT, 'labs', '01-uts-ipc.sh')], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '[shell B] $ hostname\nshell-B\n' in r.stdout
    after = (subprocess.run(['hostname'], capture_output=True, text=True).stdout,
             subprocess.run(['ipcs', '-q'], capture_output=True, text=True).stdout)
    assert after == before


def test_make_labs_runs_every_lab_and_leaves_nothing():
    """`make labs`, as the README writes it: every lab in order, each in a
    sandbox of its own (tagged here: none of their cgroups is left)."""
    tag = 'makelabs%d' % os.getpid()
    r = subprocess.run(['make', '--no-print-directory', 'labs'], cwd=ROOT, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=900,
                       env=dict(os.environ, SANDBOX_TAG=tag))
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    ran = re.findall(r'== (labs/[0-9]{2}-[\w-]+\.sh)', r.stdout)
    assert ran == [os.path.relpath(lab, ROOT) for lab in LABS], ran
    assert 'MISSING' not in r.stdout and 'Traceback' not in r.stderr
    assert [d for d, _, _ in os.walk('/sys/fs/cgroup') if tag in d] == []


def record(names, to_stdout=False):
    """Record the labs (or those named) as this host's layout shows them: v1
    into fixtures/labs/, v2 into fixtures/labs/v2/ (only where the output
    differs from v1's). --print writes them to stdout, between marker lines
    (the VM's files do not reach this machine: tests/vm.py -- tests/test_labs.py
    --print 03-cgroup-memory)."""
    lay = layout()
    for lab in LABS:
        name = os.path.basename(lab)[:-3]
        if names and name not in names:
            continue
        code, out = run_lab(lab)
        if code:
            sys.stderr.write(out)
            sys.exit('%s failed: exit %d' % (lab, code))
        got = normalise(out)
        if to_stdout:
            print('=== %s %s ===\n%s\n=== end ===' % (lay, name, got))
            continue
        path = os.path.join(FIXTURES, 'v2', name + '.txt') if lay == 'v2' else fixture_path(lab)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(got)
        print('recorded', path)


if __name__ == '__main__':
    if sys.argv[1:2] not in (['--record'], ['--print']):
        sys.exit('usage: tests/test_labs.py --record|--print [NAME...]')
    record(sys.argv[2:], sys.argv[1] == '--print')
