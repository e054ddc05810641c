"""compat/export-image, end to end: images made by bocker (init, commit, pull)
go out as one tar that skopeo reads as docker-archive: and oci-archive:, that
podman loads, and that comes back in through a registry and `bocker pull`.
Everything runs inside the test's sandbox (an engines one: tests/sandbox.py):
the store is its tmpfs, the registry listens on its 127.0.0.1, podman keeps its
storage in the test's own directory.
Needs root, podman, skopeo and docker-registry (make test installs them)."""
import hashlib
import io
import json
import os
import platform
import pty
import re
import signal
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time

import pytest

import engines
from support import OVERLAY, ROOT, STORE, Box, pull, tree
from sandbox import Sandbox

EXPORT = os.path.join(ROOT, 'compat', 'export-image')
GOARCH = {'x86_64': 'amd64', 'aarch64': 'arm64', 'i686': '386', 'armv7l': 'arm',
          'ppc64le': 'ppc64le', 's390x': 's390x', 'riscv64': 'riscv64'}

# A tree with every kind of entry the layer must keep, made in the image in the
# store (bocker init copies files one by one, so hard links are made here).
RICH = r'''
set -e
cd "$1"
mkdir -p srv/dir srv/empty 'srv/with space' srv/sgid
echo data > srv/file
ln srv/file srv/hard
ln srv/file 'srv/dir/hard 2'
cp bin/busybox srv/suid && chmod 4711 srv/suid
chmod 2775 srv/sgid && chmod 0700 srv/empty && chmod 1777 srv/dir
chown 1234:5678 srv/file && chown -h 4321:8765 srv/dir
mknod srv/null c 1 3 && mknod srv/loop0 b 7 0 && mkfifo -m 0620 srv/fifo
ln -s ../file srv/dir/rel-link && ln -s /nowhere/at/all srv/dangling
printf 'caf\303\251\n' > "srv/caf$(printf '\303\251')"
long=srv/$(printf 'd%.0s' $(seq 60))/$(printf 'e%.0s' $(seq 60))
mkdir -p "$long" && echo deep > "$long/$(printf 'f%.0s' $(seq 90))"
echo spaced > 'srv/with space/a b'
touch -d '2001-02-03 04:05:06' srv/file && touch -h -d '2002-03-04 05:06:07' srv/dangling
'''


# --------------------------------------------------------------------------- helpers

def run_export(box, out, *args, env=None):
    """compat/export-image ARGS > OUT inside the sandbox (box._run's own stdout
    is a terminal, which export-image refuses)."""
    return box._run(['sh', '-c', 'exec "$0" "$@" > "$OUT"', EXPORT, *args],
                    env=dict(env or {}, OUT=out))


def export(box, tmp_path, *args, name='image.tar', env=None):
    """compat/export-image ARGS > tmp_path/NAME; the file's path."""
    out = str(tmp_path / name)
    r = run_export(box, out, *args, env=env)
    assert r.code == 0 and r.err == '' and r.out == '', r
    return out


def rich_image(box, busybox):
    img = box.init(busybox)
    r = box._run(['sh', '-c', RICH, 'rich', '%s/%s' % (OVERLAY, img)])
    assert r.code == 0, r
    return img


def members(path):
    """{name: (TarInfo, bytes or None)} of a tar, and the names in order."""
    found, order = {}, []
    with tarfile.open(path) as tar:
        for m in tar:
            order.append(m.name)
            found[m.name] = (m, tar.extractfile(m).read() if m.isfile() else None)
    return found, order


def blob(found, digest):
    return found['blobs/sha256/' + digest.split(':', 1)[1]][1]


def store_listing(box):
    """Every name under the store, hidden ones too: what a failed export could leave."""
    out = []
    for dirpath, dirs, files in os.walk(box.path(STORE)):
        if os.path.dirname(dirpath) == box.path(OVERLAY):
            dirs[:] = []                   # an image's own files: not ours to check
        out += [os.path.join(dirpath, n) for n in dirs + files]
    return sorted(out)


Podman = engines.Podman        # podman with its state under the test's directory


# --------------------------------------------------------------------------- tests

