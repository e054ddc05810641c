"""Where bocker.py does what the reference plainly meant instead of what it
does: one test per row of compat/DIVERGENCES.md (the rows name their tests).
Dangerous names are tried only here, inside the sandbox. Needs root."""
import os
import subprocess
import sys

import pytest

from support import BOCKER, CONFLICT, CONTAINERS, OVERLAY, ROOT, STORE

sys.path.insert(0, ROOT)
import bocker  # noqa: E402


def test_addresses_are_the_ids_last_three_digits():
    assert bocker.address('ps_42100') == ('100', '1:00')   # bash: .1, the bridge's
    assert bocker.address('ps_42101') == ('101', '1:01')   # bash: .11 ...
    assert bocker.address('ps_42110') == ('110', '1:10')   # ... and .11 again
    assert bocker.address('ps_42002') == ('2', '0:02')
    assert bocker.address('ps_42254') == ('254', '2:54')
    every = {bocker.address('ps_%d' % n)[0] for n in range(42002, 42255)}
    assert len(every) == 253 and '1' not in every


@pytest.mark.parametrize('name', ['..', '../containers', '../..', '.', '/', '', 'foo',
                                  'img_1/../../x', 'ps_*', 'img_ 1', 'img_1\nimg_2',
                                  '-rf', '--help', 'img_42002/..'])
def test_bad_names_change_nothing(box, busybox, name):
    img = box.init(busybox)
    ps, _ = box.run_container(img, 'true')
    canary = box.path(STORE + '/canary')
    open(canary, 'w').write('alive\n')
    for args in (['rm', name], ['logs', name], ['exec', name, 'true'], ['commit', ps, name],
                 ['commit', name, 'img_9'], ['run', name, 'true']):
        r = box.bocker(*args)
        assert r.code == 1, (args, r)
        assert len((r.out + r.err).splitlines()) == 1, (args, r)
    assert open(canary).read() == 'alive\n'
    assert box.images() == [img] and box.containers() == [ps]
    assert sorted(box.ls(STORE)) == ['canary', 'containers', 'overlay']
    assert len(box.ls('%s/%s' % (OVERLAY, img))) == len(os.listdir(busybox)) + 2


def test_rm_of_a_name_that_is_neither_image_nor_container(box):
    r = box.bocker('rm', 'foo')
    assert (r.out, r.err, r.code) == ('', "bocker.sh: No image or container named 'foo' exists\n", 1)


def test_commit_needs_an_image_id_as_new_name(box, busybox):
    img = box.init(busybox)
    ps, _ = box.run_container(img, 'true')
    r = box.bocker('commit', ps, 'myimage')
    assert r.code == 1 and r.out == '' and 'img_' in r.err
    assert box.images() == [img]


def test_option_only_invocation_prints_help(box):
    r = box.bocker('--TRACE')
    assert r.code == 1 and r.out.startswith('Create an image from a directory:')


def test_init_of_an_empty_directory_is_refused(box, tmp_path):
    r = box.bocker('init', str(tmp_path))
    assert r.code == 1 and r.out == '' and 'empty' in r.err
    assert box.images() == []


def test_init_of_the_store_is_refused(box):
    for d in (STORE, OVERLAY, '/var/lib', '/'):
        r = box.bocker('init', d)
        assert r.code == 1 and r.out == '' and len(r.err.splitlines()) == 1, (d, r)
    assert box.images() == []


def test_copies_keep_modes_owners_and_setuid(box, busybox, tmp_path):
    src = tmp_path / 'src'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    (src / 'tmp').chmod(0o1777)
    (src / 'suid').write_text('x')
    os.chown(src / 'suid', 1000, 1000)           # before chmod: chown clears setuid
    (src / 'suid').chmod(0o4755)
    img = box.init(str(src))
    st = os.lstat(box.path('%s/%s/suid' % (OVERLAY, img)))
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == ('0o4755', 1000, 1000)
    assert os.lstat(box.path('%s/%s/tmp' % (OVERLAY, img))).st_mode & 0o7777 == 0o1777
    ps, r = box.run_container(img, 'stat -c "%a %u" /suid /tmp')
    assert r.out == '4755 1000\n1777 0\n'


