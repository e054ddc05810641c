"""compat/host-setup, for real, inside the sandbox; and fixtures/outside-world,
the "rest of the internet" it is tested against. Needs root.

The sandbox (made without br1) plays a real host; fixtures/outside-world gives
it an uplink, uplink0 198.51.100.1/24 (TEST-NET-2), a veth into a second network
namespace "outside" (198.51.100.2) that runs an HTTP server and logs each
client's address, and a default route through it. The outside has no route back
to the containers' 172.18.0.0/24: a container reaches it only through the NAT
host-setup makes. Nothing here leaves the suite's own namespaces.
"""
import os
import re
import shutil
import tempfile
import time

import pytest

from support import ROOT, STORE, Box
from engines import alive
from sandbox import Sandbox

HOST_SETUP = os.path.join(ROOT, 'compat', 'host-setup')
OUTSIDE_WORLD = os.path.join(ROOT, 'fixtures', 'outside-world')
OUTSIDE = '198.51.100.2'
UPLINK_ADDR = '198.51.100.1'
FETCH = 'echo -e "GET / HTTP/1.0\\r\\n\\r\\n" | nc %s 8000' % OUTSIDE
PAGE = 'hello from the outside world'
RULE = '-A POSTROUTING -s 172.18.0.0/24 -o uplink0 -j MASQUERADE'
MADE_ALL = [
    '+ mkdir -p /var/lib/bocker/overlay',
    '+ mkdir -p /var/lib/bocker/containers',
    '+ ip link add br1 type bridge',
    '+ ip addr add 172.18.0.1/24 dev br1',
    '+ ip link set br1 up',
    '+ sysctl -w net.ipv4.ip_forward=1',
    '+ iptables -t nat -A POSTROUTING -s 172.18.0.0/24 -o uplink0 -j MASQUERADE',
]


# root's PATH on Debian (python3 is /usr/bin/python3, as on users' hosts)
ROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


class World(Box):
    """A sandbox playing the host, with the outside world beside it."""

    def host_setup(self, *args, env=None, **kw):
        return self._run([HOST_SETUP, *args], env=dict({'PATH': ROOT_PATH}, **(env or {})), **kw)

    def out(self, *argv):
        r = self._run(list(argv))
        assert r.code == 0, r
        return r.out

    STATE = [('ip addr', 'ip addr'), ('ip route', 'ip route'),
             ('iptables-save', 'iptables-save'), ('nft', 'nft list ruleset'),
             ('ip_forward', 'sysctl net.ipv4.ip_forward'),
             ('store', "find %s -printf '%%p %%M\\n'" % STORE)]

    def state(self):
        """Everything host-setup may change, as the commands show it."""
        script = ' && '.join('%s && echo "@@@@"' % cmd for _key, cmd in self.STATE)
        out = self.out('sh', '-c', script).split('@@@@\n')
        state = dict(zip([key for key, _cmd in self.STATE], out))
        assert len(out) == len(self.STATE) + 1 and out[-1] == '', out
        # An IPv6 link-local address is "tentative" for its first second or so
        # (the kernel's duplicate address detection), not a change.
        state['ip addr'] = state['ip addr'].replace(' tentative ', ' ')
        # iptables-save without its "# Generated ... on DATE" lines and counters
        state['iptables-save'] = re.sub(r' \[\d+:\d+\]', '', ''.join(
            line for line in state['iptables-save'].splitlines(True) if not line.startswith('#')))
        return state

    def server_log(self):
        with open(os.path.join(self.world_dir, 'server.log')) as f:
            return f.read()

    def fetch(self, img):
        """A container asks the outside for its page; the outside's log line."""
        before = self.server_log()
        ps, r = self.run_container(img, FETCH)
        assert r.code == 0 and PAGE in r.out, r
        assert 'HTTP/1.0 200 OK' in r.out, r
        for _ in range(50):
            new = self.server_log()[len(before):]
            if new:
                break
            time.sleep(0.02)
        return ps, new


def world(tmp_path, br1=False):
    sb = Sandbox(br1=br1)
    sb.__enter__()
    w = World(sb)
    w.world_dir = str(tmp_path / 'outside')
    r = w._run([OUTSIDE_WORLD, w.world_dir])
    if r.code:
        sb.__exit__(None, None, None)
        raise AssertionError(r)
    return w


@pytest.fixture
def host(tmp_path):
    """The sandbox as a bare host: no br1, no store directories, and the
    outside world on its uplink."""
    w = world(tmp_path)
    try:
        assert w.out('sh', '-c', 'rmdir %s/overlay %s/containers && ls -A %s' % ((STORE,) * 3)) == ''
        yield w
    finally:
        w.sb.__exit__(None, None, None)


