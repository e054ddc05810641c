"""Every command of bocker.py, driven through bocker.sh inside a sandbox:
output, stream, exit code, on-disk state, cgroups and network. Needs root."""
import os
import re
import shlex
import subprocess

import pytest

from support import BOCKER, CONTAINERS, OVERLAY, READY, clean_env, help_text

# Each test that uses a sandbox runs in both flavours (tests/sandbox.py): a
# fresh sysfs, and the host's /sys as in a plain `unshare --net --mount` shell.
pytestmark = pytest.mark.flavours


# --- help and the dispatcher -----------------------------------------------------

@pytest.mark.v2(flavours=('sandbox',))
def test_no_arguments_prints_help_and_exits_1():
    r = subprocess.run([BOCKER], capture_output=True, text=True, env=clean_env())
    assert (r.stdout, r.stderr, r.returncode) == (help_text(BOCKER), '', 1)


def test_unknown_command_and_help_print_help_and_exit_0():
    for cmd in ('frobnicate', 'help'):
        r = subprocess.run([BOCKER, cmd], capture_output=True, text=True, env=clean_env())
        assert (r.stdout, r.stderr, r.returncode) == (help_text(BOCKER), '', 0)


def test_help_uses_the_program_name_as_invoked(tmp_path):
    link = tmp_path / 'my&bocker!'
    link.symlink_to(BOCKER)
    r = subprocess.run([str(link)], capture_output=True, text=True, env=clean_env())
    assert r.stdout == help_text(str(link))


def test_help_needs_neither_iproute2_nor_plumbum(tmp_path):
    """help must work on a host without ip and must not import plumbum."""
    py = os.path.join(os.path.dirname(BOCKER), '.venv', 'bin', 'python')
    r = subprocess.run([py, '-X', 'importtime', os.path.join(os.path.dirname(BOCKER), 'bocker.py'),
                        'help'], capture_output=True, text=True,
                       env=clean_env({'PATH': str(tmp_path)}))
    assert r.returncode == 0 and 'List images:' in r.stdout
    assert 'plumbum' not in r.stderr and 'jq' not in r.stderr.split()


@pytest.mark.parametrize('args, usage', [
    (['init'], 'init <directory>'),
    (['pull', 'busybox'], 'pull <name> <tag>'),
    (['rm'], 'rm <image_id or container_id>'),
    (['run', 'img_42002'], 'run <image_id> <command>'),
    (['exec', 'ps_42002'], 'exec <container_id> <command>'),
    (['logs'], 'logs <container_id>'),
    (['commit', 'ps_42002'], 'commit <container_id> <image_id>'),
])
def test_missing_arguments_give_a_usage_line(box, args, usage):
    r = box.bocker(*args)
    assert (r.out, r.err, r.code) == ('', 'usage: %s %s\n' % (BOCKER, usage), 1)


def test_bad_option_name_is_one_line_error(box):
    r = box.bocker('--foo-bar=1', 'images')
    assert r.code == 1 and r.out == '' and len(r.err.splitlines()) == 1
    assert "--foo-bar=1" in r.err


# --- init and images ---------------------------------------------------------------

def test_init_creates_the_image(box, busybox):
    r = box.bocker('init', busybox)
    assert r.code == 0 and r.err == ''
    assert re.fullmatch(r'Created: img_(\d+)\n', r.out)
    img = r.out.split()[1]
    assert 42002 <= int(img[4:]) <= 42254
    assert box.images() == [img]
    assert box.read('%s/%s/img.source' % (OVERLAY, img)) == busybox + '\n'
    assert os.path.isdir(box.path('%s/%s/proc' % (OVERLAY, img)))
    assert sorted(os.listdir(box.path('%s/%s' % (OVERLAY, img)))) == \
        sorted(os.listdir(busybox) + ['img.source', 'proc'])
    assert os.readlink(box.path('%s/%s/bin/sh' % (OVERLAY, img))) == '/bin/busybox'


def test_init_keeps_an_existing_img_source_and_dotfiles(box, tmp_path, busybox):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'img.source').write_text('mine:1\n')
    (src / '.hidden').write_text('dot\n')
    img = box.init(str(src))
    assert box.read('%s/%s/img.source' % (OVERLAY, img)) == 'mine:1\n'
    assert box.read('%s/%s/.hidden' % (OVERLAY, img)) == 'dot\n'