def test_the_image_itself_is_the_lower_layer(box, busybox):
    """Row 13: run copies nothing: the overlay's lower layers are the
    container's own lower/ (only mount points) above the image directory."""
    img = box.init(busybox)
    ps, r = box.run_container(img, 'stat -c %i /bin/busybox; echo changed > /etc/hostname')
    cdir, image = '%s/%s' % (CONTAINERS, ps), '%s/%s' % (OVERLAY, img)
    found = [l for l in open('/proc/%d/mountinfo' % box.sb.holder.pid)
             if l.split()[4] == cdir + '/merged']
    assert len(found) == 1 and ' - overlay overlay ' in found[0], found
    assert ',lowerdir=%s/lower:%s,upperdir=' % (cdir, image) in found[0], found
    assert sorted(box.ls(cdir + '/lower')) == ['dev', 'sys']       # rows 38, 45
    # the container sees the image's own inodes, not copies
    a = os.stat(box.path(image + '/bin/busybox'))
    assert r.out.split()[0] == str(a.st_ino) and a.st_nlink == 1, (r.out, a)
    # its write went to upper; the image keeps its file
    assert box.read(image + '/etc/hostname') == 'bocker-test\n'
    assert box.read(cdir + '/upper/etc/hostname') == 'changed\n'
    # commit makes a whole image of lower layers and upper
    assert box.bocker('commit', ps, 'img_4').code == 0
    assert box.read(OVERLAY + '/img_4/etc/hostname') == 'changed\n'
    assert os.path.getsize(box.path(OVERLAY + '/img_4/bin/busybox')) == a.st_size
    assert not box.exists(OVERLAY + '/img_4/dev')


def test_overlay_layers_escaped_as_the_kernel_reads_them(box):
    """Row 13's mount options: a ',', ':' or '\\' in a layer's path is escaped,
    the kernel mounts the layers named, and rm reads them back from mountinfo."""
    top = STORE + '/odd dir,with:colon\\and backslash'
    layers = [top + '/lower', top + '/image']

    def sh(script, *args):
        return box._run(['sh', '-c', script, 'sh', *args])
    sh('mkdir -p "$1"/lower "$1"/image "$1"/upper "$1"/work "$1"/merged && '
       'echo image > "$1"/image/file', top)
    opts = bocker.overlay_options(layers, top + '/upper', top + '/work')
    r = sh('mount -t overlay overlay -o "$1" "$2"/merged', opts, top)
    assert r.code == 0, r
    try:
        assert box.read(top + '/merged/file') == 'image\n'
        found = [m for m in bocker.mountinfo(box.sb.holder.pid) if m[0] == top + '/merged']
        assert len(found) == 1 and found[0][1] == 'overlay', found
        assert bocker.overlay_layers(found[0][4]) == {
            'lowerdir': layers, 'upperdir': [top + '/upper'], 'workdir': [top + '/work']}
    finally:
        sh('umount "$1"/merged && rm -rf "$1"', top)


def test_rm_of_an_image_in_use_is_refused(box, busybox):
    """Row 50: one line naming the containers, exit 1, nothing removed; once
    they are removed, the image goes. A container that ended keeps its root
    mounted (for commit and logs): it uses the image too."""
    img = box.init(busybox)
    ps1, _ = box.run_container(img, 'true')
    ps2, _ = box.run_container(img, 'true')
    first, second = sorted([ps1, ps2])
    r = box.bocker('rm', img)
    assert (r.out, r.err, r.code) == (
        '', 'bocker.sh: image %s is in use by containers %s, %s: rm them first\n'
        % (img, first, second), 1), r
    assert box.images() == [img] and sorted(box.containers()) == [first, second]
    assert box.bocker('rm', ps1).code == 0
    r = box.bocker('rm', img)
    assert (r.err, r.code) == ('bocker.sh: image %s is in use by container %s: rm it first\n'
                               % (img, ps2), 1), r
    assert box.bocker('logs', ps2).code == 0 and box.images() == [img]
    assert box.bocker('rm', ps2).code == 0
    assert box.bocker('rm', img).out == 'Removed: %s\n' % img
    assert box.images() == []


