#!/usr/bin/env bash
# Lab 07: bind mounts: a directory shown at a second place, made read-only
# there alone, and mount propagation: when a mount made in one mount namespace
# shows in another.
#
# Concept: a bind mount (mount --bind) shows a directory tree at another place;
# it is the same files, not a copy: a write through either path is a write to
# both. Read-only is a flag of the mount, not of the files: a bind mount
# remounted ro refuses writes while the original path still takes them (a bind
# mount gets the flag only on that remount). Each mount also has a propagation
# type: a shared mount passes the mounts made under it to its peers (in other
# mount namespaces too), a private one passes nothing. `unshare -m` gives a
# copy of the mount table, made private, so nothing a container mounts shows
# on the host; `-v HOSTDIR:CTRDIR[:ro]` is a bind mount made in that copy.
#
# Read: mount(8) (--bind, remount,bind,ro, --make-private, --make-shared),
#       mount(2), mount_namespaces(7), findmnt(8), unshare(1)
#       https://man7.org/linux/man-pages/man7/mount_namespaces.7.html
#       https://man7.org/linux/man-pages/man2/mount.2.html
#
# In bocker: `bocker run -v` makes the bind in the container's mount namespace,
# before pivot_root (bocker.py: bind_volumes(), "Wiring a container to its
# host"); the bash has no volumes, so the lines named at the end are those that
# make that namespace and the root the volume lands in. Everything here is on a
# tmpfs in the sandbox's own mount namespace: the host never sees it.
#
# Run: labs/07-bind-mounts.sh (as root; it runs itself in a sandbox), or make labs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
sandboxed "$@"

lab=$(mktemp -d /tmp/bind_demo.XXXXXX)
trap 'cd /; umount -R "$lab" 2>/dev/null || true; rmdir "$lab"' EXIT
mount -t tmpfs bind_demo "$lab"         # a throwaway filesystem for the lab
cd "$lab"
# a mount's options and propagation (findmnt(8)), without what varies by kernel
# (tmpfs's size, relatime; inode64, which 6.1 lists and later kernels do not)
show() { findmnt -n -o TARGET,OPTIONS,PROPAGATION --mountpoint "$lab/$1" | sed "s|$lab/||; s|,size=[^, ]*||; s|,relatime||; s|,inode64||"; }

say 'a host directory, and a container root with an empty mount point in it'
run 'mkdir -p host root/data && echo "from the host" > host/file'
say 'bind it: the same files at a second path'
run 'mount --bind host root/data'
run 'cat root/data/file'
run 'echo "from the container" > root/data/new && cat host/new'
run 'show root/data'
say 'read-only there alone: remount the bind mount ro; the original still writes'
run 'mount -o remount,bind,ro root/data'
run 'show root/data'
run 'touch root/data/x 2>&1 | sed "s/^.*: //" || true'
run 'touch host/y && ls host'
say 'propagation: a private mount shows nothing made under it in another mount namespace'
run 'mount -o remount,bind,rw root/data && mkdir host/sub'
run 'mount --make-private root/data'
run 'unshare -m --propagation unchanged sh -c "mount -t tmpfs inner root/data/sub && touch root/data/sub/made-inside && ls root/data/sub"'
run 'ls root/data/sub'
say 'a shared one passes it back: its peer here gets the mount too'
run 'mount --make-shared root/data'
run 'unshare -m --propagation unchanged sh -c "mount -t tmpfs inner root/data/sub && touch root/data/sub/made-inside"'
run 'ls root/data/sub'
run 'show root/data/sub'
in_bocker 'unshare -fmuip --mount-proc' 'mount -t overlay overlay'
