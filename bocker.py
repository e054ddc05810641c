#!/usr/bin/env python3
# bocker.py: Docker in about 100 lines of bash, ported to Python.
#
# A line-by-line port of the bash `bocker` (p8952/bocker, overlayfs variant).
# One function per bash function, in the bash order and with the bash names;
# each step quotes the bash line it ports (`# bash: ...`), so the two files read
# side by side. Where the bash is broken we do what it plainly meant; each such
# place is marked `# diverges (row N):`, its row of compat/DIVERGENCES.md.
#
# The kernel pieces, and the man pages to read:
#   images and containers  overlayfs: a read-only lower dir, a writable upper dir,
#                          the merged view (mount(8), kernel Documentation/
#                          filesystems/overlayfs.rst)
#   isolation              namespaces: mount, uts, ipc, pid (unshare(1),
#                          namespaces(7)) and network (ip-netns(8))
#   limits                 cgroup v1 cpu, cpuacct, memory (cgcreate(1), cgset(1),
#                          cgexec(1), cgroups(7))
#   networking             a veth pair, one end on bridge br1, the other in the
#                          container's netns (ip-link(8), veth(4))
#
# Its sections, in order, each opened by a `# --- TITLE ---` banner
# (docs/HACKING.md says what is in each). What a reader of the bash follows:
#   The bash's own plumbing
#   The bash functions, in the bash order
#   Beyond the bash
#   The dispatcher
# and the machinery they need not follow:
#   A container's record
#   Wiring a container to its host
#   Published ports
#   Copying trees
#   Unpacking image layers
#   Surviving a kill
#   Finding and stopping processes
#   A terminal of its own
#   A container you can work with
#   Entering a container
#   Seccomp
#   What the kernel holds
#   The need_* checks
#   --EXPLAIN
#   Importing plumbum
import gc
import io
import os
import stat
import sys
import time

# bash: set -o errexit -o nounset -o pipefail; shopt -s nullglob
# (errexit: a failing command raises Exit, see run(); nounset: need() checks the
# arguments; nullglob: an empty store lists nothing, see listing())
# bash: overlay_path='/var/lib/bocker/overlay' && container_path='/var/lib/bocker/containers' && cgroups='cpu,cpuacct,memory';
overlay_path = '/var/lib/bocker/overlay'
container_path = '/var/lib/bocker/containers'
cgroups = 'cpu,cpuacct,memory'

ID_LOW, ID_HIGH = 42002, 42254           # bash: shuf -i 42002-42254 -n 1
# bash: [[ $# -gt 0 ]] && while [ "${1:0:2}" == '--' ]; do OPTION=${1:2}; [[ $OPTION =~ = ]] && declare "BOCKER_${OPTION/=*/}=${OPTION/*=/}" || declare "BOCKER_${OPTION}=x"; shift; done
# (that loop is options(), which main() runs; its `declare`s land here)
OPTIONS = {}                             # the bash's `declare BOCKER_KEY=VALUE`s
PROG = 'bocker.py'                       # "$0", set in main()
# diverges (rows 38, 45): in a container's directory, where run made lower/dev or
# lower/sys (the image has none): commit leaves out only those mount points
MOUNT_POINT_NOTE = '%s.mountpoint'


# --- The bash's own plumbing: echo, exit, options, set -x, running a command ----

class Exit(Exception):
    """Leave with a status, as bash's `exit N` or errexit would."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def say(msg):
    """The bash's `echo MSG` (its messages all go to stdout)."""
    sys.stdout.write(msg + '\n')


def flush():
    """Write out what we printed before a child process writes (users' Python
    buffers stdout when it is no terminal). A terminal gone (SIGHUP) takes it."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass


def q(name):
    """A name for a one-line message: control characters (a newline in a bad
    name) are shown escaped. diverges (row 24): bash prints them raw."""
    return name if name.isprintable() else name.encode('unicode_escape').decode()


def fail(msg, code=1):
    """Our own errors, where the bash has none: one line on stderr."""
    flush()
    sys.stderr.write('%s: %s\n' % (os.path.basename(PROG), msg))
    raise Exit(code)


def option(key, default=None):
    """BOCKER_KEY from --KEY=VALUE, else from the environment, else default
    (bash: `: "${BOCKER_KEY:=default}"`, where empty counts as unset)."""
    value = OPTIONS.get(key, os.environ.get('BOCKER_' + key, ''))
    return value if value != '' else default


def _xtrace_word(word):
    """Quote one word as bash's xtrace (set -x) prints it."""
    import re
    if word and not re.search(r'''[\s'"\\|&;()<>!{}*?\[\]^$`~#]''', word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def trace(argv):
    """--TRACE: show each system command on stderr, as `bash -x` would."""
    if option('TRACE'):
        sys.stderr.write('+ ' + ' '.join(_xtrace_word(w) for w in argv) + '\n')
        sys.stderr.flush()


def command(argv, shown=None):
    """The plumbum command for argv, not yet started: every system command
    bocker runs is made here, shown by --TRACE as the bash's `set -x` shows
    it (shown: the lines to show for it instead), looked up on PATH now, and
    what we printed flushed before it writes. The caller runs, pipes or
    starts it. diverges (row 39): it starts
    with stdin, stdout and stderr only (plumbum's Popen closes the rest), so
    no descriptor of the caller reaches a container, where an open directory
    of the host would lead out of its root (fchdir(2)); the bash passed every
    one on."""
    checkpoint(os.path.basename(argv[0]))
    for line in [argv] if shown is None else shown:
        trace(line)
    local = plumbum_local()
    from plumbum.commands.processes import CommandNotFound
    try:
        cmd = local[argv[0]][list(argv[1:])]
    except CommandNotFound:
        fail('%s: command not found' % argv[0], 127)
    flush()
    return cmd


def run(*argv, check=True, quiet=False, stdout=None, stdin=None, shown=None, wait=True):
    """Run a system command with our stdin/stdout/stderr (stdin: a text to
    give it instead); as under bash's errexit, a failure ends bocker with the
    command's status (check=True). wait=False: return at once a function
    that waits for it (and ends bocker if it failed)."""
    cmd = command(argv, shown)
    if stdin is not None:
        cmd = cmd << stdin
    if quiet:                                  # bash: &> /dev/null
        code = cmd.run(retcode=None)[0]
    elif stdout is not None:                   # bash: > /dev/null
        code = cmd.run(retcode=None, stdin=None, stdout=stdout, stderr=None)[0]
    else:
        proc = cmd.popen(stdin=None, stdout=None, stderr=None)
        if not wait:
            return lambda: errexit(proc.wait(), check)
        code = proc.wait()
    return errexit(code, check)


def errexit(code, check=True):
    """bash's errexit: a failed command (check) ends bocker with its status."""
    if code and check:
        raise Exit(code)
    return code


def read(path):
    """bash: $(cat "$path"), trailing newlines stripped; a symlink is not
    followed (an image's img.source comes from a container's root)."""
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), 'rb') as f:
        return f.read().decode('utf-8', 'surrogateescape').rstrip('\n')


def write(path, text):
    """bash: echo "$text" > "$path"."""
    with open(path, 'w', encoding='utf-8', errors='surrogateescape') as f:
        f.write(text + '\n')


def usage(func):
    """The one-line usage of a command, from its `#HELP` line."""
    return 'usage: ' + _help_lines()[func].split('\n\t')[1].replace('BOCKER', PROG)


def need(args, count, func):
    """Missing arguments: a usage line, exit 1. diverges (row 9): the bash
    dies on `$1: unbound variable`."""
    if len(args) < count:
        sys.stderr.write(usage(func) + '\n')
        raise Exit(1)


def refuse(message, name):
    """The bash's own refusals, `echo "MESSAGE '$1'" && exit 1`: on stdout,
    status 1."""
    say(message % q(name))
    raise Exit(1)


def need_container(uuid):
    """exec, logs and commit refuse a container bocker_check does not know
    (its 3): "No container named '...' exists", status 1."""
    if bocker_check(uuid) != '2':
        refuse("No container named '%s' exists", uuid)


def well_formed(name):
    """Ids are as bocker makes them: img_ or ps_, then digits. No other name
    ever reaches a path, so `..`, `/`, globs and spaces cannot escape the store.
    diverges (rows 6, 8): the bash passes any name on (`rm ../containers` deleted every
    container)."""
    kind, _, digits = name.partition('_')     # (img|ps)_[0-9]+, without importing re
    return kind in ('img', 'ps') and digits.isascii() and digits.isdigit()


# --- The bash functions, in the bash order --------------------------------------

def bocker_check(name):
    # bash: case ${1:0:3} in
    if name[:3] == 'img':
        # bash: img) ls "$overlay_path" | grep -qw "$1" && echo 0 || echo 1;;
        return '0' if well_formed(name) and os.path.isdir('%s/%s' % (overlay_path, name)) else '1'
    if name[:3] == 'ps_':
        # bash: ps_) ls "$container_path" | grep -qw "$1" && echo 2 || echo 3;;
        return '2' if well_formed(name) and os.path.isdir(Container(name).dir) else '3'
    return ''


def bocker_init(*args):  #HELP Create an image from a directory:\nBOCKER init <directory>
    need(args, 1, 'bocker_init')
    src = args[0]
    # bash: uuid="img_$(shuf -i 42002-42254 -n 1)"
    # (the id is drawn last, by claim(), once the image is complete)
    # bash: if [[ -d "$1" ]]; then
    if not os.path.isdir(src):                 # the bash's else, tested first
        say("No directory named '%s' exists" % q(src))
        return 0
    # bash: [[ "$(bocker_check "$uuid")" == 0 ]] && bocker_run "$@"
    # (on a clash claim() takes another id)
    need_store(overlay_path)
    sweep()
    # diverges (row 15): the store, or a directory that holds it, is refused
    real = os.path.realpath(src)
    store = os.path.dirname(overlay_path)
    if real == '/' or (real + '/').startswith(store + '/') or (store + '/').startswith(real + '/'):
        fail("'%s' holds the image store or lies inside it" % q(src))
    # diverges (row 14): so is an empty directory (cp failed, left an empty image)
    if not os.listdir(src):
        fail("'%s' is empty: nothing to make an image of" % q(src))
    # diverges (row 17): build the image under a hidden name, then rename it into place,
    # so no half-copied image is ever listed and two inits never share an id.
    # A kill leaves the hidden directory to the next command (sweep()).
    tmp = '%s/.init-%d' % (overlay_path, os.getpid())
    try:
        # bash: mkdir "$overlay_path/$uuid" > /dev/null
        hidden('init')
        checkpoint('init-mkdir')
        # bash: cp -rf --reflink=auto "$1"/* "$overlay_path/$uuid" > /dev/null
        copy_tree(src, tmp)
        checkpoint('init-copied')
        finish_image(tmp, src)
    except OSError:
        remove_tree(tmp)                       # nothing half-made; main() says why
        raise
    # bash: else
    # bash: echo "No directory named '$1' exists"
    # (above: the Python tests for it first)
    return 0


def finish_image(tmp, src):
    """The end of bocker_init, for an image's files already in tmp."""
    # bash: [[ ! -f "$overlay_path/$uuid"/img.source ]] && echo "$1" > "$overlay_path/$uuid"/img.source
    if not os.path.isfile(tmp + '/img.source'):
        write(tmp + '/img.source', src)
    checkpoint('image-source')
    # bash: [[ ! -d "$overlay_path/$uuid"/proc ]] && mkdir "$overlay_path/$uuid"/proc
    if not os.path.isdir(tmp + '/proc'):
        os.mkdir(tmp + '/proc')
    checkpoint('image-proc')
    uuid = claim(tmp, overlay_path, 'img_')
    checkpoint('image-claimed')
    # bash: echo "Created: $uuid"
    say('Created: %s' % uuid)


def claim(tmp, parent, prefix):
    """Give a finished image its id, and on a clash another one.
    bash: uuid="img_$(shuf -i 42002-42254 -n 1)"
    bash: [[ "$(bocker_check "$uuid")" == 0 ]] && bocker_run "$@"
    rename(2) fails when the name is taken, so the claim is atomic.
    diverges (row 16): the bash calls bocker_run on a clash instead of retrying."""
    import random
    ids = list(range(ID_LOW, ID_HIGH + 1))
    random.shuffle(ids)
    for n in ids:
        uuid = '%s%d' % (prefix, n)
        if os.path.lexists('%s/%s' % (parent, uuid)):
            continue
        try:
            os.rename(tmp, '%s/%s' % (parent, uuid))
            return uuid
        except OSError:                        # taken meanwhile: try the next
            if not os.path.lexists('%s/%s' % (parent, uuid)):
                raise
    remove_tree(tmp)
    fail('no free id left: all %d %sN are taken' % (len(ids), prefix))


def bocker_pull(*args):  #HELP Pull an image from Docker Hub:\nBOCKER pull <name> <tag>
    need(args, 2, 'bocker_pull')
    need_modules('jq', 'plumbum')
    import subprocess
    import tarfile
    import uuid as uuidlib
    import jq
    need_store(overlay_path)
    sweep()
    # bash: tmp_uuid="$(uuidgen)" && mkdir /tmp/"$tmp_uuid"
    tmp_uuid = str(uuidlib.uuid4())
    tmp = '/tmp/' + tmp_uuid
    # diverges (row 26): the layers unpack into a directory of their own, so the image
    # holds the image's files only (the bash left manifest.json and each
    # layer's VERSION and json in it); that directory is already in the store,
    # so the image needs no second copy; and both go on failure too.
    # diverges (row 47): it is made first, named after the download's directory,
    # so after a kill the next command removes both (sweep()).
    rootfs = '%s/.pull-%d-%s' % (overlay_path, os.getpid(), tmp_uuid)
    try:
        hidden('pull', '-' + tmp_uuid)
        os.mkdir(tmp, 0o700)
        # bash: download-frozen-image-v2 /tmp/"$tmp_uuid" "$1:$2" > /dev/null
        run(download_frozen_image(), tmp, '%s:%s' % (args[0], args[1]), stdout=subprocess.DEVNULL)
        # bash: rm -rf /tmp/"$tmp_uuid"/repositories
        remove_tree(tmp + '/repositories')
        with open(tmp + '/manifest.json') as f:
            manifest = f.read()
        # bash: for tar in $(jq '.[].Layers[]' --raw-output < /tmp/$tmp_uuid/manifest.json); do
        for tar in jq.compile('.[].Layers[]').input_text(manifest).all():
            # bash: tar xf /tmp/$tmp_uuid/$tar -C /tmp/$tmp_uuid && rm -rf /tmp/$tmp_uuid/$tar
            unpack('%s/%s' % (tmp, tar), rootfs)
            checkpoint('pull-unpacked')
            remove_tree('%s/%s' % (tmp, tar))
        # bash: for config in $(jq '.[].Config' --raw-output < /tmp/$tmp_uuid/manifest.json); do
        for config in jq.compile('.[].Config').input_text(manifest).all():
            # diverges (row 52): the image's config kept first, as the image's img.config
            keep_config('%s/%s' % (tmp, config), rootfs, jq)
            # bash: rm -f /tmp/$tmp_uuid/$config
            remove_tree('%s/%s' % (tmp, config))
        # bash: echo "$1:$2" > /tmp/$tmp_uuid/img.source
        write(rootfs + '/img.source', '%s:%s' % (args[0], args[1]))
        # bash: bocker_init /tmp/$tmp_uuid && rm -rf /tmp/$tmp_uuid
        # (the download goes first: once the image is claimed, nothing is left)
        remove_tree(tmp)
        checkpoint('pull-downloads-removed')
        finish_image(rootfs, '%s:%s' % (args[0], args[1]))
        return 0
    except (ValueError, tarfile.TarError) as e:   # a bad manifest or layer (OSError: main())
        fail('pull %s:%s: %s' % (args[0], args[1], e))
    finally:
        remove_tree(tmp)
        remove_tree(rootfs, mounts=False)


def download_frozen_image():
    """The helper the bash finds on PATH; else the one in compat/ beside us.
    diverges (row 25): the bash needs it on PATH, and no host ships it."""
    import shutil
    return shutil.which('download-frozen-image-v2') or os.path.join(
        os.path.dirname(os.path.realpath(__file__)), 'compat', 'download-frozen-image-v2')


def bocker_rm(*args):  #HELP Delete an image or container:\nBOCKER rm <image_id or container_id>
    need(args, 1, 'bocker_rm')
    uuid = args[0]
    sweep()
    # diverges (row 6): a name that is neither img_ nor ps_ is refused (the bash
    # removed "$overlay_path/$1", whatever $1 was).
    if bocker_check(uuid) == '':
        fail("No image or container named '%s' exists" % q(uuid))
    # diverges (row 48): every name `images` or `ps` can show is taken, and a
    # container whose directory a killed rm removed, by what remains of it.
    # bash: [[ "$(bocker_check "$1")" == 3 ]] && echo "No container named '$1' exists" && exit 1
    if bocker_check(uuid) == '3' and not listed(uuid) and not container_remains(uuid):
        refuse("No container named '%s' exists", uuid)
    # bash: [[ "$(bocker_check "$1")" == 1 ]] && echo "No image named '$1' exists" && exit 1
    if bocker_check(uuid) == '1' and not listed(uuid):
        refuse("No image named '%s' exists", uuid)
    # bash: if [[ -d "$overlay_path/$1" ]];then
    if uuid[:3] == 'img':
        # bash: rm -rf "$overlay_path/$1" && echo "Removed: $1"
        # diverges (row 47): renamed out of the listing first, then removed: a kill
        # leaves a hidden .rm-PID that the next command removes, never half an
        # image listed.
        path = '%s/%s' % (overlay_path, uuid)
        if mounted_inside(path):
            fail('%s still has something mounted inside; not removing it' % path)
        doomed = '%s/.rm-%d' % (overlay_path, os.getpid())
        if os.path.isdir(path) and not os.path.islink(path):
            # it goes with the name: sweep() leaves it; a run mounting it ends that first
            HELD.append(wait_for(path, uuid, 'is being mounted by a run'))
        # diverges (row 51): never from under a container: its root is an
        # overlay with the image itself as its lower layer (row 13)
        users = image_users(uuid)
        if users:
            fail('image %s is in use by %s %s: rm %s first' % (
                uuid, 'container' if len(users) == 1 else 'containers', ', '.join(sorted(users)),
                'it' if len(users) == 1 else 'them'))
        checkpoint('rm-checked')
        try:
            os.rename(path, doomed)
        except FileNotFoundError:              # another rm took it first
            refuse("No image named '%s' exists", uuid)
        checkpoint('rm-renamed')
        remove_tree(doomed, mounts=False)
        checkpoint('rm-removed')
        explain('rm-image', uuid)              # the step, then its echo (--EXPLAIN)
        say('Removed: %s' % uuid)
        return 0
    # bash: else
    need_modules('plumbum')
    c = Container(uuid)
    cdir = c.dir
    explain('rm-found', uuid)
    # diverges (row 46): its lock first: a run still making it (or a commit
    # copying it) ends that before rm goes on; a run then sees its container
    # removed under it.
    if os.path.isdir(cdir) and not os.path.islink(cdir):
        HELD.append(wait_for(cdir, uuid))
    checkpoint('rm-locked')
    # diverges (row 4): a running container is stopped first: every process of it,
    # also one still starting (stop()).
    stop(uuid)
    explain('rm-stop', uuid)
    checkpoint('rm-stopped')
    unpublish(uuid, Container.load(uuid).ports if os.path.isdir(cdir) else True)   # beyond the bash: -p
    # bash: umount "$container_path/$1"/merged && rm -rf "$container_path/$1" && ip netns del netns_"$1" && ip link del dev veth0_"$1" && echo "Removed: $1"
    # diverges (row 3): each part is removed only if it is still there (run already
    # deleted the netns and veth), so Removed: is printed.
    if not os.path.islink(cdir) and mounted(c.merged):   # never through a link
        run('umount', c.merged)
    remove_tree(cdir)
    checkpoint('rm-removed')
    if netns_exists(uuid):
        delete(lambda: netns_exists(uuid), 'ip', 'netns', 'del', c.netns)
        wait_until_gone(c.veth0)               # its peer went with the netns
    delete(lambda: link_exists(c.veth0), 'ip', 'link', 'del', 'dev', c.veth0)
    drop_names(uuid)                           # beyond the bash: its names (by_names())
    explain('rm-parts', uuid)                  # the step, then its echo (--EXPLAIN)
    say('Removed: %s' % uuid)
    checkpoint('rm-said')
    # bash: cgdelete -g "$cgroups:/$1" &> /dev/null
    cgdelete(uuid)
    explain('rm-cgroups', uuid)
    return 0


def cgdelete(uuid):
    """bash: cgdelete -g "$cgroups:/$1" &> /dev/null. diverges (row 5): libcgroup 2.0's
    cgdelete removes only the first controller of a list, so the bash left the
    cpuacct and memory cgroups behind; the others get a call of their own."""
    run('cgdelete', '-g', '%s:/%s' % (controllers(), uuid), check=False, quiet=True)
    for controller in cgroups.split(',')[1:] if not cgroup_v2() else ():
        run('cgdelete', '-g', '%s:/%s' % (controller, uuid), check=False, quiet=True)
    if pids_hierarchy() == 'v1':               # diverges (row 42): its pids cgroup
        run('cgdelete', '-g', 'pids:/' + uuid, check=False, quiet=True)
    freezer = freezer_dir(uuid)                # v1: the one commit made (freeze())
    for _ in range(100) if freezer and not cgroup_v2() else ():
        try:
            os.rmdir(freezer)
            break
        except FileNotFoundError:
            break
        except OSError:                        # a killed process takes a moment to leave
            time.sleep(0.01)


def bocker_images(*args):  #HELP List images:\nBOCKER images
    sweep()
    # bash: echo -e "IMAGE_ID\t\tSOURCE"
    say('IMAGE_ID\t\tSOURCE')
    # bash: for img in "$overlay_path"/img_*; do
    for img in listing(overlay_path, 'img_'):
        # bash: img=$(basename "$img")
        # (listing() gives the names alone)
        # bash: echo -e "$img\t\t$(cat "$overlay_path/$img/img.source")"
        # diverges (row 19): printed as they are, no `echo -e` escapes
        say('%s\t\t%s' % (img, read_or_warn('%s/%s/img.source' % (overlay_path, img))))
    return 0


