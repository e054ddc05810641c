"""run's flags that wire a container to its host (issue 29): -e, -w, -v; and
a pulled image's own config (tests/test_pull.py pulls one). Driven through
bocker.sh inside a sandbox. Needs root."""
import os
import shlex
import shutil
import subprocess
import tempfile

import pytest

from support import BOCKER, CONTAINERS, OVERLAY, READY, Box, kill_at_every_step
from engines import Podman, podman_run
from sandbox import Sandbox

HOST_SETUP = shlex.quote(os.path.join(os.path.dirname(BOCKER), 'compat', 'host-setup'))   # a shell word

FLAVOURS = pytest.mark.flavours                # both sandbox flavours (tests/sandbox.py)


def state(box, ps):
    return box.read('%s/%s/%s.state' % (CONTAINERS, ps, ps))


# --- -e and -w ---------------------------------------------------------------------

@FLAVOURS
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
    """No flag: the environment and directory of before (row 40: the
    caller's TERM only when stdin is a terminal, here a pipe), and a state
    file without the new fields."""
    img = box.init(busybox)
    ps, r = box.run_container(img, 'pwd; env | cut -d= -f1 | sort | tr "\\n" " "',
                              env={'TERM': 'dumb', 'A': '1'})
    assert r.out == '/\nHOME HOSTNAME PATH PWD SHLVL ', r
    assert not [l for l in state(box, ps).splitlines() if l.split('=')[0] in ('env', 'workdir', 'volumes')]


# --- -v ----------------------------------------------------------------------------

@FLAVOURS
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


def test_a_volume_keeps_its_host_mounts_flags(box, busybox, tmp_path):
    """The remount that makes a volume nosuid, nodev (and ro) keeps what the
    host's mount had: a noexec directory stays noexec in the container."""
    nx = tmp_path / 'nx'
    nx.mkdir()
    assert box.sh('mount -t tmpfs -o noexec nx %s && cp %s/bin/busybox %s/' % (nx, busybox, nx)).code == 0
    img = box.init(busybox)
    _, r = box.run_container('-v', '%s:/nx' % nx, img,
                             '/nx/busybox true 2>/dev/null && echo ran || echo refused')
    assert r.out == 'refused\n', r


BAD_FLAGS = [
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
    (['-p', '8080'], 'use HOSTPORT:CTRPORT'),
    (['-p', '0:80'], 'use HOSTPORT:CTRPORT'),
    (['-p', '8080:80/sctp'], 'use HOSTPORT:CTRPORT'),
    (['-p', '8080:70000'], 'use HOSTPORT:CTRPORT'),
    (['-p', '8080:80', '-p', '8080:81'], 'a host port given twice'),
]


@FLAVOURS
def test_bad_flags_say_one_line_and_make_nothing(box, busybox, tmp_path):
    """Each bad flag: one line on stderr, exit 1, no container, mount, link
    or cgroup made (one sandbox for them all)."""
    src = tmp_path / 'img'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    os.symlink('../..', str(src / 'up'))
    img = box.init(str(src))
    before = box.mounts()
    for args, says in BAD_FLAGS:
        r = box.bocker('run', *[a.replace('{tmp}', str(tmp_path)) for a in args], img, 'true')
        assert r.code == 1 and r.out == '' and len(r.err.splitlines()) == 1, (args, r)
        assert says in r.err, (args, r.err)
        assert box.containers() == [] and box.leftovers() == {} and box.mounts() == before, args


# --- -p ----------------------------------------------------------------------------

CURL = "curl -sS --noproxy '*' -m 5 http://%s/"
ASK = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 %s | tail -n 1'


def backend_env(backend, tmp_path):
    """PATH with `iptables` pointing at the backend, as Debian's alternatives
    would (the legacy one with a lock file of the test's own, not /run's)."""
    if backend == 'nft':
        return {}
    shims = tmp_path / 'legacy'
    shims.mkdir()
    for name in ('iptables', 'iptables-save', 'iptables-restore'):
        os.symlink('/usr/sbin/%s' % name.replace('iptables', 'iptables-legacy'), shims / name)
    return {'PATH': '%s:%s' % (shims, os.environ['PATH']),
            'XTABLES_LOCKFILE': str(tmp_path / 'xtables.lock')}


