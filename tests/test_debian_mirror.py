"""tests/debian_mirror.py: the archive `make bench` hands debootstrap, read
from apt's sources as apt reads them. Made-up /etc/apt trees, no network."""
import os
import subprocess
import sys

from support import HERE

SCRIPT = os.path.join(HERE, 'debian_mirror.py')


def mirror(root, files):
    for name, text in files.items():
        path = root / 'etc' / 'apt' / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return subprocess.run([sys.executable, SCRIPT, str(root)], capture_output=True, text=True)


def test_deb822_skips_disabled_security_and_other_files(tmp_path):
    r = mirror(tmp_path, {
        'sources.list.d/a-disabled.sources':
            'Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\n'
            'Components: main\nEnabled: no\n',
        'sources.list.d/b.sources':
            'Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\n'
            'Types: deb\n# a comment\nURIs: http://deb.example/debian-security\n'
            'Suites: bookworm-security\nComponents: main\n\n'
            'Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n'
            'Components: main contrib\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n'
            ' -----END PGP PUBLIC KEY BLOCK-----\n',
        'sources.list.d/c.list.disabled': 'deb http://not-read.example/debian bookworm main\n',
    })
    assert (r.stdout, r.stderr, r.returncode) == ('http://mirror.example/debian\n', '', 0)


def test_one_line_sources_list_comes_first(tmp_path):
    r = mirror(tmp_path, {
        'sources.list':
            '# deb http://commented.example/debian bookworm main\n'
            'deb [arch=amd64 signed-by=/k.gpg] http://third-party.example/apt stable extras\n'
            'deb http://security.example/debian-security bookworm-security main\n'
            'deb [ trusted=yes ] http://one-line.example/debian bookworm main  # the mirror\n',
        'sources.list.d/debian.sources':
            'Types: deb\nURIs: http://later.example/debian\nSuites: bookworm\nComponents: main\n',
    })
    assert (r.stdout, r.returncode) == ('http://one-line.example/debian\n', 0)


def test_no_archive_is_one_line_on_stderr(tmp_path):
    r = mirror(tmp_path, {
        'sources.list.d/security.sources':
            'Types: deb\nURIs: http://security.example/debian-security\n'
            'Suites: bookworm-security\nComponents: main\n',
    })
    assert (r.stdout, r.returncode) == ('', 1)
    assert len(r.stderr.splitlines()) == 1 and 'BENCH_MIRROR=URL' in r.stderr, r.stderr
    r = subprocess.run([sys.executable, SCRIPT, str(tmp_path / 'nothing')],
                       capture_output=True, text=True)
    assert (r.stdout, r.returncode) == ('', 1) and 'BENCH_MIRROR' in r.stderr