def listing(path, prefix):
    """bash: for img in "$overlay_path"/img_*; do img=$(basename "$img")
    (and ps=$(basename "$ps") for containers): the names, sorted as a glob."""
    try:
        return sorted(n for n in os.listdir(path) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def read_or_warn(path):
    """$(cat path) in a listing: a missing file leaves the column empty, and
    stderr has cat's own words."""
    try:
        return read(path)
    except OSError as e:
        flush()
        sys.stderr.write('cat: %s: %s\n' % (path, e.strerror))
        return ''


def bocker_ps(*args):  #HELP List containers:\nBOCKER ps
    sweep()
    # bash: echo -e "CONTAINER_ID\t\tCOMMAND"
    say('CONTAINER_ID\t\tCOMMAND')
    # bash: for ps in "$container_path"/ps_*; do
    for ps in listing(container_path, 'ps_'):
        # bash: ps=$(basename "$ps")
        # (listing() gives the names alone)
        # bash: echo -e "$ps\t\t$(cat "$container_path/$ps/$ps.cmd")"
        # diverges (row 19): printed as they are, no `echo -e` escapes
        say('%s\t\t%s' % (ps, read_or_warn(Container(ps).cmd_file)))
    return 0


def bocker_run(*args):  #HELP Create a container:\nBOCKER run <image_id> <command>
    flags, args = run_flags(args)              # beyond the bash: Docker's, before the image id
    need_a_terminal(flags)
    args = image_command(args)                 # beyond the bash: a pulled image's Entrypoint, Cmd
    need(args, 2, 'bocker_run')
    image = args[0]
    # bash: uuid="ps_$(shuf -i 42002-42254 -n 1)"
    # (drawn below by new_container(), once the image and the limits are checked)
    # bash: [[ "$(bocker_check "$1")" == 1 ]] && echo "No image named '$1' exists" && exit 1
    if bocker_check(image) != '0':             # diverges (row 7): nor is ps_N, or foo
        refuse("No image named '%s' exists", image)
    need_modules('plumbum')
    need_store(container_path)
    need_bridge()
    need_libseccomp()
    hold_image(image)                           # diverges (row 51): see hold_image()
    # diverges (rows 21, 23): what run needs is checked before anything is made
    for need_path in ('etc', 'bin/sh', 'bin/mount'):
        if not os.path.lexists('%s/%s/%s' % (overlay_path, image, need_path)):
            fail('image %s has no /%s: it cannot run a container' % (image, need_path))
    for mount_point in ('proc',) + MOUNT_POINTS:   # enter() mounts there: never through a link
        path = '%s/%s/%s' % (overlay_path, image, mount_point)
        if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
            fail("image %s's /%s is not a directory: it cannot run a container"
                 % (image, mount_point))
    flags = wiring(image, flags)               # beyond the bash: -e, -w, -v and the image's config
    # bash: : "${BOCKER_CPU_SHARE:=512}"; : "${BOCKER_MEM_LIMIT:=512}" (checked first here)
    # diverges (row 42): and a limit on the container's processes, as podman's 2048
    limits = {'cpu_share': number('CPU_SHARE'), 'mem_limit': number('MEM_LIMIT'),
              'pids_limit': number('PIDS_LIMIT', '2048')}
    if limits['pids_limit'] < 1:
        fail('BOCKER_PIDS_LIMIT must be 1 or more, not %r' % option('PIDS_LIMIT'))
    name_free(flags.get('name'))               # beyond the bash (--name): taken, refused
    sweep()
    signals = Signals()                         # from here a signal ends run cleanly
    uuid = new_container()
    c = Container(uuid, image=image, **limits, **flags)
    if flags:                                   # beyond the bash: when it started, for ls
        c.started = int(time.time())
    starting(uuid)                              # diverges (row 46): see starting()
    # (ip and mac: address(), in setup())
    # bash: cmd="${@:2}" && ip="$(echo "${uuid: -3}" | sed 's/0//g')" && mac="${uuid: -3:1}:${uuid: -2}"
    cmd = ' '.join(args[1:])
    undo = Undo()
    try:
        setup(c, cmd, undo)
        explain('cgroups', uuid)
        publish(c, undo)                       # beyond the bash: -p, once it has its address
        claim_name(c, undo)                    # beyond the bash (--name): see by_names()
        lock = supervisor_lock(uuid) if wanted(c.detach) else None
    except (Exit, OSError, KeyboardInterrupt):
        undo.all()                             # diverges (row 22): nothing half-made is left
        raise
    if wanted(c.detach):                       # beyond the bash (-d): a supervisor runs it
        return detach(c, cmd, signals, lock)
    # the bash's cgexec ... | tee: execute()
    try:
        code = execute(c, cmd, signals)
    finally:
        unpublish(uuid, c.ports)               # beyond the bash: -p's rules go first
        delete_batch([
            # bash: ip link del dev veth0_"$uuid"
            (lambda: link_exists(c.veth0), ['link', 'del', 'dev', c.veth0]),
            # bash: ip netns del netns_"$uuid"
            (lambda: netns_exists(uuid), ['netns', 'del', c.netns])])
        explain('cleanup', uuid)
    if removed(STARTING[uuid]):                # diverges (row 46): rm stopped it
        fail('container %s was removed while it ran' % uuid, 137)
    if flags:                                  # beyond the bash: its end, for ls
        return note_end(c, code)
    return code


STARTING = {}                                   # uuid: its directory, open (starting())


def starting(uuid):
    """A new container's directory, locked (shared) until its command has
    started (started()): an rm waits until then, so it finds every process
    the run started (stop()); an rm that took the lock first has removed it."""
    try:
        fd = lock(Container(uuid).dir, exclusive=False)
    except FileNotFoundError:
        fd = None
    if fd is None or os.fstat(fd).st_nlink == 0:
        fail('container %s was removed while it started' % uuid, 137)
    STARTING[uuid] = fd


def started(uuid):
    """The container's command has started: an rm may go on (starting())."""
    import fcntl
    fcntl.flock(STARTING[uuid], fcntl.LOCK_UN)


def netns_exists(uuid):
    """Does `ip netns` know netns_UUID? ip-netns(8) names a namespace by a file
    it bind-mounts in /run/netns, so this is ip's own view, in our mount
    namespace, as `ip netns list` reads it."""
    return os.path.exists('/run/netns/netns_' + uuid)


def delete(exists, *argv):
    """Run a command that deletes something, if it is there. An `rm` and the
    `run` it stops both clean up: a failure because the other one deleted it
    first is no failure."""
    if not exists():
        return
    code, _out, err = command(argv).run(retcode=None)
    if code and exists():
        sys.stderr.write(err)
        raise Exit(code)


def delete_batch(parts):
    """delete() for several `ip ARGS` ([(exists, ARGS)]), in one `ip -batch`
    process (-force: on past a failed line), traced as the bash runs them."""
    todo = [(exists, args) for exists, args in parts if exists()]
    if not todo:
        return
    cmd = command(['ip', '-force', '-batch', '-'], shown=[['ip'] + args for _, args in todo])
    code, _out, err = (cmd << ''.join(' '.join(args) + '\n' for _, args in todo)).run(retcode=None)
    if code and any(exists() for exists, _ in todo):
        sys.stderr.write(err)
        raise Exit(code)


def number(key, default='512'):
    """BOCKER_KEY as bash arithmetic reads an integer literal (010 is octal).
    diverges (row 11): checked before anything is made."""
    import re
    value = option(key, default)
    m = re.fullmatch(r'(0[xX][0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*)', value)
    if not m:
        fail('BOCKER_%s must be a whole number, not %r' % (key, value))
    return int(value, 16 if m.group(1) else 8 if m.group(2) else 10)


def new_container():
    """bash: uuid="ps_$(shuf -i 42002-42254 -n 1)"
    bash: [[ "$(bocker_check "$uuid")" == 2 ]] && echo "UUID conflict, retrying..." && bocker_run "$@" && return
    mkdir(2) fails when the name is taken, so the claim is atomic.
    diverges (row 16): a full id space is an error, not endless retries."""
    import random
    tried = set()
    while len(tried) < ID_HIGH - ID_LOW + 1:
        n = random.randint(ID_LOW, ID_HIGH)
        uuid = 'ps_%d' % n
        try:
            os.mkdir(Container(uuid).dir)
            return uuid
        except FileExistsError:
            if n not in tried:
                say('UUID conflict, retrying...')
            tried.add(n)
    fail('no free id left: all %d ps_N are taken' % len(tried))


def setup(c, cmd, undo):
    """Everything bocker_run does before the command runs, for Container c.
    Each step that makes something pushes its undo, so a failure half-way
    leaves nothing."""
    uuid, image, cdir = c.id, c.image, c.dir
    undo.push('remove ' + cdir, lambda: remove_tree(cdir))
    ip_done = network(c, undo)                 # its veth pair and netns
    try:
        # bash: mkdir -p "$container_path/$uuid"/{lower,upper,work,merged} && cp -rf --reflink=auto "$overlay_path/$1"/* "$container_path/$uuid"/lower > /dev/null && \
        for sub in (c.lower, c.upper, c.work, c.merged):
            os.mkdir(sub)
        # bash: cp -rf --reflink=auto "$overlay_path/$1"/* "$container_path/$uuid"/lower > /dev/null
        # diverges (row 13): nothing is copied: the image directory itself is
        # overlayfs's bottom lower layer, shared read-only by every container
        # made from it, as Docker and podman stack an image's layers; run's
        # cost is the same for busybox and for a 1 GB image. lower/ is this
        # container's own lower layer above the image (what Docker calls the
        # init layer): empty but for the mount points below. A plain directory,
        # not a bind mount of the image: the bash's rm unmounts merged only,
        # then `rm -rf`s the container's directory, which would go into it.
        # diverges (rows 38, 45): /dev and /sys get filesystems of their own in
        # the container (enter()); an image without them (a pulled image, the
        # test image) gets the mount points here, in this container's lower
        # layer: never in the image, nor in upper (so never in a commit). The
        # container's directory notes each (POINT.mountpoint), so commit leaves
        # out those mount points, never a /dev or /sys the image had, even empty.
        for point in MOUNT_POINTS:
            if not os.path.lexists('%s/%s/%s' % (overlay_path, image, point)):
                os.mkdir('%s/%s' % (c.lower, point), 0o755)
                write(c.path(MOUNT_POINT_NOTE % point),
                      'run made lower/%s: the image has none' % point)
    finally:
        ip_done()
    # overlayfs: reads come from upper, else the lower layers (lower/, then the
    # image), top first; writes go to upper (a copy up); work is overlayfs's
    # scratch space; merged is the view the container gets as its root.
    # bash: mount -t overlay overlay \
    #         -o lowerdir="$container_path/$uuid"/lower,upperdir="$container_path/$uuid"/upper,workdir="$container_path/$uuid"/work \
    #         "$container_path/$uuid"/merged
    run('mount', '-t', 'overlay', 'overlay', '-o', overlay_options(
        [c.lower, '%s/%s' % (overlay_path, image)], c.upper, c.work), c.merged)
    undo.push('umount ' + c.merged, lambda: run('umount', c.merged, check=False))
    release_image(image)                       # mounted: an rm of the image now sees it
    explain('overlay', uuid, image)
    # bash: echo 'nameserver 114.114.114.114' > "$container_path/$uuid"/merged/etc/resolv.conf
    write_inside(c.merged, 'etc/resolv.conf', 'nameserver 114.114.114.114')
    # bash: echo "$cmd" > "$container_path/$uuid/$uuid.cmd"
    write(c.cmd_file, cmd)
    # diverges (row 50): and beside it, what run knows of it (Container.save())
    c.save()
    explain('files', uuid)
    # A cgroup per container in each of the cpu, cpuacct and memory hierarchies.
    # bash: cgcreate -g "$cgroups:/$uuid"
    # diverges (row 42): and one in the pids hierarchy (cgroup_args()).
    run('cgcreate', *cgroup_args('/' + uuid))
    undo.push('cgdelete ' + uuid, lambda: cgdelete(uuid))
    # pids.max: past it fork(2) and clone(2) fail with EAGAIN in the cgroup
    # (the kernel's cgroup-v1/pids.rst), so a fork bomb stops there.
    cpu_share, mem_limit = c.cpu_share, c.mem_limit
    pids = ['pids.max=%d' % c.pids_limit] if pids_hierarchy() else []
    if cgroup_v2():
        # diverges (row 32): a cgroup v2 host has one hierarchy and other knobs (the bash
        # cannot run there): cpu.weight (1-10000, 100 by default) converted from
        # the shares as runc and crun do, and memory.max.
        shares = min(max(cpu_share, 2), 262144)  # as the v1 kernel clamps them
        cgset(uuid, 'cpu.weight=%d' % (1 + ((shares - 2) * 9999) // 262142),
              'memory.max=%d' % (mem_limit * 1000000), *pids)
        return
    # cpu.shares: a relative weight when the CPU is contended (1024 is a full share),
    # the value as given (checked by number(): the kernel reads 0x and 0 as it does).
    # bash: : "${BOCKER_CPU_SHARE:=512}" && cgset -r cpu.shares="$BOCKER_CPU_SHARE" "$uuid"
    cgset(uuid, 'cpu.shares=%s' % option('CPU_SHARE', '512'),
          # memory.limit_in_bytes: past it the kernel reclaims, then OOM-kills in the cgroup.
          # bash: : "${BOCKER_MEM_LIMIT:=512}" && cgset -r memory.limit_in_bytes="$((BOCKER_MEM_LIMIT * 1000000))" "$uuid"
          'memory.limit_in_bytes=%d' % (mem_limit * 1000000), *pids)


def network(c, undo):
    """The container's network (setup(); start() makes it again): its veth
    pair, its netns, its address. A function that waits for the last `ip`
    is returned (see run())."""
    uuid = c.id
    ip, mac = address(uuid)
    veth0, veth1, netns = c.veth0, c.veth1, c.netns
    # A veth pair is a cable with two ends: veth0 stays on the host and joins
    # bridge br1; veth1 moves into the container's own network namespace.
    # (Each group of `ip` commands runs in one `ip -batch` process; the trace
    # still shows each command as the bash runs it.)
    undo.push('ip link del ' + veth0, lambda: delete(lambda: link_exists(veth0), 'ip', 'link', 'del', 'dev', veth0))
    undo.push('ip netns del ' + netns, lambda: delete(lambda: netns_exists(uuid), 'ip', 'netns', 'del', netns))
    ip_batch(None, [
        # bash: ip link add dev veth0_"$uuid" type veth peer name veth1_"$uuid"
        ['link', 'add', 'dev', veth0, 'type', 'veth', 'peer', 'name', veth1],
        # bash: ip link set dev veth0_"$uuid" up
        ['link', 'set', 'dev', veth0, 'up'],
        # bash: ip link set veth0_"$uuid" master br1
        ['link', 'set', veth0, 'master', 'br1'],
        # bash: ip netns add netns_"$uuid"
        ['netns', 'add', netns],
        # bash: ip link set veth1_"$uuid" netns netns_"$uuid"
        ['link', 'set', veth1, 'netns', netns]])
    explain('veth', uuid)
    # (while this ip works, the container's directories are made: setup())
    ip_done = ip_batch(netns, [
        # bash: ip netns exec netns_"$uuid" ip link set dev lo up
        ['link', 'set', 'dev', 'lo', 'up'],
        # bash: ip netns exec netns_"$uuid" ip link set veth1_"$uuid" address 02:42:ac:11:00"$mac"
        ['link', 'set', veth1, 'address', '02:42:ac:11:00' + mac],
        # bash: ip netns exec netns_"$uuid" ip addr add 172.18.0."$ip"/24 dev veth1_"$uuid"
        ['addr', 'add', '172.18.0.%s/24' % ip, 'dev', veth1],
        # bash: ip netns exec netns_"$uuid" ip link set dev veth1_"$uuid" up
        ['link', 'set', 'dev', veth1, 'up'],
        # bash: ip netns exec netns_"$uuid" ip route add default via 172.18.0.1
        ['route', 'add', 'default', 'via', '172.18.0.1']], wait=False)
    explain('netns', uuid, ip_done)            # (which waits for this ip to read it back)
    return ip_done


def cgset(uuid, *knobs):
    """`cgset -r KNOB UUID` for each knob, in one cgset process (it takes
    several -r), traced as one line each, as the bash runs them."""
    run('cgset', *[arg for knob in knobs for arg in ('-r', knob)], uuid,
        shown=[['cgset', '-r', knob, uuid] for knob in knobs])


def ip_batch(netns, commands, wait=True):
    """Run several `ip` commands in one process (`ip -batch -`, in the network
    namespace netns with `ip -n` when given), tracing each as the bash runs it:
    `ip ARGS`, or `ip netns exec NETNS ip ARGS`. wait=False: see run()."""
    prefix = ['ip'] if netns is None else ['ip', 'netns', 'exec', netns, 'ip']
    return run('ip', *(['-n', netns] if netns else []), '-batch', '-', wait=wait,
        stdin=''.join(' '.join(args) + '\n' for args in commands),
        shown=[prefix + args for args in commands])


def address(uuid):
    """bash: ip="$(echo "${uuid: -3}" | sed 's/0//g')" && mac="${uuid: -3:1}:${uuid: -2}"
    diverges (row 2): the address is the number the last three digits make (42002-42254
    gives .2-.254, each once); sed 's/0//g' also dropped inner zeros, so
    ps_42101 and ps_42110 shared .11 and ps_42100 took the bridge's .1."""
    return str(int(uuid[-3:])), '%s:%s' % (uuid[-3:-2], uuid[-2:])


def execute(c, cmd, signals):
    """Run the container's command, its output shown and logged (bash's tee).
    Its status: 0, as the bash's `|| true`, or 128+N after signal N."""
    import subprocess
    uuid = c.id
    # cgexec starts it in the cgroups; ip netns exec in the network namespace;
    # unshare -f (fork) -m (mount) -u (hostname) -i (ipc) -p (pid) gives it the
    # rest, pid 1 of its own pid namespace; enter() mounts its /proc, /dev and
    # /sys, pivots into merged and confines the command (see enter()).
    # bash: cgexec -g "$cgroups:$uuid" \
    #         ip netns exec netns_"$uuid" \
    #         unshare -fmuip --mount-proc \
    #         chroot "$container_path/$uuid"/merged \
    #         /bin/sh -c "/bin/mount -t proc proc /proc && $cmd" \
    argv = ['cgexec', *cgroup_args(uuid),
            'ip', 'netns', 'exec', c.netns,
            'unshare', '-fmuip', '--mount-proc',
            *enter_argv(c.merged), '/bin/sh', '-c', cmd]
    logged = c.log
    # before the command: it never runs unlogged (start: the log goes on)
    log = open(logged, 'ab' if getattr(c, 'again', False) else 'wb')
    # diverges (row 36): a signal to the run is passed on to the container's pid 1,
    # which gets a grace to end, then is killed; see Signals.
    chain = []
    signals.started(lambda: [int(pid) for pid in [container_pid(uuid)] if pid],
                    lambda sig: kill_container(uuid, chain, sig), uuid)
    # beyond the bash (-t): the container's own terminal, its master relayed (Relay)
    relay = Relay(wanted(c.interactive)) if wanted(c.tty) else None
    with log:
        try:
            proc = command(argv, shown=[argv, ['tee', logged]]).popen(
                stdin=relay.theirs.fileno() if relay else None,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                preexec_fn=tied_to_run)        # diverges (row 54): see tied_to_run()
            chain.append(proc)
            execed(proc.pid)                   # rm can tell it is the container's
            started(uuid)
            if relay:
                relay.started()
            explain('container', uuid, proc)
            # bash: 2>&1 | tee "$container_path/$uuid/$uuid.log" || true
            tee(proc, log, signals, relay)
        finally:
            if relay:
                relay.close()
    c.status = proc.returncode                 # what a Docker-style run returns (issue 28)
    return signals.code or 0


def tee(proc, log, signals, relay=None):
    """tee(1): the container's output to our stdout and to its log, until it
    ends; it ends when its pid 1 does (pid_namespaces(7)). Waits in select(2)
    on the output, the process (a pidfd: pidfd_open(2)) and signals."""
    out = sys.stdout.buffer
    fd, pidfd = proc.stdout.fileno(), os.pidfd_open(proc.pid)
    reading, shown = True, [True]

    def show(chunk):
        try:
            if shown[0]:
                out.write(chunk)
                out.flush()
        except OSError:                        # the terminal is gone (SIGHUP): the log goes on
            shown[0] = False
        log.write(chunk)
        log.flush()
    # beyond the bash (-t): also the container's terminal, while it lasts (Relay)
    while reading or proc.poll() is None:
        ready = wait_once([fd if reading else pidfd], signals, relay, show)
        if fd not in ready or not reading:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            reading = False
            continue
        try:
            if shown[0]:
                out.write(chunk)
                out.flush()
        except BrokenPipeError:                # `| head`: tee dies, the writer gets SIGPIPE
            proc.stdout.close()
            reading = False
            continue
        except OSError:                        # the terminal is gone (SIGHUP): the log goes on
            shown[0] = False
        log.write(chunk)
        log.flush()
    if relay:                                  # what the container's terminal still holds
        relay.drain(show)
    os.close(pidfd)


def enter_argv(root):
    """In place of the bash's `chroot ROOT`: this file's enter(), which makes
    the container's /proc and /dev, pivots into ROOT and confines the command.
    diverges (row 29): in the bash a container's root kept every capability
    (it could mount filesystems, write /proc/sysrq-trigger), and its /bin/sh
    mounted /proc itself, which needs CAP_SYS_ADMIN.
    bocker.py is imported, as the shim does: from its cached bytecode, not
    compiled again inside the container's memory cgroup (-I: no PYTHON*
    variables, no working directory on the module path)."""
    return python_step('__enter__', root)


def join_argv(pid):
    """exec's step in place of the bash's `chroot ROOT`: this file's join(),
    which joins pid's mount namespace and with it the container's root."""
    return python_step('__join__', pid)


def python_step(step, arg):
    """`python -I -S -c ENTER DIR STEP ARG`: bocker.py's STEP, imported from DIR."""
    return [sys.executable, '-I', '-S', '-c', ENTER, os.path.dirname(os.path.realpath(__file__)),
            step, arg]


ENTER = 'import sys;sys.path[:0]=sys.argv[1:2];import bocker;sys.exit(bocker.main(sys.argv[1:]))'


def bocker_exec(*args):  #HELP Execute a command in a running container:\nBOCKER exec <container_id> <command>
    import re
    flags, args = run_flags(args, EXEC_FLAGS)  # beyond the bash: Docker's -t, -i first
    need_a_terminal(flags)
    need(args, 2, 'bocker_exec')
    uuid = args[0]
    # bash: [[ "$(bocker_check "$1")" == 3 ]] && echo "No container named '$1' exists" && exit 1
    need_container(uuid)                       # diverges (row 7): nor is img_N, or foo
    need_modules('plumbum')
    need_libseccomp()
    # bash: cid="$(ps o ppid,pid | grep "^$(ps o pid,cmd | grep -E "^\ *[0-9]+ unshare.*$1" | awk '{print $1}')" | awk '{print $2}')"
    cid = container_pid(uuid)
    # bash: [[ ! "$cid" =~ ^\ *[0-9]+$ ]] && echo "Container '$1' exists but is not running" && exit 1
    if not re.fullmatch(r' *[0-9]+', cid):
        refuse("Container '%s' exists but is not running", uuid)
    explain('exec-found', uuid, cid)
    explain('exec-nsenter', uuid, cid)
    plumbum_local().env[JOIN_VAR] = uuid       # join() reads its record: record_of_exec()
    # nsenter joins the namespaces of that process: -u uts, -i ipc, -n net,
    # -p pid (nsenter(1), setns(2)); join() then joins its mount namespace,
    # and with it the container's root.
    # bash: nsenter -t "$cid" -m -u -i -n -p chroot "$container_path/$1"/merged "${@:2}"
    # diverges (row 37): cgexec first puts it in the container's cgroups, so what
    # exec starts is held to the container's limits (the bash's escaped them).
    # diverges (row 41): the mount namespace is joined by join(), not by nsenter's
    # -m: after pivot_root the host's python is not in the container's root.
    # beyond the bash (-t, -i): a terminal of the container's (exec_terminal())
    return spawn_exec(['cgexec', *cgroup_args(uuid),
                       'nsenter', '-t', cid, '-u', '-i', '-n', '-p',
                       *exec_terminal(join_argv(cid), flags), *args[1:]],
                      Relay(wanted(flags.get('interactive'))) if flags.get('tty') else None)


def bocker_logs(*args):  #HELP View logs from a container:\nBOCKER logs <container_id>
    if args[:1] == ('-f',):                    # beyond the bash: follow it (follow_logs())
        return follow_logs(*args[1:])
    need(args, 1, 'bocker_logs')
    uuid = args[0]
    # bash: [[ "$(bocker_check "$1")" == 3 ]] && echo "No container named '$1' exists" && exit 1
    need_container(uuid)                       # diverges (row 7): nor is img_N, or foo
    # bash: cat "$container_path/$1/$1.log"
    flush()
    with open(Container(uuid).log, 'rb') as f:
        sys.stdout.buffer.write(f.read())
    return 0


def bocker_commit(*args):  #HELP Commit a container to an image:\nBOCKER commit <container_id> <image_id>
    import re
    need(args, 2, 'bocker_commit')
    uuid, image = args[0], args[1]
    sweep()
    # bash: [[ "$(bocker_check "$1")" == 3 ]] && echo "No container named '$1' exists" && exit 1
    need_container(uuid)                       # diverges (row 7): nor is img_N, or foo
    # bash: [[ "$(bocker_check "$2")" == 0 ]] && echo "Image named '$2' exists" && exit 1
    if bocker_check(image) == '0':
        refuse("Image named '%s' exists", image)
    if not well_formed(image) or not image.startswith('img_'):   # diverges (row 8): see well_formed
        fail("'%s' is not a valid image name: use img_ and digits" % q(image))
    c = Container(uuid)
    merged = c.merged
    # diverges (row 46): an rm of the container waits until the copy is made;
    # one that took it first has removed it: then as if it had gone before.
    try:
        held = lock(c.dir, exclusive=False)
    except FileNotFoundError:
        held = None
    if held is None or os.fstat(held).st_nlink == 0:
        refuse("No container named '%s' exists", uuid)
    HELD.append(held)
    # diverges (row 33): a container whose root is not mounted (after a reboot, or an
    # umount by hand) is refused; the bash's cp found an empty merged/* and
    # left an empty image behind.
    if not mounted(merged):
        fail("container %s has no mounted root (%s)" % (uuid, merged))
    # diverges (row 17): copied under a hidden name and renamed into place, so a
    # half-made image is never listed and of two commits one wins. The name
    # says which container it froze, for the next command if we are killed.
    tmp = '%s/.commit-%d-%s' % (overlay_path, os.getpid(), uuid)
    try:
        # bash: mkdir "$overlay_path/$2" && cp -rf --reflink=auto "$container_path/$1"/merged/* "$overlay_path/$2" && sed -i "s/:.*$/:$(date +%Y%m%d-%H%M%S)/g" "$overlay_path/$2"/img.source
        hidden('commit', '-' + uuid)
        checkpoint('commit-mkdir')
        frozen(uuid, lambda: copy_tree(merged, tmp))
        checkpoint('commit-copied')
        # /dev and /sys are the container's own (enter()); an empty one here is
        # the mount point run gave it (rows 38, 45), not a part of the image,
        # where run noted it made it. An image's own stays, empty or not.
        for point in MOUNT_POINTS:
            path = '%s/%s' % (tmp, point)
            noted = c.path(MOUNT_POINT_NOTE % point)
            if os.path.exists(noted) and os.path.isdir(path) and not os.path.islink(path) \
                    and not os.listdir(path):
                os.rmdir(path)
        # bash: sed -i "s/:.*$/:$(date +%Y%m%d-%H%M%S)/g" "$overlay_path/$2"/img.source
        stamp = time.strftime('%Y%m%d-%H%M%S')
        # diverges (row 30): only a regular img.source is rewritten; one the container
        # made a symlink is removed, never followed (sed -i read the target).
        source = tmp + '/img.source'
        if os.path.islink(source):
            os.unlink(source)
        elif os.path.isfile(source):
            lines = read(source).split('\n')
            write(source, '\n'.join(re.sub(r':.*$', ':' + stamp, l) for l in lines))
        checkpoint('commit-source')
        os.rename(tmp, '%s/%s' % (overlay_path, image))
        checkpoint('commit-renamed')
    except OSError:
        remove_tree(tmp)                       # nothing half-made; main() says why
        if os.path.isdir('%s/%s' % (overlay_path, image)):
            refuse("Image named '%s' exists", image)
        raise
    # bash: echo "Created: $2"
    say('Created: %s' % image)
    return 0


def bocker_help(prog):  #HELP Display this message:\nBOCKER help
    # bash: sed -n "s/^.*#HELP\\s//p;" < "$1" | sed "s/\\\\n/\n\t/g;s/$/\n/;s!BOCKER!${1/!/\\!}!g"
    # diverges (row 20): the program's name put in literally (sed mangled & and \)
    # diverges (row 53): and bocker.py's own commands after the bash's, marked (beyond the bash)
    sys.stdout.write(''.join(text.replace('BOCKER', prog) + '\n\n' for text in _help_lines().values()))
    return 0


def _help_lines():
    """{function name: its `#HELP` text with \\n made a newline and a tab}.
    bash: sed -n "s/^.*#HELP\\s//p;" (the last `#HELP` followed by a blank).
    The `def` lines that carry one are bocker's list of commands (commands())."""
    found = {}
    with open(os.path.abspath(__file__), encoding='utf-8') as f:
        text = f.read()
    at = text.find('#HELP')
    while at >= 0:                             # str.find: no loop over every line
        start, end = text.rfind('\n', 0, at) + 1, (text.find('\n', at) + 1 or len(text) + 1) - 1
        line = text[start:end]
        mark = line.rfind('#HELP')
        while mark >= 0 and not line[mark + 5:mark + 6].isspace():
            mark = line.rfind('#HELP', 0, mark)
        if mark >= 0 and line.startswith('def '):
            found[line[4:line.index('(')]] = line[mark + 6:].replace('\\n', '\n\t')
        at = text.find('#HELP', end)
    return found


def commands():
    """The commands bocker knows, in help's order: each `def bocker_NAME` with
    a `#HELP` line but help itself (which the shim answers, and main() for
    no command or an unknown one). The one list: dispatch() runs them, and
    bocker.sh hands every other word to bocker.py, so a command added here
    (with its #HELP line) reaches help, the shim and dispatch at once."""
    return [name[len('bocker_'):] for name in _help_lines()
            if name.startswith('bocker_') and name != 'bocker_help']


# --- Beyond the bash: commands the bash lacks -------------------------------------
# Each is a `def bocker_NAME(*args):  #HELP WHAT (beyond the bash):\nBOCKER NAME ARGS`
# here, after the bash's own: its #HELP line puts it in help, in the shim and in
# dispatch() at once (commands()), and "(beyond the bash)" marks it so in help.
# docs/HACKING.md has the checklist for adding one.

def bocker_stop(*args):  #HELP Stop a running container, which stays (beyond the bash):\nBOCKER stop [-t <seconds>] <container_id or name>
    """SIGTERM to the container's pid 1, the grace (-t, else --STOP_TIMEOUT,
    10 s, as `docker stop`), then SIGKILL to every process of it; then the
    end a run has (veth and netns deleted; directory, mount, cgroups, log
    kept). A container that does not run: its id, status 0, as Docker's."""
    import signal
    grace = number('STOP_TIMEOUT', '10')
    args = list(args)
    if args[:1] == ['-t']:
        if len(args) < 2 or not args[1].isdigit():
            fail('stop: -t needs a number of seconds')
        grace, args = int(args[1]), args[2:]
    need(args, 1, 'bocker_stop')
    uuid = args[0]
    need_container(uuid)
    need_modules('plumbum')
    # a run or start still starting it: until it has started (not held: a run
    # that finds its directory's lock taken at its end thinks rm took it)
    os.close(wait_for(Container(uuid).dir, uuid))
    checkpoint('stop-waited')
    pid = container_pid(uuid)
    if pid:
        try:
            os.kill(int(pid), signal.SIGTERM)  # pid 1 gets it only if it handles it (pid_namespaces(7))
        except ProcessLookupError:
            pass
        checkpoint('stop-signalled')
        deadline = time.monotonic() + grace
        while container_pid(uuid) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop(uuid)                             # SIGKILL to what is left, and wait for its run
        checkpoint('stop-killed')
    if pid or supervised(uuid) or netns_exists(uuid):
        end_of_container(uuid)
    say(uuid)
    return 0


def bocker_start(*args):  #HELP Start a stopped container again, detached (beyond the bash):\nBOCKER start <container_id or name>
    """Its command again, in its own root (its upper layer kept), with its
    address, limits and log (appended to), under a supervisor as `run -d`."""
    need(args, 1, 'bocker_start')
    uuid = args[0]
    need_container(uuid)
    need_modules('plumbum')
    need_bridge()
    need_libseccomp()
    lock = supervisor_lock(uuid)
    if lock is None or container_pid(uuid):
        fail('container %s is running' % uuid)
    c = Container.load(uuid)
    c.detach, c.again = True, True
    for field in ('cpu_share', 'mem_limit', 'pids_limit'):
        if getattr(c, field) is not None:
            setattr(c, field, int(getattr(c, field)))
    cmd = read(c.cmd_file)
    signals = Signals()
    starting(uuid)                             # an rm waits until it has started (starting())
    undo = Undo()
    try:
        restart(c, undo)
    except (Exit, OSError, KeyboardInterrupt):
        undo.all()
        os.close(lock)
        raise
    return detach(c, cmd, signals, lock)


def bocker_ls(*args):  #HELP List containers with their name, state and address (beyond the bash):\nBOCKER ls
    """What `docker ps -a` shows: every container, running or not. (The
    bash's `ps` takes any arguments and ignores them, so `ps -a` already
    means plain `ps`, and stays so.)"""
    sweep()
    rows = [['CONTAINER_ID', 'NAME', 'STATUS', 'ADDRESS', 'COMMAND']]
    rows += [status_line(ps) for ps in listing(container_path, 'ps_')]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        say('  '.join(cell.ljust(width) for cell, width in zip(row, widths)) + '  ' + row[4])
    return 0


# run's flags, as Docker spells them, between `run` and the image id, where the
# bash takes the first word as an image id and refuses it ("No image named '-d'
# exists"): so no invocation that works with the bash means anything else here.
# {flag: (the Container field it sets, how its value is read: None for a flag
# that takes no value)}; docs/HACKING.md has the checklist for adding one.
RUN_FLAGS = {}
RUN_LISTS = set()                              # the fields of repeatable flags: a list each


def run_flags(args, known=None):
    """The flags before run's image id: ({Container field: value}, the rest
    of args). A flag given twice keeps the last, but one whose field is in
    RUN_LISTS, which collects each value in a list; one that takes a value
    takes the next word (or `--flag=VALUE`). Bare one-letter flags combine,
    as Docker's: `-it` is `-i -t`. known: another command's table (exec's)."""
    known = RUN_FLAGS if known is None else known
    fields, args = {}, list(args)
    while args and (args[0] in known or combined(args[0], known) or
                    args[0].partition('=')[0] in known and args[0].startswith('--')):
        if combined(args[0], known):
            args[:1] = ['-' + letter for letter in args[0][1:]]
        if '=' in args[0] and args[0].startswith('--'):
            args[:1] = args[0].split('=', 1)
        flag = args.pop(0)
        field, parse = known[flag]
        if parse is None:
            fields[field] = True
        elif not args:
            fail('run: %s needs a value' % flag)
        elif field in RUN_LISTS:
            fields.setdefault(field, []).append(parse(args.pop(0)))
        else:
            fields[field] = parse(args.pop(0))
    return fields, args


def combined(word, known):
    """Is word bare one-letter flags written as one (`-it`, `-dit`)?"""
    return word[:1] == '-' and len(word) > 2 and word[1] != '-' and \
        all(known.get('-' + letter, (0, 0))[1] is None for letter in word[1:])


# --- The dispatcher --------------------------------------------------------------

def options(argv):
    """bash: [[ $# -gt 0 ]] && while [ "${1:0:2}" == '--' ]; do OPTION=${1:2}; [[ $OPTION =~ = ]] && declare "BOCKER_${OPTION/=*/}=${OPTION/*=/}" || declare "BOCKER_${OPTION}=x"; shift; done"""
    while argv and argv[0][:2] == '--':
        import re                              # only then: images, ps, logs need no re
        opt = argv.pop(0)[2:]
        key, value = (opt.split('=', 1)[0], opt.rsplit('=', 1)[1]) if '=' in opt else (opt, 'x')
        if not re.fullmatch(r'\w*', key, re.ASCII):   # diverges (row 10): one error
            fail("invalid option '--%s': BOCKER_%s is not a valid name" % (opt, key))
        OPTIONS[key] = value
    return argv


def main(argv):
    global PROG
    # "$0": the shim passes the name it was called by.
    PROG = os.environ.get('BOCKER_PROG') or argv[0]
    try:
        try:
            return dispatch(argv)
        except OSError as e:                   # our own errors: one line, status 1
            fail(os_error(e, argv))
    except Exit as e:
        return e.code
    except KeyboardInterrupt:
        return 130
    finally:
        flush()


def dispatch(argv):
    """The bash's main: the options, then the command (or enter(), the step
    into a container that enter_argv() starts)."""
    if argv[1:2] == ['__enter__'] and len(argv) > 3:
        return enter(*argv[2:])
    if argv[1:2] == ['__join__'] and len(argv) > 3:
        return join(*argv[2:])
    args = options(list(argv[1:]))
    # bash: [[ -z "${1-}" ]] && bocker_help "$0" && exit 1
    if not args or args[0] == '':          # diverges (row 10): also after --OPT alone
        bocker_help(PROG)
        return 1
    # bash: case $1 in
    if args[0] in commands():
        args = by_names(args)                  # beyond the bash: a container's name for its id
        # bash: pull|init|rm|images|ps|run|exec|logs|commit) bocker_"$1" "${@:2}" ;;
        return globals()['bocker_' + args[0]](*args[1:])
    # bash: *) bocker_help "$0" ;;
    bocker_help(PROG)
    return 0


def os_error(e, argv):
    """An OSError as one line: the command, the path, what the kernel said
    (errno(3)). Each command leaves nothing half-made before it gets here."""
    words = [w.strip('_') for w in argv[1:] if not w.startswith('--')][:1]   # __enter__: enter
    for name in (e.filename, e.filename2):
        if name is not None:
            words.append(q(os.fsdecode(name)))
    return ': '.join(words + [e.strerror or str(e)])


# --- A container's record: its paths, and what run knew of it --------------------

class Container:
    """A container by its id: the bash's layout of it, containers/ps_N/ with
    lower, upper, work and merged (the overlay), ps_N.cmd and ps_N.log; and
    what run knew of it (the FIELDS), which run saves beside them in
    ps_N.state for the commands that come after it (save(), load()). A
    container the bash made has no state file: load() knows its paths only.
    The state file is `key=value` lines, as os-release(5): `cat` reads it;
    a list (LISTS) is one line, its value a JSON array (json(7))."""
    FIELDS = ('image', 'cpu_share', 'mem_limit', 'pids_limit',
              # issue 29 (Wiring a container to its host): -e, -w, -v, -p, the image's User
              'env', 'workdir', 'volumes', 'ports', 'user',
              # issue 28 (A terminal of its own, Beyond the bash): run's flags -t,
              # -i, -d and --name (a bare flag is saved as True), and what a
              # detached run's supervisor notes: its pid, when the command
              # started and ended (seconds since the epoch), its status
              'tty', 'interactive', 'detach', 'name', 'supervisor', 'started', 'finished', 'status')
    LISTS = ('env', 'volumes', 'ports', 'user')

    def __init__(self, uuid, **fields):
        self.id = uuid
        self.dir = '%s/%s' % (container_path, uuid)
        for field in self.FIELDS:
            setattr(self, field, fields.get(field))

    def path(self, name):
        return '%s/%s' % (self.dir, name)

    lower = property(lambda self: self.path('lower'))     # its own layer above the image
    upper = property(lambda self: self.path('upper'))     # what the container wrote
    work = property(lambda self: self.path('work'))       # overlayfs's scratch space
    merged = property(lambda self: self.path('merged'))   # the layers as one: its root
    cmd_file = property(lambda self: self.path(self.id + '.cmd'))
    log = property(lambda self: self.path(self.id + '.log'))
    state = property(lambda self: self.path(self.id + '.state'))
    netns = property(lambda self: 'netns_' + self.id)     # ip netns's name for its netns
    veth0 = property(lambda self: 'veth0_' + self.id)     # the veth end on the host
    veth1 = property(lambda self: 'veth1_' + self.id)     # the end in its netns

    def save(self):
        """Write ps_N.state: one `key=value` line per field that has a value
        (a newline or backslash in a value escaped as \\n and \\\\)."""
        lines = ['# what bocker.py run knew of %s (its command: %s.cmd)' % (self.id, self.id)]
        for field in self.FIELDS:
            value = getattr(self, field)
            if field in self.LISTS and value is not None:
                import json
                value = json.dumps(value)
            if value is not None:
                lines.append('%s=%s' % (field, str(value).replace('\\', '\\\\').replace('\n', '\\n')))
        write(self.state, '\n'.join(lines))

    @classmethod
    def load(cls, uuid):
        """The record of container uuid, from its state file if it has one."""
        fields = {}
        try:
            text = read(Container(uuid).state)
        except FileNotFoundError:
            text = ''
        for line in text.split('\n'):
            key, eq, value = line.partition('=')
            if eq and key in cls.FIELDS:
                fields[key] = '\\'.join(part.replace('\\n', '\n') for part in value.split('\\\\'))
                if key in cls.LISTS:
                    import json
                    fields[key] = json.loads(fields[key])
        return cls(uuid, **fields)


class Undo:
    """What a run has made so far, each part named with its undo: a failure
    half-way takes them back last made first (all()), so nothing is left
    half-made. diverges (row 22): the bash left them."""

    def __init__(self):
        self.steps = []                        # [(what it undoes, how)]

    def push(self, name, step):
        self.steps.append((name, step))

    def all(self):
        for _name, step in reversed(self.steps):
            step()


# --- Wiring a container to its host: -e, -w, -v, and a pulled image's config -------
# Docker's run flags for what a learner does right after a first container:
# its environment (-e KEY=VALUE, -e KEY), its working directory (-w DIR), a
# directory of the host inside it (-v HOSTDIR:CTRDIR[:ro]); and what a pulled
# image says of itself (its config's Env, WorkingDir, Entrypoint and Cmd),
# which pull keeps beside the image as img.config (keep_config()). run checks
# each against the image (wiring()) before anything is made, and saves the
# result in the container's record (Container: env, workdir, volumes); enter()
# and join() read it back there (record_of(), record_of_exec()).
#
# img.config is a file in the image's directory, as img.source is: `images`
# (the bash's and ours) lists only img_N and img.source; the bash's run copies
# it into the container's lower layer, where it shows as /img.config (as
# /img.source does) and is ignored; a commit carries it into the new image, as
# Docker's commit keeps the config; init of a directory that holds one keeps it.

MS_PRIVATE = 1 << 18                           # mount(2): propagation, see bind_volumes()
MS_ATIMES = 1024 | 2048 | 4096                 # mount(2): MS_NOATIME, MS_NODIRATIME, MS_RELATIME
JOIN_VAR = 'BOCKER_JOIN'                       # exec tells join() its container (bocker_exec)
NOT_VOLUMES = ('proc', 'sys')                  # the kernel's, read-only or masked (enter())


def env_flag(word):
    """-e KEY=VALUE, or -e KEY: KEY's value in the caller's environment,
    none when it has none (as Docker's run)."""
    key, eq, value = word.partition('=')
    if not key:
        fail("run: -e '%s': no variable name before '='" % q(word))
    if eq:
        return word
    return '%s=%s' % (key, os.environ[key]) if key in os.environ else None


def workdir_flag(word):
    """-w DIR: absolute, as Docker wants it (checked against the image in
    wiring())."""
    if not word.startswith('/'):
        fail("run: -w '%s': the working directory must be an absolute path" % q(word))
    return word


def volume_flag(word):
    """-v HOSTDIR:CTRDIR[:ro|:rw]: [HOSTDIR resolved on the host, CTRDIR, mode].
    HOSTDIR must be an existing directory given by its absolute path (a
    relative one is a named volume to Docker: bocker has none)."""
    parts = word.split(':')
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ('ro', 'rw')):
        fail("run: -v '%s': use HOSTDIR:CTRDIR or HOSTDIR:CTRDIR:ro" % q(word))
    host, target = parts[0], parts[1]
    if not host.startswith('/'):
        fail("run: -v '%s': HOSTDIR must be an absolute path" % q(word))
    if not os.path.isdir(host):
        fail("run: -v '%s': no directory named '%s' exists" % (q(word), q(host)))
    if not target.startswith('/'):
        fail("run: -v '%s': CTRDIR must be an absolute path" % q(word))
    return [os.path.realpath(host), target, parts[2] if len(parts) == 3 else 'rw']


RUN_FLAGS.update({'-e': ('env', env_flag), '--env': ('env', env_flag),
                  '-w': ('workdir', workdir_flag), '--workdir': ('workdir', workdir_flag),
                  '-v': ('volumes', volume_flag), '--volume': ('volumes', volume_flag)})
RUN_LISTS.update(('env', 'volumes'))


def keep_config(path, rootfs, jq):
    """pull: the image config's own settings (its `config` object: Env,
    WorkingDir, Entrypoint, Cmd, User, ...) kept as the image's img.config, a
    JSON object, before the bash removes the config file."""
    import json
    with open(path) as f:
        kept = jq.compile('.config // {} | objects').input_text(f.read()).all()
    if kept and kept[0]:
        write(rootfs + '/img.config', json.dumps(kept[0], indent=1, sort_keys=True))


def image_config(image):
    """An image's img.config (keep_config()) as a dict: {} where it has none
    (init's and the bash's images)."""
    import json
    if not well_formed(image):
        return {}
    try:
        config = json.loads(read('%s/%s/img.config' % (overlay_path, image)))
    except FileNotFoundError:
        return {}
    except ValueError as e:
        fail("image %s's img.config is not JSON: %s" % (image, e))
    lists = ('Env', 'Entrypoint', 'Cmd')
    if not isinstance(config, dict) or not all(
            isinstance(config.get(k) or [], list) and all(isinstance(w, str) for w in config.get(k) or [])
            for k in lists) or not isinstance(config.get('WorkingDir') or '', str):
        fail("image %s's img.config: Env, Entrypoint and Cmd must be lists of strings" % image)
    return config


def image_command(args):
    """run's IMAGE and command words, as Docker makes them from a pulled image's
    Entrypoint and Cmd: `run IMG` alone runs Entrypoint + Cmd; `run IMG WORDS`
    runs Entrypoint WORDS. The bash's command is a shell line (`/bin/sh -c
    "$cmd"`), so the image's words are quoted into one (shlex.join). An image
    without them (init's, commit's of one, the bash's) is left as it is:
    `run IMG` alone is then a usage line, as before. diverges (row 52): the
    bash dropped the image's config."""
    if not args:
        return args
    config = image_config(args[0])
    entry, words = config.get('Entrypoint') or [], list(args[1:])
    if not words:
        words = config.get('Cmd') or []
        if not entry + words:
            return args
        import shlex
        return [args[0], shlex.join(entry + words)]
    if not entry:
        return args
    import shlex
    return [args[0], shlex.join(entry), *words]


def wiring(image, flags):
    """run's flags checked against the image, before anything is made: env,
    the image's Env then each -e (a later one wins, as in Docker); workdir,
    -w or else the image's WorkingDir; volumes, each CTRDIR resolved inside
    the image (inside()). A bad one is one line, and nothing is made."""
    config, root = image_config(image), '%s/%s' % (overlay_path, image)
    wired = dict(flags)
    user, home = image_user(root, config.get('User') or '', image)
    if user:
        wired['user'] = user
    env = (['HOME=' + home] if home else []) + list(config.get('Env') or []) + \
        [e for e in flags.get('env', ()) if e is not None]
    wired.pop('env', None)
    if env:
        wired['env'] = env
    workdir = flags.get('workdir') or config.get('WorkingDir')
    if workdir:
        wired['workdir'] = within(root, '/' + workdir.lstrip('/'), '-w')
    volumes = []
    for host, target, mode in flags.get('volumes', ()):
        where = within(root, target, '-v')
        if where == '/' or where.split('/')[1] in NOT_VOLUMES:
            fail("run: -v '%s:%s': CTRDIR may not be / nor lie in /proc or /sys" % (q(host), q(target)))
        if where in [v[1] for v in volumes]:
            fail("run: -v: two volumes at '%s'" % q(where))
        volumes.append([host, where, mode])
    if volumes:
        wired['volumes'] = volumes
    if flags.get('ports'):                     # first here, before anything is made
        ports_free(flags['ports'])             # then again by publish(), under its lock
    return wired


def image_user(root, spec, image):
    """A pulled image's User (USER, USER:GROUP, UID or UID:GID) as Docker reads
    it: names looked up in the image's /etc/passwd and /etc/group (passwd(5),
    group(5)); a numeric one needs no entry. ([uid, gid, [supplementary gids]],
    the user's home or None); ([], None) for root or none. A name the image
    does not have is one line, and nothing is made."""
    if spec in ('', 'root', '0', '0:0', 'root:root'):
        return [], None
    name, _, group = spec.partition(':')

    def table(path):
        try:
            text = read(inside_file(root, path))
        except (OSError, ValueError):
            return []
        return [line.split(':') for line in text.split('\n') if line.count(':') >= 2]
    passwd, groups = table('/etc/passwd'), table('/etc/group')
    entry = [e for e in passwd if len(e) >= 6 and (e[0] == name or e[2] == name)][:1]
    if entry:
        uid, gid, home, login = int(entry[0][2]), int(entry[0][3]), entry[0][5], entry[0][0]
    elif name.isascii() and name.isdigit():
        uid, gid, home, login = int(name), int(name) if not group else 0, None, None
    else:
        fail("image %s's User '%s': no such user in its /etc/passwd" % (image, q(spec)))
    if group:
        found = [g for g in groups if g[0] == group or g[2] == group][:1]
        if found:
            gid = int(found[0][2])
        elif group.isascii() and group.isdigit():
            gid = int(group)
        else:
            fail("image %s's User '%s': no such group in its /etc/group" % (image, q(spec)))
    extra = sorted({int(g[2]) for g in groups if len(g) >= 4 and login and
                    login in g[3].split(',') and g[2].isdigit()} - {gid})
    return [uid, gid, extra], home


def inside_file(root, path):
    """The host path of file PATH of the image at ROOT, its directories
    resolved inside it (inside()), the file itself not followed by read()."""
    return root + inside(root, os.path.dirname(path)) + '/' + os.path.basename(path)


def become_user(user):
    """The image's User: supplementary groups, group, then user (setgroups(2),
    setresgid(2), setresuid(2)), so the command runs as that user; leaving
    uid 0 clears the capabilities left (capabilities(7)). After the steps
    that need root (the mounts, -w's mkdir), before the seccomp filter."""
    if not user:
        return
    uid, gid, extra = user
    os.setgroups(extra)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def within(root, path, flag):
    """inside(), a refusal as one line: `run: FLAG PATH: why`."""
    try:
        return inside(root, path)
    except ValueError as e:
        fail("run: %s '%s': %s" % (flag, q(path), e))


def inside(root, name):
    """NAME in the tree at ROOT, as the container will see it: each symlink
    followed inside ROOT (an absolute one from ROOT, as after pivot_root),
    every part a directory or not there yet. A `..`, of NAME or of a link,
    that climbs above ROOT is refused (ValueError), as is a part that is not
    a directory. The path as the container names it: /a/b."""
    return '/' + '/'.join(walk_inside(root, name, strict=True))


def record_of(root):
    """enter()'s container: the one whose merged is ROOT (run's enter_argv()),
    with what run saved of it; a bare record where it saved nothing."""
    uuid = os.path.basename(os.path.dirname(root))
    if well_formed(uuid) and Container(uuid).merged == root:
        return Container.load(uuid)
    return Container(uuid)


def record_of_exec():
    """join()'s container, named by exec in JOIN_VAR (exec's argv stays the
    bash's shape: `nsenter ... __join__ PID CMD`)."""
    uuid = os.environ.pop(JOIN_VAR, '')
    return Container.load(uuid) if well_formed(uuid) and uuid.startswith('ps_') else Container(uuid)


def bind_volumes(root, volumes, mount):
    """-v: each HOSTDIR bind-mounted (mount(2) MS_BIND) at CTRDIR in the
    container's root, in its mount namespace: the host never sees it, and
    what the container writes there goes to HOSTDIR, not to upper (so never
    into a commit). Private propagation (mount_namespaces(7)): no mount made
    on either side shows on the other. Then remounted nosuid, nodev and, with
    :ro, read-only: a bind mount takes those flags only on a remount. After
    /proc's masks, before pivot_root: the host's directories are still in
    reach. CTRDIR is made when missing (in upper, as Docker makes it in the
    container's layer)."""
    for host, target, mode in volumes or ():
        try:
            path = root + inside(root, target)
        except ValueError as e:
            raise OSError(1, str(e), target)
        os.makedirs(path, 0o755, exist_ok=True)
        mount(host.encode(), path, None, MS_BIND)
        mount(None, path, None, MS_PRIVATE)
        # the host mount's own flags kept (statvfs(3)'s ST_* are mount(2)'s
        # MS_*): a remount clears every flag it is not given, noexec too
        kept = os.statvfs(path).f_flag & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_ATIMES)
        mount(None, path, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | kept
              | (MS_RDONLY if mode == 'ro' else 0))


