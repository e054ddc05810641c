#!/usr/bin/env bash
# Lab 01: UTS and IPC namespaces, the article's "shell A / shell B" experiment.
#
# Concept: a namespace wraps one kind of global resource so that the processes
# in it see their own copy. A UTS namespace holds the hostname; an IPC namespace
# holds System V IPC objects (here a message queue). Every process names its
# namespaces in /proc/PID/ns/: `uts:[4026531838]` is the namespace's inode
# number, and two processes with the same number share that namespace.
# unshare(1) starts a program in new namespaces, nsenter(1) joins those of a
# running process (the system calls: unshare(2), setns(2)).
#
# Read: namespaces(7), uts_namespaces(7), ipc_namespaces(7), unshare(1),
#       nsenter(1), ipcmk(1), ipcs(1), hostname(1)
#       https://man7.org/linux/man-pages/man7/namespaces.7.html
#
# In bocker: `unshare -fmuip` in bocker_run gives every container its own UTS
# and IPC namespace (-u, -i), beside mount (-m) and pid (-p); `nsenter -t PID
# -m -u -i -n -p` in bocker_exec joins them. The end of the output names the
# bocker.py lines (bocker.py: execute() and bocker_exec()).
#
# Run: labs/01-uts-ipc.sh (as root; it runs itself in a sandbox), or
#      make labs. Nothing reaches the host: "shell A" is itself a fresh UTS and
#      IPC namespace made for this lab (the sandbox shares the host's hostname).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
sandboxed "$@"

if [[ ${1-} == shell-B ]]; then
	# ---- shell B: started by shell A below, with `unshare -iu "$0" shell-B` ----
	LAB_PROMPT='[shell B] $'
	say 'shell B: new UTS and IPC namespaces (unshare -iu): other inode numbers than shell A'
	run 'readlink /proc/$$/ns/uts /proc/$$/ns/ipc'
	run 'hostname shell-B'
	run 'hostname'
	say "shell A's queue is not here: this IPC namespace starts empty"
	run 'ipcs -q'
	run 'echo $$'
	echo $$ > "$2"          # tell shell A this shell's pid, then stay alive
	exec sleep 600          # (same pid, same namespaces) until shell A kills it
fi

if [[ ${1-} != shell-A ]]; then
	# Shell A plays the host: its own UTS and IPC namespace, thrown away at the end.
	exec unshare --uts --ipc "$0" shell-A
fi

LAB_PROMPT='[shell A] $'
hostname shell-A
say 'shell A: the namespaces of this shell, by inode number'
run 'readlink /proc/$$/ns/uts /proc/$$/ns/ipc'
run 'hostname'
say 'no message queue yet; make one'
run 'ipcs -q'
run 'ipcmk -Q'
run 'ipcs -q'

pidfile=$(mktemp)
trap 'kill "$shell_b" 2>/dev/null || true; rm -f "$pidfile"' EXIT
: > "$pidfile"
unshare -iu "$0" shell-B "$pidfile" &
shell_b=$!
while [[ ! -s $pidfile ]]; do sleep 0.05; done
shell_b=$(<"$pidfile")

say "back in shell A: shell B's hostname did not reach here, the queue is still here"
run 'hostname'
run 'ipcs -q'
say "join shell B's UTS and IPC namespaces (nsenter -u -i), as bocker exec joins a container's"
run 'nsenter -t "$shell_b" -u -i sh -c '\''hostname; readlink /proc/$$/ns/uts /proc/$$/ns/ipc; ipcs -q'\'''
in_bocker 'unshare -fmuip --mount-proc' 'nsenter -t "$cid" -m -u -i -n -p'
