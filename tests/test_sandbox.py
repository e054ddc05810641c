"""The harness itself: a sandbox leaves nothing on the host, even when a
container still runs as it closes. Needs root."""
import os
import subprocess

from conftest import BOCKER, Box
from sandbox import ENGINE_CONTROLLERS, Sandbox


def host_state():
    """Everything a bocker run could leave on the host."""
    def cgroups():
        # ours only: other test runs on this machine may have sandboxes open
        mine = 'bocker-sandbox-%d-' % os.getpid()
        found = []
        for top in ('cpu', 'cpuacct', 'memory'):
            for dirpath, dirs, _ in os.walk('/sys/fs/cgroup/' + top):
                dirs[:] = [d for d in dirs if not d.startswith('bocker-sandbox') or
                           d.startswith(mine)]
                found += [os.path.join(dirpath, d) for d in dirs
                          if d.startswith(('ps_', 'bocker-sandbox'))]
        return sorted(found)
    with open('/proc/self/mountinfo') as f:
        mounts = sorted(line.split()[4] for line in f)
    return {
        'netns': subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout,
        'links': sorted(os.listdir('/sys/class/net')),
        'mounts': mounts,
        'cgroups': cgroups(),
        # the mount points may stay, empty: nothing may be left in them
        'store': os.path.exists('/var/lib/bocker') and sorted(os.listdir('/var/lib/bocker')) or [],
        'run_netns': os.path.exists('/run/netns') and sorted(os.listdir('/run/netns')) or [],
    }


def test_nothing_is_left_on_the_host(busybox):
    before = host_state()
    with Sandbox() as sb:
        box = Box(sb)
        img = box.init(busybox)
        ps, r = box.run_container(img, 'echo hi')
        assert r.out == 'hi\n'
        # a second container still running when the sandbox closes
        p = box.popen([BOCKER, 'run', img, 'sleep 600'], stdin=subprocess.DEVNULL,
                      stdout=subprocess.DEVNULL)
        inside = host_state()
        assert inside['links'] == before['links']       # veths live in the sandbox
    p.wait(timeout=30)
    assert host_state() == before


def test_the_sandbox_is_private(busybox):
    with Sandbox() as sb:
        box = Box(sb)
        assert box.links() == ['br1', 'lo']
        assert box.sh('cat /proc/self/cgroup').out.count(':/\n') >= 3
        assert box.sh('ip -o -4 addr show br1').out.split()[3] == '172.18.0.1/24'
        assert box.images() == [] and box.containers() == []
    assert not any(p.startswith('/var/lib/bocker') for p in host_state()['mounts'])


def test_an_engines_sandbox_keeps_the_engines_state_in(busybox):
    """engines=True: a cgroup of its own in every controller runc uses, and
    its own /run, /var/lib/containers and /etc/docker, so what a container
    engine keeps there never shows on the host; bocker runs there as well."""
    before = host_state()
    marks = ['/run/bocker-engines-mark', '/var/lib/containers/bocker-engines-mark',
             '/etc/docker/bocker-engines-mark']
    with Sandbox(engines=True) as sb:
        box = Box(sb)
        inside = [line.split(':')[1:] for line in box.sh('cat /proc/self/cgroup').out.split()]
        with open('/proc/%d/cgroup' % sb.holder.pid) as f:     # seen from the host
            outside = [line.rstrip('\n').split(':')[1:] for line in f]
        for ctrl in ENGINE_CONTROLLERS:
            assert [path for ctrls, path in inside if ctrl in ctrls.split(',')] == ['/'], inside
            (path,) = [path for ctrls, path in outside if ctrl in ctrls.split(',')]
            assert path.endswith('/' + sb.name), (ctrl, path)
        r = box.sh('touch %s && ls /run/netns' % ' '.join(marks))
        assert r.code == 0, r
        assert [m for m in marks if os.path.exists(m)] == []
        ps, r = box.run_container(box.init(busybox), 'echo hi')
        assert r.out == 'hi\n', r
    assert host_state() == before
    assert sb.cgroup_dirs and [d for d in sb.cgroup_dirs if os.path.exists(d)] == []