def test_one_tar_both_layouts_read_by_skopeo(box, busybox, tmp_path):
    img = rich_image(box, busybox)
    path = export(box, tmp_path, img, 'demo:v1')
    found, order = members(path)

    # the docker save layout and the OCI layout, sharing blobs
    (entry,) = json.loads(found['manifest.json'][1])
    assert entry['RepoTags'] == ['demo:v1']
    (layer_path,) = entry['Layers']
    config = json.loads(found[entry['Config']][1])
    layer = found[layer_path][1]
    assert json.loads(found['repositories'][1]) == {'demo': {'v1': layer_path.split('/')[-1]}}
    assert json.loads(found['oci-layout'][1]) == {'imageLayoutVersion': '1.0.0'}
    index = json.loads(found['index.json'][1])
    (desc,) = index['manifests']
    assert desc['annotations']['org.opencontainers.image.ref.name'] == 'demo:v1'
    assert desc['annotations']['io.containerd.image.name'] == 'docker.io/library/demo:v1'
    manifest = json.loads(blob(found, desc['digest']))
    assert len(blob(found, desc['digest'])) == desc['size']
    assert 'blobs/sha256/' + manifest['config']['digest'][7:] == entry['Config']
    assert ['blobs/sha256/' + d['digest'][7:] for d in manifest['layers']] == [layer_path]
    assert manifest['layers'][0]['size'] == len(layer)
    for name, (m, data) in found.items():          # every blob is named by its digest
        if name.startswith('blobs/sha256/') and m.isfile():
            assert hashlib.sha256(data).hexdigest() == name.split('/')[-1]
    assert order == ['blobs', 'blobs/sha256'] + sorted(order[2:])

    # the config
    assert config['architecture'] == GOARCH.get(platform.machine(), platform.machine())
    assert config['os'] == 'linux'
    assert config['rootfs'] == {'type': 'layers',
                                'diff_ids': ['sha256:' + hashlib.sha256(layer).hexdigest()]}
    assert config['config']['Cmd'] == ['/bin/sh']
    source = os.lstat(box.path('%s/%s/img.source' % (OVERLAY, img)))
    made = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(source.st_mtime))
    assert config['created'] == made and [h['created'] for h in config['history']] == [made]

    # the layer: the image's tree, all kinds kept, names relative
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        entries = {m.name.rstrip('/'): m for m in tar}
    # sorted: each directory, then its entries by name (so a parent comes first)
    assert list(entries) == sorted(entries, key=lambda n: [c.encode() for c in n.split('/')])
    for name in entries:
        assert not name.startswith(('/', './..')) and '..' not in name.split('/'), name
    assert 'img.source' not in entries and 'bin/busybox' in entries
    assert all(m.uname == m.gname == '' for m in entries.values())
    # one inode, three names: the first in the tar holds the data, the others link to it
    links = {n: m.linkname for n, m in entries.items() if m.islnk()}
    assert sorted(links) == ['srv/file', 'srv/hard'] \
        and set(links.values()) == {'srv/dir/hard 2'} and entries['srv/dir/hard 2'].isfile()
    assert list(entries).index('srv/dir/hard 2') < list(entries).index('srv/file')
    assert entries['srv/suid'].mode == 0o4711 and entries['srv/sgid'].mode == 0o2775
    assert entries['srv/dir'].mode == 0o1777 and entries['srv/empty'].mode == 0o700
    assert (entries['srv/file'].uid, entries['srv/file'].gid) == (1234, 5678)
    assert (entries['srv/dir'].uid, entries['srv/dir'].gid) == (4321, 8765)
    assert entries['srv/file'].mtime == int(time.mktime((2001, 2, 3, 4, 5, 6, 0, 0, -1)))
    assert entries['srv/dangling'].issym() and entries['srv/dangling'].linkname == '/nowhere/at/all'
    assert entries['srv/null'].ischr() and (entries['srv/null'].devmajor,
                                            entries['srv/null'].devminor) == (1, 3)
    assert entries['srv/loop0'].isblk() and entries['srv/fifo'].isfifo()
    assert entries['srv/fifo'].mode == 0o620
    assert 'srv/café' in entries and any(len(n) > 200 for n in entries)

    # skopeo reads it both ways, and finds the same image
    assert shutil.which('skopeo'), 'needs skopeo (apt-get install skopeo; make test does)'
    seen = {}
    for transport in ('docker-archive', 'oci-archive'):
        r = box._run(['skopeo', 'inspect', '%s:%s' % (transport, path)])
        assert r.code == 0, r
        seen[transport] = json.loads(r.out)
        assert seen[transport]['Layers'] == [manifest['layers'][0]['digest']]
        assert (seen[transport]['Architecture'], seen[transport]['Os']) == \
            (config['architecture'], 'linux')
        r = box._run(['skopeo', 'inspect', '--config', '%s:%s' % (transport, path)])
        assert r.code == 0 and json.loads(r.out) == config, r
    r = box._run(['skopeo', 'inspect', 'oci-archive:%s:demo:v1' % path])   # by ref.name
    assert r.code == 0, r


