#!/usr/bin/env bash
# bocker.sh: a drop-in for the bash `bocker` script that runs bocker.py.
# Same arguments, output and exit status. Works by absolute or relative path
# and through a symlink on PATH; uses the project's virtual environment
# (.venv beside bocker.py) when there is one.
self=$(readlink -f -- "${BASH_SOURCE[0]}")
here=${self%/*}
python=python3
[[ -x "$here/.venv/bin/python" ]] && python="$here/.venv/bin/python"
# "$0" as the user typed it: bocker.py puts it in the help text, as bash does.
BOCKER_PROG="$0" exec "$python" "$here/bocker.py" "$@"
