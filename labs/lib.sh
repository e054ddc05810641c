# labs/lib.sh: what every lab shares (sourced by labs/NN-*.sh, not run).
#
# - sandboxed "$@": a lab changes the network, mounts and cgroups of the place it
#   runs in, so it runs only inside the project's sandbox (tests/sandbox.py: a
#   private network, mount and cgroup namespace). Started anywhere else, the lab
#   runs itself again inside a fresh one, which goes away with everything the
#   lab made when the lab ends.
# - run 'COMMAND': prints `$ COMMAND`, as you would type it, then runs it
#   (its output follows, as in the article's transcripts).
# - say TEXT: a line of explanation, printed as a `#` comment.
# - in_bocker FRAGMENT...: where bocker.py does the same: each bocker.py line
#   that quotes a bash line (`# bash: ...`) containing FRAGMENT, with its line
#   number. The lab's output shows them, so `grep -n` is all you need to follow.

LAB_ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB_PROMPT='$'

# The marks tests/sandbox.py leaves (the same test as fixtures/outside-world):
# tmpfs "bocker" on /var/lib/bocker, tmpfs "netns" on /run/netns, and a network
# namespace that is not PID 1's. Fails closed.
in_sandbox() {
	local mounts self init
	mounts=$(awk '{ split($0, p, " - "); split(p[2], r, " "); print $5, r[1], r[2] }' /proc/self/mountinfo) || return 1
	grep -qx '/var/lib/bocker tmpfs bocker' <<<"$mounts" || return 1
	grep -qx '/run/netns tmpfs netns' <<<"$mounts" || return 1
	self=$(readlink /proc/self/ns/net) || return 1
	init=$(readlink /proc/1/ns/net 2>/dev/null) || init=
	[[ -n $self && $self != "$init" ]]
}

sandboxed() {
	in_sandbox && return 0
	[[ $(id -u) == 0 ]] || { echo "$0: run as root (namespaces, mounts and cgroups need it)" >&2; exit 1; }
	local python=python3
	[[ -x $LAB_ROOT/.venv/bin/python ]] && python=$LAB_ROOT/.venv/bin/python
	exec "$python" "$LAB_ROOT/tests/sandbox.py" --no-br1 -- "$0" "$@"
}

run() {
	printf '%s %s\n' "$LAB_PROMPT" "$1"
	eval "$1"
}

say() {
	printf '# %s\n' "$*"
}

in_bocker() {
	local fragment found
	say "bocker does the same (the bash line, and where bocker.py ports it):"
	for fragment in "$@"; do
		# a quote (`# bash: LINE`, a docstring's `bash: LINE`), or a line of a
		# quote that goes on after a backslash (a comment line of its own)
		found=$(grep -n -F -- "$fragment" "$LAB_ROOT/bocker.py" |
			grep -E '^[0-9]+:[[:space:]]*(#|"""bash: )|# bash: ' | head -1 || true)
		if [[ -z $found ]]; then
			printf '#   MISSING: no bash line quoted in bocker.py contains: %s\n' "$fragment"
			continue
		fi
		printf '#   bocker.py:%s\n' "$(sed -E 's/^([0-9]+):([[:space:]]*#|.*# |[[:space:]]*""")[[:space:]]*(bash: )?/\1: /' <<<"$found")"
	done
}