def work_dir(workdir, make):
    """-w (or the image's WorkingDir): the command's working directory, after
    pivot_root, so the path (and any link in it) resolves in the container's
    root. run makes it when missing, as Docker does; exec (make=False) goes
    there as Docker's exec does."""
    if not workdir:
        return
    if make:
        os.makedirs(workdir, 0o755, exist_ok=True)
    os.chdir(workdir)


# --- Published ports: -p, netfilter DNAT in chains of bocker's own ---------------
# -p HOSTPORT:CTRPORT[/tcp|/udp] makes the container's port reachable at the
# host's: a DNAT rule (iptables-extensions(8): DNAT) in the nat table rewrites
# the destination of a new connection to a local address's HOSTPORT into the
# container's 172.18.0.N:CTRPORT; conntrack(8) rewrites the rest of the
# connection and its replies. The rules live in chains of bocker's own, so
# `iptables -t nat -L BOCKER -v -n` shows them with their packet counters, and
# removing them touches nothing else:
#   nat BOCKER              one DNAT per published port, tagged with its ps_N
#                           (-m comment), reached from PREROUTING (packets from
#                           outside and from containers) and OUTPUT (the host's
#                           own), each for local destinations only (addrtype)
#   nat BOCKER-POSTROUTING  MASQUERADE of what the two cases below send to br1
#   raw BOCKER              the guard route_localnet needs (below)
# Two cases need more than DNAT:
# - 127.0.0.1: a packet from 127.0.0.1 may not leave by br1 (the kernel drops
#   it as a martian) unless br1 has route_localnet=1 (ip-sysctl docs); it
#   then leaves masqueraded as 172.18.0.1, so the reply comes back. Chosen over
#   a userland forwarder (Docker's docker-proxy): no process to run, to crash
#   or to leak, and every step is a rule a learner can read with its counter.
#   route_localnet also lets a neighbour on br1 send to 127.0.0.1 (the hole
#   CVE-2020-8558 showed in kube-proxy): raw BOCKER drops any packet for
#   127.0.0.0/8 that arrives on br1, as Kubernetes' fix does.
# - hairpin: a container reaching a published port at 172.18.0.1 or another
#   of the host's addresses is DNATed back onto br1; it leaves masqueraded
#   (conntrack --ctstate DNAT), else the server would answer the client
#   directly, from an address the client never called. This one is forwarded,
#   so it needs net.ipv4.ip_forward=1, as compat/host-setup makes it.
# Rules go when the run ends, when rm takes the container (also one a kill
# left), and all of them with `compat/host-setup --undo`; a rule whose
# container is gone is swept by the next -p. `iptables` is whichever backend
# the host has (nft or legacy), as compat/host-setup calls it.

PORT_CHAINS = (('nat', 'BOCKER', 'PREROUTING', ['-m', 'addrtype', '--dst-type', 'LOCAL']),
               ('nat', 'BOCKER', 'OUTPUT', ['-m', 'addrtype', '--dst-type', 'LOCAL']),
               ('nat', 'BOCKER-POSTROUTING', 'POSTROUTING', []),
               ('raw', 'BOCKER', 'PREROUTING', []))
