#!/usr/bin/env bash
# Lab 04: an overlay mount, the article's lower/upper/work/merged experiment:
# reads through the layers, a copy-up on the first write, a whiteout on delete.
#
# Concept: overlayfs stacks directories into one view. `lower` is read-only
# (an image: bocker copies the image there), `upper` takes every change (the
# container's own layer), `work` is overlayfs's scratch space, and `merged` is
# the view, which bocker makes the container's root. A file in both layers is
# seen from upper. Writing a file that is only in lower first copies it up into
# upper (copy-up; lower is never written). Deleting a file that lower has
# leaves a whiteout in upper: a character device 0,0 (`c--------- ... 0, 0`
# in ls -l) that hides the lower file in merged. Image layers carry the same
# thing as a file named .wh.NAME, which bocker pull turns back into a deletion.
#
# Read: https://docs.kernel.org/filesystems/overlayfs.html, mount(8) (overlay
#       options), mount_namespaces(7), mknod(2) (a 0,0 character device)
#       https://man7.org/linux/man-pages/man8/mount.8.html
#
# In bocker: bocker_run's mkdir of lower, upper, work, merged, the copy of the
# image into lower and `mount -t overlay` (bocker.py: setup()), bocker_rm's
# umount, bocker_commit's copy of merged; the end of the output names the lines.
# The mount is in the sandbox's own mount namespace, on a tmpfs the lab mounts
# and removes: the host never sees it.
#
# Run: labs/04-overlay.sh (as root; it runs itself in a sandbox), or make labs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
sandboxed "$@"

lab=$(mktemp -d /tmp/overlay_demo.XXXXXX)
trap 'cd /; umount "$lab/merged" 2>/dev/null || true; umount "$lab" 2>/dev/null || true; rmdir "$lab"' EXIT
mount -t tmpfs overlay_demo "$lab"      # a throwaway filesystem for the layers
cd "$lab"

# the tree, as the article's `tree` shows it (Debian has no tree by default)
# (work/work's own files are overlayfs's business: not shown)
tree() { find lower upper merged work -maxdepth 1 | sort | sed 's|[^/]*/|  |g'; }

say 'two layers: lower (the image) and upper (the container'\''s changes)'
run 'mkdir upper lower merged work'
run 'echo lower > lower/in_lower.txt'
run 'echo upper > upper/in_upper.txt'
run 'echo lower > lower/in_both.txt'
run 'echo upper > upper/in_both.txt'
run 'mount -t overlay overlay -o lowerdir=lower,upperdir=upper,workdir=work merged'
run 'findmnt -n -o FSTYPE,OPTIONS merged | grep -o "^overlay\|lowerdir=[^,]*\|upperdir=[^,]*\|workdir=[^,]*"'
say 'merged shows both layers; in_both.txt comes from upper, the layer on top'
run 'ls merged'
run 'cat merged/in_both.txt'
say 'a new file goes to upper'
run 'touch merged/new_file'
run 'ls upper'
say 'copy-up: the first write to a lower file copies it into upper; lower is untouched'
run 'echo changed >> merged/in_lower.txt'
run 'cat upper/in_lower.txt'
run 'cat lower/in_lower.txt'
say 'a whiteout: delete in merged a file lower has, and upper gets a 0,0 character device'
run 'rm merged/in_both.txt'
run 'ls merged'
run 'ls -l upper/in_both.txt'
say '(its link count: since Linux 5.8 whiteouts share one inode, linked from work/; the article'\''s has 1)'
run 'cat lower/in_both.txt'
run 'tree'
say 'the container'\''s changes are exactly upper: what a docker commit or an image layer holds'
run 'umount merged'
in_bocker 'mkdir -p "$container_path/$uuid"/{lower,upper,work,merged}' 'mount -t overlay overlay' \
	'-o lowerdir="$container_path/$uuid"/lower' 'umount "$container_path/$1"/merged' \
	'cp -rf --reflink=auto "$container_path/$1"/merged/*'
