#!/usr/bin/env bash
# bocker.sh: a drop-in for the bash `bocker` script that runs bocker.py.
# Same arguments, output and exit status. Works by absolute or relative path
# and through a symlink on PATH; uses the project's virtual environment
# (.venv beside bocker.py) when there is one.
self=${BASH_SOURCE[0]}
[[ -L "$self" ]] && self=$(readlink -f -- "$self")     # a symlink on PATH
[[ "$self" == /* ]] || self="$PWD/$self"
here=${self%/*}
python=python3 site=
if [[ -x "$here/.venv/bin/python" ]]; then
	python="$here/.venv/bin/python"
	for site in "$here"/.venv/lib/python3*/site-packages; do :; done
	[[ -d "$site" ]] || site=
fi
# help (and no command) needs no Python: bocker.py's #HELP lines, read here as the
# bash reads its own, "$0" as the user typed it; exit 1 without a command. Every
# other word goes to bocker.py, whose #HELP lines are also its list of commands
# (commands()): one it does not know it answers with the same help, as the bash.
# bash: sed -n "s/^.*#HELP\\s//p;" < "$1" | sed "s/\\\\n/\n\t/g;s/$/\n/;s!BOCKER!${1/!/\\!}!g"
case ${1-} in
''|help)
	help=
	while IFS= read -r text; do
		text=${text//\\n/$'\n\t'}
		help+=${text//BOCKER/"$0"}$'\n\n'
	done < <(sed -n 's/^def .*#HELP\s//p' "$here/bocker.py")
	printf '%s' "$help"
	[[ -z ${1-} ]] && exit 1
	exit 0
esac
# "$0" as the user typed it: bocker.py puts it in the help text, as bash does.
# bocker.py is imported, not run as a script, so Python keeps its compiled
# bytecode (__pycache__) instead of compiling it on every call; -I keeps the
# working directory and PYTHON* variables out of the module search. With the
# venv, -S skips the site module (2 ms) and its site-packages is put on the
# path here instead. Once main() has flushed its output, os._exit skips tearing
# the interpreter down (the modules plumbum brings): nothing is left to close
# or run at exit.
BOCKER_PROG="$0" exec "$python" -I ${site:+-S} -c \
	'import os, sys; sys.path.insert(0, sys.argv[1]); sys.argv[2] and sys.path.append(sys.argv[2])
import bocker
code = bocker.main(sys.argv[2:]); sys.stderr.flush(); os._exit(code or 0)' "$here" "$site" "$@"