@pytest.fixture
def box():
    """An engines sandbox (tests/sandbox.py): podman and skopeo keep state at
    fixed paths (/run/containers, /var/lib/containers) that stay in it."""
    with Sandbox(engines=True) as sb:
        yield Box(sb)


@pytest.fixture
def podman(box, tmp_path):
    # podman wants a runroot path of at most 50 characters: not under tmp_path
    runroot = tempfile.mkdtemp(prefix='bocker-podman-')
    try:
        yield Podman(box, tmp_path / 'podman', runroot)
    finally:
        shutil.rmtree(runroot)


def test_podman_load_gives_the_image_tree(box, busybox, tmp_path, podman):
    img = rich_image(box, busybox)
    host_storage = os.path.exists('/var/lib/containers/storage')
    # as a new user would type it
    r = podman(EXPORT, img, script='"$1" "$2" demo:v1 | $P load')
    assert r.code == 0 and 'Loaded image: docker.io/library/demo:v1' in r.out + r.err, r
    r = podman('images', '--format', '{{.Repository}}:{{.Tag}}')
    assert r.out.split() == ['docker.io/library/demo:v1'], r
    r = podman('image', 'mount', 'demo:v1')
    assert r.code == 0, r
    mounted = r.out.strip()
    assert mounted.startswith(str(tmp_path / 'podman' / 'root'))
    ours, ours_links = tree(box.path('%s/%s' % (OVERLAY, img)))
    theirs, their_links = tree(mounted, skip=())
    assert theirs == ours
    assert ours_links == their_links == [['srv/dir/hard 2', 'srv/file', 'srv/hard']]
    assert podman('image', 'unmount', '--all').code == 0
    assert os.path.exists('/var/lib/containers/storage') == host_storage


def test_round_trip_through_a_registry(box, busybox, reg, tmp_path):
    img = rich_image(box, busybox)
    path = export(box, tmp_path, img, 'tripped:v3')
    target = 'docker://%s/tripped:v3' % reg.url.split('//', 1)[1]
    r = box._run(['skopeo', '--insecure-policy', 'copy', '--dest-tls-verify=false',
                  'docker-archive:' + path, target], env={'TMPDIR': str(tmp_path)})
    assert r.code == 0, r
    r = pull(box, reg, 'tripped', 'v3')
    assert r.code == 0 and r.out.startswith('Created: img_'), r
    back = r.out.split()[1]
    assert tree(box.path('%s/%s' % (OVERLAY, back)), skip=('img.source', 'img.config')) == \
        tree(box.path('%s/%s' % (OVERLAY, img)))
    _, r = box.run_container(back, 'cat /srv/hard; ls -l /srv/suid')
    assert r.code == 0 and r.out.startswith('data\n-rws--x--x'), r
    # pull recorded tripped:v3 as its source: the name it exports under
    again = export(box, tmp_path, back, name='again.tar')
    assert json.loads(members(again)[0]['manifest.json'][1])[0]['RepoTags'] == ['tripped:v3']
    # and pull kept the config it exported (img.config), which goes back out as the
    # image's, not into its layer; a -e given at export's other end shows it works
    kept = json.loads(box.read('%s/%s/img.config' % (OVERLAY, back)))
    assert kept['Cmd'] == ['/bin/sh'] and kept['Env'][0].startswith('PATH=')
    kept.update({'Env': ['PATH=/bin', 'MODE=exported'], 'WorkingDir': '/srv'})
    with open(box.path('%s/%s/img.config' % (OVERLAY, back)), 'w') as f:
        json.dump(kept, f)
    third = members(export(box, tmp_path, back, name='third.tar'))[0]
    saved = json.loads(third['manifest.json'][1])[0]
    assert json.loads(third[saved['Config']][1])['config'] == kept
    layer = third[saved['Layers'][0]][1]
    assert 'img.config' not in tarfile.open(fileobj=io.BytesIO(layer)).getnames()


def test_committed_image_has_the_deletion_and_the_new_file(box, busybox, tmp_path):
    img = box.init(busybox)
    ps, r = box.run_container(img, 'rm /etc/hostname && echo fresh > /etc/new-file')
    assert r.code == 0, r
    r = box.bocker('commit', ps, 'img_7')
    assert r.out == 'Created: img_7\n', r
    found, _ = members(export(box, tmp_path, 'img_7'))
    (entry,) = json.loads(found['manifest.json'][1])
    assert entry['RepoTags'] == ['bocker/img_7:latest']     # its source is a directory
    with tarfile.open(fileobj=io.BytesIO(found[entry['Layers'][0]][1])) as tar:
        names = {m.name.rstrip('/'): m for m in tar}
        assert tar.extractfile(names['etc/new-file']).read() == b'fresh\n'
    assert 'etc/hostname' not in names and 'etc/passwd' in names
    assert not [n for n in names if '.wh.' in n]