def lines(text):
    return text.splitlines()


# --- the outside world itself -------------------------------------------------------

def test_outside_world_up_serves_its_page_and_down_removes_it(tmp_path):
    w = world(tmp_path)
    try:
        assert 'inet 198.51.100.1/24 scope global uplink0' in w.out('ip', 'addr', 'show', 'uplink0')
        assert 'default via 198.51.100.2 dev uplink0' in w.out('ip', 'route')
        assert w.out('ip', 'netns', 'list').split()[0] == 'outside'
        # the host itself reaches it directly (no NAT needed on its own link)
        r = w.sh('printf "GET / HTTP/1.0\\r\\n\\r\\n" | busybox nc %s 8000' % OUTSIDE)
        assert PAGE in r.out, r
        assert re.search(r'^198\.51\.100\.1 - - \[.*\] "GET / HTTP/1\.0" 200', w.server_log(), re.M)
        pid = int(open(os.path.join(w.world_dir, 'server.pid')).read())
        r = w._run([OUTSIDE_WORLD, '--down', w.world_dir])
        assert r.code == 0, r
        assert 'uplink0' not in w.links()
        assert w.out('ip', 'netns', 'list') == ''
        assert w.out('ip', 'route') == ''
        assert not alive(pid), 'the server survived --down'
    finally:
        w.sb.__exit__(None, None, None)


def test_outside_world_refuses_to_run_outside_a_sandbox(tmp_path):
    # A private network namespace without the sandbox's tmpfs on /var/lib/bocker
    # looks like a host to it: it must refuse, and change nothing. (Were it
    # wrong, the changes would still stay in this sandbox.)
    with Sandbox(br1=False) as sb:
        w = World(sb)
        w.out('umount', STORE)
        d = tmp_path / 'o'
        r = w._run([OUTSIDE_WORLD, str(d)])
        assert r.code == 1, r
        assert r.err.startswith('outside-world: refusing to run outside a sandbox'), r
        assert not d.exists() and w.links() == ['lo'] and w.netns() == []


# --- host-setup: the whole story ---------------------------------------------------

def test_host_setup_check_make_again_container_reaches_outside_undo(host, busybox):
    before = host.state()
    assert 'br1' not in before['ip addr'] and before['ip_forward'] == 'net.ipv4.ip_forward = 0\n'
    assert RULE not in before['iptables-save']

    # --check: lists every missing piece, exit 1, changes nothing
    r = host.host_setup('--check')
    assert r.code == 1, r
    assert lines(r.out) == [
        'missing  directory /var/lib/bocker/overlay',
        'missing  directory /var/lib/bocker/containers',
        'missing  bridge br1',
        'missing  address 172.18.0.1/24 on br1',
        'missing  br1 up',
        'missing  net.ipv4.ip_forward=1 (it is 0)',
        'missing  NAT: iptables -t nat -A POSTROUTING -s 172.18.0.0/24 -o uplink0 -j MASQUERADE',
        'host-setup: 7 of 7 missing: run compat/host-setup (as root) to make them',
    ], r
    assert r.err == ''
    assert host.state() == before

    # the real run: each change shown as bash -x shows it
    r = host.host_setup()
    assert r.code == 0, r
    assert lines(r.err) == MADE_ALL, r
    assert lines(r.out) == [
        'net.ipv4.ip_forward = 1',      # sysctl -w's own output
        'host-setup: made 7 of 7 (recorded in /var/lib/bocker/.host-setup; '
        'compat/host-setup --undo removes them)'], r
    made = host.state()
    assert 'inet 172.18.0.1/24 scope global br1' in made['ip addr']
    assert re.search(r'^\d+: br1: <[^>]*\bUP\b', made['ip addr'], re.M)
    assert '172.18.0.0/24 dev br1 proto kernel scope link src 172.18.0.1' in made['ip route']
    assert made['ip_forward'] == 'net.ipv4.ip_forward = 1\n'
    assert RULE in lines(made['iptables-save'])
    assert host.ls(STORE + '/overlay') == [] and host.ls(STORE + '/containers') == []
    assert '"kind": "link"' in host.read(STORE + '/.host-setup')

    # --check after: all there, exit 0
    r = host.host_setup('--check')
    assert (r.code, r.err) == (0, ''), r
    assert lines(r.out)[-1] == 'host-setup: everything bocker needs is there'
    assert [l.split()[0] for l in lines(r.out)[:-1]] == ['ok'] * 7

    # a second run changes nothing and says so
    r = host.host_setup()
    assert (r.code, r.err) == (0, ''), r
    assert r.out == 'host-setup: nothing to do: everything bocker needs is there\n'
    assert host.state() == made

    # a container fetches the outside's page by address, through the NAT:
    # the outside sees the host's uplink address, not the container's
    img = host.init(busybox)
    ps, logged = host.fetch(img)
    assert re.fullmatch(r'198\.51\.100\.1 - - \[[^]]*\] "GET / HTTP/1\.0" 200 -\n', logged), logged
    assert '172.18.' not in host.server_log()
    assert host.bocker('rm', ps).code == 0
    assert host.bocker('rm', img).code == 0

    # --undo: exactly what it made, newest first; the host as it was
    r = host.host_setup('--undo')
    assert r.code == 0, r
    assert lines(r.err) == [
        '+ iptables -t nat -D POSTROUTING -s 172.18.0.0/24 -o uplink0 -j MASQUERADE',
        '+ nft delete table ip nat',      # iptables-nft made the table: it goes too
        '+ sysctl -w net.ipv4.ip_forward=0',
        '+ ip link del br1',
        '+ rmdir /var/lib/bocker/containers',
        '+ rmdir /var/lib/bocker/overlay',
    ], r
    assert lines(r.out)[-1] == 'host-setup: undone: the host is as it was before compat/host-setup'
    assert host.state() == before
    r = host.host_setup('--undo')
    assert (r.code, r.err) == (0, ''), r
    assert 'nothing to undo' in r.out


