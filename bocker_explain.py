"""--EXPLAIN and --STEP for bocker.py (issue 19): what each step of run, exec
and rm did, read back from the kernel.

`--EXPLAIN` (an --OPTION: the bash's option loop declares BOCKER_EXPLAIN=x and
ignores it) prints on stderr, after each step: the step's bash lines
(bocker.py's own `bash:` quotes), what they do with the man pages to read, and
what the kernel holds now, asked of the kernel with this container's names:
netlink through `ip -j` (ip(8)), /proc/self/mountinfo, the cgroup filesystem,
/proc/PID/ns, /proc/PID/status (proc(5)). `--STEP` does the same and waits for
Enter on the terminal (/dev/tty) between steps; without a terminal it never
waits. stdout and the container's log stay the command's.

bocker.py calls explain(STEP, UUID, ...) after a step; its explain() loads this
file only when one of the two options is given. Why it is not in bocker.py
itself: a container's enter step runs `python3 -S bocker.py __enter__`, and a
script is compiled whole on every run (never cached) inside the container's
memory cgroup; these 600 lines raised its peak from 7.2 to 8.8 MB, past a
container limit of 8 MB (--MEM_LIMIT=010 in tests/golden.py).
The output format: /work/notes/explain-format.md (and tests/explain_record.py).
"""
import os
import sys

bocker = None                            # the bocker module that loaded this one


def bind(module):
    global bocker
    bocker = module