def fill(box, kind, keep):
    """Make every id of a kind taken but `keep`."""
    base = OVERLAY if kind == 'img_' else CONTAINERS
    for n in range(42002, 42255):
        if n != keep:
            os.mkdir(box.path('%s/%s%d' % (base, kind, n)))


def test_init_retries_on_an_id_clash_and_fails_when_all_are_taken(box, busybox):
    fill(box, 'img_', 42100)
    # a clash is all but certain, and init says nothing of it (it is no run)
    r = box.bocker('init', busybox)
    assert (r.out, r.err, r.code) == ('Created: img_42100\n', '', 0)
    r = box.bocker('init', busybox)
    assert r.code == 1 and r.out == '' and 'no free id' in r.err
    assert not [n for n in box.images() if not n.startswith('img_')]
    assert box.ls(OVERLAY + '/img_42100') != []


def test_run_retries_on_an_id_clash_and_fails_when_all_are_taken(box, busybox):
    img = box.init(busybox)
    fill(box, 'ps_', 42123)
    # 252 of 253 ids taken: a clash is likely, not certain (the first draw may
    # be the free one); each clash is one CONFLICT line before the output
    r = box.bocker('run', img, 'echo ran')
    assert r.code == 0 and r.out == CONFLICT * r.out.count(CONFLICT) + 'ran\n', r
    assert box.exists(CONTAINERS + '/ps_42123/ps_42123.log')
    # every id taken: the first draw clashes for certain, so run says so
    # (once per id it tried), then gives up
    r = box.bocker('run', img, 'echo ran')
    assert r.code == 1 and 'no free id' in r.err, r
    assert r.out.count(CONFLICT) >= 1 and r.out == CONFLICT * r.out.count(CONFLICT), r
    assert box.links() == ['br1', 'lo']


def test_the_reference_on_a_likely_clash_prints_the_line_first_too(box, busybox, reference):
    """Where an id is free, the reference's run retries as bocker.py's does
    (that much is no divergence): a line per taken id it drew, before the
    run's output, which is all that support's unclash() takes away."""
    img = box.init(busybox, tool='ref')
    fill(box, 'ps_', 42123)
    for n in range(42124, 42131):      # eight ids free: a clash is likely, the retries few
        os.rmdir(box.path('%s/ps_%d' % (CONTAINERS, n)))
    r = box.ref('run', img, 'echo ran')
    assert r.code == 0 and r.out == CONFLICT * r.out.count(CONFLICT) + 'ran\n', r
    made = [c for c in box.containers() if box.exists('%s/%s/%s.log' % (CONTAINERS, c, c))]
    assert len(made) == 1 and box.read('%s/%s/%s.log' % (CONTAINERS, made[0], made[0])) == 'ran\n'


def test_resolv_conf_symlink_is_replaced_not_followed(box, busybox, tmp_path):
    host_file = tmp_path / 'host-resolv.conf'
    host_file.write_text('host\n')
    src = tmp_path / 'src'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    (src / 'etc' / 'resolv.conf').symlink_to(str(host_file))
    img = box.init(str(src))
    ps, r = box.run_container(img, 'cat /etc/resolv.conf')
    assert r.out == 'nameserver 114.114.114.114\n'
    assert host_file.read_text() == 'host\n'
    (src / 'etc' / 'resolv.conf').unlink()
    (src / 'etc' / 'resolv.conf').symlink_to('../../../../../../../' + str(host_file))
    img = box.init(str(src))
    ps, r = box.run_container(img, 'cat /etc/resolv.conf')
    assert r.out == 'nameserver 114.114.114.114\n' and host_file.read_text() == 'host\n'


