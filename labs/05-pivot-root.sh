#!/usr/bin/env bash
# Lab 05: chroot against pivot_root: a chroot breakout, and the same escape
# tried again after pivot_root, which leaves nothing to escape to.
#
# Concept: chroot(2) changes one thing: the directory a process resolves `/`
# from. The host's whole tree is still in its mount namespace, and a process
# that may call chroot (CAP_SYS_CHROOT) gets back to it: it chroots into a
# subdirectory without entering it, so its working directory is now outside
# its root, climbs with `..` (nothing stops at a root it is not in) up to the
# real `/`, and chroots there. pivot_root(2) works on the mount namespace
# instead: the new root becomes the namespace's root mount and the old one is
# moved away, then detached (umount2(2), MNT_DETACH): no path leads to the
# host's files any more, whatever the process does with chroot and `..`.
# bocker's bash uses chroot; bocker.py pivots, and also drops CAP_SYS_CHROOT
# and refuses chroot in its seccomp filter.
#
# Read: chroot(2), pivot_root(2), umount(2) (MNT_DETACH), mount_namespaces(7)
#       https://man7.org/linux/man-pages/man2/pivot_root.2.html
#       https://man7.org/linux/man-pages/man2/chroot.2.html
#
# In bocker: the bash's `chroot "$container_path/$uuid"/merged` in bocker_run
# and bocker_exec; bocker.py's enter() pivots into merged (its `os.chdir(root)`
# step), and join() enters the same root by joining the mount namespace. Both
# run here in a mount namespace of the lab's own (unshare --mount), on a tmpfs
# the lab mounts and removes: the host never sees them.
#
# Run: labs/05-pivot-root.sh (as root; it runs itself in a sandbox), or make labs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
sandboxed "$@"

lab=$(mktemp -d /tmp/pivot_demo.XXXXXX)
trap 'cd /; umount "$lab" 2>/dev/null || true; rmdir "$lab"' EXIT
mount -t tmpfs pivot_demo "$lab"       # a throwaway filesystem for the root
cd "$lab"
"$LAB_ROOT/fixtures/busybox-rootfs" rootfs >/dev/null
touch only-on-the-host                 # a file the container's root does not have
marker=$lab/only-on-the-host

# The escape, as a root process that may still chroot would try it (Python, as
# busybox's chroot applet always enters the directory it chroots to).
escape='
import os, sys
print("inside, / holds:", " ".join(sorted(os.listdir("/"))[:5]), "...")
os.makedirs("/x", exist_ok=True); os.chroot("/x")   # the root moves down, the working directory stays
for _ in range(64): os.chdir("..")              # up past the root it is no longer in
os.chroot(".")
print("after the escape, a file only the host has is in reach:", os.path.exists(sys.argv[1]))
'
say 'chroot: the process resolves / from rootfs, but the host is still in its mount namespace'
run "unshare --mount python3 -c 'import os, sys; os.chroot(\"rootfs\"); os.chdir(\"/\"); exec(sys.argv[2])' \"\$marker\" \"\$escape\""
say 'pivot_root: rootfs becomes the mount namespace'\''s root; the old root is detached'
pivot='
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_pivot_root = {"x86_64": 155, "aarch64": 41}[os.uname().machine]
libc.mount(b"rootfs", b"rootfs", None, 4096, None)  # MS_BIND: pivot_root needs a mount point
os.chdir("rootfs")
assert libc.syscall(SYS_pivot_root, b".", b".") == 0, os.strerror(ctypes.get_errno())
assert libc.umount2(b".", 2) == 0                   # MNT_DETACH: the old root, stacked on top
os.chdir("/")
exec(sys.argv[2])
'
run "unshare --mount --propagation private python3 -c \"\$pivot\" \"\$marker\" \"\$escape\""
say 'the same escape now ends where it began: there is no host left above / to climb to'
in_bocker 'chroot "$container_path/$uuid"/merged' 'nsenter -t "$cid" -m -u -i -n -p chroot'
