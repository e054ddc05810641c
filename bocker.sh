#!/usr/bin/env bash
# bocker.sh: a drop-in for the bash `bocker` script that runs bocker.py.
# Same arguments, output and exit status. Works by absolute or relative path
# and through a symlink on PATH; uses the project's virtual environment
# (.venv beside bocker.py) when there is one.
self=${BASH_SOURCE[0]}
[[ -L "$self" ]] && self=$(readlink -f -- "$self")     # a symlink on PATH
[[ "$self" == /* ]] || self="$PWD/$self"
here=${self%/*}
python=python3
[[ -x "$here/.venv/bin/python" ]] && python="$here/.venv/bin/python"
# "$0" as the user typed it: bocker.py puts it in the help text, as bash does.
# bocker.py is imported, not run as a script, so Python keeps its compiled
# bytecode (__pycache__) instead of compiling 1000 lines on every call; -I keeps
# the working directory and PYTHON* variables out of the module search.
BOCKER_PROG="$0" exec "$python" -I -c \
	'import sys; sys.path.insert(0, sys.argv[1]); import bocker; sys.exit(bocker.main(sys.argv[1:]))' \
	"$here" "$@"