# (each as `iptables -S` prints it back, so one listing per table finds them)
PORT_RULES = (('nat', 'BOCKER-POSTROUTING', ['-s', '127.0.0.0/8', '-o', 'br1', '-j', 'MASQUERADE']),
              ('nat', 'BOCKER-POSTROUTING', ['-s', '172.18.0.0/24', '-o', 'br1', '-m', 'conntrack',
                                             '--ctstate', 'DNAT', '-j', 'MASQUERADE']),
              ('raw', 'BOCKER', ['-d', '127.0.0.0/8', '-i', 'br1', '-j', 'DROP']))
ROUTE_LOCALNET = '/proc/sys/net/ipv4/conf/br1/route_localnet'


def port_flag(word):
    """-p HOSTPORT:CTRPORT[/tcp|/udp]: [HOSTPORT, CTRPORT, protocol]."""
    ports, _, proto = word.partition('/')
    parts = ports.split(':')
    if len(parts) != 2 or proto not in ('', 'tcp', 'udp') or not all(
            p.isascii() and p.isdigit() and 0 < int(p) < 65536 for p in parts):
        fail("run: -p '%s': use HOSTPORT:CTRPORT or HOSTPORT:CTRPORT/udp (ports 1-65535)" % q(word))
    return [int(parts[0]), int(parts[1]), proto or 'tcp']


RUN_FLAGS.update({'-p': ('ports', port_flag), '--publish': ('ports', port_flag)})
RUN_LISTS.add('ports')


def iptables(*args, check=True):
    """`iptables ARGS` (-w: wait for the xtables lock): (status, output)."""
    code, out, err = command(['iptables', '-w', *args]).run(retcode=None)
    if code and check:
        sys.stderr.write(err)
        raise Exit(code)
    return code, out


def published(table='nat', chain='BOCKER'):
    """The rules of bocker's chain as `iptables -S` prints them (word lists),
    [] where there is no such chain."""
    code, out = iptables('-t', table, '-S', chain, check=False)
    return [line.split() for line in out.splitlines() if line.startswith('-A ')] if code == 0 else []


def port_chains():
    """bocker's chains, their hooks and rules, made once, all in one
    `iptables-restore --noflush` (iptables-restore(8): one transaction, so a
    kill leaves all of them or none); what is there already, found by one
    `iptables -S` per table, is left alone (a rule printed otherwise than
    here is asked for with -C). Then br1's route_localnet (sysctl(8)). The
    first -p on a host makes them; they stay for the next."""
    script = []
    for table in ('nat', 'raw'):
        have = set(iptables('-t', table, '-S')[1].splitlines())
        new = sorted({chain for t, chain, _h, _m in PORT_CHAINS if t == table
                      if '-N ' + chain not in have})
        rules = [['-A', hook, *match, '-j', chain] for t, chain, hook, match in PORT_CHAINS if t == table]
        rules += [['-A', chain, *rule] for t, chain, rule in PORT_RULES if t == table]
        missing = [words for words in rules if ' '.join(words) not in have and (
            {words[1], words[-1]} & set(new) or
            iptables('-t', table, '-C', *words[1:], check=False)[0])]
        if new or missing:
            script += ['*' + table] + [':%s - [0:0]' % chain for chain in new] + \
                [' '.join(words) for words in missing] + ['COMMIT']
    if script:
        run('iptables-restore', '-w', '--noflush', stdin='\n'.join(script) + '\n')
    with open(ROUTE_LOCALNET) as f:
        if f.read().strip() != '1':
            run('sysctl', '-q', '-w', 'net.ipv4.conf.br1.route_localnet=1')


def publish(c, undo):
    """-p: a DNAT rule per port in nat BOCKER, tagged with the container's id
    (under a lock on the store, so two runs never publish one port). A port
    another container has published is refused; a rule whose container is
    gone is removed first."""
    if not c.ports:
        return
    fd = lock(container_path)
    try:
        port_chains()
        ports_free(c.ports, sweep=True)
        undo.push('unpublish ' + c.id, lambda: unpublish(c.id, c.ports))
        for host, ctr, proto in c.ports:
            iptables('-t', 'nat', '-A', 'BOCKER', '-p', proto, '--dport', str(host),
                     '-m', 'comment', '--comment', c.id,
                     '-j', 'DNAT', '--to-destination', '172.18.0.%s:%d' % (address(c.id)[0], ctr))
    finally:
        os.close(fd)


def ports_free(ports, sweep=False):
    """Refuse (one line) a host port given twice, or one that a rule of
    nat BOCKER publishes for a container that is still there; sweep: remove
    the rules of containers that are gone."""
    if len({(h, p) for h, _c, p in ports}) < len(ports):
        fail('run: -p: a host port given twice')
    for rule in published():
        owner = rule[rule.index('--comment') + 1] if '--comment' in rule else None
        if owner and well_formed(owner) and not os.path.isdir(Container(owner).dir):
            if sweep:
                iptables('-t', 'nat', '-D', *rule[1:])
            continue
        for host, _ctr, proto in ports:
            if '--dport' in rule and rule[rule.index('--dport') + 1] == str(host) \
                    and rule[rule.index('-p') + 1] == proto:
                fail('run: -p %d/%s: that port is already published by %s' % (host, proto, owner))


def unpublish(uuid, ports):
    """Container uuid's DNAT rules out of nat BOCKER: when it had -p (ports),
    or when its record is gone (ports=True: rm of what a kill left)."""
    import shutil
    if not ports or not shutil.which('iptables'):
        return
    for rule in published():
        if '--comment' in rule and rule[rule.index('--comment') + 1] == uuid:
            iptables('-t', 'nat', '-D', *rule[1:], check=False)


# --- Copying trees: init and commit copy an image ---------------------------------

class NewEntry:
    """What an entry made in a directory gets without asking for it (mkdir(2),
    open(2)): its owner's uid and gid (a setgid directory gives its group), the
    setgid bit a subdirectory inherits, and whether its mode is the one asked
    for (exact: no default ACL sets modes in place of the umask)."""
    __slots__ = ('uid', 'gid', 'setgid', 'exact')

    def __init__(self, uid, gid, setgid, exact):
        self.uid, self.gid, self.setgid, self.exact = uid, gid, setgid, exact

    def within(self, st):
        """What an entry gets in a new directory of stat st."""
        setgid = st.st_mode & stat.S_ISGID
        return NewEntry(self.uid, st.st_gid if setgid else self.gid, setgid, self.exact)

    def made(self, mode):
        """The mode an entry asked to have mode is made with; None: not known."""
        return mode if self.exact else None


def copy_tree(src, dst):
    """bash: cp -rf --reflink=auto "$src"/* "$dst". Copies everything in src,
    dotfiles too, keeping modes, owners and times (diverges (row 12): cp -rf skips
    dotfiles, drops setuid bits and owners). (run copies nothing: row 13.)
    An image is thousands of entries, so each costs few system calls: it is
    made with its mode (umask 0), given its owner only where it is not the one
    a new entry gets anyway (NewEntry), and a file's data is copied by the
    kernel (copy_file_range(2): a reflink where the filesystem shares blocks)."""
    dirs, files = [], []                   # (directory, times), deepest first
    seen, links = {}, []                   # hard links: (the first copy, another name)

    def copy_dir(src, dst, new):
        """One directory: its entries made, its files queued for copy_files,
        its times queued for the end (its entries' making changes them)."""
        for entry in os.scandir(src):
            s, d = entry.path, dst + '/' + entry.name
            st = entry.stat(follow_symlinks=False)
            mode = stat.S_IMODE(st.st_mode)
            times = (st.st_atime_ns, st.st_mtime_ns)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(d, mode)
                settle(d, st, new, made=new.made(mode & 0o1777 | new.setgid))
                copy_dir(s, d, new.within(st))
                dirs.append((d, times))
            elif stat.S_ISREG(st.st_mode):
                # one inode with several names (link(2)) stays one: the first name is
                # copied, the others linked to it, as cp -a and tar keep them.
                # diverges (row 34): cp -rf made each name a file of its own
                first = seen.setdefault((st.st_dev, st.st_ino), d) if st.st_nlink > 1 else d
                if first != d:
                    links.append((first, d))
                else:
                    files.append((s, d, st, new))
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
                settle(d, st, new, made=mode)  # a symlink has no mode of its own
                os.utime(d, ns=times, follow_symlinks=False)
            else:                          # fifos, sockets, devices
                os.mknod(d, stat.S_IFMT(st.st_mode) | mode & 0o777, st.st_rdev)
                settle(d, st, new, made=new.made(mode & 0o777))
                os.utime(d, ns=times, follow_symlinks=False)

    old_umask = os.umask(0)
    try:
        top = os.stat(dst)
        setgid = top.st_mode & stat.S_ISGID
        try:                               # a default ACL, not the umask, sets modes
            exact = not os.getxattr(dst, 'system.posix_acl_default')
        except OSError:
            exact = True
        copy_dir(src, dst, NewEntry(os.geteuid(), top.st_gid if setgid else os.getegid(),
                                    setgid, exact))
        copy_files(files)
        for first, d in links:
            os.link(first, d)
        for d, times in dirs:              # after their entries changed them
            os.utime(d, ns=times)
    finally:
        os.umask(old_umask)


def copy_files(files):
    """copy_file for each file: every other one in a second thread, as the
    kernel does the copying with the GIL released (a third less time on 2 cores)."""
    errors = []

    def copy(some):
        try:
            for file in some:
                copy_file(*file)
        except OSError as e:
            errors.append(e)
    if len(files) > 1:
        import threading
        other = threading.Thread(target=copy, args=(files[1::2],))
        other.start()
        copy(files[0::2])
        other.join()
    else:
        copy(files)
    if errors:
        raise errors[0]


def settle(d, st, new, made=None):
    """Give a new entry (a path, or a file descriptor) the owner and mode of st
    where making it did not: it belongs to new's uid and gid and has mode
    `made` (None: not known). chown(2) clears the setuid and setgid bits, so
    chmod comes after."""
    path = {} if isinstance(d, int) else {'follow_symlinks': False}
    chowned = (st.st_uid, st.st_gid) != (new.uid, new.gid)
    if chowned:
        os.chown(d, st.st_uid, st.st_gid, **path)
    if not stat.S_ISLNK(st.st_mode) and (made is None or made != stat.S_IMODE(st.st_mode) or
                                         chowned and st.st_mode & 0o6000):
        os.chmod(d, stat.S_IMODE(st.st_mode))