def test_names(box, busybox, tmp_path):
    """NAME[:TAG] given; else img.source when it is name:tag; else bocker/IMAGE_ID."""
    img = box.init(busybox)
    source = box.path('%s/%s/img.source' % (OVERLAY, img))

    def tags(*args):
        found, _ = members(export(box, tmp_path, img, *args))
        (entry,) = json.loads(found['manifest.json'][1])
        index = json.loads(found['index.json'][1])['manifests'][0]['annotations']
        return entry['RepoTags'][0], index['io.containerd.image.name']

    assert tags('demo') == ('demo:latest', 'docker.io/library/demo:latest')
    assert tags('localhost:5000/a/b:v1.0') == ('localhost:5000/a/b:v1.0',) * 2
    assert tags('user/app:x') == ('user/app:x', 'docker.io/user/app:x')
    assert tags() == ('bocker/%s:latest' % img, 'docker.io/bocker/%s:latest' % img)
    for text, expected in (('registry.test/app:2.1', 'registry.test/app:2.1'),
                           ('busybox:20261129-101010', 'busybox:20261129-101010'),
                           ('/media/x:y', 'bocker/%s:latest' % img),
                           ('Not A Name:tag', 'bocker/%s:latest' % img)):
        with open(source, 'w') as f:
            f.write(text + '\n')
        assert tags()[0] == expected, text
    os.unlink(source)                                # an image without one
    assert tags()[0] == 'bocker/%s:latest' % img


def test_created_is_when_the_image_was_made(box, busybox, tmp_path):
    """img.source's time; SOURCE_DATE_EPOCH (reproducible-builds.org) overrides it."""
    img = box.init(busybox)
    os.utime(box.path('%s/%s/img.source' % (OVERLAY, img)), (0, 1234567890))

    def created(env=None):
        found, _ = members(export(box, tmp_path, img, env=env))
        config = json.loads(found[json.loads(found['manifest.json'][1])[0]['Config']][1])
        assert [h['created'] for h in config['history']] == [config['created']]
        return config['created']

    assert created() == '2009-02-13T23:31:30Z'
    assert created({'SOURCE_DATE_EPOCH': '1700000000'}) == '2023-11-14T22:13:20Z'
    r = run_export(box, str(tmp_path / 'bad'), img, env={'SOURCE_DATE_EPOCH': 'yesterday'})
    assert r.code == 1 and 'SOURCE_DATE_EPOCH' in r.err and len(r.err.splitlines()) == 1, r
    assert (tmp_path / 'bad').read_bytes() == b''


def test_two_exports_are_byte_identical(box, busybox, tmp_path):
    img = rich_image(box, busybox)
    first = export(box, tmp_path, img, 'same:v1', name='1.tar')
    time.sleep(1.1)                                  # another second on the clock
    second = export(box, tmp_path, img, 'same:v1', name='2.tar')
    with open(first, 'rb') as a, open(second, 'rb') as b:
        assert a.read() == b.read()
    # another name: another manifest.json, the same layer and config
    other, _ = members(export(box, tmp_path, img, 'other:v2', name='3.tar'))
    one, _ = members(first)
    blobs = lambda found: {n: d for n, (_, d) in found.items() if n.startswith('blobs/')}
    assert blobs(one) == blobs(other)


