#!/usr/bin/env python3
"""The Debian archive this host's apt fetches from, for debootstrap (make bench).

Prints the URI of the first source, in the order apt reads them
(/etc/apt/sources.list, then /etc/apt/sources.list.d/ by name), that is a
binary (`deb`) source of a distribution's main archive: component `main`, a
suite that is not a security, updates or backports pocket (those archives hold
only the packages that changed). Both formats are read: the one-line one
(`deb [options] URI SUITE COMPONENT...`, in *.list files) and deb822 stanzas
(`Types:`, `URIs:`, `Suites:`, `Components:`, `Enabled:`, in *.sources files);
see sources.list(5). None found: one line on stderr, exit 1.

    python3 tests/debian_mirror.py [ROOT]     # ROOT: read ROOT/etc/apt (tests)
"""
import os
import re
import sys

POCKET = re.compile(r'(-security|/updates|-updates|-backports|-proposed-updates)$')


def one_line_sources(text):
    """(types, uris, suites, components) of each line of a .list file."""
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(' ')
        rest = rest.strip()
        if rest.startswith('['):                      # [arch=amd64 signed-by=...]
            rest = rest.partition(']')[2]
        words = rest.split()
        if len(words) >= 2:
            yield [kind], words[:1], words[1:2], words[2:]


def deb822_sources(text):
    """(types, uris, suites, components) of each enabled stanza of a .sources file."""
    stanzas = re.split(r'\n[ \t]*\n', text)
    for stanza in stanzas:
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith('#'):
                continue
            if line[:1] in (' ', '\t') and key:        # a continued field (Signed-By's key)
                fields[key] += ' ' + line.strip()
            elif ':' in line:
                key, _, value = line.partition(':')
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get('enabled', 'yes').lower() == 'no':
            continue
        yield tuple(fields.get(k, '').split() for k in ('types', 'uris', 'suites', 'components'))


def sources(root='/'):
    """Every source, in the order apt reads them."""
    apt = os.path.join(root, 'etc', 'apt')
    parts = os.path.join(apt, 'sources.list.d')
    files = [os.path.join(apt, 'sources.list')]
    if os.path.isdir(parts):
        files += [os.path.join(parts, n) for n in sorted(os.listdir(parts))]
    for path in files:
        reader = one_line_sources if path.endswith('.list') else \
            deb822_sources if path.endswith('.sources') else None
        if reader and os.path.isfile(path):
            with open(path, encoding='utf-8', errors='replace') as f:
                yield from reader(f.read())


def main_archive(root='/'):
    for types, uris, suites, components in sources(root):
        if 'deb' in types and uris and 'main' in components and \
                any(not POCKET.search(s) for s in suites):
            return uris[0]
    return None


if __name__ == '__main__':
    root = sys.argv[1] if len(sys.argv) > 1 else '/'
    uri = main_archive(root)
    if not uri:
        sys.stderr.write('%s: no main archive (a deb source with component main) in '
                         '%s/etc/apt/sources.list or sources.list.d/*.list, *.sources: '
                         'name one with BENCH_MIRROR=URL\n'
                         % (os.path.basename(sys.argv[0]), root.rstrip('/')))
        sys.exit(1)
    print(uri)