def copy_file(s, d, st, new):
    """One regular file of copy_tree: made with its mode, its data copied in
    the kernel (copy_file_range(2); sendfile(2) where that cannot, as between
    filesystems before Linux 5.19), then its owner, setuid bits and times."""
    fin = os.open(s, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fout = os.open(d, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       st.st_mode & 0o777)
        try:
            done, in_kernel = 0, True
            while done < st.st_size:
                try:
                    n = (os.copy_file_range(fin, fout, 1 << 30) if in_kernel else
                         os.sendfile(fout, fin, None, 1 << 30))
                except OSError:
                    if not in_kernel:
                        raise
                    in_kernel = False
                    continue
                if not n:
                    break
                done += n
            settle(fout, st, new, made=new.made(st.st_mode & 0o777))
            os.utime(fout, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def remove_tree(path, mounts=True):
    """bash: rm -rf "$path", never following a symlink, never into a mount."""
    import shutil
    if mounts and mounted_inside(path):
        fail('%s still has something mounted inside; not removing it' % path)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def mounted_inside(path):
    """Is anything mounted below path?"""
    inside = os.path.realpath(path) + '/'
    return any(point.startswith(inside) for point in mount_points())


def write_inside(root, rel, text):
    """bash: echo "$text" > "$root/$rel", but resolved inside root: a symlink
    at rel (/etc/resolv.conf -> /run/...) is replaced, not followed, so the
    write never lands on the host (diverges (row 18): bash writes through it)."""
    fd = os.open(root, os.O_DIRECTORY)
    try:
        parts = rel.strip('/').split('/')
        for part in parts[:-1]:
            try:
                nfd = os.open(part, os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                fail("the image's /%s is not a directory" % '/'.join(parts[:-1]))
            os.close(fd)
            fd = nfd
        if os.path.islink('/proc/self/fd/%d/%s' % (fd, parts[-1])):
            os.unlink(parts[-1], dir_fd=fd)
        out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                      0o644, dir_fd=fd)
        with os.fdopen(out, 'w') as f:
            f.write(text + '\n')
    finally:
        os.close(fd)


# --- Unpacking image layers: pull applies each layer's tar ------------------------

def unpack(layer, root):
    """bash: tar xf LAYER -C ROOT, as an image layer is meant to be applied
    (OCI image spec, "Applying Changesets"): `.wh.NAME` deletes NAME from the
    layers below, `.wh..wh..opq` empties its directory of them, and no whiteout
    file stays. Paths and links resolve inside root as if it were / (chroot(2)),
    so no entry (absolute, `..`, or through a symlink an earlier layer planted)
    lands outside the image. diverges (rows 27, 28): tar kept `.wh.*` as plain files."""
    import tarfile
    made = set()                               # paths this layer wrote
    with tarfile.open(layer, 'r:*') as tar:    # gzip or plain tar
        for m in tar:
            path = resolve_inside(root, m.name)
            if path == root:
                continue
            parent, name = os.path.split(path)
            if name == '.wh..wh..opq':
                for old in os.listdir(parent) if os.path.isdir(parent) else ():
                    if os.path.join(parent, old) not in made:
                        remove_tree(os.path.join(parent, old), mounts=False)
                continue
            if name.startswith('.wh.'):
                remove_tree(os.path.join(parent, name[4:]), mounts=False)
                continue
            made.add(path)
            os.makedirs(parent, exist_ok=True)
            if not (m.isdir() and os.path.isdir(path) and not os.path.islink(path)):
                remove_tree(path, mounts=False)
            if m.isdir():
                os.makedirs(path, exist_ok=True)
            elif m.issym():
                os.symlink(m.linkname, path)
            elif m.islnk():
                os.link(resolve_inside(root, m.linkname), path, follow_symlinks=False)
            elif m.isreg():
                with open(path, 'xb') as dst:
                    copy_member(tar, m, dst)
            elif m.ischr() or m.isblk() or m.isfifo():
                kind = {tarfile.CHRTYPE: 0o20000, tarfile.BLKTYPE: 0o60000}.get(m.type, 0o10000)
                os.mknod(path, kind | m.mode, os.makedev(m.devmajor, m.devminor))
            else:
                continue
            os.lchown(path, m.uid, m.gid)
            if not m.issym():
                os.chmod(path, m.mode)
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def copy_member(tar, m, dst):
    """A layer file's data. An uncompressed layer holds it as is: the kernel
    copies it from there (sendfile(2), half the time of reading and writing it
    here); a compressed one is read through a 1 MiB buffer."""
    if isinstance(tar.fileobj, io.BufferedReader) and not m.issparse():
        offset, left = m.offset_data, m.size
        while left:
            n = os.sendfile(dst.fileno(), tar.fileobj.fileno(), offset, left)
            if not n:
                raise ValueError('%s: unexpected end of data' % m.name)
            offset, left = offset + n, left - n
    else:
        import shutil
        with tar.extractfile(m) as src:
            shutil.copyfileobj(src, dst, 1 << 20)


def resolve_inside(root, name):
    """The host path of NAME in an image rooted at ROOT, resolving `..` and the
    symlinks along the way the way the kernel would after chroot(ROOT): the
    result never leaves ROOT. The last component itself is not followed."""
    return os.path.join(root, *walk_inside(root, name))


def walk_inside(root, name, strict=False):
    """The parts of NAME under ROOT once `..` and symlinks are resolved inside
    ROOT (an absolute link from ROOT, as after chroot or pivot_root). As the
    kernel: `..` at ROOT stays at ROOT, the last part is not followed.
    strict (run's -v and -w): every part followed, and a `..` above ROOT or
    a part that is no directory refused (ValueError)."""
    todo = [p for p in name.split('/') if p not in ('', '.')]
    done, hops = [], 0
    while todo:
        part = todo.pop(0)
        if part == '..':
            if strict and not done:
                raise ValueError('climbs out of the root')
            done = done[:-1]
            continue
        here = os.path.join(root, *done, part)
        if (todo or strict) and os.path.islink(here):
            hops += 1
            if hops > 40:                      # as the kernel's ELOOP
                raise ValueError('too many levels of symbolic links')
            target = os.readlink(here)
            if target.startswith('/'):
                done = []
            todo = [p for p in target.split('/') if p not in ('', '.')] + todo
            continue
        if strict and os.path.lexists(here) and not os.path.isdir(here):
            raise ValueError("'/%s' is not a directory" % '/'.join(done + [part]))
        done.append(part)
    return done


# --- Surviving a kill: leftovers, locks, the freezer, the test hook ----------------
# Any command may be killed at any instant (kill -9, the OOM killer, a closed
# terminal). Each orders its steps so that what a kill leaves is either whole
# and listed (rm takes it away), or a hidden directory overlay/.KIND-PID of a
# dead process, which the next command that touches the store removes, as an
# interrupted apt leaves its lock. diverges (row 47): the bash filled img_N in
# place and removed it in place, so a kill left half an image listed.

LEFTOVER_KINDS = ('init', 'commit', 'pull', 'rm')   # overlay/.KIND-PID[-ps_N or -UUID]
HELD = []                                           # the flocks held until we exit


def hidden(kind, suffix=''):
    """Make overlay/.KIND-PID[-SUFFIX], a directory no listing shows, locked
    (flock(2)) for as long as this process lives."""
    path = '%s/.%s-%d%s' % (overlay_path, kind, os.getpid(), suffix)
    os.mkdir(path)
    HELD.append(lock(path))
    return path


def lock(path, exclusive=True, wait=True):
    """flock(2) a directory: a descriptor holding the lock, or None (wait=False
    and another process holds it). The kernel drops a flock when its last
    descriptor closes, so a killed process leaves no stale lock."""
    import fcntl
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) |
                    (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def sweep():
    """Remove what a killed init, pull, commit or rm left in the store: each
    overlay/.KIND-PID whose process is gone and whose lock nobody holds (a
    process of another pid namespace may share the number). A commit's
    .commit-PID-ps_N also names the container it froze: that is thawed; a
    pull's .pull-PID-UUID its download directory /tmp/UUID: that goes too."""
    try:
        names = os.listdir(overlay_path)
    except OSError:
        return
    for name in names:
        kind, _, rest = name[1:].partition('-')
        pid = rest.partition('-')[0]
        if name[:1] != '.' or kind not in LEFTOVER_KINDS or not pid.isdigit() or running(pid):
            continue
        path = '%s/%s' % (overlay_path, name)
        if mounted_inside(path):
            continue                           # never into a mount: a hand must look
        try:
            fd = lock(path, wait=False)
        except OSError:                        # another sweep took it
            continue
        if fd is None:
            continue
        suffix = rest.partition('-')[2]
        try:
            if kind == 'commit' and suffix.startswith('ps_') and well_formed(suffix):
                thaw_after_commit(suffix)
            if kind == 'pull' and is_uuid(suffix) and not mounted_inside('/tmp/' + suffix):
                remove_tree('/tmp/' + suffix, mounts=False)
            remove_tree(path, mounts=False)
        except OSError:
            pass                               # the next command tries again
        finally:
            os.close(fd)


def wait_for(cdir, uuid, doing='is being started or committed'):
    """rm's lock on a container's directory (flock(2), exclusive): at once, or
    once the run starting it has started its command (or a commit has copied
    it), saying on stderr what it waits for (a run stopped by ctrl-Z waits
    for its user). The same for an image a run is mounting (hold_image())."""
    import fcntl
    fd = lock(cdir, wait=False)
    if fd is None:
        flush()
        sys.stderr.write('%s: %s %s: waiting for that to end\n'
                         % (os.path.basename(PROG), uuid, doing))
        sys.stderr.flush()
        fd = os.open(cdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


IMAGES_HELD = {}                                # image: its directory, open (hold_image())


def hold_image(image):
    """run's lock on its image (flock(2), shared) from its checks until the
    container's overlay is mounted on it (release_image()). An rm of the
    image takes the lock exclusive: it waits until the mount shows the image
    in use (image_users()), and a run that waited for an rm finds the image
    gone. diverges (row 51)."""
    path = '%s/%s' % (overlay_path, image)
    try:
        fd = lock(path, exclusive=False)
        if not os.path.samestat(os.fstat(fd), os.stat(path)):
            raise FileNotFoundError        # renamed away by an rm, another in its place
    except OSError:                        # gone, or a file
        refuse("No image named '%s' exists", image)
    IMAGES_HELD[image] = fd


def release_image(image):
    """The overlay is mounted: rm of the image sees it in use (hold_image())."""
    os.close(IMAGES_HELD.pop(image))


def is_uuid(text):
    """Is text a uuid as uuidgen(1) writes it (8-4-4-4-12 hex digits)?"""
    parts = text.split('-')
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and \
        all(c in '0123456789abcdef' for c in ''.join(parts))


def removed(fd):
    """Has the directory open at fd been removed (rmdir(2) leaves it no
    links), or is an rm removing it now (it holds the directory's lock)?"""
    import fcntl
    if os.fstat(fd).st_nlink == 0:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def container_remains(uuid):
    """Is anything of container uuid still there without its directory: a
    cgroup, its netns, its veth, its root's mount (a kill of rm between
    removing the directory and cgdelete)? diverges (row 48)."""
    return well_formed(uuid) and uuid.startswith('ps_') and bool(
        [d for d in cgroup_dirs(uuid) if os.path.isdir(d)] or netns_exists(uuid) or
        link_exists(Container(uuid).veth0) or mounted(Container(uuid).merged))


def listed(name):
    """Could `images` or `ps` show this name? Every entry img_* of the
    image store and ps_* of the container store, however it was made:
    rm takes each one away. A name with a / is never an entry."""
    if '/' in name:
        return False
    if name.startswith('img_'):
        return name in listing(overlay_path, 'img_')
    return name.startswith('ps_') and name in listing(container_path, 'ps_')


# The cgroup freezer stops every process of a cgroup where it stands, and
# starts them again (cgroup v1: the freezer controller, freezer.state, kernel
# Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst; v2: cgroup.freeze
# in cgroup-v2.rst). commit freezes a running container while it copies, as
# `docker commit` pauses it, so the image is one moment of its files.
# diverges (row 49): the bash copied a running container's files as they changed.

def freezer_dir(uuid):
    """The cgroup that freezes container uuid: on v2 its own; on v1 ps_N in
    the freezer hierarchy, if one is mounted (None if not)."""
    found = cgroup_hierarchies()
    if cgroup_v2():
        return found[''][0] + '/' + uuid
    return found['freezer'][0] + '/' + uuid if 'freezer' in found else None


def freeze(uuid):
    """Freeze container uuid; False if it cannot be frozen here. On v1 its
    processes are moved into its freezer cgroup first, again until none is
    left outside (a process moved into a frozen cgroup is frozen, one still
    outside may fork)."""
    path = freezer_dir(uuid)
    if path is None:
        return False
    v2 = cgroup_v2()
    if not v2:
        os.makedirs(path, exist_ok=True)
    for _ in range(500):
        inside = cgroup_procs([path])
        outside = cgroup_procs(cgroup_dirs(uuid)) - inside
        with open(path + ('/cgroup.events' if v2 else '/freezer.state')) as f:
            state = f.read()
        if not outside and ('frozen 1' in state if v2 else state.strip() == 'FROZEN'):
            return True
        for pid in () if v2 else outside:
            try:
                with open(path + '/cgroup.procs', 'w') as f:
                    f.write(str(pid))
            except OSError:                    # it ended meanwhile
                pass
        with open(path + ('/cgroup.freeze' if v2 else '/freezer.state'), 'w') as f:
            f.write('1' if v2 else 'FROZEN')
        time.sleep(0.01)
    thaw(uuid)
    return False


def thaw(uuid):
    """Let a frozen container run again (and a frozen process die of the
    SIGKILL it was sent)."""
    path = freezer_dir(uuid)
    knob = '/cgroup.freeze' if cgroup_v2() else '/freezer.state'
    if path is not None and os.path.exists(path + knob):
        with open(path + knob, 'w') as f:
            f.write('0' if cgroup_v2() else 'THAWED')


def thaw_after_commit(uuid):
    """A killed commit left container uuid frozen: thaw it, unless another
    commit is freezing it now (it holds the lock on its lower directory)."""
    lower = Container(uuid).lower
    fd = lock(lower, wait=False) if os.path.isdir(lower) else -1
    if fd is None:
        return
    try:
        thaw(uuid)
    finally:
        if fd >= 0:
            os.close(fd)


def frozen(uuid, copy):
    """Run copy() with the container frozen (freeze()), if any process of it
    runs; one commit at a time freezes it (the lock on its lower directory,
    which no container sees). diverges (row 49): where it cannot be frozen (a
    cgroup v1 host without the freezer hierarchy mounted) the copy is taken
    from the running container, as the bash took it."""
    lower = Container(uuid).lower
    fd = lock(lower) if os.path.isdir(lower) else None
    try:
        if not cgroup_procs(cgroup_dirs(uuid)):
            return copy()                      # nothing runs: nothing to freeze
        froze = freeze(uuid)
        checkpoint('commit-frozen')
        try:
            return copy()
        finally:
            if froze:
                thaw(uuid)
    finally:
        if fd is not None:
            os.close(fd)


def checkpoint(name):
    """A test hook, not for users: with BOCKER_TEST_HOOK=kill:K (or stop:K),
    bocker kills (stops) itself at the K-th checkpoint it passes: before each
    system command (command()), and between the steps of init, pull, commit,
    rm and stop that run none. tests/test_kill.py counts K up until the command runs
    to its end, so each command is killed between each pair of its steps."""
    global CHECKPOINTS
    hook = os.environ.get('BOCKER_TEST_HOOK')
    if not hook:
        return
    import signal
    CHECKPOINTS += 1
    how, _, at = hook.partition(':')
    if at == str(CHECKPOINTS):
        flush()
        sys.stderr.write('%s: test hook: %s at %d (%s)\n' % (
            os.path.basename(PROG), how, CHECKPOINTS, name))
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSTOP if how == 'stop' else signal.SIGKILL)


CHECKPOINTS = 0


# --- Finding and stopping processes: a container's pid 1, rm's stop, signals ------

def container_pid(uuid):
    """The pid of the container's first process (pid 1 of its pid namespace):
    the process whose root (pivot_root) is the container's merged dir: the
    same directory of the same overlay mount, by device and inode (proc(5):
    /proc/PID/root, NSpid; its path reads `/` from here, as it lies in another
    mount namespace). diverges (rows 1, 31): the bash greps `ps o ppid,pid`, which
    finds nothing when ps right-aligns or has no terminal."""
    merged = Container(uuid).merged
    try:
        mine = os.stat(merged)
    except OSError:
        return ''
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            if not same_file(os.stat('/proc/%s/root' % pid), mine):
                continue
            with open('/proc/%s/status' % pid) as f:
                nspid = [l.split()[1:] for l in f if l.startswith('NSpid:')][0]
        except (OSError, IndexError):
            continue                           # gone meanwhile, or a kernel thread
        found.append((nspid[-1] != '1', int(pid)))
    return str(min(found)[1]) if found else ''


def execed(pid):
    """Wait until a child we started has finished its execve(2). Popen
    returns once the child's close-on-exec descriptors are closed, early in
    execve; until the kernel has laid out the new program's arguments, its
    /proc/PID/cmdline reads empty (proc(5)). Until then nothing says whose
    it is: not its command line, not its cgroups (cgexec has yet to join
    them), and an rm let in then (started()) would find nothing to stop
    (container_processes())."""
    for _ in range(2000):
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                if f.read(1):
                    return
        except OSError:
            return                             # gone already
        if not running(str(pid)):
            return                             # a zombie's reads empty too
        time.sleep(0.0005)


def same_file(a, b):
    """Do two stat results name one file (the same device and inode)?"""
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def stop(uuid):
    """Kill everything of a container, running or still starting, and wait
    until it is gone: what container_processes() finds, again until it finds
    nothing, so no process is left in its cgroups for cgdelete to move out
    (libcgroup moves a cgroup's processes to its parent before rmdir(2)).
    A frozen process dies only once thawed (the freezer), so thaw follows.
    An exec's nsenter, outside the container's pid namespace with a child
    in it, is left to reap that child and end by itself: killed with it, it
    would leave the child's zombie to init, and the namespace's pid 1 waits
    until every process of it has been reaped (pid_namespaces(7)); after a
    second it is killed too. The unshare above pid 1 is killed with it, so
    it reports nothing. Parents go before their children: a process with a
    SIGKILL pending never runs again, so no shell sees its child killed and
    goes on to its next command (signal(7)).
    Then let the run (or exec) that started it finish: run deletes the
    container's veth and netns itself, so the two never race (and the trace
    does not depend on who wins). diverges (row 46): the bash killed nothing,
    and an earlier bocker.py only pid 1 and its unshare, found once the
    container had entered its root, so a starting container ran on outside
    its cgroups."""
    import signal
    runners = set()
    depth = len(nspid('self'))
    for tries in range(500):
        victims, parents = container_processes(uuid)
        if not victims:
            break
        runners |= {parents[pid] for pid in victims if parents.get(pid) not in victims}
        # NSpid: a process's pid in each pid namespace it is in, ours first
        # (proc(5)); a longer list is a process of a namespace below ours.
        reaping = {parents[child] for child in parents if parents[child] in victims and
                   len(nspid(parents[child])) == depth and
                   len(nspid(child)) > depth and nspid(child)[-1] != '1'}
        for victim in sorted(victims, key=lambda pid: ancestry(pid, parents, victims)):
            if victim in reaping and tries < 100:
                continue
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        thaw(uuid)
        time.sleep(0.01)
    else:
        fail('container %s does not stop' % uuid)
    runners.discard(os.getpid())
    for _ in range(300):                       # a run stuck writing: 3 s, then clean up here
        if not any(running(str(pid)) for pid in runners):
            return
        time.sleep(0.01)


def container_processes(uuid):
    """Every live process of a container, and {pid: parent pid} of every
    process (zombies too): those
    in its cgroups (cgroup.procs of each hierarchy: cgexec joins them one
    after another); those whose root is its merged directory, by device and
    inode (proc(5): /proc/PID/root); the chain a run or exec started for it, before it
    reaches the cgroups or the root (its command line names the root after
    __enter__), while it is in our mount namespace or the container's netns
    (a store of the same paths in another mount namespace is another
    container); and the descendants of all of them."""
    merged = Container(uuid).merged
    marker = b'\0__enter__\0' + os.fsencode(merged) + b'\0'
    ns = namespace
    mine = {ns('self', 'mnt')}
    try:
        mine.add(os.stat('/run/netns/netns_' + uuid).st_ino)
    except OSError:
        pass
    try:
        root = os.stat(merged)
    except OSError:
        root = None
    found, parents, ended = set(), {}, set()
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % pid) as f:
                state, parent = f.read().rsplit(')', 1)[1].split()[:2]
            parents[int(pid)] = int(parent)
            if state == 'Z':                   # ended: nothing to kill
                ended.add(int(pid))
                continue
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmdline = b'\0' + f.read()
            if marker in cmdline and (ns(pid, 'mnt') in mine or ns(pid, 'net') in mine):
                found.add(int(pid))
            elif root is not None and same_file(os.stat('/proc/%s/root' % pid), root):
                found.add(int(pid))      # (its path reads / from here: pivot_root)
        except (OSError, ValueError):
            continue                           # gone meanwhile, or a kernel thread
    # The cgroups last: a process of the chain that had no command line to
    # read in the walk (in the middle of an execve(2): execed()) had joined
    # them by then, as only cgexec, which joins them first, runs outside.
    found |= cgroup_procs(cgroup_dirs(uuid))
    found &= set(parents)
    while True:                                # their descendants
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            break
        found |= more
    found.discard(os.getpid())
    return found - ended, parents


def ancestry(pid, parents, among):
    """How many of pid's ancestors are among these processes."""
    count = 0
    while parents.get(pid) in among and count < len(among):
        pid, count = parents[pid], count + 1
    return count


def namespace(pid, name):
    """The inode of a process's namespace of a kind (proc(5): /proc/PID/ns/
    NAME; namespaces(7)), or None if it has ended."""
    try:
        return os.stat('/proc/%s/ns/%s' % (pid, name)).st_ino
    except OSError:
        return None


def nspid(pid):
    """A process's pid in each pid namespace it is in, from ours down
    (proc(5): NSpid in /proc/PID/status; a zombie's too), or []."""
    try:
        with open('/proc/%s/status' % pid) as f:
            return [l.split()[1:] for l in f if l.startswith('NSpid:')][0]
    except (OSError, IndexError):
        return []


def ppid(pid):
    """The parent process id of pid (proc(5): /proc/PID/status), or ''."""
    try:
        with open('/proc/%s/status' % pid) as f:
            return [l.split()[1] for l in f if l.startswith('PPid:')][0]
    except (OSError, IndexError):
        return ''


def running(pid):
    """Is process pid alive? A zombie has ended (proc(5): /proc/PID/stat)."""
    if pid in ('', '0', '1'):
        return False
    try:
        with open('/proc/%s/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def children(pid):
    """The processes whose parent is pid (proc(5): PPid in /proc/PID/status)."""
    return [int(p) for p in os.listdir('/proc') if p.isdigit() and ppid(p) == str(pid)]


# Signals that end a foreground run or exec (a terminal's ctrl-C and ctrl-\,
# kill's default, a closed terminal), and those only passed on to its command
# as they come, as Docker's CLI proxies every signal it can catch (signal(7));
# the rest keep their ways (CHLD, PIPE, the job control and fault signals).
ENDING = ('SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT')
PASSED = ('SIGUSR1', 'SIGUSR2', 'SIGALRM', 'SIGVTALRM', 'SIGPROF', 'SIGPWR', 'SIGIO',
          'SIGXCPU', 'SIGSTKFLT')


class Signals:
    """ENDING signals (signal(7)) to a foreground run or exec. Before the
    container's command starts, one ends bocker with 128+N (run takes back
    what it made). After, it is passed on to the command, which gets
    BOCKER_STOP_TIMEOUT seconds (10, as `docker stop`) to end; then what is
    left is killed. A second signal ends the grace at once. PASSED signals
    (and the real-time ones) are only passed on, once the command runs. The
    wait loop (tee(), spawn_exec()) selects on `wake` (signal.set_wakeup_fd)
    and calls tick() after each wait."""

    def __init__(self):
        import signal
        self.grace = number('STOP_TIMEOUT', '10')
        self.signum = self.deadline = self.target = None
        self.passed = False
        self.pending = []                      # PASSED signals not yet passed on
        self.wake, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write_end)
        for name in ENDING:
            signal.signal(getattr(signal, name), self.handle)
        for sig in [getattr(signal, name) for name in PASSED if hasattr(signal, name)] + \
                list(range(signal.SIGRTMIN, signal.SIGRTMAX + 1)):
            signal.signal(sig, self.pass_on)

    def pass_on(self, signum, _frame):
        if self.target is not None:
            self.pending.append(signum)

    def started(self, target, kill, what):
        """The command runs: target() gives the pids a signal is passed on to,
        kill() kills what is left."""
        self.target, self.kill, self.what = target, kill, what

    def handle(self, signum, _frame):
        if self.signum is not None:
            self.deadline = 0                  # again: no more grace
            return
        self.signum, self.deadline = signum, time.monotonic() + self.grace
        if self.target is None:
            raise Exit(128 + signum)
        if sys.stderr.isatty():
            import signal
            try:
                sys.stderr.write('%s: %s: passed on to %s; killed in %d s if it still runs'
                                 ' (again: at once)\n' % (os.path.basename(PROG),
                                                          signal.Signals(signum).name,
                                                          self.what, self.grace))
            except OSError:                    # the terminal is gone
                pass

    def timeout(self):
        """How long the wait loop may wait: for ever until a signal came,
        then in short steps (the target may not exist yet; the grace ends)."""
        return None if self.signum is None and not self.pending else 0.05

    def tick(self):
        import signal
        if self.signum is None and not self.pending:
            return
        try:
            os.read(self.wake, 64)
        except BlockingIOError:
            pass
        while self.pending:
            pids = self.target()
            if not pids:
                break                          # not started yet: the next tick
            sig = self.pending.pop(0)
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        if self.signum is None:
            return
        if not self.passed:
            for pid in self.target():
                try:
                    os.kill(pid, self.signum)
                    self.passed = True
                except ProcessLookupError:
                    pass
        if time.monotonic() >= self.deadline:
            self.kill(signal.SIGKILL)

    @property
    def code(self):
        return 128 + self.signum if self.signum else None


def kill_container(uuid, chain, sig):
    """Kill what is left of a container: the chain bocker started (it may not
    have reached the cgroup yet) and each process in the container's cgroup
    (cgroups(7): cgroup.procs); called until the last is gone."""
    victims = [proc.pid for proc in chain if proc.poll() is None]
    try:
        with open(cgroup_dir(uuid) + '/cgroup.procs') as f:
            victims += [int(pid) for pid in f.read().split()]
    except (OSError, TypeError):
        pass
    for pid in victims:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_once(fds, signals, relay, show):
    """One wait of tee() and spawn_exec() in select(2): for fds, a signal
    (Signals' wake) or, with -t, the terminals (Relay); then the signals'
    due work and the relay's. The fds ready."""
    import select
    ready, writable = select.select(fds + [signals.wake] + (relay.reading() if relay else []),
                                    relay.writing() if relay else [], [], signals.timeout())[:2]
    signals.tick()
    if relay:
        drain(signals.wake, ready)
        relay.step(ready, writable, show)
    return ready


def spawn_exec(argv, relay=None):
    """Run exec's command chain in the foreground; its status (128+N for a
    command killed by signal N, as a shell gives it). bocker becomes a child
    subreaper (prctl(2): PR_SET_CHILD_SUBREAPER): if nsenter dies of a
    terminal's ctrl-C, the command it started comes to us, so a signal still
    reaches it and the grace still ends it."""
    import ctypes
    signals = Signals()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    me, chain = os.getpid(), []                # chain: the nsenter, once started

    def exec_processes():
        return [pid for proc in chain for pid in children(proc.pid)] + \
            [pid for pid in children(me) if pid not in [proc.pid for proc in chain]]

    def groups():
        # The command leads a session and process group of its own (join()):
        # a signal goes to the whole group, as a terminal's went to the
        # foreground group (kill(2) with -PGID), and to the command itself
        # while it has none yet.
        return [-pid for pid in exec_processes()] + exec_processes()

    def kill(sig):
        for pid in groups() + [proc.pid for proc in chain if proc.poll() is None]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    def show(chunk):                           # the container's terminal's output
        try:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        except OSError:                        # the caller's terminal is gone
            pass
    signals.started(groups, kill, 'the command')     # before it starts: no signal lost
    try:
        proc = command(argv).popen(stdin=relay.theirs.fileno() if relay else None,
                                   stdout=None, stderr=None)
        chain.append(proc)
        if relay:                              # beyond the bash (exec -t): see Relay
            relay.started()
        pidfd = os.pidfd_open(proc.pid)
        while proc.poll() is None or signals.code and exec_processes():
            wait_once([pidfd], signals, relay, show)
            reap([pid for pid in children(me) if pid != proc.pid])
        if relay:                              # not waiting for a process it left holding the terminal
            relay.drain(show)
    finally:
        if relay:
            relay.close()
    os.close(pidfd)
    code = proc.returncode
    return signals.code or (128 - code if code < 0 else code)


def reap(pids):
    """Collect the orphans that came to us as a subreaper, once they end
    (never the process Popen waits for: its status is the exec's)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


# --- A terminal of its own: run -t and -i, exec -it (issue 28) --------------------
# `run -it IMG sh` as Docker gives it: the container's command on a
# pseudo-terminal (pty(7)) of the container's own devpts (make_dev(): a new
# instance, so its /dev/pts lists its ptys alone), as the controlling terminal
# of its own session. The container's pid 1 (enter(), own_terminal()) opens
# the pair itself through that devpts's ptmx and hands the master end out to
# bocker over its stdin, a unix socket (SCM_RIGHTS, unix(7)); it keeps the
# slave as its stdin, stdout and stderr. bocker relays between the master and
# the caller's terminal (Relay), which it puts in raw mode (termios(3)) so that
# every key, ctrl-C too, reaches the container's terminal, whose line
# discipline makes of it what a terminal makes: ctrl-C a SIGINT to the
# foreground job of the shell, not to the shell. The master never enters the
# container, so nothing in it can type into bocker's side.

TIOCSCTTY, TIOCGPTPEER, TIOCSPTLCK = 0x540E, 0x5441, 0x40045431   # ioctl_tty(2), the uapi's asm-generic/ioctls.h


def note_end(c, code):
    """A flagged foreground run has ended: its status and when, in its state
    file (for ls); the status it returns (docker_status())."""
    c.finished, c.status = int(time.time()), docker_status(c, code)
    try:
        c.save()
    except OSError:                            # an rm took it meanwhile
        pass
    return c.status


def docker_status(c, code):
    """What a run given Docker's flags returns, as Docker's does: its command's
    status (`exit 3` in `run -it IMG sh`: 3; 128+N after signal N), where the
    bash's run returns 0 (its `|| true`); a signal to the run itself still
    gives 128+N (Signals)."""
    if code or c.status is None:
        return code
    return 128 - c.status if c.status < 0 else c.status


def wanted(value):
    """A bare flag's value, as run passed it or the state file keeps it."""
    return value in (True, 'True')


def own_terminal(root):
    """run -t: the container's own terminal (enter(), after make_dev(), which
    made the devpts it comes from; before pivot_into(), while bocker's
    Python still loads from the host). The flag comes from the state file
    run wrote beside the root (Container.save()); without it, nothing."""
    uuid = os.path.basename(os.path.dirname(root))
    if not wanted(Container.load(uuid).tty):
        return
    take_terminal(root + '/dev/pts/ptmx')


def take_terminal(ptmx):
    """Open a pty pair through ptmx (pts(4): posix_openpt, unlockpt), make
    the slave our controlling terminal (TIOCSCTTY: we lead a session of our
    own, own_session()) and our stdin, stdout and stderr, and send the
    master to bocker over our stdin, the socket it gave us (unix(7),
    SCM_RIGHTS); then close it: only bocker holds it."""
    import fcntl
    import socket
    import struct
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack('i', 0))          # unlockpt(3)
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)   # the peer, by the master
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    sock = socket.socket(fileno=os.dup(0))
    socket.send_fds(sock, [b'pty'], [master])
    sock.close()
    os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)


def drain(wake, ready):
    """Empty the signals' wake-up pipe once select(2) found it ready: a
    SIGWINCH wrote to it too, and Signals.tick() reads it only once a signal
    it handles came."""
    if wake in ready:
        try:
            os.read(wake, 64)
        except BlockingIOError:
            pass


# run's flags for a terminal (RUN_FLAGS, run_flags()): -t a terminal of its
# own, -i the caller's stdin relayed to it (without -t: kept open, as a
# foreground run keeps it anyway). exec takes the same two (EXEC_FLAGS).
RUN_FLAGS.update({'-t': ('tty', None), '-i': ('interactive', None)})
EXEC_FLAGS = {'-t': ('tty', None), '-i': ('interactive', None)}


def need_a_terminal(flags):
    """-i with -t relays the caller's terminal: refused, as Docker refuses
    it, when stdin is none (a pipe, a file), where no end of input could be
    told apart from keys the container's shell has not read yet (a shell
    that sets up its terminal flushes what came before). -t alone needs none.
    A detached run (-d) reads nothing."""
    if wanted(flags.get('interactive')) and wanted(flags.get('tty')) and \
            not wanted(flags.get('detach')) and not os.isatty(0):
        fail('the input device is not a TTY: -it needs a terminal (-t alone does not)')


def exec_terminal(argv, flags):
    """exec -t: join's words `__join__ PID` become `__join__ -t PID` (a pid
    is digits: the -t cannot be one), so join() takes a terminal."""
    return argv[:-1] + ['-t'] + argv[-1:] if flags.get('tty') else argv


class Relay:
    """bocker's side of a container's terminal: the socket the master comes
    over, then the master itself. What the container writes goes to our
    stdout (and to its log: run's tee()); what the caller types (-i) goes to
    the container's terminal. The caller's terminal is in raw mode while the
    relay lasts, and set back as it was on every way out (close(), from a
    finally). A window-size change (SIGWINCH) is passed on (TIOCSWINSZ),
    which the container's foreground job gets as its own SIGWINCH."""

    def __init__(self, interactive):
        import signal
        import socket
        self.mine, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.master = None
        self.stdin = sys.stdin.fileno() if interactive else None
        self.pending = b''                     # typed, not yet taken by the container's terminal
        self.resized = True
        self.saved = None
        self.winch = signal.signal(signal.SIGWINCH, self.resize)

    def resize(self, _signum, _frame):
        self.resized = True

    def started(self):
        """The chain has its end of the socket: ours alone holds this one,
        and the caller's terminal goes raw."""
        import termios
        import tty
        self.theirs.close()
        if self.stdin is not None and os.isatty(self.stdin):
            self.saved = termios.tcgetattr(self.stdin)
            tty.setraw(self.stdin, termios.TCSANOW)

    def reading(self):
        """What to wait for: the socket until the master came, the master
        until the container's terminal is gone, the caller's stdin (-i)."""
        fds = [fd for fd in (self.mine, self.master) if fd is not None]
        if self.master is not None and self.stdin is not None and not self.pending:
            fds.append(self.stdin)
        return fds

    def writing(self):
        return [self.master] if self.master is not None and self.pending else []

    def step(self, readable, writable, show):
        """Do what select(2) found ready; show(bytes) writes the container's
        output out."""
        if self.mine is not None and self.mine in readable:
            self.receive()
        if self.master is not None and self.resized:
            self.pass_size()
        if self.master in readable:
            try:
                chunk = os.read(self.master, 65536)
            except BlockingIOError:
                chunk = None
            except OSError:                    # EIO: every slave closed, the command ended
                chunk = b''
            if chunk:
                show(chunk)
            elif chunk is not None:
                os.close(self.master)
                self.master = None
                return
        if self.stdin is not None and self.stdin in readable:
            data = os.read(self.stdin, 65536)
            # stdin ended (a pipe): the container's terminal gets its end of file, ^D
            self.pending = data or b'\x04'
            if not data:
                self.stdin = None
        if self.master in writable and self.pending:
            try:
                self.pending = self.pending[os.write(self.master, self.pending):]
            except BlockingIOError:
                pass

    def drain(self, show):
        """The command has ended: show what its terminal still holds, without
        waiting (a process it left in the background may hold it open)."""
        if self.mine is not None:
            self.mine.setblocking(False)
            try:
                self.receive()
            except BlockingIOError:
                pass
        while self.master is not None:
            try:
                chunk = os.read(self.master, 65536)
            except BlockingIOError:
                break
            except OSError:                    # EIO: every slave closed
                chunk = b''
            if not chunk:
                break
            show(chunk)

    def receive(self):
        """The master from the container's pid 1 (or nothing: it ended first)."""
        import socket
        try:
            _msg, fds, _flags, _addr = socket.recv_fds(self.mine, 16, 1)
        except BlockingIOError:
            raise
        except OSError:
            fds = []
        self.mine.close()
        self.mine = None
        if fds:
            self.master = fds[0]
            os.set_blocking(self.master, False)

    def pass_size(self):
        """The caller's window size to the container's terminal (ioctl_tty(2):
        TIOCGWINSZ, TIOCSWINSZ)."""
        import fcntl
        import termios
        self.resized = False
        for fd in (self.stdin, sys.stdout.fileno()):
            if fd is not None and os.isatty(fd):
                size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b'\0' * 8)
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
                return

    def close(self):
        """The caller's terminal as it was; the socket and master closed."""
        import signal
        import termios
        if self.saved is not None:
            try:
                termios.tcsetattr(self.stdin if self.stdin is not None else sys.stdin.fileno(),
                                  termios.TCSADRAIN, self.saved)
            except termios.error:              # the terminal is gone
                pass
            self.saved = None
        for end in (self.mine, self.theirs):
            if end is not None:
                end.close()
        if self.master is not None:
            os.close(self.master)
        self.mine = self.master = None
        signal.signal(signal.SIGWINCH, self.winch)


# --- A container you can work with: detached runs, stop, start, names (issue 28) ----
# `run -d` gives the container's command to a supervisor, a process of bocker's
# that outlives the run (as podman's conmon): it writes the container's output
# to its log, waits for its end, then cleans up as a foreground run does (the
# veth and the netns go; the directory, its mount and cgroups stay for `logs`,
# `commit`, `start` and `rm`) and notes the status in the state file. The
# supervisor holds a lock (flock(2)) on ps_N/ps_N.lock while it lives: that is
# how `start`, `logs -f` and `ls` know a detached container runs, and why two
# `start`s cannot both start it. A name (`run --name NAME`) is a symlink
# names/NAME -> ps_N in the store, so the bash's commands still find ps_N
# directories only, and the name works wherever an id does (by_names()).

names_path = '/var/lib/bocker/names'
NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-'
NAMED = ('exec', 'logs', 'commit', 'rm', 'stop', 'start')   # the commands that take an id


def a_name(name):
    """--name NAME, as Docker allows one: a letter or digit, then letters,
    digits, `_`, `.` and `-` (so never `..`, `/` or a space), at most 64,
    and not an id bocker makes (ps_N, img_N)."""
    if not name or len(name) > 64 or not name[0].isalnum() or not name.isascii() or \
            any(ch not in NAME_CHARS for ch in name) or well_formed(name):
        fail("'%s' is not a valid container name: a letter or digit, then letters, digits, "
             "'_', '.' or '-' (not an id like ps_N)" % q(name))
    return name


def named(name):
    """The container a name stands for, or None: names/NAME's target, if
    that container is still there and was given this name (a ps_N used
    again after an rm is another container)."""
    try:
        uuid = os.readlink('%s/%s' % (names_path, name))
    except OSError:
        return None
    if well_formed(uuid) and uuid.startswith('ps_') and Container.load(uuid).name == name \
            and os.path.isdir(Container(uuid).dir):
        return uuid
    return None


def by_names(args):
    """The command's words with a container's name in place of its id (the
    first word after the command's own flags), for the commands in NAMED.
    A word that names no container is left as it is: the command refuses it
    in its own words. Without names (the bash's store) nothing changes."""
    args = list(args)
    if not args or args[0] not in NAMED or not os.path.isdir(names_path):
        return args
    at = 1
    while at < len(args) and args[at][:1] == '-':
        at += 2 if args[0] == 'stop' and args[at] == '-t' else 1
    if at < len(args) and not well_formed(args[at]):
        args[at] = named(args[at]) or args[at]
    return args


def name_free(name):
    """Refuse a taken name before run makes anything."""
    if name is not None and named(name):
        fail("the name '%s' is taken by %s" % (name, named(name)))


def claim_name(c, undo):
    """names/NAME -> ps_N, made at once (symlink(2) fails if it exists): of
    two runs given one name, one gets it. A link whose container is gone
    is taken over."""
    if c.name is None:
        return
    os.makedirs(names_path, exist_ok=True)
    link = '%s/%s' % (names_path, c.name)
    for _ in range(2):
        try:
            os.symlink(c.id, link)
            undo.push('rm ' + link, lambda: os.unlink(link))
            return
        except FileExistsError:
            if named(c.name):
                fail("the name '%s' is taken by %s" % (c.name, named(c.name)))
            try:
                os.unlink(link)                # its container is gone
            except FileNotFoundError:
                pass
    fail("the name '%s' is taken" % c.name)


def drop_names(uuid):
    """rm: the names that stand for this container go with it."""
    try:
        names = os.listdir(names_path)
    except OSError:
        return
    for name in names:
        link = '%s/%s' % (names_path, name)
        try:
            if os.readlink(link) == uuid:
                os.unlink(link)
        except OSError:
            pass


