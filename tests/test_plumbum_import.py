"""bocker.py's lean import of plumbum (plumbum_local(), the "Importing plumbum"
section) against the version requirements-run.txt pins: it takes the lean
path (not its fallback), and the `local` it yields is the one a plain
`from plumbum import local` gives, and runs commands the same."""
import json
import os
import re
import subprocess
import sys

from support import ROOT

PROBE = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
if sys.argv[2] in ('lean', 'other-version'):
    import bocker
    if sys.argv[2] == 'other-version':
        bocker.PLUMBUM_LEAN = '0.0'            # a plumbum the lean import does not know
    local = bocker.plumbum_local()
else:
    from plumbum import local
from plumbum.commands.modifiers import RETCODE
from plumbum.commands.processes import CommandNotFound
cls = type(local)
try:
    local['no-such-command-here']
    missing = 'found'
except CommandNotFound:
    missing = 'CommandNotFound'
print(json.dumps({
    'class': cls.__module__ + '.' + cls.__qualname__,
    'file': sys.modules[cls.__module__].__file__,
    'names': sorted(n for n in dir(local) if not n.startswith('_')),
    'echo': local['echo']['a b', 'c'](),
    'status': local['sh']['-c', 'exit 3'] & RETCODE(FG=False),
    'stdin': (local['cat'] << 'fed\n')(),
    'missing': missing,
    'plumbum_init_ran': getattr(sys.modules['plumbum'], '__file__', None) is not None,
}))
'''


def probe(how, env=None):
    r = subprocess.run([sys.executable, '-I', '-c', PROBE, ROOT, how],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, **(env or {})))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def pinned_version():
    with open(os.path.join(ROOT, 'requirements-run.txt')) as f:
        return re.search(r'^plumbum==(\S+)$', f.read(), re.M).group(1)


def test_the_installed_plumbum_is_the_pinned_one():
    from importlib.metadata import version
    assert version('plumbum') == pinned_version()


def test_lean_import_yields_the_same_local_as_a_plain_import():
    lean, plain = probe('lean'), probe('plain')
    # the lean path was taken: plumbum's package __init__ never ran
    assert lean.pop('plumbum_init_ran') is False
    assert plain.pop('plumbum_init_ran') is True
    assert lean == plain
    assert lean['echo'] == 'a b c\n' and lean['status'] == 3 and lean['stdin'] == 'fed\n'
    assert lean['missing'] == 'CommandNotFound'


def test_another_plumbum_or_a_failing_lean_import_gets_the_plain_import():
    """The lean path is taken only for the pinned version, and any failure on
    it falls back to `from plumbum import local`: the same local either way."""
    plain = probe('plain')
    for got in (probe('other-version'), probe('lean', {'BOCKER_TEST_LEAN_IMPORT': 'fail'})):
        assert got == plain
        assert got['plumbum_init_ran'] is True