def test_init_of_missing_directory(box):
    r = box.bocker('init', '/missing')
    assert (r.out, r.err, r.code) == ("No directory named '/missing' exists\n", '', 0)
    assert box.images() == []


def test_images_lists_each_image_with_its_source(box, busybox):
    assert box.bocker('images').out == 'IMAGE_ID\t\tSOURCE\n'
    a = box.init(busybox)
    b = box.init(busybox + '/')
    r = box.bocker('images')
    rows = sorted([(a, busybox), (b, busybox + '/')])
    assert r.out == 'IMAGE_ID\t\tSOURCE\n' + ''.join('%s\t\t%s\n' % row for row in rows)
    assert r.code == 0


# --- run ---------------------------------------------------------------------------

def test_run_shows_and_logs_output_and_stderr(box, busybox):
    img = box.init(busybox)
    ps, r = box.run_container(img, 'echo out; echo err >&2; exit 3')
    # stderr goes to stdout and the log (2>&1 | tee); the status is ignored.
    assert (r.out, r.err, r.code) == ('out\nerr\n', '', 0)
    assert box.read('%s/%s/%s.log' % (CONTAINERS, ps, ps)) == 'out\nerr\n'
    assert box.read('%s/%s/%s.cmd' % (CONTAINERS, ps, ps)) == 'echo out; echo err >&2; exit 3\n'
    assert sorted(box.containers()) == [ps]
    assert sorted(box.ls('%s/%s' % (CONTAINERS, ps))) == \
        sorted(['lower', 'upper', 'work', 'merged', ps + '.cmd', ps + '.log',
                'dev.mountpoint', 'sys.mountpoint',   # rows 38, 45: run made lower/dev, lower/sys
                ps + '.state'])                       # what run knew (bocker.py's Container)
    state = box.read('%s/%s/%s.state' % (CONTAINERS, ps, ps)).splitlines()
    assert state[1:] == ['image=' + img, 'cpu_share=512', 'mem_limit=512', 'pids_limit=2048']


def test_run_joins_several_words_into_one_command(box, busybox):
    img = box.init(busybox)
    ps, r = box.run_container(img, 'echo', 'a', '"b  c"', '|', 'tr', 'a', 'x')
    assert r.out == 'x b  c\n'
    assert box.bocker('ps').out.splitlines()[1] == '%s\t\techo a "b  c" | tr a x' % ps


def test_run_leaves_the_overlay_mounted_and_removes_veth_and_netns(box, busybox):
    img = box.init(busybox)
    ps, r = box.run_container(img, 'echo changed > /tmp/file; rm /etc/hostname')
    merged = '%s/%s/merged' % (CONTAINERS, ps)
    assert merged in box.mounts()
    assert box.read(merged + '/etc/resolv.conf') == 'nameserver 114.114.114.114\n'
    assert box.read('%s/%s/upper/tmp/file' % (CONTAINERS, ps)) == 'changed\n'
    # overlayfs never writes to a lower layer: the image (row 13) is untouched
    assert box.exists('%s/%s/upper/etc/hostname' % (CONTAINERS, ps))   # a whiteout
    assert box.exists('%s/%s/etc/hostname' % (OVERLAY, img))
    assert not box.exists('%s/%s/tmp/file' % (OVERLAY, img))
    assert box.links() == ['br1', 'lo']
    assert box.netns() == []


NAMESPACES = ('mnt', 'uts', 'ipc', 'pid', 'net')
# Each namespace of the shell that runs this, by inode: `mnt mnt:[4026532177]`.
SHOW_NAMESPACES = 'for ns in %s; do echo "$ns $(readlink /proc/self/ns/$ns)"; done' % \
    ' '.join(NAMESPACES)