def supervisor_lock(uuid, wait=False):
    """The lock a detached container's supervisor holds while it lives
    (ps_N/ps_N.lock, flock(2)): a descriptor holding it, or None if a
    supervisor holds it."""
    import fcntl
    fd = os.open(Container(uuid).path(uuid + '.lock'), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def supervised(uuid):
    """Does a supervisor run this container now?"""
    if not os.path.exists(Container(uuid).path(uuid + '.lock')):
        return False
    fd = supervisor_lock(uuid)
    if fd is None:
        return True
    os.close(fd)
    return False


def runs(uuid):
    """Does the container run: its pid 1 in its root, or its supervisor alive?"""
    return bool(container_pid(uuid)) or supervised(uuid)


def detach(c, cmd, signals, lock):
    """run -d, start: fork the supervisor (supervise()), wait until the
    container's pid 1 is in its root (so an `exec` right after finds it)
    or has already ended, print its id and return: the supervisor, in a
    session of its own (setsid(2)), lives on. The lock is the supervisor's
    from here (a forked child shares the open file and its flock)."""
    import select
    ready_r, ready_w = os.pipe()
    flush()
    pid = os.fork()
    if pid == 0:                               # the supervisor
        os.close(ready_r)
        code = 1
        try:
            code = supervise(c, cmd, signals, ready_w)
        except Exit as e:
            code = e.code
        except BaseException as e:             # noqa: B036: no caller to tell; its log says it
            import traceback
            traceback.print_exception(e)
        finally:
            flush()
            os._exit(code)
    os.close(ready_w)
    os.close(lock)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not container_pid(c.id):
        if select.select([ready_r], [], [], 0.02)[0]:
            break                              # the supervisor is done: it ended already
    os.close(ready_r)
    explain('supervisor', c.id)
    say(c.id)
    return 0


def die_with_parent(libc=None):
    """PR_SET_PDEATHSIG (prctl(2)): SIGKILL to us when our parent ends,
    kept across execve(2). A run or supervisor starts the container's chain
    so (its unshare dies with it: tied_to_run()), and the container's pid 1
    (tie_to_run()) dies with that unshare: a run or supervisor killed leaves
    no container running unseen, with nobody writing its log."""
    import ctypes
    import signal
    (libc or ctypes.CDLL(None, use_errno=True)).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def tied_to_run():
    """How the run's chain (cgexec, ip, unshare) starts: in a process group
    of its own (setpgid(2)), so a terminal's signals reach the run alone,
    which passes them on to pid 1 (Signals); and dying with the run or the
    supervisor that started it (die_with_parent()). diverges (row 54): the
    bash's chain was in the terminal's process group, and a run killed with
    kill -9 left its container running, nobody writing its log."""
    os.setpgid(0, 0)
    die_with_parent()


def tie_to_run(libc):
    """enter()'s step: pid 1 dies with its parent, the unshare the run or
    the supervisor started (die_with_parent(), tied_to_run()). Right after
    own_session(): early, and before the host's files go."""
    die_with_parent(libc)


def supervise(c, cmd, signals, ready):
    """The supervisor: the container's command run as a foreground run runs
    it (execute()), its output to the log alone; then the same end as a
    run's (the veth and netns deleted), and what it did noted in the state
    file (finished, status). Nothing of the caller's: its own session, no
    terminal, stdin and stdout /dev/null, / as its working directory; its
    own errors, if any, go to the end of the log."""
    os.setsid()
    os.chdir('/')                              # no directory of the caller's kept busy
    for key in ('TRACE', 'EXPLAIN', 'STEP'):   # they showed the run's steps, not these
        OPTIONS[key] = ''
    null = os.open('/dev/null', os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    errors = os.open(c.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    os.dup2(errors, 2)
    os.close(errors)
    c.supervisor, c.started, c.finished, c.status = os.getpid(), int(time.time()), None, None
    c.save()
    code = None
    try:
        code = execute(c, cmd, signals)
    finally:
        os.close(ready)
        end_of_run(c)
        c.finished = int(time.time())
        c.status = docker_status(c, code or 0) if code is not None else 137
        try:
            c.save()
        except OSError:                        # an rm took the container meanwhile
            pass
    return 0


def end_of_run(c):
    """What the end of a run takes away, as bocker_run's end does: -p's
    rules, the veth and the netns (each if still there)."""
    unpublish(c.id, c.ports)
    delete_batch([(lambda: link_exists(c.veth0), ['link', 'del', 'dev', c.veth0]),
                  (lambda: netns_exists(c.id), ['netns', 'del', c.netns])])


def end_of_container(uuid):
    """What stop does once the container has ended: wait for its supervisor
    (it cleans up), and clean up in its place where there is none (a
    foreground run killed with kill -9, a supervisor killed)."""
    c = Container.load(uuid)
    fd = None
    for _ in range(300 if os.path.exists(c.path(uuid + '.lock')) else 0):
        fd = supervisor_lock(uuid)
        if fd is not None:
            break
        time.sleep(0.01)
    try:
        end_of_run(c)
        c = Container.load(uuid)
        if c.status is None and c.detach is not None:
            c.finished, c.status = int(time.time()), 137
            c.save()
    finally:
        if fd is not None:
            os.close(fd)


def restart(c, undo):
    """start: what the end of a run took away, made again: its veth and
    netns (the same address: it comes from the id), and its root mounted
    again if it was not (after a reboot). Its upper layer, command, cgroups
    and log are kept."""
    end_of_run(c)                              # what a supervisor killed (kill -9) left
    if not os.path.isdir(cgroup_dir(c.id) or ''):
        fail('container %s has no cgroups left: it cannot start (rm it)' % c.id)
    if not mounted(c.merged):                  # after a reboot: on its image again (row 13)
        image = '%s/%s' % (overlay_path, c.image)
        if not c.image or not os.path.isdir(image):
            fail('container %s: its image %s is gone: it cannot start (rm it)' % (c.id, c.image))
        run('mount', '-t', 'overlay', 'overlay', '-o',
            overlay_options([c.lower, image], c.upper, c.work), c.merged)
        undo.push('umount ' + c.merged, lambda: run('umount', c.merged, check=False))
    ip_done = network(c, undo)
    ip_done()
    publish(c, undo)                           # -p's rules again, for its address


def follow_logs(*args):
    """logs -f ID: the log so far, then what is written to it, until the
    container has ended (its supervisor or its run gone, its pid 1 gone)."""
    need(args, 1, 'bocker_logs')
    uuid = args[0]
    need_container(uuid)
    flush()
    out = sys.stdout.buffer
    with open(Container(uuid).log, 'rb') as f:
        while True:
            alive = runs(uuid)
            chunk = f.read()
            if chunk:
                out.write(chunk)
                out.flush()
            elif not alive:
                return 0
            else:
                time.sleep(0.1)


def status_line(uuid):
    """ls's columns for a container: its name, state (running since, or
    exited with its status since), address and command."""
    c = Container.load(uuid)
    when = lambda t: time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(int(t)))   # noqa: E731
    if runs(uuid):
        state = 'running' + (' since %s' % when(c.started) if c.started else '')
    elif c.status is not None:
        state = 'exited (%s)%s' % (c.status, ' since %s' % when(c.finished) if c.finished else '')
    else:
        state = 'exited'
    try:
        cmd = read(c.cmd_file)
    except OSError:
        cmd = ''
    return [uuid, c.name or '-', state, '172.18.0.%s' % address(uuid)[0], cmd]


RUN_FLAGS.update({'-d': ('detach', None), '--name': ('name', a_name)})


# --- Entering a container: the step in place of the bash's chroot -----------------
# run's last step (`bocker.py __enter__ ROOT CMD...`, started by unshare as the
# container's pid 1) and exec's (`bocker.py __join__ PID CMD...`, started by
# nsenter inside the container's other namespaces). Each is an ordered list of
# steps, and each step names the man page that explains it.

# Docker's default capabilities, less CAP_SYS_CHROOT (a container has no use
# for a second root), CAP_MKNOD and CAP_AUDIT_WRITE (as podman drops them):
# capabilities(7). CAP_NET_RAW stays, as Docker keeps it: busybox's ping (the
# test image, the article's and upstream's examples) needs its raw ICMP
# socket; the seccomp filter allows no other raw socket, no packet socket and
# no IP_HDRINCL, which is what a forged frame or address needs (row 43).
KEEP_CAPS = {0: 'chown', 1: 'dac_override', 3: 'fowner', 4: 'fsetid', 5: 'kill',
             6: 'setgid', 7: 'setuid', 8: 'setpcap', 10: 'net_bind_service',
             13: 'net_raw', 31: 'setfcap'}


# Docker keeps CAP_MKNOD and stops device nodes with its devices cgroup; bocker
# drops it, as podman does, and mounts the root nodev (enter()): the same on
# cgroup v1 and v2. diverges (row 35): the bash kept every capability, and no
# device cgroup or nodev mount stood between a container and the host's disks.


# /proc as runc's and Docker's default spec leave it: the kernel's switches read-
# only (/proc/sys, the IRQ routing, ...), and what it shows of the host hidden
# (its memory, keys, timers, hardware lists): proc(5).
PROC_READ_ONLY = ('bus', 'fs', 'irq', 'sys', 'sysrq-trigger')
PROC_MASKED = ('acpi', 'asound', 'kcore', 'keys', 'latency_stats', 'timer_list', 'timer_stats',
               'sched_debug', 'scsi')

# The mount points enter() needs besides /proc, which run adds to a container's
# lower layer where its image has none.
MOUNT_POINTS = ('dev', 'sys')

# The C calls the steps make (libc through ctypes, c_libraries(); those glibc
# has no wrapper for by number, syscall()), and the kernel's numbers they pass,
# named once (from the kernel's uapi headers):
#   setsid(2)       a session of its own            (os.setsid)
#   keyctl(2)       a session keyring of its own    KEYCTL_JOIN_SESSION_KEYRING
#   mount(2)        /proc, /dev, /sys, the masks    MS_*
#   unshare(2)      a cgroup namespace              CLONE_NEWCGROUP
#   setns(2)        exec joins the container's      CLONE_NEWCGROUP, CLONE_NEWNS
#   pivot_root(2)   the container's root            (syscall(): no glibc wrapper)
#   umount2(2)      the host's root detached        MNT_DETACH
#   prctl(2)        capabilities, no_new_privs      PR_*
#   mknod(2)        /dev's devices                  (os.mknod)
#   seccomp(2)      the filter                      (libseccomp: seccomp_load(3))
#   execve(2)       the command                     (os.execve)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MNT_DETACH = 2
PR_SET_CHILD_SUBREAPER, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 36, 24, 38
PR_SET_PDEATHSIG = 1
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
KEYCTL_JOIN_SESSION_KEYRING = 1
CLONE_NEWNS, CLONE_NEWCGROUP = 0x00020000, 0x02000000

# What a container's command finds in its environment (environ(7)), as Docker
# gives it: nothing of the caller's but TERM, and that only with a terminal.
CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# ping as any user of the container, as Docker allows it: ICMP echo sockets
# (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), icmp(7)) for every group, in the
# container's netns only.
PING_GROUP_RANGE = '0 2147483647'


def enter(root, *argv):
    """The last step into a new container, as its pid 1 (see enter_argv()):
    its steps, in the order they must come. compat/teaching.md teaches each
    on the side-by-side page. The mounts are made in the container's new
    mount namespace, which unshare made private: none of them shows on the
    host."""
    libc, seccomp = c_libraries()              # first: the host's files are still in reach
    c = record_of(root)                        # so is its state file: -e, -w, -v
    default_signals()
    own_session(libc)
    tie_to_run(libc)                           # it ends if its run or supervisor is killed
    mount = mounter(libc)
    remount_nodev(root, mount)                 # before anything is mounted below it
    make_proc(root + '/proc', mount)
    make_dev(root + '/dev', mount)
    own_terminal(root)                         # run -t: a pty of the devpts just made
    make_sys(root + '/sys', mount, libc)
    allow_ping(root + '/proc')                 # through the new /proc: the container's netns
    confine_proc(root, mount)                  # after /dev: the masks are its /dev/null
    bind_volumes(root, c.volumes, mount)       # -v: the host's directories, before they go
    pivot_into(root, libc)                     # last of the mounts: the host's root goes
    work_dir(c.workdir, make=True)             # -w: inside the container's root, as root
    drop_capabilities(libc)                    # after the mounts, which need CAP_SYS_ADMIN
    become_user(c.user)                        # the image's User: after what needs root
    seccomp_load(seccomp)                      # last: it refuses the calls above
    return exec_command(argv, container_env(c))


def own_session(libc):
    """A session of its own (setsid(2)): no controlling terminal and no
    process group of the caller's, so the command can neither type into the
    caller's terminal (TIOCSTI, ioctl_tty(2)) nor signal the caller (`kill
    0`); and a session keyring of its own (keyrings(7)), not the caller's.
    diverges (row 44): the bash ran it in the caller's session."""
    os.setsid()
    syscall(libc, 'keyctl', KEYCTL_JOIN_SESSION_KEYRING, None)


def remount_nodev(root, mount):
    """The root remounted nodev (mount(2)): a device node in the image, or
    one the container could make, opens no device of the host. First, so
    the mounts made below it are their own."""
    mount(None, root, None, MS_REMOUNT | MS_BIND | MS_NODEV)


def make_proc(proc, mount):
    """bash: /bin/mount -t proc proc /proc. Its own proc filesystem (proc(5)),
    which shows the processes of the pid namespace of whoever mounts it: the
    container's. Before pivot_root: after it the command may not mount."""
    mount(b'proc', proc, b'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC)


def allow_ping(proc):
    """ping as any user of the container (icmp(7): ping_group_range), set
    in the container's network namespace only."""
    with open(proc + '/sys/net/ipv4/ping_group_range', 'w') as f:
        f.write(PING_GROUP_RANGE)


def confine_proc(root, mount):
    """The host kernel's switches under /proc read-only, and what it shows
    of the host hidden: a mask is the container's own /dev/null (never the
    host's: a chmod through it would change the host's) or an empty tmpfs,
    each read-only (bind, then remount: mount(2))."""
    proc = root + '/proc'
    for name in PROC_READ_ONLY:
        path = '%s/%s' % (proc, name)
        if os.path.exists(path):
            mount(path.encode(), path, None, MS_BIND)
            mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    for name in PROC_MASKED:
        path = '%s/%s' % (proc, name)
        if os.path.isdir(path):
            mount(b'tmpfs', path, b'tmpfs', MS_RDONLY, b'size=0')
        elif os.path.exists(path):
            mount((root + '/dev/null').encode(), path, None, MS_BIND)
            mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def pivot_into(root, libc):
    """bash: chroot "$container_path/$uuid"/merged. pivot_root(".", "."): the
    new root and the old one (the host's) stacked on the same directory; the
    old one, on top, is then detached (umount2(2)), so the host's files are
    not in the container's mount namespace at all. diverges (row 41): the
    bash's chroot kept the host's root there."""
    os.chdir(root)
    syscall(libc, 'pivot_root', b'.', b'.')
    if libc.umount2(b'.', MNT_DETACH) != 0:
        raise c_error('umount2', '.')
    os.chdir('/')


def join(pid, *argv):
    """exec's last step (`bocker.py __join__ PID CMD...`, see join_argv()),
    started by nsenter in the container's pid, net, uts and ipc namespaces.
    The same steps as enter(), but for the mounts, which it finds made: it
    joins pid PID's cgroup namespace and mount namespace itself, once this
    Python and its libraries are loaded from the host; setns(2) with
    CLONE_NEWNS also makes that namespace's root, the container's, its root
    and working directory."""
    terminal = pid == '-t'                     # exec -t: `__join__ -t PID CMD...`
    if terminal:
        pid, argv = argv[0], argv[1:]
        import fcntl, socket, struct           # noqa: F401,E401 (take_terminal's, from the host)
    libc, seccomp = c_libraries()
    c = record_of_exec()                       # from the host: its -e and -w
    default_signals()
    own_session(libc)
    join_namespaces(pid, libc)
    if terminal:                               # a pty of the container's devpts (take_terminal())
        take_terminal('/dev/pts/ptmx')
    work_dir(c.workdir, make=False)            # as Docker's exec: the container's -w
    drop_capabilities(libc)
    become_user(c.user)                        # as Docker's exec: the image's User
    seccomp_load(seccomp)
    return exec_command(argv, container_env(c))


def join_namespaces(pid, libc):
    """setns(2) into pid's cgroup namespace, then its mount namespace (and
    with it the container's root, as its root and working directory)."""
    for name, kind in (('cgroup', CLONE_NEWCGROUP), ('mnt', CLONE_NEWNS)):
        fd = os.open('/proc/%s/ns/%s' % (pid, name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, kind) != 0:
                raise c_error('setns', '/proc/%s/ns/%s' % (pid, name))
        finally:
            os.close(fd)
    os.chdir('/')


def default_signals():
    """The signal dispositions a shell gives: Python ignores SIGPIPE and
    SIGXFSZ, and exec keeps ignored signals (signal(7)), so `yes | head -1`
    would complain of a broken pipe instead of ending quietly."""
    import _signal as signal                   # the C module: signal's enums are not needed here
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)


def drop_capabilities(libc):
    """The capability bounding set cut to KEEP_CAPS, ambient capabilities
    cleared and no_new_privs set (prctl(2)), so the command, though root,
    can neither mount, nor make device nodes, nor regain them through a
    setuid program."""
    with open('/proc/sys/kernel/cap_last_cap') as f:
        last_cap = int(f.read())
    for cap in range(last_cap + 1):
        if cap not in KEEP_CAPS and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise c_error('prctl', 'PR_CAPBSET_DROP')
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def exec_command(argv, env):
    """execve(2) the command with env, searching PATH as execvp(3) does
    (Python's own search would import a module: the host's library is out
    of reach in the container's root); on failure chroot(1)'s words and
    status."""
    search = [''] if '/' in argv[0] else env['PATH'].split(':')
    error = None
    for directory in search:
        try:
            os.execve(os.path.join(directory, argv[0]), argv, env)
        except OSError as e:
            error = error if error and e.errno == 2 else e
    sys.stderr.write("chroot: failed to run command '%s': %s\n" % (argv[0], error.strerror))
    return 126 if error.errno == 13 else 127


def container_env(c=None):
    """PATH, HOSTNAME (the container's, uname(2) in its uts namespace), HOME,
    and the caller's TERM only when the command reads a terminal (its stdin
    is the caller's terminal, or -t's pty: isatty(3)), as Docker gives TERM
    only with a tty; then container c's env (the image's Env, then -e: run's
    wiring()). diverges (row 40): the bash passed the caller's whole
    environment on, secrets and all."""
    env = {'PATH': CONTAINER_PATH, 'HOSTNAME': os.uname().nodename, 'HOME': '/root'}
    if os.environ.get('TERM') and os.isatty(0):
        env['TERM'] = os.environ['TERM']
    for entry in (c.env if c else None) or ():  # beyond the bash: KEY=VALUE each
        key, _, value = entry.partition('=')
        env[key] = value
    return env


def mounter(libc):
    """mount(2) for enter(): never through one of the image's symlinks."""
    def mount(source, target, fstype, flags, data=None):
        if os.path.islink(target):
            raise OSError(40, 'mount: a symlink', target)
        if libc.mount(source, target.encode(), fstype, flags, data) != 0:
            raise c_error('mount', target)
    return mount


def c_error(call, what):
    """The OSError of a C call that failed (errno(3))."""
    import ctypes
    errno = ctypes.get_errno()
    return OSError(errno, '%s: %s' % (call, os.strerror(errno)), what)


# /dev as runc and Docker give it: character devices with their usual numbers
# (devices(7) lists them; mknod(2)), mode 0666.
DEV_NODES = (('null', 1, 3), ('zero', 1, 5), ('full', 1, 7), ('random', 1, 8),
             ('urandom', 1, 9), ('tty', 5, 0))


DEV_LINKS = (('fd', '/proc/self/fd'), ('stdin', '/proc/self/fd/0'), ('stdout', '/proc/self/fd/1'),
             ('stderr', '/proc/self/fd/2'), ('ptmx', 'pts/ptmx'))


def make_dev(dev, mount):
    """The container's /dev (enter(), before pivot_root): a tmpfs (tmpfs(5))
    over the image's /dev, holding DEV_NODES, DEV_LINKS, a devpts of its own
    at /dev/pts (a new instance: its ptys are the container's alone, devpts(5)
    and pts(4)) and a tmpfs at /dev/shm for POSIX shared memory (shm_overview(7)).
    All of it lives in the container's mount namespace: nothing lands in
    upper, so nothing in a commit."""
    mount(b'tmpfs', dev, b'tmpfs', MS_NOSUID, b'mode=755,size=65536k')
    for name, major, minor in DEV_NODES:
        os.mknod('%s/%s' % (dev, name), 0o20666, os.makedev(major, minor))
        os.chmod('%s/%s' % (dev, name), 0o666)     # not the umask's
    for name, target in DEV_LINKS:
        os.symlink(target, '%s/%s' % (dev, name))
    os.mkdir(dev + '/pts', 0o755)
    mount(b'devpts', dev + '/pts', b'devpts', MS_NOSUID | MS_NOEXEC,
          b'newinstance,ptmxmode=0666,mode=0620,gid=5')
    os.mkdir(dev + '/shm', 0o755)
    mount(b'shm', dev + '/shm', b'tmpfs', MS_NOSUID | MS_NODEV | MS_NOEXEC, b'mode=1777,size=65536k')


def make_sys(sys_dir, mount, libc):
    """The container's /sys, as runc gives it: a sysfs (sysfs(5)) read-only,
    which shows the network devices of the network namespace it is mounted
    in, the container's; and at /sys/fs/cgroup its own cgroups, read-only,
    in a cgroup namespace of its own (cgroup_namespaces(7)) rooted at its
    cgroup ps_N, so `cat /sys/fs/cgroup/memory.max` (v2) or
    `/sys/fs/cgroup/memory/memory.limit_in_bytes` (v1) shows its limit and
    /proc/self/cgroup shows `/`. diverges (row 45): the bash's container had
    no /sys."""
    ro = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    mount(b'sysfs', sys_dir, b'sysfs', ro)
    if libc.unshare(CLONE_NEWCGROUP) != 0:
        raise c_error('unshare', 'CLONE_NEWCGROUP')
    top = sys_dir + '/fs/cgroup'
    # The hierarchies as the kernel lists this process's cgroups (proc(5):
    # /proc/self/cgroup): `ip netns exec` mounted a sysfs of its own over
    # the host's /sys, so no cgroup mount is left here to read them from.
    with open('/proc/self/cgroup') as f:
        groups = [line.split(':')[1] for line in f]
    wanted = set(cgroups.split(',')) | {'pids'}
    v1 = [names for names in groups if wanted & set(names.split(','))]
    if not v1:                                 # cgroup v2 only: its one hierarchy
        mount(b'cgroup2', top, b'cgroup2', ro)
        return
    mount(b'cgroup', top, b'tmpfs', MS_NOSUID | MS_NODEV | MS_NOEXEC, b'mode=755,size=64k')
    for names in v1:                           # cpu,cpuacct (or cpu), memory, pids
        os.mkdir('%s/%s' % (top, names), 0o755)
        mount(b'cgroup', '%s/%s' % (top, names), b'cgroup', ro, names.encode())
        for controller in names.split(','):    # cpu -> cpu,cpuacct, as systemd links them
            if controller != names:
                os.symlink(names, '%s/%s' % (top, controller))
    mount(None, top, None, MS_REMOUNT | MS_BIND | ro)


# --- Seccomp: the system calls a container may make --------------------------------
# A seccomp filter (seccomp(2)) is a small program the kernel runs at every
# system call of the process and its children, for ever: it allows the call, or
# makes it fail. bocker's filter is Docker's default profile for a container
# without CAP_SYS_ADMIN and the other capabilities bocker drops: the calls
# below are allowed; every other one fails with EPERM, as if it needed a
# privilege the container lacks. The filter is built by libseccomp (Debian's
# libseccomp2, seccomp_init(3), seccomp_rule_add(3), seccomp_load(3)) through
# ctypes, not written by hand as BPF; docs/BENCHMARK.md has what it costs.

SECCOMP_ALLOWED = '''
    accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown
    clock_adjtime clock_getres clock_gettime clock_nanosleep close close_range connect
    copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
    epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
    exit_group faccessat faccessat2 fadvise64 fallocate fanotify_mark fchdir fchmod fchmodat
    fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr
    fstat fstatfs fsync ftruncate futex futex_waitv futimesat getcpu getcwd getdents
    getdents64 getegid geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid
    getppid getpriority getrandom getresgid getresuid getrlimit get_robust_list getrusage
    getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getxattr
    inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy
    io_getevents io_pgetevents ioprio_get ioprio_set io_setup io_submit ipc kill
    landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lgetxattr link
    linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat madvise membarrier
    memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap
    mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap
    msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
    newfstatat open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc
    pkey_free pkey_mprotect poll ppoll prctl pread64 preadv preadv2 prlimit64
    process_mrelease pselect6 pwrite64 pwritev pwritev2 read readahead readlink readlinkat
    readv recvfrom recvmmsg recvmsg remap_file_pages removexattr rename renameat renameat2
    restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
    rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_getaffinity
    sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
    sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop sendfile
    sendmmsg sendmsg sendto setfsgid setfsuid setgid setgroups setitimer setpgid setpriority
    setregid setresgid setresuid setreuid setrlimit set_robust_list setsid
    set_thread_area set_tid_address setuid setxattr shmat shmctl shmdt shmget shutdown
    sigaltstack signalfd signalfd4 socketpair splice stat statfs statx symlink symlinkat
    sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
    timer_getoverrun timer_gettime timer_settime timerfd_create timerfd_gettime
    timerfd_settime times tkill truncate umask uname unlink unlinkat utime utimensat utimes
    vfork vmsplice wait4 waitid write writev
    ptrace process_vm_readv process_vm_writev arch_prctl modify_ldt
'''.split()
# (the last line: ptrace and the process_vm calls are safe under seccomp since
# Linux 4.8; arch_prctl and modify_ldt are x86's. Docker's list also has the
# io_uring calls: left out here, as containerd and podman now leave them out,
# for the kernel bugs reached through them; and keyctl, add_key, request_key
# are not on it: a container cannot reach any keyring, keyrings(7).)

# Allowed with arguments only (seccomp_rule_add(3): SCMP_A0 comparisons):
# socket(2) of the families a container uses: Unix, netlink (`ip` talks to the
# kernel through it, netlink(7)), IPv4 and IPv6 as streams, datagrams and
# seqpackets, and raw only for ICMP (ping: raw(7)). Docker allows all but vsock;
# a packet socket (packet(7), or IPv4's old SOCK_PACKET) reads and forges whole
# frames on br1 (ARP: another container's address), a raw socket of another
# protocol or with IP_HDRINCL forges the IP header (a source address), and the
# rare families have been where the kernel's bugs were.
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET = 1, 2, 3, 5
IPPROTO_IP, IPPROTO_ICMP, IPPROTO_IPV6, IPPROTO_ICMPV6 = 0, 1, 41, 58
IPPROTO_TCP, IP_HDRINCL, IPV6_HDRINCL, TCP_INQ = 6, 3, 36, 36
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xffffffff)   # personality(2): the usual ones, and a query
# clone(2) without any CLONE_NEW* flag: no new namespace (clone3(2), whose
# flags a filter cannot read, fails with ENOSYS so that libc falls back to clone)
CLONE_NEW_FLAGS = 0x7e020000

SCMP_ACT_ALLOW = 0x7fff0000
SCMP_CMP_NE, SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ = 1, 4, 7
EPERM, ENOSYS = 1, 38


def scmp_act_errno(errno):
    """The action that makes a call fail with errno."""
    return 0x00050000 | errno


def c_libraries():
    """libc and libseccomp through ctypes, loaded from the host before the
    container's root is entered; SYSCALLS filled with this machine's numbers
    of the calls glibc has no wrapper for."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    lib = ctypes.CDLL('libseccomp.so.2', use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_void_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    for name in ('keyctl', 'pivot_root'):
        SYSCALLS[name] = lib.seccomp_syscall_resolve_name(name.encode())
    return libc, seccomp_filter(lib)


SYSCALLS = {}                                  # name: number, see c_libraries()


def seccomp_filter(lib):
    """The filter, built (not loaded): Docker's default profile as above."""
    import ctypes

    class ScmpArgCmp(ctypes.Structure):        # struct scmp_arg_cmp: SCMP_A0(op, a, b)
        _fields_ = [('arg', ctypes.c_uint), ('op', ctypes.c_int),
                    ('datum_a', ctypes.c_uint64), ('datum_b', ctypes.c_uint64)]
    ctx = lib.seccomp_init(scmp_act_errno(EPERM))
    if not ctx:
        raise OSError(12, 'seccomp_init failed')

    def rule(action, name, *cmps):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:                             # no such call on this machine
            return
        array = (ScmpArgCmp * len(cmps))(*[ScmpArgCmp(*cmp) for cmp in cmps])
        code = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array)
        if code < 0:
            raise OSError(-code, 'seccomp_rule_add: %s: %s' % (name, os.strerror(-code)))
    for name in SECCOMP_ALLOWED:
        rule(SCMP_ACT_ALLOW, name)
    for family in (AF_UNIX, AF_NETLINK):
        rule(SCMP_ACT_ALLOW, 'socket', (0, SCMP_CMP_EQ, family, 0))
    for family, icmp in ((AF_INET, IPPROTO_ICMP), (AF_INET6, IPPROTO_ICMPV6)):
        for kind in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET):   # the type's low bits: not SOCK_CLOEXEC
            rule(SCMP_ACT_ALLOW, 'socket', (0, SCMP_CMP_EQ, family, 0),
                 (1, SCMP_CMP_MASKED_EQ, 0xf, kind))
        rule(SCMP_ACT_ALLOW, 'socket', (0, SCMP_CMP_EQ, family, 0),
             (1, SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW), (2, SCMP_CMP_EQ, icmp, 0))
    # setsockopt(2) but IP_HDRINCL and IPV6_HDRINCL. A rule compares each
    # argument once, with = or != (libseccomp's < and > misjudge 64-bit
    # arguments across rules), so: IPv4's level with any option but its
    # HDRINCL; any other level with any option but 36 (IPV6_HDRINCL; at the
    # socket level SO_MARK, which needs CAP_NET_ADMIN anyway); and TCP's 36.
    rule(SCMP_ACT_ALLOW, 'setsockopt', (1, SCMP_CMP_EQ, IPPROTO_IP, 0), (2, SCMP_CMP_NE, IP_HDRINCL, 0))
    rule(SCMP_ACT_ALLOW, 'setsockopt', (1, SCMP_CMP_NE, IPPROTO_IP, 0), (2, SCMP_CMP_NE, IPV6_HDRINCL, 0))
    rule(SCMP_ACT_ALLOW, 'setsockopt', (1, SCMP_CMP_EQ, IPPROTO_TCP, 0), (2, SCMP_CMP_EQ, TCP_INQ, 0))
    for persona in PERSONALITIES:
        rule(SCMP_ACT_ALLOW, 'personality', (0, SCMP_CMP_EQ, persona, 0))
    rule(SCMP_ACT_ALLOW, 'clone', (0, SCMP_CMP_MASKED_EQ, CLONE_NEW_FLAGS, 0))
    rule(scmp_act_errno(ENOSYS), 'clone3')
    return (lib, ctx)


