"""Images out to the engines users take them to, and in from them: Docker
(Debian's docker.io: dockerd, its own containerd, runc) and podman load and
RUN what compat/export-image writes, and bocker pulls what they save.

All of it in one sandbox for the module (tests/sandbox.py, engines=True: its
own cgroups in every controller runc uses, its own /run, /var/lib/containers
and /etc/docker), which starts one dockerd of its own (data root, exec root,
socket and pid file in the module's temporary directory; never the host's
daemon or socket) and stops it at the end, and checks that nothing is left
running. podman keeps its storage there too (vfs, --root/--runroot), runs
containers with runc and cgroupfs, and logs events to a file (tests/engines.py
says how both are run). Needs root, docker.io, runc, podman, skopeo and
docker-registry (make test installs them)."""
import hashlib
import os
import re
import stat
import subprocess

import pytest

from support import (ROOT, STORE, Box, Docker, Registry, left_running, pull, registry_in_sandbox,
                     tree)
from sandbox import Sandbox
import engines

EXPORT = os.path.join(ROOT, 'compat', 'export-image')
OVERLAY = STORE + '/overlay'
NAME = 'localhost/bocker-rich:v1'          # localhost/: no engine looks on Docker Hub
COMMITTED = 'localhost/bocker-committed:v1'

# The source tree, made from the busybox test image: what an image must carry.
# Hard links, top-level dotfiles, setuid bits and owners are made before
# `bocker init`, which must keep them all.
RICH = r'''
set -e
cd "$1"
chmod 1777 tmp
mkdir -p srv/setgid root/.config
echo data > srv/file && ln srv/file srv/hard
cp bin/busybox srv/suid && chmod 4755 srv/suid
chmod 2775 srv/setgid && chmod 0600 root/.config
chown 1234:5678 srv/file && chown -h 4321:8765 srv/setgid
echo 'export PS1=x' > root/.profile && echo top > .dotfile && echo c > root/.config/x
ln -s ../file srv/setgid/link && echo doomed > srv/doomed
touch -d '2001-02-03 04:05:06' srv/file
'''

# What the container shows of its whole root filesystem, in one process per
# kind: each entry's raw mode (stat %f: type and permission bits, setuid,
# setgid and sticky too), owner, link count, inode, mtime; each file's
# sha256; each symlink's target.
LISTING = r'''
find / -xdev ! -path / -exec stat -c 'S|%n|%f|%u|%g|%h|%i|%Y' {} +
find / -xdev -type f -exec sha256sum {} +
find / -xdev -type l -exec stat -c 'L|%N' {} +
'''
# Entries an engine makes or mounts in every container (the kernel's file
# systems, its own /etc files, its marker file): not the image's.
ENGINE_MADE = {'proc', 'sys', 'dev', 'run', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf',
               'etc/mtab', '.dockerenv', 'run/.containerenv'}


# --------------------------------------------------------------------------- helpers

def ok(r):
    assert r.code == 0, r
    return r


def listing(out):
    """{path: (mode, uid, gid, nlink or None, mtime or None, what)} and
    {path: inode} from LISTING's output; what: a file's sha256, a link's
    target. Directories: no link count and no mtime (an engine adds entries)."""
    entries, inodes, sums, targets = {}, {}, {}, {}
    for line in out.splitlines():
        if line.startswith('S|'):
            _, name, mode, uid, gid, nlink, ino, mtime = line.split('|')
            entries[name.lstrip('/')] = (int(mode, 16), int(uid), int(gid), int(nlink),
                                         int(mtime))
            inodes[name.lstrip('/')] = int(ino)
        elif line.startswith('L|'):
            m = re.match(r"L\|'/(.*)' -> '(.*)'$", line)
            targets[m.group(1)] = m.group(2)
        else:
            digest, name = line.split('  ', 1)
            sums[name.lstrip('/')] = digest
    out = {}
    for name, (mode, uid, gid, nlink, mtime) in entries.items():
        if stat.S_ISDIR(mode):
            nlink = mtime = None
        out[name] = (mode, uid, gid, nlink, mtime, sums.get(name) or targets.get(name))
    return out, inodes


def expected(top):
    """The same view of an image in bocker's store, and its hard-link groups.
    A link count is the number of the image's names for the inode: what its
    layer can carry (the store's own count may also have links from elsewhere)."""
    out, inodes, names = {}, {}, {}
    for dirpath, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, top)
            if rel in ('img.source', 'img.config'):   # bocker's own: not in the layer
                continue
            st = os.lstat(p)
            what = None
            if stat.S_ISREG(st.st_mode):
                with open(p, 'rb') as f:
                    what = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            isdir = stat.S_ISDIR(st.st_mode)
            mtime = None if isdir else int(st.st_mtime)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, None, mtime, what)
            if not isdir:
                names[rel] = st.st_ino
                inodes.setdefault(st.st_ino, set()).add(rel)
    for rel, ino in names.items():
        out[rel] = out[rel][:3] + (len(inodes[ino]),) + out[rel][4:]
    return out, links([g for g in inodes.values() if len(g) > 1])