def test_nat_is_what_lets_the_container_out(host, busybox):
    """The control: without the MASQUERADE rule the same request gets no answer
    (the outside has no route back to 172.18.0.0/24)."""
    assert host.host_setup().code == 0
    img = host.init(busybox)
    assert PAGE in host.run_container(img, FETCH)[1].out
    host.out('iptables', '-t', 'nat', '-D', 'POSTROUTING', *RULE.split()[2:])
    r = host.run_container(img, 'echo -e "GET / HTTP/1.0\\r\\n\\r\\n" | timeout 1 nc %s 8000; '
                                'echo "nc: $?"' % OUTSIDE)[1]
    assert PAGE not in r.out and 'nc: 0' not in r.out, r
    # host-setup sees the rule gone and puts it back (and only it)
    r = host.host_setup()
    assert lines(r.err) == [MADE_ALL[-1]], r
    assert PAGE in host.run_container(img, FETCH)[1].out


# --- undo keeps what it did not make ---------------------------------------------

def test_undo_keeps_a_br1_directories_and_ip_forward_that_were_there(tmp_path):
    w = world(tmp_path, br1=True)        # br1 and the store exist already
    try:
        # a br1 that is there but down and without its address; forwarding on
        w.out('ip', 'link', 'set', 'br1', 'down')
        w.out('ip', 'addr', 'flush', 'dev', 'br1')
        w.out('sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
        before = w.state()
        r = w.host_setup('--check')
        assert r.code == 1
        assert [l for l in lines(r.out) if l.startswith('missing')] == [
            'missing  address 172.18.0.1/24 on br1',
            'missing  br1 up',
            'missing  NAT: iptables -t nat -A POSTROUTING -s 172.18.0.0/24 -o uplink0 -j MASQUERADE',
        ], r
        r = w.host_setup()
        assert r.code == 0, r
        assert lines(r.err) == MADE_ALL[3:5] + MADE_ALL[6:], r
        r = w.host_setup('--undo')
        assert r.code == 0, r
        assert lines(r.err) == [
            '+ iptables -t nat -D POSTROUTING -s 172.18.0.0/24 -o uplink0 -j MASQUERADE',
            '+ nft delete table ip nat',
            '+ ip link set br1 down',
            '+ ip addr del 172.18.0.1/24 dev br1',
        ], r
        after = w.state()
        assert 'br1' in w.links() and after['ip_forward'] == 'net.ipv4.ip_forward = 1\n'
        assert w.ls(STORE) == ['containers', 'overlay']
        assert after == before
    finally:
        w.sb.__exit__(None, None, None)


def test_undo_keeps_store_directories_that_hold_images(host, busybox):
    before = host.state()
    assert host.host_setup().code == 0
    img = host.init(busybox)
    r = host.host_setup('--undo')
    assert r.code == 1, r
    assert 'host-setup: kept /var/lib/bocker/overlay: it is not empty' in r.err
    assert '+ rmdir /var/lib/bocker/containers' in lines(r.err)
    assert '+ ip link del br1' in lines(r.err)
    assert host.images() == [img]
    assert 'br1' not in host.links()
    assert '"path": "/var/lib/bocker/overlay"' in host.read(STORE + '/.host-setup')
    # once the image is gone, --undo finishes the job
    assert host.bocker('rm', img).code == 0
    r = host.host_setup('--undo')
    assert (r.code, lines(r.err)) == (0, ['+ rmdir /var/lib/bocker/overlay']), r
    assert host.state() == before


# --- the uplink ---------------------------------------------------------------------

def test_without_a_default_route_the_uplink_is_named_with_an_option(host, busybox):
    host.out('ip', 'route', 'del', 'default')
    before = host.state()
    r = host.host_setup('--check')
    assert r.code == 1
    assert ('missing  NAT for 172.18.0.0/24: no default route here, so no uplink to leave '
            'through (name one with --uplink IFACE)') in lines(r.out), r
    r = host.host_setup()
    assert (r.code, r.out) == (2, ''), r
    assert r.err == ('host-setup: no default route here, so no uplink for the NAT rule: '
                     'name one with --uplink IFACE\n')
    r = host.host_setup('--uplink', 'nosuch0')
    assert (r.code, r.err) == (2, 'host-setup: --uplink nosuch0: no such network interface '
                                  '(see ip link)\n'), r
    assert host.state() == before               # errors change nothing
    r = host.host_setup('--uplink', 'uplink0')
    assert r.code == 0 and lines(r.err) == MADE_ALL, r
    assert host.host_setup('--check', '--uplink', 'uplink0').code == 0
    # the container reaches the outside (its own subnet, so no route needed)
    assert host.fetch(host.init(busybox))[1].startswith(UPLINK_ADDR + ' - - ')


def test_legacy_iptables_backend(host, busybox, tmp_path):
    """`iptables` is whichever backend the host has; here the legacy one."""
    shims = tmp_path / 'legacy'
    shims.mkdir()
    for name in ('iptables', 'iptables-save'):
        os.symlink('/usr/sbin/%s' % name.replace('iptables', 'iptables-legacy'), shims / name)
    env = {'PATH': '%s:%s' % (shims, ROOT_PATH),
           'XTABLES_LOCKFILE': str(tmp_path / 'xtables.lock')}   # not the host's /run
    r = host._run(['iptables', '-V'], env=env)
    assert '(legacy)' in r.out, r
    before = host._run(['iptables-legacy-save'], env=env).out
    r = host.host_setup(env=env)
    assert r.code == 0 and lines(r.err) == MADE_ALL, r
    assert RULE in lines(host._run(['iptables-legacy-save'], env=env).out)
    assert RULE not in host.out('iptables-nft-save')
    assert host.host_setup('--check', env=env).code == 0
    img = host.init(busybox)
    ps, logged = host.fetch(img)
    assert logged.startswith(UPLINK_ADDR + ' - - ')
    host.bocker('rm', ps), host.bocker('rm', img)
    r = host.host_setup('--undo', env=env)
    assert r.code == 0 and '+ nft' not in r.err, r
    after = host._run(['iptables-legacy-save'], env=env).out
    # the kernel keeps the (now empty) legacy tables once used: compare rules
    assert [l for l in lines(after) if l.startswith('-')] == \
        [l for l in lines(before) if l.startswith('-')] == []


# --- errors --------------------------------------------------------------------------

@pytest.mark.parametrize('tool,package', [('iptables', 'iptables'), ('ip', 'iproute2')])
def test_a_missing_tool_is_named_with_its_package(host, tool, package):
    # Hide the tool in the sandbox's own mount namespace only.
    path = os.path.realpath(host.out('sh', '-c', 'command -v %s' % tool).strip())
    host.out('mount', '--bind', '/dev/null', path)
    for args in ((), ('--check',), ('--undo',)):
        r = host.host_setup(*args)
        assert (r.code, r.out) == (2, ''), r
        assert r.err == ('host-setup: %s: command not found: install the Debian/Ubuntu '
                         'package %s (apt-get install %s)\n' % (tool, package, package)), r
    assert host.ls(STORE) == [] and 'br1' not in host.links()


def test_not_root_is_an_error(host):
    # The user runs a copy it can read: the clone may live in a directory
    # only root may enter (a 0700 /root, or what mktemp -d makes).
    public = tempfile.mkdtemp(prefix='host-setup-', dir='/tmp')
    try:
        os.chmod(public, 0o755)
        script = shutil.copy(HOST_SETUP, public)
        r = host._run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                       script, '--check'])
    finally:
        shutil.rmtree(public)
    assert (r.code, r.out) == (2, ''), r
    assert r.err == 'host-setup: run it as root: it changes the network and /var/lib\n'


def test_a_forward_policy_of_drop_gets_a_note(host):
    host.out('iptables', '-P', 'FORWARD', 'DROP')
    r = host.host_setup('--check')
    assert r.code == 1
    assert r.err.startswith("host-setup: note: iptables' FORWARD policy is DROP"), r
    assert 'iptables -I FORWARD -i br1 -j ACCEPT' in r.err
