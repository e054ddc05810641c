#!/usr/bin/env bash
# Lab 03: a cgroup with a memory limit, and a memory hog the kernel kills.
#
# Concept: a control group (cgroup) puts processes in a group to count and
# limit what they use. The kernel shows cgroups as directories of a
# filesystem (/sys/fs/cgroup): make a directory and you have a cgroup; write a
# pid into its cgroup.procs and the process is in it; its files are the knobs.
# A resource controller (a "subsystem": cpu, memory, ...) acts on the groups of
# the hierarchy it is attached to. With cgroup v1, memory.limit_in_bytes caps
# the memory of the group: past it the kernel reclaims what it can, then the
# OOM killer kills a process in that group (and only in it). cgroup-tools wraps
# the files: cgcreate (mkdir), cgset/cgget (write/read a knob), cgexec (start a
# command in the group), cgdelete (rmdir). On a cgroup v2 only host (the lab
# says which layout it finds) there is one hierarchy, the knob is memory.max
# and the kill is counted in memory.events.
#
# Read: cgroups(7), cgroup_namespaces(7), cgcreate(1), cgset(1), cgexec(1),
#       cgget(1), https://man7.org/linux/man-pages/man7/cgroups.7.html
#       https://docs.kernel.org/admin-guide/cgroup-v1/memory.html
#
# In bocker: bocker_run's cgcreate, cgset (cpu.shares, memory.limit_in_bytes:
# --MEM_LIMIT megabytes, 512 by default) and cgexec (bocker.py: setup(),
# execute()); the end of the output names the lines. The sandbox has a cgroup
# namespace rooted at a cgroup of its own, so the cgroup made here sits under
# the sandbox's (its path reads /lab_hog from inside) and goes with it.
#
# Run: labs/03-cgroup-memory.sh (as root; it runs itself in a sandbox), or make labs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
sandboxed "$@"

# cgroup v1 (a memory hierarchy of its own) or a v2 only host (one hierarchy)
# (v1: the line "N:memory:/path" of /proc/PID/cgroup; v2: the line "0::/path")
if [[ -d /sys/fs/cgroup/memory ]]; then
	layout=v1 limit=memory.limit_in_bytes cgdir=/sys/fs/cgroup/memory/lab_hog
	events=memory.oom_control line=memory
else
	layout=v2 limit=memory.max cgdir=/sys/fs/cgroup/lab_hog
	events=memory.events line=
fi
hier=memory
trap 'cgdelete -g $hier:/lab_hog 2>/dev/null || true' EXIT

say 'which layout: a tmpfs holding a hierarchy per controller (v1), or cgroup2fs, one hierarchy (v2)'
run 'stat -f -c %T /sys/fs/cgroup'
if [[ $layout == v1 ]]; then
	say 'cgroup v1: the controllers this kernel has (1: enabled); bocker uses cpu, cpuacct and memory'
	run 'cut -f1,4 /proc/cgroups | grep -E "^(#subsys|cpu|memory)"'
	say 'this shell'\''s memory cgroup: "/" is the root of the sandbox'\''s cgroup namespace'
else
	say 'cgroup v2 only: the controllers this cgroup has, and those it hands to its children'
	say '(bocker uses cpu and memory: v2 has no cpuacct, the cpu controller counts)'
	run 'cat /sys/fs/cgroup/cgroup.controllers'
	run 'cat /sys/fs/cgroup/cgroup.subtree_control'
	say 'this shell'\''s cgroup, in the root of the sandbox'\''s cgroup namespace: v2 lets a cgroup'
	say 'that hands controllers on hold no process (the "no internal processes" rule), so the'
	say 'sandbox keeps its own processes in a leaf, /init'
fi
run 'grep -E "^[0-9]+:'"$line"':" /proc/$$/cgroup | cut -d: -f2-'
say 'make a cgroup and cap its memory at 50 MB (bocker: --MEM_LIMIT=50)'
run "cgcreate -g $hier:/lab_hog"
run "cgset -r $limit=50000000 lab_hog"
say 'the kernel keeps whole pages: 50000000 rounded down to a multiple of 4096'
run "cgget -n -v -r $limit lab_hog"
# No swap for this group (where the host has any), so the hog cannot escape the
# limit by swapping: memory.swappiness 0, and v1's memory+swap cap (memsw) or
# v2's memory.swap.max. Quiet: the files differ from host to host.
cgset -r memory.swappiness=0 lab_hog 2>/dev/null || true
cgset -r memory.memsw.limit_in_bytes=50000000 lab_hog 2>/dev/null || true
cgset -r memory.swap.max=0 lab_hog 2>/dev/null || true
say 'cgexec starts a command in the group: /proc/self/cgroup says where it is'
run "cgexec -g $hier:lab_hog grep -E \"^[0-9]+:$line:\" /proc/self/cgroup | cut -d: -f2-"
say 'cgroup.procs lists the processes in the group: here the shell and the grep reading it'
run "cgexec -g $hier:lab_hog sh -c 'grep -c . $cgdir/cgroup.procs'"
say 'a hog: a shell that reads 200 MB into a variable. The kernel kills it with SIGKILL'
say '(bash reports "Killed"; the exit status is 128 + 9)'
run "cgexec -g $hier:lab_hog sh -c 'x=\$(yes | head -c 200000000); echo \"survived, \${#x} bytes\"' || echo \"exit status \$?\""
say 'the kernel counted the kill'
run "grep -w oom_kill $cgdir/$events"
say 'under the limit, 10 MB, the same shell lives ($(...) drops the last newline: 1 byte less)'
run "cgexec -g $hier:lab_hog sh -c 'x=\$(yes | head -c 10000000); echo \"survived, \${#x} bytes\"'"
run "cgdelete -g $hier:/lab_hog"
in_bocker 'cgcreate -g "$cgroups:/$uuid"' 'cgset -r memory.limit_in_bytes=' 'cgexec -g "$cgroups:$uuid"' \
	'cgdelete -g "$cgroups:/$1"'