EXPLAIN_STEPS = {
    # step: (command, number, title, bash line prefixes (of bocker.py's quotes), what,
    #        man pages, pause after it with --STEP)
    'veth': ('run', 1, 'the network: a veth pair, one end on br1', (
        'ip link add dev veth0_', 'ip link set dev veth0_"$uuid" up',
        'ip link set veth0_"$uuid" master br1', 'ip netns add netns_',
        'ip link set veth1_"$uuid" netns'),
        'A veth pair is a virtual Ethernet cable: what goes in at one end comes out '
        'of the other. veth0 stays in this network namespace and becomes a port of '
        'the bridge br1 (its master), as if plugged into a switch; veth1 moves into '
        'a new network namespace, the container\'s own network stack, which '
        '`ip netns add` keeps alive by bind-mounting it on /run/netns/NAME.',
        'ip-link(8), veth(4), ip-netns(8), network_namespaces(7)', True),
    'netns': ('run', 2, 'the network inside the netns: lo, address, route', (
        'ip netns exec netns_"$uuid" ip link set dev lo up',
        'ip netns exec netns_"$uuid" ip link set veth1_"$uuid" address',
        'ip netns exec netns_"$uuid" ip addr add',
        'ip netns exec netns_"$uuid" ip link set dev veth1_',
        'ip netns exec netns_"$uuid" ip route add'),
        'Inside the new namespace: lo comes up (a new namespace has it down, so '
        'nothing would answer on 127.0.0.1); veth1 gets a MAC in Docker\'s '
        '02:42:ac:11 range (02: a locally administered address) and the address '
        '172.18.0.N/24 made from the id, which also gives the route to the rest of '
        '172.18.0.0/24; everything else goes by the default route, through br1\'s '
        'address 172.18.0.1.',
        'ip-address(8), ip-route(8), ip-netns(8)', True),
    'overlay': ('run', 3, 'the root: an overlay mount', (
        'mkdir -p "$container_path/$uuid"/{lower,upper,work,merged}',
        'mount -t overlay overlay'),
        'The image becomes overlayfs\'s lower layer, never written (here hard links '
        'to the image\'s files; the bash copies them), with an empty upper layer for '
        'the container\'s writes and a work directory overlayfs needs for itself. '
        'merged shows the two as one: a read finds upper first, then lower; a write '
        'copies the file up into upper first; a deletion leaves a whiteout (a 0/0 '
        'character device) in upper.',
        'mount(8), overlayfs: docs.kernel.org/filesystems/overlayfs.html', True),
    'files': ('run', 4, 'two files: resolv.conf and the command', (
        "echo 'nameserver 114.114.114.114'", 'echo "$cmd" >'),
        'resolv.conf is written through the mount, so overlayfs puts the new file '
        'in upper and the image (lower) stays as it was; the command is kept beside '
        'the container for `ps`.',
        'resolv.conf(5)', True),
    'cgroups': ('run', 5, 'the limits: cgroups', (
        'cgcreate -g "$cgroups:/$uuid"', ': "${BOCKER_CPU_SHARE:=512}" && cgset',
        ': "${BOCKER_MEM_LIMIT:=512}" && cgset'),
        'A cgroup is a directory of a cgroup filesystem: cgcreate makes ps_N in the '
        'hierarchy of each controller, cgset writes its files. cpu.shares is the '
        'weight when CPUs are contended (1024 a full share; cgroup v2: cpu.weight); '
        'memory.limit_in_bytes is where the kernel reclaims, then OOM-kills in the '
        'cgroup (v2: memory.max). No process is in it yet.',
        'cgcreate(1), cgset(1), cgroups(7)', True),
    'container': ('run', 6, "the container: its pid 1", (
        'cgexec -g "$cgroups:$uuid"', '2>&1 | tee'),
        'cgexec moves itself into the cgroups and execs ip netns exec, which joins '
        'the network namespace (setns(2)) and execs unshare: -m, -u, -i make new '
        'mount, hostname and IPC namespaces, -p a new pid namespace whose first '
        'process, forked by -f, is its pid 1. bocker.py\'s enter step (in place of '
        'chroot) mounts the container\'s /proc, makes merged its root (chroot(2)), '
        'drops capabilities and execs /bin/sh -c CMD; tee shows and logs its output.',
        'cgexec(1), ip-netns(8), unshare(1), namespaces(7), pid_namespaces(7), '
        'chroot(2), capabilities(7)', False),
    'cleanup': ('run', 7, 'the command ended: cleanup', (
        'ip link del dev veth0_"$uuid"', 'ip netns del netns_"$uuid"'),
        'Deleting one end of a veth deletes both; deleting the name in /run/netns '
        'lets the kernel free the namespace once no process is in it. The overlay '
        'mount, the cgroups and the directory stay, for logs, commit and rm.',
        'ip-link(8), ip-netns(8)', False),
    'exec-found': ('exec', 1, "the container's pid 1", (
        'cid="$(ps o ppid,pid', '[[ ! "$cid" =~'),
        'exec looks for the container\'s pid 1: the process whose root is the '
        'container\'s merged directory (/proc/PID/root). NSpid lists its pid in each '
        'pid namespace it is in: the host\'s, then the container\'s, where it is 1.',
        'proc(5), pid_namespaces(7)', True),
    'exec-nsenter': ('exec', 2, 'nsenter: into its namespaces', (
        'nsenter -t "$cid"',),
        'cgexec first moves it into the container\'s cgroups (cpu, cpuacct, memory), '
        'so its limits hold for what exec starts; '
        'nsenter joins the namespaces of that process with setns(2): -m mount, -u '
        'hostname, -i IPC, -n network, -p pid (it forks, as only a child enters a '
        'pid namespace); enter then chroots into merged, drops capabilities and '
        'execs the command, which so sees what the container sees.',
        'cgexec(1), nsenter(1), setns(2), namespaces(7)', True),
    'rm-found': ('rm', 1, 'what there is to remove', (
        'if [[ -d "$overlay_path/$1" ]];then',),
        'Not an image, so a container: its parts, as the kernel shows them now.',
        'proc(5), ip-netns(8), cgroups(7)', True),
    'rm-stop': ('rm', 2, 'stop it if it runs', (),
        'bocker.py\'s own step (DIVERGENCES row 4): SIGKILL to the container\'s '
        'unshare and its pid 1; when pid 1 of a pid namespace dies, the kernel kills '
        'every process in it. The run that started it then deletes its veth and netns.',
        'kill(2), pid_namespaces(7)', True),
    'rm-parts': ('rm', 3, 'unmount and remove', (
        'umount "$container_path/$1"/merged',),
        'umount the overlay, remove the directory (the upper layer, the container\'s '
        'changes, goes with it), then the netns and the veth where run has not '
        'deleted them already.',
        'umount(8), ip-netns(8), ip-link(8)', True),
    'rm-cgroups': ('rm', 4, 'the cgroups', (
        'cgdelete -g "$cgroups:/$1"',),
        'cgdelete removes the container\'s cgroup directories (rmdir(2): a cgroup '
        'goes only once no process is in it).',
        'cgdelete(1), cgroups(7)', False),
    'rm-image': ('rm', 1, 'the image', (
        'rm -rf "$overlay_path/$1" && echo',),
        'An image is a directory of the store; rm -rf removes it. A container made '
        'from it keeps its lower layer: hard links hold the files.',
        'rm(1), link(2)', False),
}
EXPLAIN_TOTALS = {'run': 7, 'exec': 2, 'rm': 4, 'rm-image': 1}
EXPLAINED = {}                           # what a step saw, for a later one (rm's pid)