def test_the_temporary_layer_has_no_name_and_goes_on_kill(box, busybox, tmp_path):
    """While it runs, the export's layer file is open in the store's filesystem
    but has no name there; killed with SIGKILL, it leaves nothing."""
    img = box.init(busybox)
    r = box.sh('head -c 30000000 /dev/zero > %s/%s/big' % (OVERLAY, img))
    assert r.code == 0, r
    before = store_listing(box)
    p = box.popen([EXPORT, img], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(p.stdout.read(4096)) == 4096          # the archive streams: pass two
    store_dev = os.stat(box.path(STORE)).st_dev
    with open('/proc/%d/cmdline' % p.pid) as f:      # nsenter has exec'd the export
        assert EXPORT in f.read().split('\0')
    scratch = []
    for fd in os.listdir('/proc/%d/fd' % p.pid):
        st = os.stat('/proc/%d/fd/%s' % (p.pid, fd))
        if stat.S_ISREG(st.st_mode) and st.st_dev == store_dev:
            scratch.append((os.readlink('/proc/%d/fd/%s' % (p.pid, fd)), st))
    assert len(scratch) == 1, scratch
    name, st = scratch[0]
    assert st.st_nlink == 0 and st.st_size > 30000000, scratch   # no name, the whole layer
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    assert store_listing(box) == before


def test_a_full_store_fails_cleanly(busybox, tmp_path):
    """No room for the layer's temporary file: one line, nothing on stdout, and
    the space is free again."""
    with Sandbox(store_size='12m') as sb:
        box = Box(sb)
        img = box.init(busybox)
        r = box.sh('head -c 6000000 /dev/urandom > %s/%s/big' % (OVERLAY, img))
        assert r.code == 0, r
        before, free = store_listing(box), os.statvfs(box.path(STORE)).f_bfree
        r = run_export(box, str(tmp_path / 'out'), img)
        assert r.code == 1 and len(r.err.splitlines()) == 1, r
        assert 'No space left on device' in r.err and OVERLAY in r.err, r
        assert (tmp_path / 'out').read_bytes() == b''
        assert store_listing(box) == before
        assert os.statvfs(box.path(STORE)).f_bfree == free


def test_peak_memory_of_a_200_mb_image(box, busybox, tmp_path):
    """Files stream through small buffers: the peak RSS stays far below the
    image's size (GNU time's %M, kilobytes)."""
    img = box.init(busybox)
    r = box.sh('cd %s/%s && head -c 100000000 /dev/zero > big && mkdir many && '
               'for i in $(seq 100); do head -c 1000000 /dev/zero > many/$i; done'
               % (OVERLAY, img))
    assert r.code == 0, r
    r = box._run(['sh', '-c', '/usr/bin/time -f "maxrss=%M elapsed=%e" -o "$2" "$0" "$1" | wc -c',
                  EXPORT, img, str(tmp_path / 'rss')])
    size = int(r.out)
    measured = (tmp_path / 'rss').read_text()
    rss_kb = int(re.search(r'maxrss=(\d+)', measured).group(1))
    print('export-image of a %d MB image: peak RSS %.1f MB, %s s' % (
        size // 10**6, rss_kb / 1024, re.search(r'elapsed=([0-9.]+)', measured).group(1)))
    assert r.code == 0 and size > 200_000_000 and rss_kb < 80 * 1024, (r, rss_kb)


# --------------------------------------------------------------------------- bad input

BAD = [
    ([], 'usage: export-image IMAGE_ID [NAME[:TAG]]'),
    (['img_99999'], "no image named 'img_99999'"),
    (['ps_42001'], 'is not an image id'),
    (['../overlay'], 'is not an image id'),
    (['img_1/..'], 'is not an image id'),
    ([''], 'is not an image id'),
    (['IMG', ''], 'invalid image name'),
    (['IMG', 'Demo:v1'], 'invalid image name'),
    (['IMG', 'demo:'], 'invalid image name'),
    (['IMG', 'demo:v1:v2'], 'invalid image name'),
    (['IMG', 'demo@sha256:' + '0' * 64], 'invalid image name'),
    (['IMG', '/demo'], 'invalid image name'),
    (['IMG', 'a b'], 'invalid image name'),
    (['IMG', 'demo', 'extra'], 'usage: export-image IMAGE_ID [NAME[:TAG]]'),
]


@pytest.fixture
def one_image(box, busybox):
    return box.init(busybox)


@pytest.mark.parametrize('args,message', BAD, ids=[' '.join(a) or 'none' for a, _ in BAD])
def test_bad_input(box, one_image, args, message, tmp_path):
    args = [one_image if a == 'IMG' else a for a in args]
    before = store_listing(box)
    r = run_export(box, str(tmp_path / 'out'), *args)
    assert r.code == 1 and len(r.err.splitlines()) == 1, r
    assert r.err.startswith(message if message.startswith('usage') else 'export-image: ')
    assert message in r.err, r
    assert (tmp_path / 'out').read_bytes() == b''
    assert store_listing(box) == before


def test_refused_when_stdout_is_a_terminal(box, one_image):
    before = store_listing(box)
    master, slave = pty.openpty()
    try:
        p = box.popen([EXPORT, one_image, 'demo:v1'], stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        err = p.communicate(timeout=30)[1].decode()
        os.set_blocking(master, False)
        try:
            written = os.read(master, 65536)
        except OSError:                    # EIO / EAGAIN: nothing there
            written = b''
    finally:
        os.close(master)
    assert p.returncode != 0 and written == b'' and len(err.splitlines()) == 1, err
    assert 'terminal' in err
    assert store_listing(box) == before
