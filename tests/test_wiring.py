"""run's flags that wire a container to its host (issue 29): -e, -w, -v; and
a pulled image's own config (tests/test_pull.py pulls one). Driven through
bocker.sh inside a sandbox. Needs root."""
import os
import subprocess

import pytest

from conftest import BOCKER, CONTAINERS, OVERLAY, READY

pytestmark = pytest.mark.flavours


def state(box, ps):
    return box.read('%s/%s/%s.state' % (CONTAINERS, ps, ps))


# --- -e and -w ---------------------------------------------------------------------

def test_env_and_workdir_reach_run_and_exec(box, busybox):
    """-e KEY=VALUE, -e KEY (the caller's value; none when unset, as Docker),
    a later -e winning; -w made when missing, in the container's own layer.
    exec sees the same environment and starts in the same directory, as
    Docker's exec does."""
    img = box.init(busybox)
    show = 'pwd; env | grep -E "^(A|B|SECRET|NOPE)=" | sort'
    p = box.popen([BOCKER, 'run', '-e', 'A=1', '--env', 'B=x=y', '-e', 'SECRET', '-e', 'NOPE',
                   '-e', 'A=2', '-w', '/data/x', img, '%s; %s' % (show, READY)],
                  env={'SECRET': 's3'}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    ps = box.wait_ready()
    r = box.bocker('exec', ps, 'sh', '-c', show)
    assert (r.out, r.err, r.code) == ('/data/x\nA=2\nB=x=y\nSECRET=s3\n', '', 0)
    assert os.path.isdir(box.path('%s/%s/upper/data/x' % (CONTAINERS, ps)))
    assert box.bocker('rm', ps).code == 0
    p.wait(timeout=30)
    assert p.stdout.read().decode() == '/data/x\nA=2\nB=x=y\nSECRET=s3\n'


def test_without_flags_nothing_changes(box, busybox):
    """No flag: the environment and directory of before (row 40), and a
    state file without the new fields."""
    img = box.init(busybox)
    ps, r = box.run_container(img, 'pwd; env | cut -d= -f1 | sort | tr "\\n" " "',
                              env={'TERM': 'dumb', 'A': '1'})
    assert r.out == '/\nHOME HOSTNAME PATH PWD SHLVL TERM ', r
    assert not [l for l in state(box, ps).splitlines() if l.split('=')[0] in ('env', 'workdir', 'volumes')]


# --- -v ----------------------------------------------------------------------------

def test_volumes_rw_and_ro(box, busybox, tmp_path):
    """A bind mount of the host's directory, private, nosuid and nodev; :ro
    read-only, and the container cannot remount it (no CAP_SYS_ADMIN).
    What it writes lands in HOSTDIR, never in upper nor in a commit, and
    the host's mount table never shows it."""
    www, data = tmp_path / 'www', tmp_path / 'data'
    www.mkdir()
    data.mkdir()
    (www / 'index.html').write_text('hello\n')
    img = box.init(busybox)
    script = ('cat /www/index.html; echo x 2>/dev/null >/www/new || echo ro-refused; '
              'mount -o remount,rw /www 2>/dev/null || echo remount-refused; '
              'echo written > /srv/data/out; '
              'grep -E " /(www|srv/data) " /proc/self/mountinfo; ' + READY)
    p = box.popen([BOCKER, 'run', '-v', '%s:/www:ro' % www, '--volume', '%s:/srv/data' % data,
                   img, script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    ps = box.wait_ready()
    assert not [m for m in box.mounts() if m.endswith(('/www', '/srv/data'))]   # its own
    r = box.bocker('commit', ps, 'img_7')
    assert r.code == 0, r
    assert box.bocker('rm', ps).code == 0
    p.wait(timeout=30)
    out = p.stdout.read().decode().splitlines()
    assert out[:3] == ['hello', 'ro-refused', 'remount-refused'], out
    flags = {line.split()[4]: (line.split()[5].split(','), line.split(' - ')[0].split()[6:])
             for line in out[3:]}
    assert flags['/www'][0][0] == 'ro' and flags['/srv/data'][0][0] == 'rw', flags
    for opts, optional in flags.values():
        assert 'nosuid' in opts and 'nodev' in opts
        assert not [f for f in optional if f.startswith(('shared:', 'master:'))]   # private
    assert sorted(os.listdir(www)) == ['index.html'] and (data / 'out').read_text() == 'written\n'
    assert box.ls('%s/img_7/srv/data' % OVERLAY) == [] and box.ls('%s/img_7/www' % OVERLAY) == []
    assert box.leftovers() == {}


@pytest.mark.parametrize('args, says', [
    (['-v', 'www:/www'], 'HOSTDIR must be an absolute path'),
    (['-v', '/nonexistent-i29:/www'], "no directory named '/nonexistent-i29'"),
    (['-v', '{tmp}'], 'use HOSTDIR:CTRDIR'),
    (['-v', '{tmp}:/www:rx'], 'use HOSTDIR:CTRDIR'),
    (['-v', '{tmp}:www'], 'CTRDIR must be an absolute path'),
    (['-v', '{tmp}:/../x'], 'climbs out of the root'),
    (['-v', '{tmp}:/up/x'], 'climbs out of the root'),          # the image's up -> ../..
    (['-v', '{tmp}:/bin/sh/x'], 'is not a directory'),
    (['-v', '{tmp}:/'], 'may not be /'),
    (['-v', '{tmp}:/proc/sys'], 'may not be /'),
    (['-v', '{tmp}:/a', '-v', '{tmp}:/a/'], 'two volumes'),
    (['-w', 'rel'], 'must be an absolute path'),
    (['-w', '/../..'], 'climbs out of the root'),
    (['-w', '/bin/busybox'], 'is not a directory'),
    (['-e', '=x'], "no variable name before '='"),
])
def test_bad_flags_say_one_line_and_make_nothing(box, busybox, tmp_path, args, says):
    src = tmp_path / 'img'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    os.symlink('../..', str(src / 'up'))
    img = box.init(str(src))
    before = box.mounts()
    r = box.bocker('run', *[a.replace('{tmp}', str(tmp_path)) for a in args], img, 'true')
    assert r.code == 1 and r.out == '' and len(r.err.splitlines()) == 1, r
    assert says in r.err, r.err
    assert box.containers() == [] and box.leftovers() == {} and box.mounts() == before