def nat(box, env):
    """nat BOCKER's rules, with their packet counters (-v -x)."""
    r = box.sh('iptables -w -t nat -L BOCKER -n -v -x', env=env)
    return [line.split() for line in r.out.splitlines()[2:]] if r.code == 0 else None


@FLAVOURS
@pytest.mark.parametrize('backend', ['nft', 'legacy'])
def test_published_port_serves_a_host_directory(box, busybox, tmp_path, backend):
    """The issue's own example: a host directory served read-only by busybox
    httpd in the container, reached at 127.0.0.1, the bridge's 172.18.0.1 and
    another of the host's addresses, and from a second container (hairpin:
    forwarded, as on a host compat/host-setup prepared). A second -p of the
    port is refused in one line; rm leaves no rule, mount or listener."""
    env = backend_env(backend, tmp_path)
    www = tmp_path / 'www'
    www.mkdir()
    (www / 'index.html').write_text('the host directory\n')
    img = box.init(busybox)
    assert box.sh('sysctl -qw net.ipv4.ip_forward=1 && ip addr add 10.99.0.1/32 dev lo').code == 0
    p = box.popen([BOCKER, 'run', '-p', '8080:80', '-v', '%s:/www:ro' % www, '-e', 'MODE=demo',
                   '-w', '/www', img, 'touch /tmp/ready; echo $MODE; exec httpd -f -p 80'],
                  env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    ps = box.wait_ready()
    n = str(int(ps[-3:]))
    for where in ('127.0.0.1:8080', '172.18.0.1:8080', '10.99.0.1:8080'):
        r = box.sh(CURL % where)
        assert (r.out, r.code) == ('the host directory\n', 0), (where, r)
    for where in ('172.18.0.1 8080', '10.99.0.1 8080'):
        _, r = box.run_container(img, ASK % where, env=env)
        assert r.out == 'the host directory\n', (where, r)
    (rule,) = nat(box, env)
    assert rule[2:3] == ['DNAT'] and 'to:172.18.0.%s:80' % n in rule and '/* %s */' % ps in ' '.join(rule)
    assert int(rule[0]) >= 5                   # one new connection each: counted once
    before = box.containers()
    r = box.bocker('run', '-p', '8080:81', img, 'true', env=env)
    assert (r.out, r.code) == ('', 1) and r.err.endswith(
        'run: -p 8080/tcp: that port is already published by %s\n' % ps), r
    assert box.containers() == before
    assert box.bocker('rm', ps, env=env).code == 0
    p.wait(timeout=30)
    assert p.stdout.read().decode().startswith('demo\n')
    assert nat(box, env) == [] and box.sh(CURL % '127.0.0.1:8080').code != 0
    assert [c for c in box.containers() if c != ps] and not [
        m for m in box.mounts() if m.endswith('/www')]


def test_rules_a_killed_run_left_go_with_rm_and_with_host_setup_undo(box, busybox):
    """run killed (SIGKILL: no cleanup of its own): its rule stays until rm
    takes the container; again, and `compat/host-setup --undo` takes every
    chain of bocker's, with br1's route_localnet."""
    img = box.init(busybox)
    for cleanup in ('rm', 'undo'):
        p = box.popen([BOCKER, 'run', '-p', '9090:80/udp', img, READY],
                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        ps = box.wait_ready()
        assert box.sh('kill -9 %d' % p.pid).code == 0 or p.poll() is not None
        p.wait(timeout=30)
        rules = box.sh('iptables -w -t nat -S BOCKER').out
        assert '--comment %s' % ps in rules and '-p udp' in rules, rules
        if cleanup == 'rm':
            assert box.bocker('rm', ps).code == 0
            assert box.sh('iptables -w -t nat -S BOCKER').out == '-N BOCKER\n'
            continue
        r = box.sh(HOST_SETUP + ' --undo')
        assert r.code == 0 and 'removed bocker' in r.out, r
        for table, chain in (('nat', 'BOCKER'), ('nat', 'BOCKER-POSTROUTING'), ('raw', 'BOCKER')):
            assert box.sh('iptables -w -t %s -S %s' % (table, chain)).code != 0
        assert box.sh('cat /proc/sys/net/ipv4/conf/br1/route_localnet').out == '0\n'
        assert box.bocker('rm', ps).code == 0


# --- the same flags under podman -------------------------------------------------

def test_env_workdir_and_volumes_as_podman_gives_them(busybox, tmp_path):
    """One scenario, bocker and podman (tests/engines.py, the image exported
    to it): -e KEY=VALUE and -e KEY, -w, a :ro volume read but not written,
    the environment a command sees. (A -w that is missing bocker makes, as
    Docker does; podman 4 refuses it: not compared. Nor are podman's own
    `container` and TERM, which it gives with no terminal too: bocker, as
    Docker, gives TERM only with one on stdin, row 40.)"""
    # an engines sandbox of its own (as tests/test_export_image.py's podman)
    www = tmp_path / 'www'
    www.mkdir()
    (www / 'index.html').write_text('the host directory\n')
    script = ('echo $MODE $FROMCALLER; pwd; cat /www/index.html; '
              'touch /www/x 2>/dev/null || echo read-only; '
              'env | cut -d= -f1 | grep -vx -e container -e TERM | sort | tr "\\n" " "')
    flags = ['-e', 'MODE=demo', '-e', 'FROMCALLER', '-e', 'UNSET', '-w', '/etc',
             '-v', '%s:/www:ro' % www]
    runroot = tempfile.mkdtemp(prefix='bocker-podman-')
    try:
        with Sandbox(engines=True) as sb:
            box = Box(sb)
            img = box.init(busybox)
            podman = Podman(box, tmp_path / 'podman', runroot)
            r = podman(os.path.join(os.path.dirname(BOCKER), 'compat', 'export-image'), img,
                       script='"$1" "$2" demo:v1 | $P load')
            assert r.code == 0, r
            env = {'FROMCALLER': 'passed', 'TERM': 'dumb'}
            _, ours = box.run_container(*flags, img, script, env=env)
            theirs = box._run(podman.argv + [*podman_run(), *flags,
                                             'demo:v1', 'sh', '-c', script],
                              env=dict(podman.env, **env))
            assert theirs.code == 0, theirs
            assert ours.out == theirs.out, (ours, theirs)
            assert ours.out.startswith('demo passed\n/etc\nthe host directory\nread-only\n')
    finally:
        shutil.rmtree(runroot)


def test_run_with_every_flag_killed_at_every_step(box, busybox, tmp_path):
    """run -p -v -e -w killed (tests/test_kill.py's hook) before each system
    command it runs, also while it makes and removes its rules: the next
    rm leaves no container, mount, link, cgroup, nor any rule of it."""
    www = tmp_path / 'www'
    www.mkdir()

    def prepare():
        # after the previous kill and remove_everything()'s rm: no rule of it;
        # then no chain either (host-setup --undo), so each run takes the same steps
        rules = box.sh('iptables -w -t nat -S BOCKER').out
        assert '--comment' not in rules, rules
        assert box.sh(HOST_SETUP + ' --undo').code == 0
        return box.init(busybox)
    steps = kill_at_every_step(
        box, lambda img: ['run', '-p', '8080:80', '-v', '%s:/www:ro' % www, '-e', 'A=1', '-w', '/w',
                          img, 'echo ran'],
        prepare=prepare, known=lambda img: [img] + box.containers(), whole=False)
    assert ' '.join(steps) == ' '.join(
        ['iptables', 'ip', 'ip', 'mount', 'cgcreate', 'cgset', 'iptables', 'iptables',
         'iptables-restore', 'sysctl', 'iptables', 'iptables', 'cgexec', 'iptables', 'iptables',
         'ip'])                            # the veth and the netns deleted in one ip -batch
    assert box.sh('iptables -w -t nat -S BOCKER').out == '-N BOCKER\n'