def test_listings_print_sources_and_commands_as_they_are(box, busybox, tmp_path):
    src = tmp_path / 'a\\tb'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    img = box.init(str(src))
    assert box.bocker('images').out.splitlines()[1] == '%s\t\t%s' % (img, src)
    ps, _ = box.run_container(img, "printf 'x\\\\ny'")
    assert box.bocker('ps').out.splitlines()[1] == "%s\t\tprintf 'x\\\\ny'" % ps


def test_image_without_sh_is_refused_before_anything_is_made(box, tmp_path):
    (tmp_path / 'etc').mkdir()
    img = box.init(str(tmp_path))
    r = box.bocker('run', img, 'true')
    assert r.code == 1 and r.out == '' and '/bin/sh' in r.err
    assert box.containers() == [] and box.links() == ['br1', 'lo'] and box.netns() == []


def test_missing_store_is_named(box, busybox):
    os.rmdir(box.path(OVERLAY))
    r = box.bocker('init', busybox)
    assert r.code == 1 and r.err == 'bocker.sh: %s does not exist: prepare this host with ' \
        '%s/compat/host-setup (as root)\n' % (OVERLAY, ROOT)


def test_missing_bridge_is_named_before_anything_is_made(busybox):
    """No br1: the bash fails in `ip link set ... master br1` (exit 255) after
    making the veth; bocker.py names it and points to compat/host-setup."""
    from support import Box
    from sandbox import Sandbox
    with Sandbox(br1=False) as sb:
        box = Box(sb)
        img = box.init(busybox)
        r = box.bocker('run', img, 'echo never')
        assert (r.out, r.code) == ('', 1)
        assert r.err == 'bocker.sh: bridge br1 does not exist: prepare this host with ' \
            '%s/compat/host-setup (as root)\n' % ROOT
        assert box.containers() == [] and box.links() == ['lo'] and box.netns() == []
        assert not any('/containers/' in m for m in box.mounts())
        assert not [d for d in box.ls('/sys/fs/cgroup/memory') if d.startswith('ps_')]


def test_two_commits_to_one_name_one_wins(box, busybox, tmp_path):
    src = tmp_path / 'src'
    subprocess.run(['cp', '-a', busybox, str(src)], check=True)
    (src / 'big').write_bytes(b'x' * 20 * 1024 * 1024)
    img = box.init(str(src))
    ps, _ = box.run_container(img, 'true')
    procs = [box.popen([BOCKER, 'commit', ps, 'img_3'], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = sorted((p.communicate()[0], p.returncode) for p in procs)
    assert outs == [('Created: img_3\n', 0), ("Image named 'img_3' exists\n", 1)]
    assert os.path.getsize(box.path(OVERLAY + '/img_3/big')) == 20 * 1024 * 1024
    assert sorted(box.images()) == sorted([img, 'img_3'])


def test_rm_container_prints_removed_although_run_deleted_netns(box, busybox):
    img = box.init(busybox)
    ps, _ = box.run_container(img, 'true')
    r = box.bocker('rm', ps)
    assert (r.out, r.err, r.code) == ('Removed: %s\n' % ps, '', 0)


def test_commit_of_a_container_whose_root_is_not_mounted(box, busybox):
    img = box.init(busybox)
    ps, _ = box.run_container(img, 'true')
    box.sh('umount %s/%s/merged' % (CONTAINERS, ps))
    r = box.bocker('commit', ps, 'img_8')
    assert (r.out, r.code) == ('', 1) and len(r.err.splitlines()) == 1 and 'mounted' in r.err
    assert box.images() == [img]


def test_listing_with_a_missing_source_says_what_cat_says(box, busybox, reference):
    img = box.init(busybox)
    os.unlink(box.path('%s/%s/img.source' % (OVERLAY, img)))
    ours, theirs = box.bocker('images'), box.ref('images')
    assert (ours.out, ours.err, ours.code) == (theirs.out, theirs.err, theirs.code)
    assert ours.out == 'IMAGE_ID\t\tSOURCE\n%s\t\t\n' % img and ours.err.startswith('cat: ')
