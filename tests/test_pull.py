"""pull, end to end, against a real registry: Debian's docker-registry on
127.0.0.1 inside each test's sandbox (its private network namespace), images
pushed by the tests (tests/registry.py). Needs root and docker-registry;
the comparison with the reference needs BOCKER_REFERENCE."""
import hashlib
import json
import os
import shlex
import subprocess

import pytest

import registry
from support import (BOCKER, OVERLAY, READY, ROOT, Registry, fired, hooked, pull, registry_in_sandbox,
                     remove_everything)

# Each test that uses a sandbox runs in both flavours (tests/sandbox.py): a
# fresh sysfs, and the host's /sys as in a plain `unshare --net --mount` shell.
pytestmark = pytest.mark.flavours


@pytest.fixture
def token_reg(box, tmp_path):
    worker, handle = registry_in_sandbox(box, tmp_path, auth='token')
    yield Registry(worker, handle)
    worker(handle.stop)
    worker.close()


def tree(top):
    """{relative path: (type, mode, content digest or link target)}."""
    out = {}
    for dirpath, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, top)
            if os.path.islink(p):
                out[rel] = ('l', os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ('d', oct(st.st_mode & 0o7777))
            else:
                with open(p, 'rb') as f:
                    out[rel] = ('f', oct(st.st_mode & 0o7777), hashlib.sha256(f.read()).hexdigest())
    return out


def whiteout_image():
    """Base: busybox plus files and directories; upper layer deletes and
    replaces some of them with whiteouts, and makes one directory opaque."""
    base = registry.busybox_layer(compress=True)
    extra = registry.make_layer({
        'data/': None, 'data/keep': 'keep\n', 'data/gone': 'gone\n',
        'data/replaced': 'old\n', 'dir/': None, 'dir/a': 'a\n', 'dir/b': 'b\n',
        'olddir/': None, 'olddir/x': 'x\n', 'opaque/': None, 'opaque/lower': 'lower\n',
    }, compress=True)
    top = registry.make_layer({
        registry.whiteout('data/gone'): b'',
        registry.whiteout('data/replaced'): b'',
        'data/replaced': 'new\n',
        registry.whiteout('olddir'): b'',
        'olddir': 'now a file\n',
        registry.whiteout('dir'): b'',
        'opaque/': None,
        registry.opaque_whiteout('opaque'): b'',
        'opaque/upper': 'upper\n',
    }, compress=False)                     # an uncompressed layer too
    return [base, extra, top]


def test_pull_applies_whiteouts_and_runs(box, reg, tmp_path):
    reg.push('layered', 'v1', whiteout_image())
    r, used = pull_watched(box, reg, 'layered', 'v1', tmp_path)
    assert r.code == 0 and r.err == '', r
    assert r.out.startswith('Created: img_')
    img = r.out.split()[1]
    assert box.bocker('images').out == 'IMAGE_ID\t\tSOURCE\n%s\t\tlayered:v1\n' % img
    root = box.path('%s/%s' % (OVERLAY, img))
    t = tree(root)
    assert not [p for p in t if os.path.basename(p).startswith('.wh.')]
    assert not os.path.exists(root + '/manifest.json')
    assert 'data/gone' not in t and 'dir' not in t and 'opaque/lower' not in t
    _, r = box.run_container(img, 'cat /data/keep /data/replaced /olddir /opaque/upper; ls /opaque')
    assert r.out == 'keep\nnew\nnow a file\nupper\nupper\n'
    assert [d for d in used if box.exists(d)] == []


def _is_uuid(name):
    return len(name) == 36 and name.count('-') == 4


def pull_watched(box, reg, name, tag, tmp_path):
    """pull, and the temporary directories it used: the helper it runs is
    wrapped to note its first argument (the /tmp/UUID the pull made). Only
    those are checked afterwards: /tmp may hold what others left or make."""
    log = tmp_path / 'dirs'
    wrapper = tmp_path / 'bin' / 'download-frozen-image-v2'
    wrapper.parent.mkdir()
    wrapper.write_text('#!/bin/sh\necho "$1" >> %s\nexec %s "$@"\n' % (
        shlex.quote(str(log)), shlex.quote(os.path.join(ROOT, 'compat', wrapper.name))))
    wrapper.chmod(0o755)
    env = {'BOCKER_REGISTRY': reg.url, 'PATH': '%s:%s' % (wrapper.parent, os.environ['PATH'])}
    r = box.bocker('pull', name, tag, env=env)
    used = log.read_text().split() if log.exists() else []
    assert len(used) == 1 and _is_uuid(os.path.basename(used[0])), used
    return r, used


def test_pull_of_oci_image_and_manifest_list(box, reg):
    base = registry.busybox_layer(compress=True)
    oci = reg.push('ocibox', 'latest', [base], media='oci')
    assert oci.media_type == registry.OCI_MANIFEST
    mine = reg.push('multi', None, [base, registry.make_layer({'arch': 'mine\n'})])
    other = reg.push('multi', None, [base, registry.make_layer({'arch': 'other\n'})])
    arch = registry.machine_arch()
    foreign = 'arm64' if arch != 'arm64' else 'amd64'
    reg.push_index('multi', 'latest', [(other, {'os': 'linux', 'architecture': foreign}),
                                       (mine, {'os': 'linux', 'architecture': arch})])
    r = pull(box, reg, 'ocibox', 'latest')
    assert r.code == 0 and r.out.startswith('Created: img_')
    r = pull(box, reg, 'multi', 'latest')
    img = r.out.split()[1]
    _, r = box.run_container(img, 'cat /arch')
    assert r.out == 'mine\n'


def test_corrupted_blob_fails_cleanly(box, reg, tmp_path):
    pushed = reg.push('broken', 'v1', [registry.busybox_layer(compress=True)])
    registry.corrupt_blob(reg.handle, pushed.layers[0]['digest'])
    r, used = pull_watched(box, reg, 'broken', 'v1', tmp_path)
    assert r.code == 1 and r.out == '' and len(r.err.splitlines()) == 1, r
    assert box.images() == []
    assert [d for d in used if box.exists(d)] == []


@pytest.mark.parametrize('args', [('nosuch', 'v1'), ('broken', 'nosuchtag')])
def test_unknown_repository_or_tag(box, reg, args):
    r = pull(box, reg, *args)
    assert r.code == 1 and r.out == '' and len(r.err.splitlines()) == 1, r
    assert box.images() == []


def test_unreachable_registry(box):
    r = box.bocker('pull', 'busybox', 'latest',
                   env={'BOCKER_REGISTRY': 'http://127.0.0.1:9'})
    assert r.code == 1 and r.out == '' and len(r.err.splitlines()) == 1, r
    assert box.images() == []


def test_bearer_token_registry(box, token_reg):
    token_reg.push('secured', 'v1', [registry.busybox_layer(compress=True)],
                   client=token_reg.worker(registry.Client, token_reg.url))
    r = pull(box, token_reg, 'secured', 'v1')
    assert r.code == 0 and r.out.startswith('Created: img_'), r
    scopes = [q for q in token_reg.handle.token_server.requests]
    assert any('repository:secured:pull' in str(q) for q in scopes)


def test_layer_entries_never_land_outside_the_image(box, reg, tmp_path):
    """An absolute path, a `..` path, and a symlink an earlier layer planted
    (`escape -> /` and `up -> ../../..`) all resolve inside the image."""
    victim = tmp_path / 'victim'
    victim.mkdir()
    first = registry.make_layer({'escape': registry.Symlink(str(victim)),
                                 'up': registry.Symlink('../../../../../../..' + str(victim))})
    second = registry.make_layer({'escape/owned': 'x\n', 'up/owned2': 'x\n',
                                  '../../../../../../..%s/owned3' % victim: 'x\n',
                                  '%s/owned4' % victim: 'x\n'})
    reg.push('evil', 'v1', [registry.busybox_layer(compress=True), first, second])
    r = pull(box, reg, 'evil', 'v1')
    assert r.code == 0, r
    assert os.listdir(victim) == []
    img = r.out.split()[1]
    root = box.path('%s/%s' % (OVERLAY, img))
    assert os.path.isfile(root + str(victim) + '/owned')
    assert os.path.isfile(root + str(victim) + '/owned4')


def test_missing_tag_gives_usage(box):
    r = box.bocker('pull', 'busybox')
    assert (r.code, r.out) == (1, '') and r.err.startswith('usage: ')


def test_same_tree_as_the_reference(box, reg, reference, busybox):
    """The reference's pull (with compat/ on PATH) and ours give the same image
    tree, but for the divergences: the reference leaves manifest.json and each
    layer's VERSION and json in the image (DIVERGENCES row 26); ours keeps
    the image's config as img.config (row 52)."""
    layers = [registry.busybox_layer(compress=True),
              registry.make_layer({'etc/motd': 'hello\n', 'usr/share/x/': None,
                                   'usr/share/x/y': ('y\n', 0o600)}, compress=True)]
    pushed = reg.push('same', 'v2', layers)
    # The reference first, into the empty store: its init, on an id clash,
    # calls bocker_run instead of drawing again; ours then takes another id.
    theirs = pull(box, reg, 'same', 'v2', tool='ref')
    ours = pull(box, reg, 'same', 'v2')
    assert ours.code == theirs.code == 0 and theirs.out.startswith('Created: img_')
    a = tree(box.path('%s/%s' % (OVERLAY, ours.out.split()[1])))
    b = tree(box.path('%s/%s' % (OVERLAY, theirs.out.split()[1])))
    assert a.pop('img.config')[0] == 'f'      # ours keeps the image's config (row 52)
    junk = {'manifest.json'}
    for rel in list(b):
        top = rel.split('/')[0]
        if len(top) == 64 and os.path.isdir(box.path('%s/%s/%s' % (
                OVERLAY, theirs.out.split()[1], top))):
            junk.add(rel)
            junk.add(top)
    assert len(junk) >= 1 + 3 * len(pushed.layers)
    # and the reference's cp -rf applies the umask (row 12): /tmp 1777 -> 1755
    as_cp_would = {k: (v[0], oct(int(v[1], 8) & ~0o022 & ~(0o6000 if v[0] == 'f' else 0)))
                   + v[2:] if v[0] != 'l' else v for k, v in a.items()}
    assert as_cp_would == {k: v for k, v in b.items() if k not in junk}
    assert a['tmp'] == ('d', '0o1777')


def test_pull_killed_at_every_step(box, reg):
    """pull killed (the test hook, tests/test_kill.py) before its helper, after
    each layer, and between the steps that make the image: what it made is
    the image, whole and listed, or a hidden .pull-PID-UUID that the next
    command removes with its download directory /tmp/UUID."""
    reg.push('killed', 'v1', [registry.busybox_layer(compress=True),
                              registry.make_layer({'extra': 'x\n'})])
    env = {'BOCKER_REGISTRY': reg.url,
           'PATH': os.path.join(ROOT, 'compat') + ':' + os.environ['PATH']}
    steps = []
    for k in range(1, 20):
        r = hooked(box, 'kill:%d' % k, 'pull', 'killed', 'v1', env=env)
        step = fired(r)
        if step is None:
            assert r.code == 0 and r.out.startswith('Created: img_'), r
            assert remove_everything(box) == {}
            break
        steps.append(step)
        made = [n for n in box.ls(OVERLAY) if n.startswith('.pull-')]
        images = [n for n in box.ls(OVERLAY) if n.startswith('img_')]
        assert len(made + images) == 1, (step, made, images)   # claimed: made is the image
        download = '/tmp/' + made[0].split('-', 2)[2] if made else None
        for img in images:
            assert box.read('%s/%s/img.source' % (OVERLAY, img)) == 'killed:v1\n'
            assert box.read('%s/%s/extra' % (OVERLAY, img)) == 'x\n'
        assert remove_everything(box) == {}, step
        assert download is None or not box.exists(download), (step, download)
    assert steps == ['download-frozen-image-v2', 'pull-unpacked', 'pull-unpacked',
                     'pull-downloads-removed', 'image-source', 'image-proc', 'image-claimed']


def test_pulled_image_runs_its_own_config(box, reg):
    """pull keeps the image config's Env, WorkingDir, Entrypoint and Cmd as
    img.config (images lists the image as before); run applies Env and
    WorkingDir (-e, -w win), `run IMG` alone runs Entrypoint + Cmd, and
    `run IMG WORDS` runs Entrypoint WORDS, as Docker does."""
    layers = [registry.busybox_layer(compress=True),
              registry.make_layer({'opt/app/': None, 'opt/app/greet': (
                  '#!/bin/sh\necho "$GREETING from $(pwd):" "$@"\n', 0o755)})]
    config = registry.image_config(layers)
    config['config'].update({
        'Env': ['PATH=/opt/app:/usr/bin:/bin', 'GREETING=hello'], 'WorkingDir': '/srv/work',
        'Entrypoint': ['greet'], 'Cmd': ['the image', "it's"]})
    reg.push('configured', 'v1', layers, config=config)
    r = pull(box, reg, 'configured', 'v1')
    assert r.code == 0, r
    img = r.out.split()[1]
    assert box.bocker('images').out == 'IMAGE_ID\t\tSOURCE\n%s\t\tconfigured:v1\n' % img
    kept = json.loads(box.read('%s/%s/img.config' % (OVERLAY, img)))
    assert {k: kept[k] for k in ('Env', 'WorkingDir', 'Entrypoint', 'Cmd')} == \
        {k: config['config'][k] for k in ('Env', 'WorkingDir', 'Entrypoint', 'Cmd')}
    ps, r = box.run_container(img)
    assert (r.out, r.code) == ("hello from /srv/work: the image it's\n", 0), r
    assert box.bocker('ps').out.endswith("%s\t\tgreet 'the image' 'it'\"'\"'s'\n" % ps)
    _, r = box.run_container(img, 'one', 'two')
    assert r.out == 'hello from /srv/work: one two\n', r
    _, r = box.run_container('-e', 'GREETING=hi', '-w', '/tmp', img, 'x')
    assert r.out == 'hi from /tmp: x\n', r


def test_pulled_image_runs_as_its_user(box, reg):
    """The image config's User, by name (the image's /etc/passwd and /etc/group:
    its groups, its home) or by number, for run and exec, as Docker runs it;
    a name the image lacks is one line, and no container is made."""
    layers = [registry.busybox_layer(compress=True), registry.make_layer({
        'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n',
        'etc/group': 'root:x:0:\napp:x:2345:\nextra:x:3456:app,other\n'})]
    for tag, user in (('named', 'app'), ('numeric', '4321:8765'), ('missing', 'nobody')):
        config = registry.image_config(layers)
        config['config']['User'] = user
        reg.push('users', tag, layers, config=config)
    imgs = {tag: pull(box, reg, 'users', tag).out.split()[1] for tag in ('named', 'numeric', 'missing')}
    show = 'id -u; id -g; id -G; echo $HOME'
    p = box.popen([BOCKER, 'run', imgs['named'], '%s; %s' % (show, READY)],
                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    ps = box.wait_ready()
    r = box.bocker('exec', ps, 'sh', '-c', show)
    assert r.out == '1234\n2345\n2345 3456\n/home/app\n', r
    assert box.bocker('rm', ps).code == 0
    p.wait(timeout=30)
    assert p.stdout.read().decode() == '1234\n2345\n2345 3456\n/home/app\n'
    _, r = box.run_container(imgs['numeric'], show)
    assert r.out == '4321\n8765\n8765\n/root\n', r
    before = box.containers()
    r = box.bocker('run', imgs['missing'], 'true')
    assert (r.code, r.out) == (1, '') and r.err.endswith(
        "image %s's User 'nobody': no such user in its /etc/passwd\n" % imgs['missing']), r
    assert box.containers() == before
