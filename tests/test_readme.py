"""The README's examples, run as written in a sandbox (as `make shell` would
run them; there `bocker.sh` stands for `bocker`): each bocker command of its
session, its commands table, the surprises table's "what to do instead" and
the --EXPLAIN and --TRACE examples, on busybox's applets. The ids a text
shows (img_42137, ps_42201) stand for the image and the container the test
made; ~/rootfs for the busybox image's directory. Needs root.

Not run here: `pull` from Docker Hub and `ping -c 1 1.1.1.1` need the internet
(pull is tested against a registry of the tests' own: tests/test_pull.py)."""
import os
import re
import shlex
import subprocess

import pytest

from support import BOCKER, ROOT, READY

README = os.path.join(ROOT, 'README.md')
NEEDS_MORE = ('pull busybox', 'pull myimage', '1.1.1.1', 'pull demo')


def examples():
    """(where, command) for each bocker command the README gives: lines of
    its indented blocks that start with `bocker`, `./bocker.sh` or `$ bocker`,
    and the `bocker ...` examples of its tables, comments and output cut."""
    found = []
    with open(README, encoding='utf-8') as f:
        text = f.read()
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r'    (?:\$ )?((?:\./)?bocker(?:\.sh)? .*)$', line)
        if m:
            cmd = re.split(r'\s{2,}#', m.group(1))[0].rstrip()
            found.append(('README.md:%d' % n, cmd))
        # a table's example cells; not a row's first cell (the surprises
        # table's "what you see": the command that fails on purpose)
        for m in re.finditer(r'\| `((?:bocker|bocker\.sh) [^`]*)`', line):
            if m.start() > 0:
                found.append(('README.md:%d' % n, m.group(1)))
    return [(w, c) for w, c in found if not any(x in c for x in NEEDS_MORE)]


def as_in_the_sandbox(cmd, img, ps, rootfs):
    """The command with bocker.sh for bocker, the test's own ids and image."""
    cmd = re.sub(r'^(\./)?bocker(\.sh)? ', lambda _: shlex.quote(BOCKER) + ' ', cmd)
    cmd = cmd.replace('&& ./bocker.sh ', '&& %s ' % shlex.quote(BOCKER))
    cmd = re.sub(r'\bimg_42[0-9]{3}\b', img, cmd)
    cmd = re.sub(r'\bps_(?:42[0-9]{3}|N)\b', ps, cmd)
    return cmd.replace('~/rootfs', rootfs).replace('$IMG', img)


def test_the_readme_has_examples_to_run():
    cmds = [c for _w, c in examples()]
    assert len(cmds) >= 14, cmds
    for word in ('init', 'images', 'run', 'ps', 'logs', 'exec', 'commit', 'rm', 'help', '--EXPLAIN',
                 '--TRACE'):
        assert any(' %s' % word in ' ' + c for c in cmds), word


@pytest.mark.parametrize('where, cmd', examples(), ids=lambda v: v if ':' in str(v) else None)
def test_readme_example_runs_as_written(box, busybox, where, cmd):
    """Each example exits 0, says none of the bash's refusals, and prints no
    busybox usage text (an applet's option busybox lacks)."""
    img = box.init(busybox)
    p = box.popen([BOCKER, 'run', img, READY], stdin=subprocess.DEVNULL,
                  stdout=subprocess.DEVNULL)
    try:
        ps = box.wait_ready()
        line = as_in_the_sandbox(cmd, img, ps, busybox)
        r = box.sh(line, timeout=120)
        out = r.out + r.err
        assert r.code == 0, (where, line, r)
        for bad in ('No image named', 'No container named', 'Usage:', 'not found',
                    'exists but is not running'):
            assert bad not in out, (where, line, out)
    finally:
        box.bocker('rm', ps) if box.containers() else None
        p.wait(timeout=60)


def test_the_memory_limit_example_shows_the_limit(box, busybox):
    """The README's --MEM_LIMIT=16 example reads the container's own limit at
    /sys/fs/cgroup (row 45): 16 MB, as the kernel keeps it (whole pages)."""
    (cmd,) = [c for _w, c in examples() if '--MEM_LIMIT=16' in c]
    img = box.init(busybox)
    r = box.sh(as_in_the_sandbox(cmd, img, 'ps_0', busybox))
    page = os.sysconf('SC_PAGE_SIZE')
    assert r.code == 0 and r.out.split()[-1:] == [str(16000000 // page * page)], r