# capabilities(7), by number: to read CapBnd and CapEff of /proc/PID/status
CAP_NAMES = ('chown dac_override dac_read_search fowner fsetid kill setgid setuid '
             'setpcap linux_immutable net_bind_service net_broadcast net_admin net_raw '
             'ipc_lock ipc_owner sys_module sys_rawio sys_chroot sys_ptrace sys_pacct '
             'sys_admin sys_boot sys_nice sys_resource sys_time sys_tty_config mknod '
             'lease audit_write audit_control setfcap mac_override mac_admin syslog '
             'wake_alarm block_suspend audit_read perfmon bpf checkpoint_restore').split()


def explain(step, uuid, *more):
    """After a step: its block on stderr, then with --STEP wait for Enter on
    the terminal. Two steps do more: 'watch' (run, once the container's command
    is started: uuid, its process) starts the watcher that prints the
    'container' step; 'exec' (uuid, the pid found) prints both steps of exec."""
    if step == 'watch':
        return explain_watch(uuid, *more)
    if step == 'exec':
        explain('exec-found', uuid, *more)
        return explain('exec-nsenter', uuid, *more)
    command_, number, title, prefixes, what, man, pause = EXPLAIN_STEPS[step]
    readers = {'veth': explain_veth, 'netns': explain_netns, 'overlay': explain_overlay,
               'files': explain_files, 'cgroups': explain_cgroups,
               'container': explain_container, 'cleanup': explain_cleanup,
               'exec-found': explain_found, 'exec-nsenter': explain_nsenter,
               'rm-found': explain_rm_found, 'rm-stop': explain_rm_stop,
               'rm-parts': explain_rm_parts, 'rm-cgroups': explain_rm_cgroups,
               'rm-image': explain_rm_image}
    try:
        kernel = readers[step](uuid, *more)
    except (OSError, ValueError, KeyError, IndexError) as e:
        kernel = ['could not read it back: %r' % e]
    total = EXPLAIN_TOTALS['rm-image' if step == 'rm-image' else command_]
    explain_print(step, '%s %d/%d' % (command_, number, total), title,
                  explain_quotes(prefixes), what, man, kernel)
    if pause and bocker.option('STEP'):
        explain_pause()


def explain_print(step, where, title, bash, what, man, kernel):
    """One block: `=== COMMAND N/TOTAL [STEP] TITLE`, then the fields bash,
    what, man and kernel, the key in a column of 8 (blank where a field goes
    on), then a blank line."""
    import textwrap
    lines = ['=== %s [%s] %s' % (where, step, title)]

    def field(key, texts):
        for i, text in enumerate(texts):
            lines.append('%-8s%s' % (key if i == 0 else '', text))
    field('bash', bash or ['(none: bocker.py\'s own step)'])
    field('what', textwrap.wrap(what, 70))
    field('man', [man])
    field('kernel', kernel)
    sys.stdout.flush()
    sys.stderr.write('\n'.join(lines) + '\n\n')
    sys.stderr.flush()