def differ(ours, theirs):
    """{name: (ours, theirs)} where two views of a tree differ."""
    return {n: (ours.get(n), theirs.get(n)) for n in set(ours) | set(theirs)
            if ours.get(n) != theirs.get(n)}


def links(groups):
    return sorted(sorted(g) for g in groups)


def link_groups(entries, inodes):
    by_inode = {}
    for name, ino in inodes.items():
        if not stat.S_ISDIR(entries[name][0]):
            by_inode.setdefault(ino, set()).add(name)
    return links([g for g in by_inode.values() if len(g) > 1])


def assert_same_tree(out, image_dir):
    """The container's root filesystem is the image's: every entry with its
    mode, owner, link count, mtime and content or target, the hard links as
    one inode; besides, only what the engine makes in every container."""
    theirs, inodes = listing(out)
    ours, our_links = expected(image_dir)
    assert set(theirs) - set(ours) <= ENGINE_MADE, sorted(set(theirs) - set(ours))
    assert set(ours) - set(theirs) == set(), sorted(set(ours) - set(theirs))
    image = lambda view: {n: v for n, v in view.items() if n not in ENGINE_MADE}
    assert differ(image(ours), image(theirs)) == {}
    assert link_groups(theirs, inodes) == our_links
    return theirs, inodes


def assert_rich(theirs, inodes):
    """What RICH made, seen in the container, whatever the store holds."""
    assert theirs['tmp'][0] == stat.S_IFDIR | 0o1777
    assert theirs['srv/suid'][0] == stat.S_IFREG | 0o4755
    assert theirs['srv/setgid'][:3] == (stat.S_IFDIR | 0o2775, 4321, 8765)
    assert theirs['srv/file'][1:3] == (1234, 5678)
    assert theirs['srv/setgid/link'][5] == '../file'
    assert theirs['.dotfile'][5] == hashlib.sha256(b'top\n').hexdigest()
    assert theirs['root/.profile'][5] == hashlib.sha256(b'export PS1=x\n').hexdigest()
    assert theirs['root/.config'][0] == stat.S_IFDIR | 0o600 and 'root/.config/x' in theirs


def assert_hard_link(theirs, inodes):
    """srv/file and srv/hard: one inode, two names (RICH's `ln`)."""
    assert inodes['srv/file'] == inodes['srv/hard'], \
        'srv/file and srv/hard are two inodes: the hard link was lost'
    assert theirs['srv/file'][3] == theirs['srv/hard'][3] == 2, theirs['srv/file']


Podman = engines.Podman


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope='module')
def ebox():
    with Sandbox(engines=True) as sb:
        box = Box(sb)
        yield box
        # dockerd stopped, podman's containers gone: nothing left to kill
        assert left_running(box) == []


@pytest.fixture(scope='module')
def docker(ebox, tmp_path_factory):
    d = Docker(ebox, tmp_path_factory.mktemp('docker'))
    try:
        yield d
    finally:
        left = d.stop()
    assert left == []
    assert [m for m in ebox.mounts() if m.startswith(str(d.top))] == []


@pytest.fixture(scope='module')
def podman(ebox, tmp_path_factory):
    # the runroot in the sandbox's own /run (podman wants at most 50 characters)
    p = Podman(ebox, tmp_path_factory.mktemp('podman'), '/run/bocker-podman')
    yield p
    assert [m for m in ebox.mounts() if m.startswith(str(p.top))] == []


@pytest.fixture(scope='module')
def source(busybox, tmp_path_factory):
    """The busybox test image with RICH's entries, as a directory."""
    d = tmp_path_factory.mktemp('rich') / 'tree'
    subprocess.run(['cp', '-a', busybox, str(d)], check=True)
    subprocess.run(['sh', '-c', RICH, 'rich', str(d)], check=True)
    return d


@pytest.fixture(scope='module')
def images(ebox, source, tmp_path_factory):
    """{name: (image id, export tar)}: the rich image, and a commit of a
    container of it that deleted a file and made one."""
    tmp = tmp_path_factory.mktemp('exports')
    rich = ebox.init(str(source))
    ps, r = ebox.run_container(rich, 'rm /srv/doomed && echo fresh > /srv/new-file')
    assert r.code == 0, r
    r = ok(ebox.bocker('commit', ps, 'img_7'))
    assert r.out == 'Created: img_7\n', r
    ok(ebox.bocker('rm', ps))
    out = {}
    for img, name in ((rich, NAME), ('img_7', COMMITTED)):
        path = str(tmp / (img + '.tar'))
        ok(ebox._run(['sh', '-c', 'exec "$0" "$@" > "$OUT"', EXPORT, img, name],
                     env={'OUT': path}))
        out[name] = (img, path)
    return out


@pytest.fixture(scope='module')
def registry(ebox, tmp_path_factory):
    worker, handle = registry_in_sandbox(ebox, tmp_path_factory.mktemp('registry'))
    yield Registry(worker, handle)
    worker(handle.stop)
    worker.close()