def seccomp_load(seccomp):
    """Load the filter into the kernel (seccomp_load(3); it sets no_new_privs,
    which a filter needs): the last step before exec. diverges (row 43): the
    bash's container reached every system call."""
    lib, ctx = seccomp
    code = lib.seccomp_load(ctx)
    if code < 0:
        raise OSError(-code, 'seccomp_load: %s' % os.strerror(-code))


def syscall(libc, name, *args):
    """A system call glibc has no wrapper for, by its number (syscall(2));
    its result, or an OSError. Numbers go as C longs, as syscall(2) reads
    them (a C int would leave the register's upper half unset)."""
    import ctypes
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(SYSCALLS[name]),
                          *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    if result < 0:
        raise c_error(name, '')
    return result


# --- What the kernel holds: mounts, cgroups, network links -----------------------

def mount_points():
    """The mount points of our own mount namespace (proc(5): /proc/self/
    mountinfo, as findmnt(8) reads it), octal escapes (\\040 for a space)
    undone."""
    return [mount[0] for mount in mountinfo()]


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


def mount_sources(pid='self'):
    """(mount point, major:minor, root) of each mount in /proc/PID/mountinfo
    (proc(5)): the file system a mount shows, by its device, and which of its
    directories is the mount's root; as the kernel writes them (escaped)."""
    with open('/proc/%s/mountinfo' % pid) as f:
        return [(fields[4], fields[2], fields[3]) for fields in (line.split() for line in f)]


def mounted(path):
    """Is path a mount point? (The table has real paths: a symlink on the
    way, /var/lib -> /srv/lib, is resolved first, as umount(8) does.)"""
    return os.path.realpath(path) in mount_points()


def overlay_options(lowers, upper, work):
    """overlayfs's mount options: lowerdir (the lower layers, top first,
    joined by ':'), upperdir, workdir. A ',', ':' or '\\' in a path is escaped
    with a backslash, as the kernel's option parser reads it (kernel
    Documentation/filesystems/overlayfs.rst)."""
    def escape(path):
        return path.replace('\\', '\\\\').replace(',', '\\,').replace(':', '\\:')
    return 'lowerdir=%s,upperdir=%s,workdir=%s' % (
        ':'.join(escape(l) for l in lowers), escape(upper), escape(work))


def overlay_layers(sopts):
    """{option: [paths]} of an overlay mount's super options as mountinfo
    shows them (mountinfo() has undone the octal escapes): lowerdir's layers
    top first, upperdir, workdir; the backslash escapes undone."""
    def split(text, sep):
        parts, part, escaped = [], '', False
        for c in text:
            if escaped or c == '\\':
                part, escaped = part + c, not escaped and c == '\\'
            elif c == sep:
                parts, part = parts + [part], ''
            else:
                part += c
        return parts + [part]

    def unescape(text):
        out, escaped = '', False
        for c in text:
            if c == '\\' and not escaped:
                escaped = True
                continue
            out, escaped = out + c, False
        return out
    found = {}
    for opt in split(sopts, ','):
        key, _, value = opt.partition('=')
        if key in ('lowerdir', 'upperdir', 'workdir'):
            found[key] = [unescape(p) for p in split(value, ':') if p]
    return found


def image_users(image):
    """The containers whose root is an overlay mount with image among its
    lower layers (our mount namespace's /proc/self/mountinfo): a container
    keeps its root mounted from run to rm, running or not. A container's id
    where the mount is a container's merged/, else the mount point."""
    path = os.path.realpath('%s/%s' % (overlay_path, image))
    users = []
    for point, fstype, _source, _opts, sopts, _root in mountinfo():
        if fstype != 'overlay':
            continue
        if path in [os.path.realpath(l) for l in overlay_layers(sopts).get('lowerdir', [])]:
            cdir, sub = os.path.split(point)
            name = os.path.basename(cdir)
            mine = sub == 'merged' and os.path.dirname(cdir) == os.path.realpath(container_path)
            users.append(name if mine and well_formed(name) else point)
    return users


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


def cgroup_v2():
    """Is this host cgroup v2 only (cgroups(7): one unified hierarchy)? A
    hybrid host, with the v1 cpu controller mounted beside v2, counts as v1."""
    found = cgroup_hierarchies()
    return 'cpu' not in found and '' in found


def cgroup_dir(uuid):
    """The container's cgroup as a directory we can read: cgcreate makes /ps_N
    under the hierarchy's mount point (v1: the memory hierarchy's; v2: the
    unified one), as this process has it mounted (proc(5): mountinfo)."""
    found = cgroup_hierarchies()
    point = (found.get('memory') or found.get('') or (None,))[0]
    return None if point is None else point + '/' + uuid


def cgroup_dirs(uuid):
    """The container's cgroup in each hierarchy its processes can be in: one
    per mount of its controllers (v1: cpu,cpuacct and memory may be mounted
    apart), and the v1 freezer's, where commit moves them (freeze())."""
    found = cgroup_hierarchies()
    names = [''] if cgroup_v2() else hierarchies() + ['freezer']
    return sorted({found[name][0] + '/' + uuid for name in names if name in found})


def cgroup_procs(dirs):
    """The pids in these cgroups (cgroups(7): cgroup.procs)."""
    pids = set()
    for path in dirs:
        try:
            with open(path + '/cgroup.procs') as f:
                pids.update(int(pid) for pid in f.read().split())
        except OSError:
            pass
    return pids


def controllers():
    """The bash's $cgroups; v2 has no cpuacct (cpu accounting is built in),
    and its one cgroup has the pids controller too."""
    if cgroup_v2():
        return 'cpu,memory,pids' if pids_hierarchy() else 'cpu,memory'
    return cgroups


def pids_hierarchy():
    """Where the pids controller is (cgroups(7)): 'v1' (a hierarchy of its
    own, beside the bash's), 'v2' (in the unified one: cgroup.controllers),
    or '' (none: no pids limit on this host)."""
    found = cgroup_hierarchies()
    if 'pids' in found:
        return 'v1'
    if cgroup_v2():
        try:
            with open(found[''][0] + '/cgroup.controllers') as f:
                return 'v2' if 'pids' in f.read().split() else ''
        except OSError:
            return ''
    return ''


def hierarchies():
    """The hierarchies a container has a cgroup in, by controller ('': v2's one)."""
    if cgroup_v2():
        return ['']
    return controllers().split(',') + (['pids'] if pids_hierarchy() == 'v1' else [])


def cgroup_args(path):
    """`-g CONTROLLERS:PATH` for cgcreate and cgexec (cgcreate(1), cgexec(1)):
    the bash's, and `-g pids:PATH` on a v1 host with the pids hierarchy."""
    return ['-g', '%s:%s' % (controllers(), path)] + (
        ['-g', 'pids:' + path] if pids_hierarchy() == 'v1' else [])


def link_exists(name):
    """Is there a network interface of that name in our network namespace?
    Asked of the kernel (if_nametoindex(3), the SIOCGIFINDEX ioctl of
    netdevice(7)), not read from /sys/class/net: sysfs shows the network
    namespace of whoever mounted it, which in a shell made by
    `unshare --net --mount` is the host's. (_socket: the C module alone, as
    socket's own import costs run 2 ms.)"""
    import _socket
    try:
        _socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def wait_until_gone(link):
    """Wait a moment for a veth to vanish: the kernel tears a network namespace
    down (and with it the veth's other end) after `ip netns del` returns."""
    for _ in range(100):
        if not link_exists(link):
            return
        time.sleep(0.005)


# --- The need_* checks: what a command needs, checked before anything is made -----

def host_setup():
    """compat/host-setup beside this file: it prepares a host for bocker."""
    return os.path.join(os.path.dirname(os.path.realpath(__file__)), 'compat', 'host-setup')


def need_store(*paths):
    """The store directories the bash expects the host to have made."""
    for path in paths:
        if not os.path.isdir(path):
            fail('%s does not exist: prepare this host with %s (as root)' % (path, host_setup()))


def need_modules(*names):
    """The Python packages a command needs (requirements.txt): without them,
    one line naming what is missing and how to install it, before anything
    is made. (importlib.machinery's PathFinder, as the interpreter loaded it
    at start: the importlib package would cost 1 ms.)"""
    finder = sys.modules['_frozen_importlib_external'].PathFinder
    missing = [name for name in names if finder.find_spec(name) is None]
    if missing:
        fail('missing Python package%s %s: install with `make deps` in %s' % (
            's' if len(missing) > 1 else '', ', '.join(missing),
            os.path.dirname(os.path.realpath(__file__))))


def need_libseccomp():
    """The library enter() and join() build the seccomp filter with (Debian's
    libseccomp2): without it, one line before anything is made. Looked up as
    the dynamic loader finds it (ld.so(8): LD_LIBRARY_PATH, then the cache
    ldconfig writes), without loading it here: that would cost ctypes."""
    dirs = [d for d in os.environ.get('LD_LIBRARY_PATH', '').split(':') if d]
    if any(os.path.exists(d + '/libseccomp.so.2') for d in dirs):
        return
    try:
        with open('/etc/ld.so.cache', 'rb') as f:
            if b'libseccomp.so.2\0' in f.read():
                return
    except OSError:
        pass
    fail('libseccomp.so.2 not found: install libseccomp2 (make run-deps in %s)'
         % os.path.dirname(os.path.realpath(__file__)))


def need_bridge():
    """diverges (row 23): the bash fails at `ip link set ... master br1` (exit 255), after
    making the veth."""
    if not link_exists('br1'):
        fail('bridge br1 does not exist: prepare this host with %s (as root)' % host_setup())


# --- --EXPLAIN: what each step did, read back from the kernel -------------------
# `--EXPLAIN` (an --OPTION: the bash's option loop declares BOCKER_EXPLAIN=x and
# ignores it) prints on stderr, after each step of run, exec and rm: the step's
# bash lines (this file's own `bash:` quotes), what they do with the man pages
# to read, and what the kernel holds now, asked of the kernel with this
# container's names: netlink through `ip -j` (ip(8)), /proc/self/mountinfo, the
# cgroup filesystem, /proc/PID/ns, /proc/PID/status (proc(5)). `--STEP` does the
# same and waits for Enter on the terminal (/dev/tty) between steps; without a
# terminal it never waits. stdout and the container's log stay the command's.

def explaining():
    """--EXPLAIN or --STEP given?"""
    return option('EXPLAIN') or option('STEP')


def explain(step, uuid, *more):
    """The hook the commands call after a step of run, exec or rm: with
    --EXPLAIN or --STEP, its block (explain_step()); without them nothing at
    all. It returns nothing, so it never changes what the command does."""
    if explaining():
        explain_step(step, uuid, *more)


class Step:
    """One step --EXPLAIN prints: the flow it belongs to (run, exec, rm, or
    rm-image: rm of an image), its title, the prefixes of the bash lines it
    ports (found among this file's `bash:` quotes), the man pages, what it
    does (its reader's docstring); read: the function that reads back what the kernel holds now;
    pause: --STEP waits after it; watch: started in its place, it prints
    the step later itself (run's pid 1, from a thread)."""

    def __init__(self, flow, title, bash, man, pause, read, watch):
        self.flow, self.title, self.bash, self.man = flow, title, bash, man
        self.pause, self.read, self.watch = pause, read, watch
        self.what = ' '.join(read.__doc__.split())   # the reader's docstring

    def where(self, name):
        """`run 3/7`: the command, the step's place in its flow, of how many."""
        names = [n for n, step in EXPLAIN_STEPS.items() if step.flow == self.flow]
        return '%s %d/%d' % (self.flow.split('-')[0], names.index(name) + 1, len(names))


EXPLAIN_STEPS = {}      # {name: Step}, each flow's steps in their order (explains())


def explains(name, flow, title, bash, man, pause=True, watch=None):
    """Register the function below as the reader of step NAME: the one
    registry of --EXPLAIN's steps, each beside the code that reads it back,
    whose docstring says what the step does (the block's `what`)."""
    def register(read):
        EXPLAIN_STEPS[name] = Step(flow, title, bash, man, pause, read, watch)
        return read
    return register


# What a step saw, for a later one: run's watcher of pid 1 ('watch', its
# 'stop' and what it read, 'pid1'), exec's target, rm's pid.
SEEN = {}

# capabilities(7), by number: to read CapBnd and CapEff of /proc/PID/status
CAP_NAMES = ('chown dac_override dac_read_search fowner fsetid kill setgid setuid '
             'setpcap linux_immutable net_bind_service net_broadcast net_admin net_raw '
             'ipc_lock ipc_owner sys_module sys_rawio sys_chroot sys_ptrace sys_pacct '
             'sys_admin sys_boot sys_nice sys_resource sys_time sys_tty_config mknod '
             'lease audit_write audit_control setfcap mac_override mac_admin syslog '
             'wake_alarm block_suspend audit_read perfmon bpf checkpoint_restore').split()