def explain_pause():
    """--STEP: wait for Enter on the controlling terminal, if there is one
    (tty(4): /dev/tty; without one, ENXIO and no wait). stdin is not read: in
    run it belongs to the container. ^C here ends bocker as a failing step
    would (exit 130): run then removes what it made so far."""
    try:
        fd = os.open('/dev/tty', os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return
    try:
        os.write(fd, b'--STEP: press Enter for the next step ')
        while True:
            got = os.read(fd, 1024)
            if not got or b'\n' in got or b'\r' in got:
                break
    except OSError:
        pass
    except KeyboardInterrupt:
        os.write(fd, b'\n')
        raise bocker.Exit(130) from None
    finally:
        os.close(fd)


def explain_quotes(prefixes):
    """The bash lines bocker.py quotes (`# bash: LINE`, a docstring's `bash:
    LINE`; a quote ending in a backslash goes on in the comments below it) that
    start with each prefix, in order, each searched after the last one found."""
    with open(bocker.__file__, encoding='utf-8') as f:
        lines = [l.strip() for l in f]
    quotes = []
    for i, line in enumerate(lines):
        at = line.find('# bash: ')
        if at >= 0:
            text = line[at + 8:]
        elif line.startswith(('bash: ', '"""bash: ')):
            text = line.split('bash: ', 1)[1].replace('"""', '')
        else:
            continue
        quote = [text.strip()]
        while quote[-1].endswith('\\') and i + 1 < len(lines) and \
                lines[i + 1].startswith('#') and not lines[i + 1].startswith('# bash:'):
            i += 1
            quote.append(lines[i][1:].strip())
        quotes.append(quote)
    found, start = [], 0
    for prefix in prefixes:
        for k in range(start, len(quotes)):
            if quotes[k][0].startswith(prefix):
                found.extend(quotes[k])
                start = k + 1
                break
    return found


def explain_ip(*args, netns=None):
    """What `ip -j [-n NETNS] ARGS` reports (netlink, ip(8)), as Python data;
    None when ip fails (no such device)."""
    import json
    code, out, _err = bocker.command(['ip', '-j'] + (['-n', netns] if netns else []) +
                              list(args)).run(retcode=None)
    return json.loads(out or '[]') if code == 0 else None


def ns_inode(pid, name):
    """readlink /proc/PID/ns/NAME: `net:[4026531992]` (namespaces(7))."""
    return os.readlink('/proc/%s/ns/%s' % (pid, name))


def explain_link(link):
    """One link of `ip -j -d link show` in a line: index, kind, up or down
    (the UP flag, and the operational state), MAC."""
    flags = link.get('flags', [])
    kind = link.get('linkinfo', {}).get('info_kind', link.get('link_type', ''))
    text = '%s: ifindex %s, %s, %s (operstate %s)' % (
        link['ifname'], link['ifindex'], kind, 'up' if 'UP' in flags else 'down',
        link.get('operstate', '?'))
    if link.get('address') and link.get('link_type') == 'ether':
        text += ', MAC %s' % link['address']
    return text


def explain_veth(uuid):
    veth0, veth1, netns = 'veth0_' + uuid, 'veth1_' + uuid, 'netns_' + uuid
    out = []
    host = explain_ip('-d', 'link', 'show', 'dev', veth0)
    names = {n.get('id'): n['name'] for n in explain_ip('netns', 'list') or [] if 'name' in n}
    if host:
        link = host[0]
        out.append(explain_link(link))
        out.append('  master: %s' % link.get('master', 'none'))
        out.append('  its peer: ifindex %s in %s (link-netnsid %s)' % (
            link.get('link_index', '?'), names.get(link.get('link_netnsid'), 'this namespace'),
            link.get('link_netnsid', '-')))
    else:
        out.append('%s: not in this network namespace' % veth0)
    out.append('%s: %s' % (veth1, 'still here' if bocker.link_exists(veth1) else
                           'gone from this network namespace'))
    inside = explain_ip('-d', 'link', 'show', 'dev', veth1, netns=netns)
    if inside:
        out.append('  in %s: %s' % (netns, explain_link(inside[0])))
    on_br1 = [l['ifname'] for l in explain_ip('link', 'show', 'master', 'br1') or []]
    out.append('br1 ports: %s' % (' '.join(on_br1) or 'none'))
    out.append('%s: %s (named by /run/netns/%s); this process: %s' % (
        netns, netns_inode(netns), netns, ns_inode('self', 'net')))
    return out


def netns_inode(netns):
    """The network namespace a /run/netns name holds, as `net:[INODE]` (the
    name is a bind mount of the namespace's nsfs file)."""
    try:
        return 'net:[%d]' % os.stat('/run/netns/' + netns).st_ino
    except OSError:
        return 'gone (no such name in /run/netns)'


def explain_netns(uuid):
    netns = 'netns_' + uuid
    out = ['in %s (ip -n %s):' % (netns, netns)]
    for link in explain_ip('-4', 'addr', 'show', netns=netns) or []:
        addrs = ['%s/%s' % (a['local'], a['prefixlen']) for a in link.get('addr_info', [])]
        out.append('  %s: %s (operstate %s), inet %s' % (
            link['ifname'], 'up' if 'UP' in link.get('flags', []) else 'down',
            link.get('operstate', '?'), ' '.join(addrs) or 'none'))
    for link in explain_ip('link', 'show', 'dev', 'veth1_' + uuid, netns=netns) or []:
        out.append('  %s: MAC %s' % (link['ifname'], link.get('address', '?')))
    for route in explain_ip('route', 'show', netns=netns) or []:
        words = [route.get('dst', '?')]
        for key, word in (('gateway', 'via'), ('dev', 'dev'), ('protocol', 'proto'),
                          ('scope', 'scope'), ('prefsrc', 'src')):
            if route.get(key):
                words += [word, str(route[key])]
        out.append('  route: %s' % ' '.join(words))
    return out


def mountinfo(pid='self'):
    """/proc/PID/mountinfo (proc(5)) as (mount point, fstype, source, mount
    options, super options), octal escapes undone; a process's mount points
    read relative to its own root."""
    import re

    def unescape(s):
        return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), s)
    found = []
    with open('/proc/%s/mountinfo' % pid) as f:
        for line in f:
            left, right = line.rstrip('\n').split(' - ', 1)
            fields, (fstype, source, sopts) = left.split(), right.split(' ', 2)
            found.append((unescape(fields[4]), fstype, unescape(source), fields[5],
                          unescape(sopts), unescape(fields[3])))
    return found