@pytest.mark.v2(flavours=('sandbox',))
def test_run_isolates_pid_uts_mount_and_cgroups(box, busybox):
    img = box.init(busybox)
    ps, r = box.run_container(img, 'cat /proc/self/stat; echo; ps -o pid,comm; %s; '
                              'cat /proc/self/mountinfo /proc/self/cgroup' % SHOW_NAMESPACES)
    # pid: its own numbers: sh is 1, the first command it forks 2 (the bash's mount was 2)
    assert r.out.startswith('2 (cat) '), r.out
    assert re.search(r'^\s*1 sh$', r.out, re.M), r.out
    # mount, uts, ipc, pid, net: namespaces other than its caller's, as the kernel names them
    inside = dict(re.findall(r'^(\w+) (\w+:\[\d+\])$', r.out, re.M))
    outside = dict(re.findall(r'^(\w+) (\w+:\[\d+\])$', box.sh(SHOW_NAMESPACES).out, re.M))
    assert sorted(inside) == sorted(outside) == sorted(NAMESPACES), (inside, outside)
    assert not set(inside.values()) & set(outside.values()), (inside, outside)
    # mount: its root is the overlay of its own layers, its /proc its own; the
    # /proc it mounted never reached the caller's mount table
    assert re.search(r'^\d+ \d+ \S+ / / .* - overlay overlay \S*lowerdir=%s/%s/lower:%s/%s[,\s]'
                     % (CONTAINERS, ps, OVERLAY, img), r.out, re.M), r.out   # row 13
    assert re.search(r'^\d+ \d+ \S+ / /proc .* - proc ', r.out, re.M), r.out
    merged = '%s/%s/merged' % (CONTAINERS, ps)
    assert merged in box.mounts() and merged + '/proc' not in box.mounts()
    # cgroups: its own cgroup namespace, rooted at its cgroup ps_N (row 45), so
    # each of its cgroups reads `/` inside; ps_N is there on the host
    if box.layout == 'v2':          # one hierarchy: the line 0::/
        assert re.search(r'^0::/$', r.out, re.M), r.out
        assert ps in box.ls('/sys/fs/cgroup')
    for ctrl in ('cpu', 'cpuacct', 'memory', 'pids') if box.layout == 'v1' else ():
        assert re.search(r'^\d+:%s:/$' % ctrl, r.out, re.M), r.out
        assert ps in box.ls('/sys/fs/cgroup/' + ctrl)


def test_the_command_gets_default_signal_dispositions(box, busybox):
    """No signal ignored (Python ignores SIGPIPE, and exec would pass that
    on): a pipe's writer ends quietly when the reader is done."""
    img = box.init(busybox)
    ps, r = box.run_container(img, 'grep SigIgn /proc/self/status; yes | head -1')
    ignored = int(r.out.split()[1], 16)      # what the caller ignored stays ignored, as in bash
    assert not ignored & (1 << (13 - 1)) and not ignored & (1 << (25 - 1))   # SIGPIPE, SIGXFSZ
    assert r.out.endswith('\ny\n')


@pytest.mark.v2(flavours=('unshare',))
def test_run_network_inside_the_container(box, busybox):
    img = box.init(busybox)
    ps, r = box.run_container(
        img, 'ip -o -4 addr show; ip -o link show; ip route; ping -c 1 -W 2 172.18.0.1')
    n = int(ps[-3:])
    veth = 'veth1_' + ps
    assert re.search(r'%s\s+inet 172\.18\.0\.%d/24' % (veth, n), r.out), r.out
    mac = '02:42:ac:11:%02x:%s' % (int(ps[-3]), ps[-2:])
    assert re.search(r'%s@\S+: .*UP.*link/ether %s' % (veth, mac), r.out), r.out
    assert 'default via 172.18.0.1 dev %s' % veth in r.out
    assert '1 packets received' in r.out or '0% packet loss' in r.out