# --------------------------------------------------------------------------- out

def test_docker_runs_the_exported_image(ebox, docker, images):
    img, path = images[NAME]
    # as a user would type it
    r = ok(docker.sh('"$1" "$2" "$3" | $D load', EXPORT, img, NAME))
    assert r.out.endswith('Loaded image: %s\n' % NAME), r    # after its progress bars
    r = ok(docker('run', '--rm', '--network', 'none', NAME, '/bin/sh', '-c', LISTING))
    theirs, inodes = assert_same_tree(r.out, ebox.path('%s/%s' % (OVERLAY, img)))
    assert_rich(theirs, inodes)
    assert_hard_link(theirs, inodes)


def test_docker_runs_the_committed_image(ebox, docker, images):
    img, path = images[COMMITTED]
    r = ok(docker('load', '-q', '-i', path))
    assert r.out == 'Loaded image: %s\n' % COMMITTED, r
    r = ok(docker('run', '--rm', '--network', 'none', COMMITTED, '/bin/sh', '-c',
                  'cat /srv/new-file; ls /srv/doomed; echo $?'))
    assert r.out == 'fresh\n1\n' and 'doomed' in r.err, r
    r = ok(docker('run', '--rm', '--network', 'none', COMMITTED, '/bin/sh', '-c', LISTING))
    theirs, inodes = assert_same_tree(r.out, ebox.path('%s/%s' % (OVERLAY, img)))
    assert 'srv/doomed' not in theirs and 'srv/new-file' in theirs
    assert_rich(theirs, inodes)
    assert_hard_link(theirs, inodes)


def test_podman_runs_the_exported_image(ebox, podman, images):
    img, path = images[NAME]
    r = ok(podman(EXPORT, img, NAME, script='"$1" "$2" "$3" | $P load'))
    assert 'Loaded image: %s\n' % NAME in r.out, r
    r = ok(podman.run(NAME, '/bin/sh', '-c', LISTING))
    theirs, inodes = assert_same_tree(r.out, ebox.path('%s/%s' % (OVERLAY, img)))
    assert_rich(theirs, inodes)
    assert_hard_link(theirs, inodes)


def test_podman_runs_the_committed_image(ebox, podman, images):
    img, path = images[COMMITTED]
    r = ok(podman('load', '-i', path))
    assert 'Loaded image: %s\n' % COMMITTED in r.out, r
    r = ok(podman.run(COMMITTED, '/bin/sh', '-c', LISTING))
    theirs, inodes = assert_same_tree(r.out, ebox.path('%s/%s' % (OVERLAY, img)))
    assert 'srv/doomed' not in theirs and theirs['srv/new-file'][5] == \
        hashlib.sha256(b'fresh\n').hexdigest()
    assert_rich(theirs, inodes)
    assert_hard_link(theirs, inodes)


# --------------------------------------------------------------------------- in

@pytest.mark.parametrize('engine', ['docker', 'podman'])
def test_bocker_pulls_what_an_engine_saved(ebox, engine, request, source, registry,
                                           tmp_path):
    """The engine imports a tar of the source tree (as `docker import` of a
    root filesystem), saves it (`docker save`, `podman save`), skopeo pushes
    the archive to the test registry, bocker pulls it: the same tree, and it
    runs."""
    e = request.getfixturevalue(engine)
    name = 'localhost/from-%s:v1' % engine
    layer, saved = str(tmp_path / 'layer.tar'), str(tmp_path / 'saved.tar')
    subprocess.run(['tar', '-C', str(source), '--numeric-owner', '-cf', layer, '.'],
                   check=True)
    ok(e('import', layer, name))
    ok(e('save', '-o', saved, name))
    target = 'docker://%s/from-%s:v1' % (registry.url.split('//', 1)[1], engine)
    ok(ebox._run(['skopeo', '--insecure-policy', 'copy', '--dest-tls-verify=false',
                  'docker-archive:' + saved, target], env={'TMPDIR': str(tmp_path)}))
    r = ok(pull(ebox, registry, 'from-%s' % engine, 'v1'))
    assert r.out.startswith('Created: img_'), r
    back = r.out.split()[1]
    (theirs, their_links), (ours, our_links) = tree(ebox.path('%s/%s' % (OVERLAY, back))), \
        tree(str(source))
    # bocker's own img.config, where the saved image's config has settings (row 52)
    theirs.pop('img.config', None)
    # and /proc, which bocker makes in every image, as the bash does
    assert differ(ours, theirs) == {'proc': (None, (stat.S_IFDIR, '0o755', 0, 0, None, None))}
    assert their_links == our_links == [['srv/file', 'srv/hard']]
    _, r = ebox.run_container(back, 'cat /srv/hard /.dotfile; ls -ln /srv/suid /srv/file')
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[:2] == ['data', 'top'], r
    assert re.match(r'-rw-r--r-- +\d+ 1234 +5678 .* /srv/file$', lines[2]), r
    assert re.match(r'-rwsr-xr-x +\d+ 0 +0 .* /srv/suid$', lines[3]), r