def explain_overlay(uuid, image):
    cdir = '%s/%s' % (bocker.container_path, uuid)
    mounts = [m for m in mountinfo() if m[0] == os.path.realpath(cdir + '/merged')]
    if not mounts:
        return ['%s/merged: not a mount point' % cdir]
    point, fstype, source, opts, sopts = mounts[-1][:5]
    out = ['%s: %s mount (source %s, %s), from /proc/self/mountinfo:' % (
        point, fstype, source, opts)]
    for opt in sopts.split(','):
        key = opt.split('=', 1)[0]
        if key in ('lowerdir', 'upperdir', 'workdir'):
            out.append('  %s' % opt)
    entries = same = 0
    lower, img = cdir + '/lower', '%s/%s' % (bocker.overlay_path, image)
    for top, dirs, files in os.walk(lower):
        for name in dirs + files:
            entries += 1
            path = os.path.join(top, name)
            try:
                mine = os.lstat(path)
                theirs = os.lstat(img + path[len(lower):])
            except OSError:
                continue
            same += (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
    out.append('  lower: %d entries, %d of them the very inodes of %s (hard links)' % (
        entries, same, image))
    out.append('  upper: %d entries' % len(os.listdir(cdir + '/upper')))
    return out


def explain_files(uuid):
    cdir = '%s/%s' % (bocker.container_path, uuid)
    out = []
    for path in (cdir + '/merged/etc/resolv.conf', cdir + '/upper/etc/resolv.conf',
                 cdir + '/lower/etc/resolv.conf', '%s/%s.cmd' % (cdir, uuid)):
        try:
            text = bocker.read(path)
            out.append('%s: %r' % (path[len(cdir) + 1:], text))
        except OSError as e:
            out.append('%s: %s' % (path[len(cdir) + 1:], e.strerror.lower()))
    return out


def cgroup_hierarchies():
    """{controller: (mount point, mount root)} of the cgroup hierarchies
    mounted here (/proc/self/mountinfo): v1 ones by controller, v2 as ''."""
    found = {}
    for point, fstype, _source, _opts, sopts, root in mountinfo():
        if fstype == 'cgroup':
            for opt in sopts.split(','):
                found.setdefault(opt, (point, root))
        elif fstype == 'cgroup2':
            found.setdefault('', (point, root))
    return found


def cgroup_dir(controller, path):
    """The directory of cgroup PATH (as /proc/PID/cgroup names it, relative to
    our cgroup namespace) of controller's hierarchy, where it is mounted here."""
    found = cgroup_hierarchies()
    point, root = found.get(controller) or found.get('') or (None, None)
    if point is None or root != '/' and not (path + '/').startswith(root + '/'):
        return None
    return point + path[len(root.rstrip('/')):]


def proc_cgroups(pid):
    """{controller (v2: ''): cgroup path} of /proc/PID/cgroup (cgroups(7))."""
    found = {}
    with open('/proc/%s/cgroup' % pid) as f:
        for line in f:
            _n, ctrls, path = line.rstrip('\n').split(':', 2)
            for ctrl in ctrls.split(',') if ctrls else ['']:
                found[ctrl] = path
    return found


KNOBS = {'cpu': ('cpu.shares',), 'memory': ('memory.limit_in_bytes',)}
KNOBS_V2 = ('cpu.weight', 'memory.max')


def explain_knobs(paths, indent='', procs=False):
    """One line per hierarchy: the cgroup (paths: {controller: its path, as
    /proc/PID/cgroup names it}), its directory here, its knobs (and how many
    processes it holds: procs)."""
    v2 = bocker.cgroup_v2()
    out = []
    for ctrl in ('',) if v2 else bocker.controllers().split(','):
        path = paths.get(ctrl, '?')
        d = cgroup_dir(ctrl, path)
        if d is None:
            out.append('%s%s:%s: not under the hierarchy as mounted here' % (indent, ctrl, path))
            continue
        if not os.path.isdir(d):
            out.append('%s%s:%s  %s: gone' % (indent, ctrl or '0:', path, d))
            continue
        values = []
        for knob in KNOBS_V2 if v2 else KNOBS.get(ctrl, ()):
            try:
                values.append('%s = %s' % (knob, bocker.read('%s/%s' % (d, knob))))
            except OSError as e:
                values.append('%s: %s' % (knob, e.strerror.lower()))
        if procs:
            with open(d + '/cgroup.procs') as f:
                count = len(f.read().split())
            values.append('%d process%s' % (count, '' if count == 1 else 'es'))
        out.append('%s%s:%s  %s: %s' % (indent, ctrl or '0:', path, d,
                                         ', '.join(values) or 'no knob of bocker\'s'))
    return out


def made_cgroups(uuid):
    """{controller: path} of the cgroups `cgcreate -g CONTROLLERS:/UUID` makes:
    libcgroup makes UUID in the directory where each hierarchy is mounted, so
    its path is the mount's root (mountinfo) and UUID."""
    found = cgroup_hierarchies()
    return {c: found.get(c, ('', '/'))[1].rstrip('/') + '/' + uuid
            for c in (('',) if bocker.cgroup_v2() else bocker.controllers().split(','))}


def explain_cgroups(uuid):
    mine = proc_cgroups('self')
    return explain_knobs(made_cgroups(uuid), procs=True) + [
        'this process (/proc/self/cgroup): %s' % ' '.join(
            '%s:%s' % (c or '0:', mine.get(c, '?')) for c in made_cgroups(uuid))]


def explain_watch(uuid, proc):
    """run: once the container's pid 1 has exec'd its command, read it back
    and print the 'container' step, from a thread on this side: the container
    is never made to wait. It ends with proc at the latest."""
    import threading
    EXPLAINED['stop'] = threading.Event()
    EXPLAINED['watch'] = threading.Thread(target=explain_wait, args=(uuid, proc), daemon=True)
    EXPLAINED['watch'].start()


def explain_wait(uuid, proc):
    """The watcher: pid 1 is read in two goes. As soon as it exists (forked by
    unshare, so already in the container's namespaces and cgroups): those, and
    its pid in each pid namespace. Then, once enter() has chrooted and exec'd
    the command: its root, capabilities, mounts and argv. A quick command
    (`echo hi`) may end before the second look; the first is then all."""
    import time
    merged = '%s/%s/merged' % (bocker.container_path, uuid)
    pid, first, then = None, {}, {}
    while proc.poll() is None and not EXPLAINED['stop'].is_set():
        if not pid:
            pid, first = explain_pid1(uuid, proc)
            if not pid:
                time.sleep(0.001)
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
            # chrooted, and enter() has exec'd the command: its argv is there
            # (empty while execve(2) is under way, its credentials set before)
            if os.readlink('/proc/%s/root' % pid) == merged and argv[0] and \
                    b'__enter__' not in argv:
                then = explain_read_pid(pid)
                break
        except OSError:                        # it ended
            break
        os.sched_yield()                       # the window can be a millisecond
    EXPLAINED['pid1'] = (pid, first, then)
    explain('container', uuid)


def explain_pid1(uuid, proc):
    """(pid, its namespaces, cgroups and status) of the container's pid 1 if it
    exists yet, else (None, {}): the descendant of proc (cgexec, which execs ip,
    which execs unshare, which forks it) that is pid 1 of a pid namespace of its
    own (NSpid ends in 1). Found through the children files (proc(5):
    /proc/PID/task/TID/children), a few small reads where container_pid(uuid)
    reads all of /proc; that where the kernel has no children files."""
    todo, kids = [str(proc.pid)], []
    while todo:
        parent = todo.pop(0)
        try:
            with open('/proc/%s/task/%s/children' % (parent, parent)) as f:
                found = f.read().split()
        except FileNotFoundError:
            found = [bocker.container_pid(uuid)] if parent == str(proc.pid) else []
        except OSError:
            found = []
        kids += found
        todo += found
    for kid in kids:
        try:
            got = explain_read_pid(kid, late=False)
        except OSError:
            continue
        nspid = got['status'].get('NSpid', '').split()
        if len(nspid) > 1 and nspid[-1] == '1':
            return kid, got
    return None, {}


def explain_read_pid(pid, late=True):
    """What the kernel shows of a process, read at once (proc(5)): ns,
    status, cgroup; and (late) mountinfo, cmdline and root."""
    got = {'ns': {name: ns_inode(pid, name) for name in sorted(os.listdir('/proc/%s/ns' % pid))}}
    with open('/proc/%s/status' % pid) as f:
        got['status'] = dict(l.rstrip('\n').split(':\t', 1) for l in f if ':\t' in l)
    got['cgroup'] = proc_cgroups(pid)
    if not late:
        return got
    got['mounts'] = mountinfo(pid)
    with open('/proc/%s/cmdline' % pid, 'rb') as f:
        got['cmdline'] = f.read().rstrip(b'\0').replace(b'\0', b' ').decode('utf-8', 'replace')
    got['root'] = os.readlink('/proc/%s/root' % pid)
    return got


def caps(mask):
    """capabilities(7) names of a hex mask from /proc/PID/status."""
    bits = int(mask, 16)
    return [CAP_NAMES[n] if n < len(CAP_NAMES) else 'cap_%d' % n
            for n in range(bits.bit_length()) if bits >> n & 1]


def explain_pid(pid, got):
    """pid, NSpid, command and root of a process read by explain_read_pid."""
    return ['pid %s: NSpid %s (pid %s in its own pid namespace), `%s`' % (
        pid, got['status'].get('NSpid', '?').replace('\t', ' '),
        got['status'].get('NSpid', '?').split()[-1], got['cmdline']),
        '  root: %s (/proc/%s/root)' % (got['root'], pid)]


def explain_ns(pid, got, joined=None):
    """The namespaces of pid beside this process's, by inode."""
    out = ['namespaces (/proc/%s/ns against /proc/self/ns):' % pid]
    for name, inode in got['ns'].items():
        try:
            mine = ns_inode('self', name)
        except OSError:
            mine = '?'
        if joined is None:
            how = 'the same as this process' if mine == inode else 'new (this process: %s)' % mine
        else:
            how = ('joined by nsenter' if name in joined else
                   'not joined, the same' if mine == inode else 'not joined, this process: ' + mine)
        out.append('  %-18s %-22s %s' % (name, inode, how))
    return out


def explain_container(uuid):
    pid, first, then = EXPLAINED.get('pid1') or (None, {}, {})
    if not pid:
        return ['pid 1 ended before it could be read']
    got = then or first
    if then:
        out = explain_pid(pid, then)
    else:
        out = ['pid %s: NSpid %s (pid 1 in its own pid namespace); it ended before its '
               'command could be read (a longer one shows it: `sleep 1; ...`)' % (
                   pid, first['status'].get('NSpid', '?').replace('\t', ' '))]
    out += explain_ns(pid, first)
    out.append('cgroups (/proc/%s/cgroup, read where they are mounted here):' % pid)
    out += explain_knobs(first['cgroup'], '  ')
    if not then:
        return out
    status = got['status']
    kept = caps(status.get('CapBnd', '0'))
    out.append('capabilities (/proc/%s/status):' % pid)
    out.append('  bounding set (CapBnd %s), %d kept: %s' % (
        status.get('CapBnd', '?'), len(kept), ' '.join(kept)))
    eff = caps(status.get('CapEff', '0'))
    out.append('  effective (CapEff %s): %s' % (
        status.get('CapEff', '?'), 'the same' if eff == kept else ' '.join(eff) or 'none'))
    gone = [n for n in CAP_NAMES[:int(bocker.read('/proc/sys/kernel/cap_last_cap')) + 1]
            if n not in kept]
    out.append('  dropped, %d: %s' % (len(gone), ' '.join(gone)))
    out.append('  NoNewPrivs: %s' % status.get('NoNewPrivs', '?'))
    out.append('mounts it sees (/proc/%s/mountinfo, from its root):' % pid)
    for point, fstype, _source, opts, _sopts, _root in then['mounts']:
        out.append('  %-22s %-8s %s' % (point, fstype, opts))
    return out


def explain_cleanup(uuid):
    watch = EXPLAINED.get('watch')
    if watch:                                  # its step first (run may end early: ^C)
        EXPLAINED['stop'].set()
        watch.join()
    cdir = '%s/%s' % (bocker.container_path, uuid)
    out = ['veth0_%s: %s' % (uuid, 'still here' if bocker.link_exists('veth0_' + uuid) else
                            'gone (if_nametoindex(3) knows no such link)'),
           'netns_%s: %s' % (uuid, 'still here' if bocker.netns_exists(uuid) else
                             'gone from /run/netns; ip netns lists %s' % (
                                 ' '.join(n['name'] for n in explain_ip('netns', 'list') or [])
                                 or 'none'))]
    out.append('left for rm: the overlay on %s/merged (%s), the cgroups, the directory' % (
        cdir, 'mounted' if bocker.mounted(cdir + '/merged') else 'not mounted'))
    out += explain_knobs(made_cgroups(uuid), '  ', procs=True)
    return out


def explain_found(uuid, cid):
    got = explain_read_pid(cid)
    EXPLAINED['target'] = got
    return explain_pid(cid, got)


def explain_nsenter(uuid, cid):
    got = EXPLAINED.get('target') or explain_read_pid(cid)
    out = explain_ns(cid, got, joined=('mnt', 'uts', 'ipc', 'net', 'pid', 'pid_for_children'))
    out.append('its cgroups (/proc/%s/cgroup):' % cid)
    out += explain_knobs(got['cgroup'], '  ')
    return out


def explain_parts(uuid):
    """A container's parts, each as the kernel shows it now."""
    cdir = '%s/%s' % (bocker.container_path, uuid)
    pid = bocker.container_pid(uuid)
    out = ['pid 1: %s' % ('host pid %s, `%s`' % (pid, explain_read_pid(pid)['cmdline'])
                          if pid else 'none running')]
    out.append('%s/merged: %s' % (cdir, 'an overlay mount' if bocker.mounted(cdir + '/merged')
                                  else 'not a mount point'))
    out.append('%s: %s' % (cdir, 'there' if os.path.isdir(cdir) else 'gone'))
    out.append('netns_%s: %s' % (uuid, netns_inode('netns_' + uuid)))
    out.append('veth0_%s: %s' % (uuid, 'there' if bocker.link_exists('veth0_' + uuid) else 'gone'))
    return pid, out


def explain_rm_found(uuid):
    pid, out = explain_parts(uuid)
    EXPLAINED['rm-pid'] = pid
    return out + explain_knobs(made_cgroups(uuid))


def explain_rm_stop(uuid):
    pid = EXPLAINED.get('rm-pid')
    if not pid:
        return ['nothing to stop: no process has its root in %s/%s/merged' % (bocker.container_path, uuid)]
    return ['pid %s: %s' % (pid, 'still running' if bocker.running(pid) else 'gone (killed)'),
            'container_pid: %s' % (bocker.container_pid(uuid) or 'none: no process has its root there')]


def explain_rm_parts(uuid):
    return explain_parts(uuid)[1][1:]


def explain_rm_cgroups(uuid):
    return explain_knobs(made_cgroups(uuid))


def explain_rm_image(uuid):
    path = '%s/%s' % (bocker.overlay_path, uuid)
    return ['%s: %s' % (path, 'still there' if os.path.lexists(path) else 'gone')]