def test_veth0_is_on_br1_while_the_container_runs(box, busybox):
    img = box.init(busybox)
    p = box.popen([BOCKER, 'run', img, RUNNING],
                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    ps = box.wait_ready()
    r = box.sh('ip -o link show dev veth0_%s' % ps)
    assert r.code == 0 and ' master br1 ' in r.out, r
    assert box.netns() == ['netns_' + ps]
    open(box.path('%s/%s/merged/tmp/go' % (CONTAINERS, ps)), 'w').close()
    p.wait(timeout=30)
    assert box.links() == ['br1', 'lo'] and box.netns() == []


@pytest.mark.parametrize('args, env, shares, mem', [
    ([], {}, '512', 512),
    (['--MEM_LIMIT=16', '--CPU_SHARE=256'], {}, '256', 16),
    ([], {'BOCKER_MEM_LIMIT': '32', 'BOCKER_CPU_SHARE': '128'}, '128', 32),
    (['--MEM_LIMIT=64'], {'BOCKER_MEM_LIMIT': '32'}, '512', 64),     # option beats env
    (['--MEM_LIMIT='], {}, '512', 512),                                  # empty: default
])
def test_cgroup_limits(box, busybox, args, env, shares, mem):
    img = box.init(busybox)
    ps, r = box.run_container(img, 'true', env=env) if not args else (None, None)
    if args:
        before = set(box.containers())
        r = box.bocker(*args, 'run', img, 'true', env=env)
        ps = (set(box.containers()) - before).pop()
    assert r.code == 0
    assert box.cgroup('cpu', ps, 'cpu.shares') == shares
    limit = int(box.cgroup('memory', ps, 'memory.limit_in_bytes'))
    page = os.sysconf('SC_PAGE_SIZE')
    assert limit == mem * 1000000 // page * page
    assert os.path.isdir(box.path('/sys/fs/cgroup/cpuacct/' + ps))


def test_bad_limit_is_refused_before_anything_is_made(box, busybox):
    img = box.init(busybox)
    r = box.bocker('--MEM_LIMIT=lots', 'run', img, 'true')
    assert r.code == 1 and r.out == '' and 'MEM_LIMIT' in r.err
    assert box.containers() == [] and box.links() == ['br1', 'lo']


def test_run_of_unknown_image(box):
    for name in ('img_42002', 'ps_42002', 'foo'):
        r = box.bocker('run', name, 'true')
        assert (r.out, r.code) == ("No image named '%s' exists\n" % name, 1)
    assert box.containers() == []


# --- ps, logs ------------------------------------------------------------------------

@pytest.mark.v2(flavours=('sandbox',))
def test_ps_and_logs(box, busybox):
    img = box.init(busybox)
    assert box.bocker('ps').out == 'CONTAINER_ID\t\tCOMMAND\n'
    a, _ = box.run_container(img, 'echo one')
    b, _ = box.run_container(img, 'echo two >&2')
    rows = sorted([(a, 'echo one'), (b, 'echo two >&2')])
    assert box.bocker('ps').out == 'CONTAINER_ID\t\tCOMMAND\n' + \
        ''.join('%s\t\t%s\n' % row for row in rows)
    assert box.bocker('logs', a).out == 'one\n'
    assert box.bocker('logs', b).out == 'two\n'
    r = box.bocker('logs', 'ps_1')
    assert (r.out, r.code) == ("No container named 'ps_1' exists\n", 1)


# --- exec ------------------------------------------------------------------------------

# Runs until /tmp/go is made inside; box.wait_ready() sees it start.
RUNNING = 'touch /tmp/ready; while [ ! -e /tmp/go ]; do sleep 0.05; done'


@pytest.mark.v2(flavours=('sandbox',))
def test_exec_into_a_running_container_without_a_terminal(box, busybox):
    img = box.init(busybox)
    # start_new_session: no controlling terminal anywhere in the chain
    p = box.popen([BOCKER, 'run', img, RUNNING],
                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
    ps = box.wait_ready()
    r = box.bocker('exec', ps, 'sh', '-c', 'readlink /proc/self/ns/uts; '
                   'tr "\\\\0" " " < /proc/1/cmdline; echo; ip -o -4 addr show veth1_%s; exit 7' % ps)
    assert r.code == 7
    lines = r.out.splitlines()
    assert lines[0] != box.sh('readlink /proc/self/ns/uts').out.strip()   # its own uts ns
    assert RUNNING in lines[1]                         # its pid 1, its /proc
    assert '172.18.0.%d/24' % int(ps[-3:]) in lines[2]
    r = box.bocker('exec', ps, 'touch', '/tmp/go')
    assert r.code == 0
    p.wait(timeout=30)
    r = box.bocker('exec', ps, 'true')
    assert (r.out, r.err, r.code) == ("Container '%s' exists but is not running\n" % ps, '', 1)


def test_exec_of_unknown_container(box):
    for name in ('ps_42002', 'foo', 'img_42002'):
        r = box.bocker('exec', name, 'true')
        assert (r.out, r.code) == ("No container named '%s' exists\n" % name, 1)


# --- commit ------------------------------------------------------------------------------

@pytest.mark.v2(flavours=('sandbox',))
def test_commit_makes_a_new_image_from_the_container(box, busybox, tmp_path):
    src = tmp_path / 'src'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    (src / 'img.source').write_text('busybox:latest\n')
    img = box.init(str(src))
    ps, _ = box.run_container(img, 'echo made > /made')
    r = box.bocker('commit', ps, 'img_1')
    assert (r.out, r.err, r.code) == ('Created: img_1\n', '', 0)
    assert box.read(OVERLAY + '/img_1/made') == 'made\n'
    assert re.fullmatch(r'busybox:\d{8}-\d{6}\n', box.read(OVERLAY + '/img_1/img.source'))
    ps2, r = box.run_container('img_1', 'cat /made')
    assert r.out == 'made\n'
    r = box.bocker('commit', ps, 'img_1')
    assert (r.out, r.code) == ("Image named 'img_1' exists\n", 1)
    r = box.bocker('commit', 'ps_1', 'img_2')
    assert (r.out, r.code) == ("No container named 'ps_1' exists\n", 1)
    assert 'img_2' not in box.images()


def test_commit_keeps_a_source_without_colon(box, busybox):
    img = box.init(busybox)
    ps, _ = box.run_container(img, 'true')
    box.bocker('commit', ps, 'img_7')
    assert box.read(OVERLAY + '/img_7/img.source') == busybox + '\n'


# --- rm ------------------------------------------------------------------------------------

def test_rm_image(box, busybox):
    img = box.init(busybox)
    r = box.bocker('rm', img)
    assert (r.out, r.err, r.code) == ('Removed: %s\n' % img, '', 0)
    assert box.images() == []
    r = box.bocker('rm', img)
    assert (r.out, r.code) == ("No image named '%s' exists\n" % img, 1)


@pytest.mark.v2(flavours=('sandbox',))
def test_rm_container_removes_every_part(box, busybox):
    img = box.init(busybox)
    ps, _ = box.run_container(img, 'true')
    assert os.path.isdir(box.path(box.cgroup_dir('memory', ps)))
    r = box.bocker('rm', ps)
    assert (r.out, r.err, r.code) == ('Removed: %s\n' % ps, '', 0)
    assert box.containers() == []
    assert not any(ps in m for m in box.mounts())
    for ctrl in ('cpu', 'cpuacct', 'memory'):
        assert not os.path.exists(box.path(box.cgroup_dir(ctrl, ps)))
    assert box.ps_cgroups() == []
    assert box.images() == [img]
    r = box.bocker('rm', ps)
    assert (r.out, r.code) == ("No container named '%s' exists\n" % ps, 1)


def test_rm_of_a_running_container_stops_it_first(box, busybox):
    img = box.init(busybox)
    p = box.popen([BOCKER, 'run', img, READY], stdin=subprocess.DEVNULL,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ps = box.wait_ready()
    r = box.bocker('rm', ps)
    assert (r.out, r.code) == ('Removed: %s\n' % ps, 0)
    p.wait(timeout=30)
    assert box.containers() == [] and box.links() == ['br1', 'lo'] and box.netns() == []
    assert not os.path.exists(box.path(box.cgroup_dir('memory', ps)))


def test_trace_order_holds_when_streams_share_a_pipe(box, busybox):
    """Flushing before each child: trace (stderr) and messages (stdout) keep
    their order in one pipe, without PYTHONUNBUFFERED."""
    img = box.init(busybox)
    ps, _ = box.run_container(img, 'true')
    r = box.sh('%s --TRACE rm %s 2>&1' % (shlex.quote(BOCKER), ps))
    assert r.out.splitlines() == [
        '+ umount %s/%s/merged' % (CONTAINERS, ps),
        'Removed: %s' % ps,
        '+ cgdelete -g cpu,cpuacct,memory:/%s' % ps,
        '+ cgdelete -g cpuacct:/%s' % ps,
        '+ cgdelete -g memory:/%s' % ps,
        '+ cgdelete -g pids:/%s' % ps]


def test_an_os_error_is_one_line_on_stderr(box, busybox):
    """What the kernel refuses mid-command ends it with one line on stderr
    (the command, the path, the kernel's words) and status 1, no traceback:
    here a container's log that is a directory."""
    img = box.init(busybox)
    ps, r = box.run_container(img, 'true')
    log = '%s/%s/%s.log' % (CONTAINERS, ps, ps)
    os.unlink(box.path(log))
    os.mkdir(box.path(log))
    r = box.bocker('logs', ps)
    assert (r.out, r.err, r.code) == ('', '%s: logs: %s: Is a directory\n' % (
        os.path.basename(BOCKER), log), 1)