def explain_step(name, uuid, *more, watched=False):
    """After a step: its block on stderr (what its reader reads back now),
    then with --STEP wait for Enter on the terminal. A step with a watcher
    starts it instead, which calls this again (watched) when it has seen."""
    step = EXPLAIN_STEPS[name]
    if step.watch and not watched:
        return step.watch(uuid, *more)
    try:
        kernel = step.read(uuid, *more)
    except (OSError, ValueError, KeyError, IndexError) as e:
        kernel = ['could not read it back: %r' % e]
    explain_print(name, step.where(name), step.title, explain_quotes(step.bash),
                  step.what, step.man, kernel)
    if step.pause and option('STEP'):
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
    run it belongs to the container. Only an empty line goes on (a line with
    anything on it asks again); ^C here ends bocker as a failing step would
    (exit 130): run then removes what it made so far."""
    try:
        fd = os.open('/dev/tty', os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return
    try:
        os.write(fd, b'--STEP: press Enter for the next step (ctrl-C stops) ')
        line = b''
        while True:
            got = os.read(fd, 1024)
            if not got:
                break
            line += got
            if b'\n' in got or b'\r' in got:
                if not line.strip():
                    break
                os.write(fd, b'--STEP: only Enter goes on; ctrl-C stops ')
                line = b''
    except OSError:
        pass
    except KeyboardInterrupt:
        os.write(fd, b'\n')
        raise Exit(130) from None
    finally:
        os.close(fd)


def explain_quotes(prefixes):
    """The bash lines bocker.py quotes (`# bash: LINE`, a docstring's `bash:
    LINE`; a quote ending in a backslash goes on in the comments below it) that
    start with each prefix, in order, each searched after the last one found."""
    with open(__file__, encoding='utf-8') as f:
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
    code, out, _err = command(['ip', '-j'] + (['-n', netns] if netns else []) + list(args),
                            shown=()).run(retcode=None)
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


@explains('veth', 'run', 'the network: a veth pair, one end on br1',
          bash=('ip link add dev veth0_', 'ip link set dev veth0_"$uuid" up',
                'ip link set veth0_"$uuid" master br1', 'ip netns add netns_',
                'ip link set veth1_"$uuid" netns'),
          man='ip-link(8), veth(4), ip-netns(8), network_namespaces(7)')
def explain_veth(uuid):
    """A veth pair is a virtual Ethernet cable: what goes in at one end comes
    out of the other. veth0 stays in this network namespace and becomes a
    port of the bridge br1 (its master), as if plugged into a switch; veth1
    moves into a new network namespace, the container's own network stack,
    which `ip netns add` keeps alive by bind-mounting it on /run/netns/NAME."""
    c = Container(uuid)
    veth0, veth1, netns = c.veth0, c.veth1, c.netns
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
    out.append('%s: %s' % (veth1, 'still here' if link_exists(veth1) else
                           'gone from this network namespace'))
    peer = explain_ip('-d', 'link', 'show', 'dev', veth1, netns=netns)
    if peer:
        out.append('  in %s: %s' % (netns, explain_link(peer[0])))
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


@explains('netns', 'run', 'the network inside the netns: lo, address, route',
          bash=('ip netns exec netns_"$uuid" ip link set dev lo up',
                'ip netns exec netns_"$uuid" ip link set veth1_"$uuid" address',
                'ip netns exec netns_"$uuid" ip addr add',
                'ip netns exec netns_"$uuid" ip link set dev veth1_',
                'ip netns exec netns_"$uuid" ip route add'),
          man='ip-address(8), ip-route(8), ip-netns(8)')
def explain_netns(uuid, ip_done):
    """Inside the new namespace: lo comes up (a new namespace has it down, so
    nothing would answer on 127.0.0.1); veth1 gets a MAC in Docker's
    02:42:ac:11 range (02: a locally administered address) and the address
    172.18.0.N/24 made from the id, which also gives the route to the rest
    of 172.18.0.0/24; everything else goes by the default route, through
    br1's address 172.18.0.1."""
    ip_done()                                  # run's ip, still at work: wait for it
    netns = Container(uuid).netns
    out = ['in %s (ip -n %s):' % (netns, netns)]
    # A link's operational state follows its UP flag through the kernel's
    # linkwatch, up to a second later (LOWERLAYERDOWN until the peer's
    # carrier is seen): read once it has settled.
    for _ in range(20):
        links = explain_ip('-4', 'addr', 'show', netns=netns) or []
        if not [l for l in links if 'UP' in l.get('flags', []) and
                l.get('operstate') in ('DOWN', 'LOWERLAYERDOWN')]:
            break
        time.sleep(0.05)
    for link in links:
        addrs = ['%s/%s' % (a['local'], a['prefixlen']) for a in link.get('addr_info', [])]
        out.append('  %s: %s (operstate %s), inet %s' % (
            link['ifname'], 'up' if 'UP' in link.get('flags', []) else 'down',
            link.get('operstate', '?'), ' '.join(addrs) or 'none'))
    for link in explain_ip('link', 'show', 'dev', Container(uuid).veth1, netns=netns) or []:
        out.append('  %s: MAC %s' % (link['ifname'], link.get('address', '?')))
    for route in explain_ip('route', 'show', netns=netns) or []:
        words = [route.get('dst', '?')]
        for key, word in (('gateway', 'via'), ('dev', 'dev'), ('protocol', 'proto'),
                          ('scope', 'scope'), ('prefsrc', 'src')):
            if route.get(key):
                words += [word, str(route[key])]
        out.append('  route: %s' % ' '.join(words))
    return out


@explains('overlay', 'run', 'the root: an overlay mount',
          bash=('mkdir -p "$container_path/$uuid"/{lower,upper,work,merged}',
                'mount -t overlay overlay'),
          man='mount(8), overlayfs: docs.kernel.org/filesystems/overlayfs.html')
def explain_overlay(uuid, image):
    """overlayfs stacks directories into one view. Its lower layers are never
    written: the image directory itself is the bottom one, shared by every
    container made from it, so nothing is copied and run costs the same for
    any image size (the bash copies the image into lower); above it lower/
    holds the container's own mount points. upper, empty, takes the
    container's writes; work is overlayfs's scratch space. merged shows them
    as one: a read finds upper first, then each lower layer in turn; a write
    copies the file up into upper first; a deletion leaves a whiteout (a 0/0
    character device) in upper. rm of the image is refused while a container
    uses it."""
    cdir = Container(uuid).dir
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
    img = '%s/%s' % (overlay_path, image)
    lowers = overlay_layers(sopts).get('lowerdir', [])
    for n, layer in enumerate(lowers, 1):
        if os.path.realpath(layer) == os.path.realpath(img):
            users = image_users(image)
            what = 'the image %s itself, read-only, shared by %d container%s: nothing copied' % (
                image, len(users), '' if len(users) == 1 else 's')
        else:
            names = sorted(os.listdir(layer))
            what = "this container's own: %s" % (', '.join(names) + ' (mount points)'
                                                  if names else 'empty')
        out.append('  lower layer %d of %d (top first): %s' % (n, len(lowers), what))
    # The image's files as the container sees them: the same inodes (stat(2)'s
    # st_ino; overlayfs shows a lower file's own when the layers share a filesystem).
    files = same = 0
    example = None
    for top, dirs, names in os.walk(img):
        for name in sorted(names):
            path = os.path.join(top, name)
            try:
                theirs = os.lstat(path)
                mine = os.lstat(cdir + '/merged' + path[len(img):])
            except OSError:
                continue
            files += 1
            same += mine.st_ino == theirs.st_ino
            if stat.S_ISREG(theirs.st_mode) and (example is None or
                                                 theirs.st_size > example[2].st_size):
                example = (path[len(img):], mine, theirs)
        if files >= 1000:
            break
    if example:
        rel, mine, theirs = example
        out.append('  merged%s: inode %d; %s%s: inode %d: the very file, not a copy' % (
            rel, mine.st_ino, image, rel, theirs.st_ino))
    out.append('  %d of %s%d files and links of %s seen in merged with their own inode numbers' % (
        same, 'the first ' if files >= 1000 else '', files, image))
    out.append('  upper: %d entries' % len(os.listdir(cdir + '/upper')))
    return out


@explains('files', 'run', 'two files: resolv.conf and the command',
          bash=("echo 'nameserver 114.114.114.114'", 'echo "$cmd" >'),
          man='resolv.conf(5)')
def explain_files(uuid):
    """resolv.conf is written through the mount, so overlayfs puts the new file
    in upper and the image (lower) stays as it was; the command is kept
    beside the container for `ps`."""
    cdir = Container(uuid).dir
    out = []
    for path in (cdir + '/merged/etc/resolv.conf', cdir + '/upper/etc/resolv.conf',
                 cdir + '/lower/etc/resolv.conf', '%s/%s.cmd' % (cdir, uuid)):
        try:
            text = read(path)
            out.append('%s: %r' % (path[len(cdir) + 1:], text))
        except OSError as e:
            out.append('%s: %s' % (path[len(cdir) + 1:], e.strerror.lower()))
    return out


def hierarchy_dir(controller, path):
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


EXPLAIN_KNOBS = {'cpu': ('cpu.shares',), 'memory': ('memory.limit_in_bytes',), 'pids': ('pids.max',)}
EXPLAIN_KNOBS_V2 = ('cpu.weight', 'memory.max', 'pids.max')


def explain_knobs(paths, indent='', procs=False):
    """One line per hierarchy: the cgroup (paths: {controller: its path, as
    /proc/PID/cgroup names it}), its directory here, its knobs (and how many
    processes it holds: procs)."""
    v2 = cgroup_v2()
    out = []
    for ctrl in hierarchies():
        path = paths.get(ctrl, '?')
        d = hierarchy_dir(ctrl, path)
        if d is None:
            out.append('%s%s:%s: not under the hierarchy as mounted here' % (indent, ctrl, path))
            continue
        if not os.path.isdir(d):
            out.append('%s%s:%s  %s: gone' % (indent, ctrl or '0:', path, d))
            continue
        values = []
        for knob in EXPLAIN_KNOBS_V2 if v2 else EXPLAIN_KNOBS.get(ctrl, ()):
            try:
                values.append('%s = %s' % (knob, read('%s/%s' % (d, knob))))
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
    return {c: found.get(c, ('', '/'))[1].rstrip('/') + '/' + uuid for c in hierarchies()}



@explains('cgroups', 'run', 'the limits: cgroups',
          bash=('cgcreate -g "$cgroups:/$uuid"',
                ': "${BOCKER_CPU_SHARE:=512}" && cgset',
                ': "${BOCKER_MEM_LIMIT:=512}" && cgset'),
          man='cgcreate(1), cgset(1), cgroups(7)')
def explain_cgroups(uuid):
    """A cgroup is a directory of a cgroup filesystem: cgcreate makes ps_N in
    the hierarchy of each controller, cgset writes its files. cpu.shares is
    the weight when CPUs are contended (1024 a full share; cgroup v2:
    cpu.weight); memory.limit_in_bytes is where the kernel reclaims, then
    OOM-kills in the cgroup (v2: memory.max). bocker.py adds a cgroup in the
    pids hierarchy: past pids.max, fork(2) fails in it, so a fork bomb stops
    there. No process is in them yet."""
    mine = proc_cgroups('self')
    return explain_knobs(made_cgroups(uuid), procs=True) + [
        'this process (/proc/self/cgroup): %s' % ' '.join(
            '%s:%s' % (c or '0:', mine.get(c, '?')) for c in made_cgroups(uuid))]


def explain_watch(uuid, proc):
    """run: once the container's pid 1 has exec'd its command, read it back
    and print the 'container' step, from a thread on this side: the container
    is never made to wait. It ends with proc at the latest."""
    import threading
    SEEN['stop'] = threading.Event()
    SEEN['watch'] = threading.Thread(target=explain_wait, args=(uuid, proc), daemon=True)
    SEEN['watch'].start()


def explain_wait(uuid, proc):
    """The watcher: pid 1 is read in two goes. As soon as it exists (forked by
    unshare, so already in the container's namespaces and cgroups): those, and
    its pid in each pid namespace. Then, once enter() has pivoted into merged
    and exec'd the command: its root, capabilities, mounts and argv. A quick command
    (`echo hi`) may end before the second look; the first is then all."""
    merged = Container(uuid).merged
    pid, first, then = None, {}, {}
    while proc.poll() is None and not SEEN['stop'].is_set():
        if not pid:
            pid, first = explain_pid1(uuid, proc)
            if not pid:
                time.sleep(0.001)
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
            # in merged (pivot_root), and enter() has exec'd the command: its argv is there
            # (empty while execve(2) is under way, its credentials set before)
            if same_file(os.stat('/proc/%s/root' % pid), os.stat(merged)) and argv[0] and \
                    b'__enter__' not in argv:
                then = explain_read_pid(pid)
                break
        except OSError:                        # it ended
            break
        os.sched_yield()                       # the window can be a millisecond
    SEEN['pid1'] = (pid, first, then)
    explain_step('container', uuid, watched=True)


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
            found = [container_pid(uuid)] if parent == str(proc.pid) else []
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
    got['sources'] = mount_sources(pid)
    with open('/proc/%s/cmdline' % pid, 'rb') as f:
        got['cmdline'] = f.read().rstrip(b'\0').replace(b'\0', b' ').decode('utf-8', 'replace')
    got['root'] = os.readlink('/proc/%s/root' % pid)
    with open('/proc/%s/stat' % pid) as f:                  # after the name: state ppid pgrp session tty
        got['stat'] = f.read().rsplit(')', 1)[1].strip()
    with open('/proc/%s/environ' % pid, 'rb') as f:
        got['environ'] = [v.split(b'=', 1)[0].decode('utf-8', 'replace') + '=...'
                          for v in f.read().split(b'\0') if v]
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
    """The namespaces of pid beside this process's, by inode; joined: {name:
    who joins it} for exec."""
    out = ['namespaces (/proc/%s/ns against /proc/self/ns):' % pid]
    for name, inode in got['ns'].items():
        try:
            mine = ns_inode('self', name)
        except OSError:
            mine = '?'
        if joined is None:
            how = 'the same as this process' if mine == inode else 'new (this process: %s)' % mine
        else:
            how = ('joined by ' + joined[name] if name in joined else
                   'not joined, the same' if mine == inode else 'not joined, this process: ' + mine)
        out.append('  %-18s %-22s %s' % (name, inode, how))
    return out


@explains('container', 'run', 'the container: its pid 1',
          bash=('cgexec -g "$cgroups:$uuid"', '2>&1 | tee'),
          man='cgexec(1), ip-netns(8), unshare(1), namespaces(7), pid_namespaces(7), '
              'setsid(2), keyrings(7), pivot_root(2), capabilities(7), seccomp(2)',
          pause=False, watch=explain_watch)
def explain_container(uuid):
    """cgexec moves itself into the cgroups and execs ip netns exec, which
    joins the network namespace (setns(2)) and execs unshare: -m, -u, -i
    make new mount, hostname and IPC namespaces, -p a new pid namespace
    whose first process, forked by -f, is its pid 1. bocker.py's enter step
    (in place of chroot) starts a session and keyring of its own, mounts the
    container's /proc and /dev, makes merged the root of its mount namespace
    and detaches the host's (pivot_root(2)), drops capabilities, loads a
    seccomp filter and execs /bin/sh -c CMD with an environment of its own;
    tee shows and logs its output."""
    pid, first, then = SEEN.get('pid1') or (None, {}, {})
    if not pid:
        return ['pid 1 ended before it could be read']
    got = then or first
    if then:
        out = explain_pid(pid, then)
    else:
        out = ['pid %s: NSpid %s (pid 1 in its own pid namespace); it ended before its '
               'command could be read (a longer one shows it: `sleep 1; ...`)' % (
                   pid, first['status'].get('NSpid', '?').replace('\t', ' '))]
    out += explain_ns(pid, then or first)          # late: enter() made the cgroup namespace
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
    dropped = [n for n in CAP_NAMES[:int(read('/proc/sys/kernel/cap_last_cap')) + 1]
               if n not in kept]
    out.append('  dropped, %d: %s' % (len(dropped), ' '.join(dropped)))
    out.append('  NoNewPrivs: %s' % status.get('NoNewPrivs', '?'))
    out += explain_confined(pid, got)
    out.append('mounts it sees (/proc/%s/mountinfo, from its root):' % pid)
    for point, fstype, _source, opts, _sopts, root in then['mounts']:
        out.append(('  %-22s %-8s %s' % (point, fstype, opts)) + mask_note(point, fstype, root))
    c = Container.load(uuid)                   # beyond the bash: what -t, -e, -w, -v, -p made
    if wanted(c.tty):
        out += ['a terminal of its own (-t):'] + ['  ' + l for l in explain_terminal(uuid)]
    if c.env or c.workdir or c.volumes:
        out += ['wired to its host (-e, -w, -v):'] + ['  ' + l for l in explain_wiring(uuid)]
    if c.ports:
        out += ['published (-p):'] + ['  ' + l for l in explain_ports(uuid)]
    return out


def mask_note(point, fstype, root):
    """What a mount over a /proc path is for: runc's masks hide what /proc shows
    of the host (/dev/null bound over a file, an empty read-only tmpfs over a
    directory: the mount's root, mountinfo's 4th field, says which)."""
    if not point.startswith('/proc/'):
        return ''
    if root.endswith('/null'):
        return '  (a mask: /dev/null bound over it, reads as nothing)'
    if fstype == 'tmpfs':
        return '  (a mask: an empty tmpfs over it)'
    if fstype == 'proc':
        return "  (read-only again: the kernel's switches)"
    return ''


def explain_confined(pid, got):
    """Session, seccomp, environment and root of a container's process, as
    /proc/PID/stat, status, environ and mountinfo show them."""
    _state, _ppid, pgrp, session, tty = got.get('stat', '? ? ? ? ?').split()[:5]
    out = ['session (/proc/%s/stat): session %s%s, process group %s%s, %s; %s' % (
        pid, session, ' (its own: it leads it)' if session == str(pid) else '',
        pgrp, ' (its own)' if pgrp == str(pid) else '',
        'no controlling terminal' if tty == '0' else 'controlling terminal ' + tty,
        'this process is in another' if session != str(os.getsid(0)) else 'the same as this process\'s'),
           'seccomp (/proc/%s/status): Seccomp %s (2: a filter), Seccomp_filters %s; the filter: '
           '%d BPF instructions (seccomp_export_bpf(3) of the same one)' % (
               pid, got['status'].get('Seccomp', '?'), got['status'].get('Seccomp_filters', '?'),
               seccomp_size()),
           'environment (/proc/%s/environ): %s' % (pid, ' '.join(got.get('environ', [])) or '?')]
    mounts = got.get('mounts', [])
    # the host's root: the file system and directory this process's / shows
    host = [source for point, *source in mount_sources() if point == '/'][-1]
    at = [point for point, *source in got.get('sources', []) if source == host]
    out.append('root (/proc/%s/mountinfo): / is the %s (pivot_root); %d mounts; %s' % (
        pid, ', '.join(fstype for point, fstype, *_ in mounts if point == '/') or '?', len(mounts),
        'the host\'s root (what / is here) is mounted at ' + ', '.join(at) if at else
        'the host\'s root (what / is here) is not among them'))
    return out


def seccomp_size():
    """How many BPF instructions the filter enter() loads compiles to."""
    _libc, (lib, ctx) = c_libraries()
    fd = os.memfd_create('bpf')
    try:
        lib.seccomp_export_bpf(ctx, fd)
        return os.fstat(fd).st_size // 8       # struct sock_filter: 8 bytes
    finally:
        os.close(fd)


@explains('cleanup', 'run', 'the command ended: cleanup',
          bash=('ip link del dev veth0_"$uuid"', 'ip netns del netns_"$uuid"'),
          man='ip-link(8), ip-netns(8)', pause=False)
def explain_cleanup(uuid):
    """Deleting one end of a veth deletes both; deleting the name in /run/netns
    lets the kernel free the namespace once no process is in it. The overlay
    mount, the cgroups and the directory stay, for logs, commit and rm."""
    watch = SEEN.get('watch')
    if watch:                                  # its step first (run may end early: ^C)
        SEEN['stop'].set()
        watch.join()
    cdir = Container(uuid).dir
    out = ['veth0_%s: %s' % (uuid, 'still here' if link_exists(Container(uuid).veth0) else
                            'gone (if_nametoindex(3) knows no such link)'),
           'netns_%s: %s' % (uuid, 'still here' if netns_exists(uuid) else
                             'gone from /run/netns; ip netns lists %s' % (
                                 ' '.join(n['name'] for n in explain_ip('netns', 'list') or [])
                                 or 'none'))]
    out.append('left for rm: the overlay on %s/merged (%s), the cgroups, the directory' % (
        cdir, 'mounted' if mounted(cdir + '/merged') else 'not mounted'))
    out += explain_knobs(made_cgroups(uuid), '  ', procs=True)
    return out


@explains('exec-found', 'exec', "the container's pid 1",
          bash=('cid="$(ps o ppid,pid', '[[ ! "$cid" =~'),
          man='proc(5), pid_namespaces(7)')
def explain_found(uuid, cid):
    """exec looks for the container's pid 1: the process whose root is the
    container's merged directory (/proc/PID/root). NSpid lists its pid in
    each pid namespace it is in: the host's, then the container's, where it
    is 1."""
    got = explain_read_pid(cid)
    SEEN['target'] = got
    return explain_pid(cid, got)


@explains('exec-nsenter', 'exec', 'nsenter: into its namespaces',
          bash=('nsenter -t "$cid"',),
          man='cgexec(1), nsenter(1), setns(2), namespaces(7)')
def explain_nsenter(uuid, cid):
    """cgexec first moves it into the container's cgroups (cpu, cpuacct,
    memory, pids), so its limits hold for what exec starts; nsenter joins
    the namespaces of that process with setns(2): -u hostname, -i IPC, -n
    network, -p pid (it forks, as only a child enters a pid namespace);
    bocker.py's join step then joins its mount namespace, whose root is the
    container's, and takes enter's other steps (session, keyring,
    capabilities, seccomp filter, environment) before it execs the command,
    which so sees what the container sees."""
    got = SEEN.get('target') or explain_read_pid(cid)
    joined = dict.fromkeys(('uts', 'ipc', 'net', 'pid', 'pid_for_children'), 'nsenter')
    joined.update(dict.fromkeys(('cgroup', 'mnt'), 'the join step'))
    out = explain_ns(cid, got, joined=joined)
    out.append('its cgroups (/proc/%s/cgroup):' % cid)
    out += explain_knobs(got['cgroup'], '  ')
    return out


def explain_parts(uuid):
    """A container's parts, each as the kernel shows it now."""
    c = Container(uuid)
    pid = container_pid(uuid)
    out = ['pid 1: %s' % ('host pid %s, `%s`' % (pid, explain_read_pid(pid)['cmdline'])
                          if pid else 'none running')]
    out.append('%s: %s' % (c.merged, 'an overlay mount' if mounted(c.merged)
                           else 'not a mount point'))
    out.append('%s: %s' % (c.dir, 'there' if os.path.isdir(c.dir) else 'gone'))
    out.append('%s: %s' % (c.netns, netns_inode(c.netns)))
    out.append('%s: %s' % (c.veth0, 'there' if link_exists(c.veth0) else 'gone'))
    return pid, out


@explains('rm-found', 'rm', 'what there is to remove',
          bash=('if [[ -d "$overlay_path/$1" ]];then',),
          man='proc(5), ip-netns(8), cgroups(7)')
def explain_rm_found(uuid):
    """Not an image, so a container: its parts, as the kernel shows them now."""
    pid, out = explain_parts(uuid)
    SEEN['rm-pid'] = pid
    c = Container.load(uuid)                   # what run knew of it, if bocker.py ran it
    known = ['%s %s' % (f, getattr(c, f)) for f in c.FIELDS if getattr(c, f) is not None]
    out.append('%s: %s' % (os.path.basename(c.state), ', '.join(known) if known else
                           'none (the bash made it)'))
    return out + explain_knobs(made_cgroups(uuid))


@explains('rm-stop', 'rm', 'stop it if it runs',
          bash=(),
          man='kill(2), pid_namespaces(7)')
def explain_rm_stop(uuid):
    """bocker.py's own step (DIVERGENCES rows 4, 46): SIGKILL to every process
    of the container (in its cgroups, below its root, or still on the way
    there: cgexec, ip netns exec, unshare), again until none is left; when
    pid 1 of a pid namespace dies, the kernel kills every process in it. The
    run that started it then deletes its veth and netns."""
    pid = SEEN.get('rm-pid')
    if not pid:
        return ['nothing to stop: no process has its root in %s' % Container(uuid).merged]
    return ['pid %s: %s' % (pid, 'still running' if running(pid) else 'gone (killed)'),
            'container_pid: %s' % (container_pid(uuid) or 'none: no process has its root there')]


@explains('rm-parts', 'rm', 'unmount and remove',
          bash=('umount "$container_path/$1"/merged',),
          man='umount(8), ip-netns(8), ip-link(8)')
def explain_rm_parts(uuid):
    """umount the overlay, remove the directory (the upper layer, the
    container's changes, goes with it), then the netns and the veth where
    run has not deleted them already."""
    return explain_parts(uuid)[1][1:]


@explains('rm-cgroups', 'rm', 'the cgroups',
          bash=('cgdelete -g "$cgroups:/$1"',),
          man='cgdelete(1), cgroups(7)', pause=False)
def explain_rm_cgroups(uuid):
    """cgdelete removes the container's cgroup directories (rmdir(2): a cgroup
    goes only once no process is in it)."""
    return explain_knobs(made_cgroups(uuid))


@explains('rm-image', 'rm-image', 'the image',
          bash=('rm -rf "$overlay_path/$1" && echo',),
          man='rm(1), proc(5)', pause=False)
def explain_rm_image(uuid):
    """An image is a directory of the store; rm -rf removes it. Not while a
    container uses it: the image is the lower layer of each container's root
    (an overlay mount, in /proc/self/mountinfo), so rm refuses, naming them."""
    path = '%s/%s' % (overlay_path, uuid)
    return ['%s: %s' % (path, 'still there' if os.path.lexists(path) else 'gone')]


# What --EXPLAIN's container step (explain_container()) adds to its `kernel`
# lines for a container run with these flags, read back from the kernel.

def explain_wiring(uuid):
    """A running container's -v mounts as its own mountinfo shows them (proc(5):
    its mount namespace, read through its pid 1), with their flags and
    propagation (no shared:N: private), and its -e and -w as its record has them."""
    c, pid = Container.load(uuid), container_pid(uuid)
    out = ['env %s, working directory %s' % (' '.join(c.env or []) or '(none added)',
                                            c.workdir or '/')]
    if not pid:
        return out + ['not running: no mount namespace to read']
    mine = {m[0]: m for m in mountinfo(pid.strip())}
    for host, target, _mode in c.volumes or ():
        m = mine.get(target)
        if m is None:
            out.append('%s: not a mount point in %s' % (target, uuid))
            continue
        with open('/proc/%s/mountinfo' % pid.strip()) as f:
            tags = [line.split(' - ')[0].split()[6:] for line in f
                    if line.split()[4] == target][-1]
        out.append('%s: bind of %s (%s, %s), propagation %s, from /proc/%s/mountinfo' % (
            target, host, m[5], m[3], ' '.join(tags) or 'private', pid.strip()))
    return out


def explain_ports(uuid):
    """A container's -p rules in nat BOCKER with their packet counters (each
    new connection counts one: the nat table sees only its first packet), and
    br1's route_localnet."""
    code, out = iptables('-t', 'nat', '-L', 'BOCKER', '-n', '-v', '-x', check=False)
    rules = [' '.join(line.split()) for line in out.splitlines()[2:] if '/* %s */' % uuid in line]
    try:
        with open('/proc/sys/net/ipv4/conf/br1/route_localnet') as f:
            localnet = f.read().strip()
    except OSError:
        localnet = '?'
    return (['iptables -t nat -L BOCKER -n -v -x (pkts bytes target prot opt in out source '
             'destination):'] + ['  ' + r for r in rules or ['(no rule for %s)' % uuid]] +
            ['br1 route_localnet=%s (1: 127.0.0.1 may be DNATed out of br1)' % localnet])


def explain_terminal(uuid):
    """What --EXPLAIN's container step adds for a run with -t (pts(4),
    ioctl_tty(2) TIOCSCTTY, unix(7) SCM_RIGHTS): pid 1 opened a pty pair
    through its own devpts's ptmx, made the slave its controlling terminal
    in a session of its own and its stdin, stdout and stderr, and sent the
    master to bocker, which relays it to your terminal in raw mode. Read
    back: pid 1's session and controlling terminal (proc(5): /proc/PID/stat's
    session and tty_nr: major 136+ is a pty slave, unix98), what its fd 0
    is (/dev/pts/N, as the container sees it), and who holds the master."""
    pid = container_pid(uuid)
    if not pid:
        return ['(not running)']
    with open('/proc/%s/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    session, tty_nr = fields[3], int(fields[4])
    major, minor = (tty_nr >> 8) & 0xfff, (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)
    lines = ['pid 1 (host pid %s): session %s, controlling terminal %d:%d (pts %d)'
             % (pid, session, major, minor, minor),
             'its fd 0: %s' % os.readlink('/proc/%s/fd/0' % pid)]
    devpts = os.stat('/proc/%s/fd/0' % pid).st_dev
    for holder in os.listdir('/proc'):
        if not holder.isdigit():
            continue
        try:
            fds = os.listdir('/proc/%s/fd' % holder)
            for fd in fds:
                # a ptmx of the same devpts instance (st_dev) as pid 1's terminal
                if os.readlink('/proc/%s/fd/%s' % (holder, fd)).endswith('/ptmx') and \
                        os.stat('/proc/%s/fd/%s' % (holder, fd)).st_dev == devpts:
                    with open('/proc/%s/fdinfo/%s' % (holder, fd)) as f:
                        if 'tty-index:\t%d' % minor in f.read():
                            lines.append('the master: fd %s of pid %s' % (fd, holder))
        except OSError:
            continue
    return lines


@explains('supervisor', 'run-d', 'a supervisor of its own (run -d, start)',
          bash=(), man='setsid(2), prctl(2) PR_SET_PDEATHSIG, flock(2)', pause=False)
def explain_supervisor(uuid):
    """bocker's supervisor, in a session of its own, holds the container's
    output pipe and its lock, writes its log and cleans up when it ends; the
    container dies with it (PR_SET_PDEATHSIG). Read back: its pid, its
    session (its own), and that it holds ps_N.lock (flock(2): /proc/locks
    lists the lock's inode)."""
    c = Container.load(uuid)
    pid = str(c.supervisor or '')
    if not running(pid):
        return ['(no supervisor: the container %s)' % ('runs' if container_pid(uuid) else 'ended')]
    with open('/proc/%s/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    lines = ['supervisor: pid %s, session %s (its own: %s)' % (pid, fields[3], fields[3] == pid)]
    inode = os.stat(c.path(uuid + '.lock')).st_ino
    with open('/proc/locks') as f:
        held = [l.split() for l in f if l.split()[5].endswith(':%d' % inode)]
    lines += ['flock on %s.lock: held (taken by pid %s, the run or start that forked it)'
              % (uuid, l[4]) for l in held]
    return lines


# --- Importing plumbum: the lean import of the command runner --------------------
# command() gets plumbum's `local` from here: the one place that knows plumbum's
# layout. `from plumbum import local` costs more than all of run's system
# commands (docs/BENCHMARK.md: about 34 ms a command), mostly in what bocker
# never uses: the package __init__ files load colors, SSH and remote machines;
# plumbum.path.local imports urllib.request (http.client, email, ssl) and
# urllib.parse for as_uri(), daemons pickle, logging traceback; LocalMachine
# asks platform.uname() (which imports platform and runs `uname -p`).
#
# What the lean import changes in this process, for the rest of its life:
#  - sys.modules['plumbum'], ['plumbum.machines'], ['plumbum.path'] are bare
#    module objects (namespace packages): their __init__ never runs, so names
#    those define (plumbum.__version__, plumbum.colors, ...) are not there;
#  - urllib.request, urllib.parse, pickle and inspect, if not yet imported,
#    are stand-ins inside plumbum's modules (Deferred), loaded on first use;
#  - traceback and platform load on first use too, and plumbum's LocalMachine
#    takes the system's name from os.uname() (not platform, which runs
#    `uname -p`);
#  - the garbage collector is off during the import, and what it made is
#    frozen (gc.freeze(): never walked again, at exit neither).
# Only the plumbum that requirements-run.txt pins (PLUMBUM_LEAN, its dist-info
# beside it) is imported so; any other, and any failure of the lean path,
# gets the plain import. tests/test_plumbum_import.py checks that both yield
# the same `local`, and that a failure falls back.
PLUMBUM_LEAN = '2.0.2'


def plumbum_local():
    """plumbum's local machine: imported lean where the pinned plumbum is
    installed, else (or if that fails) as `from plumbum import local`."""
    if 'plumbum.machines.local' in sys.modules:
        return sys.modules['plumbum.machines.local'].local
    site = plumbum_site()
    if site and os.path.isdir('%s-%s.dist-info' % (site, PLUMBUM_LEAN)):
        try:
            return plumbum_lean(site)
        except Exception:                      # any failure: the plain import below
            for name in [n for n in sys.modules if n == 'plumbum' or n.startswith('plumbum.')]:
                del sys.modules[name]
    from plumbum import local
    return local


def plumbum_site():
    """The directory of the plumbum package the import would find, or None."""
    for entry in sys.path:
        path = os.path.join(entry or '.', 'plumbum')
        if os.path.isfile(os.path.join(path, 'machines', 'local.py')):
            return path
    return None


def plumbum_lean(site):
    """The lean import (the section's comment says what it changes): the
    three packages entered without their __init__, the stand-ins in place
    while plumbum.machines.local loads."""
    gc.disable()
    stubs = {}
    for name in ('plumbum', 'plumbum.machines', 'plumbum.path'):
        stubs[name] = type(sys)(name)          # a module object
        stubs[name].__path__ = [os.path.join(site, *name.split('.')[1:])]
        if '.' in name:
            setattr(stubs['plumbum'], name.split('.')[1], stubs[name])
    deferred = {name: Deferred(name) for name in
                ('urllib.request', 'urllib.parse', 'pickle', 'inspect', 'traceback', 'platform')
                if name not in sys.modules}
    if 'platform' in deferred:                 # LocalMachine.uname = platform.uname()[0]
        deferred['platform'].__dict__['uname'] = lambda: (os.uname().sysname,)
    sys.modules.update(stubs)
    sys.modules.update(deferred)
    try:
        if os.environ.get('BOCKER_TEST_LEAN_IMPORT') == 'fail':   # the fallback's test
            raise RuntimeError('lean import made to fail')
        import plumbum.machines.local
        if 'platform' in deferred:             # from now on, the real one on first use
            plumbum.machines.local.platform = Deferred('platform')
        return sys.modules['plumbum.machines.local'].local
    finally:
        for name, module in deferred.items():  # only plumbum holds the stand-ins
            if sys.modules.get(name) is module:
                del sys.modules[name]
        gc.freeze()
        gc.enable()


class Deferred(type(sys)):
    """A module imported on first use: the stand-in loads it when an attribute
    is first asked for (the real module goes on in sys.modules)."""

    def __getattr__(self, attr):
        import importlib
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


if __name__ == '__main__':
    sys.exit(main(sys.argv))
