"""compat/side-by-side: the reference beside bocker.py, line by line.

--check makes the rule "each step quotes the bash line it ports" a test; the
terminal view is plain text on a pipe and fits 80 columns; the HTML page is
loaded in Debian's headless chromium (tests/chromium.py, DevTools protocol over
a pipe) and each bash line's row is checked to sit at its twin's height.
Needs the reference (BOCKER_REFERENCE); no root, no sandbox: nothing runs bocker.
"""
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

from support import REFERENCE, ROOT
from chromium import CHROMIUM, Chromium

TOOL = os.path.join(ROOT, 'compat', 'side-by-side')
STRUCTURAL = {'}', 'fi', 'else', 'then', 'do', 'done', 'esac', ';;', '{'}


def side_by_side(*args, tool=TOOL, env=None, **kw):
    environ = dict(os.environ, BOCKER_REFERENCE=REFERENCE)
    environ.pop('COLUMNS', None)
    environ.update(env or {})
    return subprocess.run([sys.executable, tool, *args], capture_output=True, text=True,
                          env=environ, **kw)


def reference_lines(reference):
    with open(reference, encoding='utf-8') as f:
        return f.read().rstrip('\n').split('\n')


def project_copy(tmp_path, edit):
    """The tool, bocker.py and DIVERGENCES.md in a tree of their own, with
    bocker.py's text changed by edit(text) -> text."""
    (tmp_path / 'compat').mkdir()
    shutil.copy(TOOL, tmp_path / 'compat' / 'side-by-side')
    shutil.copy(os.path.join(ROOT, 'compat', 'DIVERGENCES.md'), tmp_path / 'compat')
    with open(os.path.join(ROOT, 'bocker.py'), encoding='utf-8') as f:
        text = f.read()
    changed = edit(text)
    assert changed != text
    (tmp_path / 'bocker.py').write_text(changed, encoding='utf-8')
    return str(tmp_path / 'compat' / 'side-by-side')


def drop_line(line):
    def edit(text):
        lines = text.split('\n')
        assert lines.count(line) == 1, line
        lines.remove(line)
        return '\n'.join(lines)
    return edit


# --- --check -----------------------------------------------------------------------

def test_check_passes_on_the_project_with_the_reference(reference):
    r = side_by_side('--check')
    assert r.returncode == 0, r.stdout + r.stderr
    count = sum(1 for line in reference_lines(reference) if line.strip())
    assert 'all %d non-blank lines of the reference are twinned in bocker.py, in order' % count \
        in r.stdout


@pytest.mark.parametrize('removed, number', [
    ('        # bash: ip link set dev veth0_"$uuid" up', 74),                 # one quote
    ('    #         unshare -fmuip --mount-proc \\', 94),                      # a continued line
    ('    # bash: uuid="ps_$(shuf -i 42002-42254 -n 1)"', 69),               # a bash-order note
])
def test_check_names_the_line_whose_twin_is_removed(reference, tmp_path, removed, number):
    tool = project_copy(tmp_path, drop_line(removed))
    r = side_by_side('--check', tool=tool)
    assert r.returncode == 1
    text = reference_lines(reference)[number - 1].strip()
    named = [line for line in r.stdout.split('\n') if line.startswith('bocker:%d ' % number)]
    assert named and text in named[0], r.stdout
    problems = [line for line in r.stdout.split('\n') if line.startswith('bocker:')]
    assert len(problems) == 1, r.stdout                  # that line only


def test_check_names_a_line_quoted_out_of_order(reference, tmp_path):
    a = '        # bash: ip netns add netns_"$uuid"'
    b = '        # bash: ip link set veth0_"$uuid" master br1'

    def swap(text):
        return text.replace(a, '\0').replace(b, a).replace('\0', b)
    tool = project_copy(tmp_path, swap)
    r = side_by_side('--check', tool=tool)
    assert r.returncode == 1
    assert re.search(r'^bocker:(75|76) \(bocker_run\) out of order: its quote at bocker\.py:\d+',
                     r.stdout, re.M), r.stdout


def test_check_structural_lines_need_no_quote(reference, tmp_path):
    """`else`, `fi`, `done`, `esac`, `}`: no Python step of their own. A quote
    pins one (rm's `else`), and without it --check still passes."""
    tool = project_copy(tmp_path, lambda t: t.replace(
        '    # bash: else\n    need_modules', '    need_modules'))
    r = side_by_side('--check', tool=tool)
    assert r.returncode == 0, r.stdout
    # a line that only looks structural is not: `case $1 in` needs its quote
    (tmp_path / 'b').mkdir()
    tool = project_copy(tmp_path / 'b', drop_line('    # bash: case $1 in'))
    r = side_by_side('--check', tool=tool)
    assert r.returncode == 1 and 'bocker:126 (main) has no twin' in r.stdout, r.stdout


def test_check_holds_divergence_markers_and_rows_together(tmp_path):
    tool = project_copy(tmp_path, lambda t: t.replace(
        'diverges (row 24): bash prints them raw', 'diverges: bash prints them raw').replace(
        '# diverges (row 30): only a regular', '# diverges (row 99): only a regular').replace(
        '    diverges (row 25): the bash needs it on PATH', '    the bash needs it on PATH'))
    r = side_by_side('--check', tool=tool)
    assert r.returncode == 1
    assert re.search(r'^bocker\.py:\d+: `diverges:` names no row of compat/DIVERGENCES\.md',
                     r.stdout, re.M), r.stdout
    assert re.search(r'^bocker\.py:\d+: `diverges \(row 99\)`: compat/DIVERGENCES\.md has no row 99',
                     r.stdout, re.M), r.stdout
    for row in (24, 25, 30):                       # rows no marker names now
        assert re.search(r'^compat/DIVERGENCES\.md row %d: no `diverges \(row %d\):`' % (row, row),
                         r.stdout, re.M), r.stdout


def test_check_without_the_reference_is_one_line(tmp_path):
    r = side_by_side('--check', env={'BOCKER_REFERENCE': str(tmp_path / 'none')})
    assert r.returncode == 2
    assert r.stderr.count('\n') == 1 and 'BOCKER_REFERENCE' in r.stderr


# --- The terminal view ---------------------------------------------------------------

TEACHING = '\u2503'                  # the bar before a teaching line of the terminal view


def left_column(out, columns):
    """The bash column of the terminal view (teaching lines, full width, left out)."""
    left = (columns - 3) // 2
    return [line[:left] for line in out.split('\n') if line and not line.startswith(TEACHING)]


def test_terminal_view_on_a_pipe_is_plain_and_fits_80_columns(reference):
    r = side_by_side(env={'COLUMNS': '80'})
    assert r.returncode == 0, r.stderr
    assert '\x1b' not in r.stdout
    assert max(len(line) for line in r.stdout.split('\n')) <= 80
    # every line of the reference, in order, in the left column (folded lines
    # joined again)
    out = r.stdout
    start = out.index('# what ran: bocker run')             # the trace, full width
    out = out[:start] + out[out.index('function bocker_exec', start):]
    joined, lines = [], left_column(out, 80)
    for line in lines:
        if line.startswith('\u21aa '):
            joined[-1] += ' ' + line[2:]
        else:
            joined.append(line)
    # (a line folds after a space, or mid-word: compared without white space)
    got = [re.sub(r'\s+', '', line) for line in joined if line.strip()]
    assert got == [re.sub(r'\s+', '', line) for line in reference_lines(reference) if line.strip()]


def test_terminal_view_of_one_function(reference):
    wide = {'COLUMNS': '200'}
    for name in ('run', 'bocker_run'):
        r = side_by_side(name, env=wide)
        assert r.returncode == 0, r.stderr
        first = [line for line in r.stdout.split('\n') if not line.startswith(TEACHING)][0]
        assert first.startswith('function bocker_run() {') and 'def bocker_run(*args):' in first
        # each bash line on the row of its twin's first line
        rows = {line[:98].strip(): line[101:].strip(' \u250a') for line in r.stdout.split('\n')}
        assert rows['ip link set dev veth0_"$uuid" up'] == "['link', 'set', 'dev', veth0, 'up'],"
        assert rows['ip netns del netns_"$uuid"'].startswith(
            "(lambda: netns_exists(uuid), ['netns', 'del'")
        assert 'function bocker_init' not in r.stdout
    r = side_by_side('nosuch')
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'run' in r.stderr


def test_without_the_reference_the_left_column_is_the_quoted_lines(tmp_path):
    r = side_by_side('run', env={'BOCKER_REFERENCE': str(tmp_path / 'none'), 'COLUMNS': '200'})
    assert r.returncode == 0
    assert r.stderr.count('\n') == 1 and 'BOCKER_REFERENCE' in r.stderr
    rows = {line[:98].strip(): line[101:].strip(' \u250a') for line in r.stdout.split('\n')}
    assert rows['ip link set dev veth0_"$uuid" up'] == "['link', 'set', 'dev', veth0, 'up'],"
    assert rows['cgexec -g "$cgroups:$uuid" \\'].startswith("argv = ['cgexec', *cgroup_args(uuid),")


def test_terminal_view_has_colour_on_a_terminal(reference):
    import pty
    master, slave = pty.openpty()
    try:
        env = dict(os.environ, BOCKER_REFERENCE=REFERENCE, COLUMNS='120', TERM='xterm')
        env.pop('NO_COLOR', None)
        proc = subprocess.Popen([sys.executable, TOOL, 'logs'], stdout=slave, stderr=slave, env=env)
        os.close(slave)
        out = b''
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:                    # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait() == 0
    finally:
        os.close(master)
    assert b'\x1b[' in out and b'bocker_logs' in out
    # and through a pipe with --colour (for less -R)
    r = side_by_side('--colour', 'logs', env={'COLUMNS': '120'})
    assert r.returncode == 0 and '\x1b[' in r.stdout


def test_runs_with_the_project_venv_or_names_make_deps(tmp_path):
    """Started by any python3, it runs with .venv's (Pygments is there); a tree
    without Pygments gets one line naming `make deps`."""
    r = subprocess.run(['/usr/bin/python3', '-S', TOOL, '--html', str(tmp_path / 'p.html')],
                       capture_output=True, text=True, env=dict(os.environ, BOCKER_REFERENCE=REFERENCE))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'p.html').stat().st_size > 0
    tool = project_copy(tmp_path, lambda t: t + '\n')   # no .venv beside this copy
    r = subprocess.run(['/usr/bin/python3', '-S', tool, 'run'], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count('\n') == 1 and 'make deps' in r.stderr


# --- The page, in a real browser ----------------------------------------------------

BOXES = r"""
(() => {
  // the box of a cell's first line of text (a Range over its first character)
  const firstLine = (cell) => {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode()) && !node.data.trim()) {}
    if (!node) return null;
    const range = document.createRange();
    const at = node.data.search(/\S/);
    range.setStart(node, at);
    range.setEnd(node, at + 1);
    const box = range.getClientRects()[0];
    return {top: box.top + scrollY, bottom: box.bottom + scrollY};
  };
  const pairs = [];
  for (const sh of document.querySelectorAll('td.sh[data-twin]')) {
    const py = document.getElementById(sh.dataset.twin);
    pairs.push({sh: sh.id, py: py && py.id, a: firstLine(sh), b: py && firstLine(py),
                row: sh.getBoundingClientRect().top, twinRow: py && py.getBoundingClientRect().top});
  }
  const bash = [...document.querySelectorAll('td.sh[id]')].map(
    (e) => ({id: e.id, text: e.textContent, quoted: e.dataset.quoted || null}));
  const why = [...document.querySelectorAll('td.why summary')].map((e) => e.textContent);
  const whyboxes = [...document.querySelectorAll('td.why details')].map((e) => e.textContent);
  const python = [...document.querySelectorAll('td.py[id]')].map((e) => e.textContent).join('\n');
  const trace = [...document.querySelectorAll('#bocker_run .trace pre')].map((e) => e.textContent);
  return {pairs, bash, why, whyboxes, python, trace, scrollWidth: document.documentElement.scrollWidth,
          innerWidth, scripts: document.scripts.length,
          sections: [...document.querySelectorAll('section[id]')].map((e) => e.id)};
})()
"""


def png_size(data):
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    return struct.unpack('>II', data[16:24])


def golden_trace():
    with open(os.path.join(ROOT, 'fixtures', 'golden', 'run-stdout.txt')) as f:
        text = f.read()
    step = text.split('== step 2: bocker run')[1].split('== step 3')[0]
    return [line[2:] for line in step.split('\n') if line.startswith('  + ')]


def test_page_in_chromium_rows_align_with_their_twins(reference, tmp_path):
    assert os.access(CHROMIUM, os.X_OK), 'chromium not found at %s (make deps installs it)' % CHROMIUM
    page = tmp_path / 'side-by-side.html'
    r = side_by_side('--html', str(page))
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    # self-contained: no script, no stylesheet or image fetched
    assert '<script' not in html and not re.search(r'<link|src=|url\(', html)
    with open(os.path.join(ROOT, 'bocker.py'), encoding='utf-8') as f:
        py_lines = f.read().split('\n')
    ref = reference_lines(reference)
    with Chromium() as browser:
        browser.open(page.as_uri(), 1400, 1000)
        dom = browser.evaluate(BOXES)
        assert [u for u in browser.requests() if u != page.as_uri()] == []
        browser.evaluate("document.getElementById('bocker_run').scrollIntoView()")
        shot = browser.screenshot()
    (tmp_path / 'bocker_run.png').write_bytes(shot)
    if os.environ.get('SIDE_BY_SIDE_SCREENSHOT'):
        shutil.copy(tmp_path / 'bocker_run.png', os.environ['SIDE_BY_SIDE_SCREENSHOT'])
    assert png_size(shot) == (1400, 1000) and len(shot) > 50000   # a page, not a blank
    assert dom['scripts'] == 0
    assert dom['scrollWidth'] <= dom['innerWidth']                # nothing runs off the side
    assert dom['sections'][0] == 'prologue' and 'bocker_run' in dom['sections'] \
        and dom['sections'][-1] == 'main'
    # the left column is the reference, every line, in order
    numbers = [int(b['id'][3:]) for b in dom['bash']]
    assert numbers == list(range(1, len(ref) + 1))
    for b, line in zip(dom['bash'], ref):
        assert b['text'].rstrip() == line.replace('\t', '    ').rstrip()
        if line.strip() and line.strip() not in STRUCTURAL:
            assert b['quoted'], 'bocker:%s has no twin on the page' % b['id']
    # each pinned bash line sits on the row of its twin: the same height,
    # first line of text against first line of text
    assert len(dom['pairs']) > 0.8 * sum(1 for line in ref if line.strip())
    for p in dom['pairs']:
        assert p['py'], p
        assert abs(p['a']['top'] - p['b']['top']) <= 1, p
        assert abs(p['row'] - p['twinRow']) <= 1, p
        # and the twin is the Python under that line's quote in bocker.py
        n, text = int(p['py'][3:]), ref[int(p['sh'][3:]) - 1].strip()
        above = py_lines[max(0, n - 14):n]
        if text.startswith('#!'):                                 # the shebangs
            assert n == 1 and py_lines[0].startswith('#!')
            continue
        function = re.match(r'function (\w+)\(\) \{', text)
        if function:                                              # def NAME
            assert py_lines[n - 1].startswith('def %s(' % function.group(1))
            continue
        assert any(('bash: ' + text) in line or line.strip().lstrip('#').strip() == text
                   for line in above), (p, text)
    # each divergence marker shown with its row's why
    whys = '\n'.join(dom['why'])
    with open(os.path.join(ROOT, 'compat', 'DIVERGENCES.md'), encoding='utf-8') as f:
        table = {int(m.group(1)): m.group(2) for m in re.finditer(
            r'^\| (\d+) \|(?:(?:[^|\\]|\\.)*\|){2}((?:[^|\\]|\\.)*)\|', f.read(), re.M)}
    shown = {int(n) for m in re.finditer(r'diverges \(rows? ([\d, ]+)\)', dom['python'])
             for n in m.group(1).split(',')}
    assert shown
    plain = teaching_rows()
    boxes = '\n'.join(dom['whyboxes'])
    for n in shown:
        tag, sentence = plain[n]
        assert '\u2691 %s %s (row %d)' % (tag, re.sub(r'`([^`]*)`', r'\1', sentence), n) in whys
        why = re.sub(r'`([^`]*)`', r'\1', table[n].strip()).replace('\\|', '|')
        assert 'why (compat/DIVERGENCES.md row %d)%s' % (n, why) in boxes      # and the table's why
    # the system commands of one recorded run, under bocker_run
    assert dom['trace'] and dom['trace'][0].split('\n') == golden_trace()


# --- The page teaches (compat/teaching.md) -------------------------------------------

TEACH = os.path.join(ROOT, 'compat', 'teaching.md')
TAGS = ('kernel', 'security', 'robustness')


def teaching_text():
    with open(TEACH, encoding='utf-8') as f:
        return f.read()


def teaching_rows():
    """{DIVERGENCES.md row: (tag, plain why)} from compat/teaching.md."""
    text = teaching_text().split('\n## divergences\n', 1)[1]
    return {int(m[1]): (m[2], m[3]) for m in
            re.finditer(r'^(\d+) (%s): (.*)$' % '|'.join(TAGS), text, re.M)}


def explain_tags():
    return [tag for line in re.findall(r'^see: explain (.*)$', teaching_text(), re.M)
            for tag in line.split()]


def placeholder_explain(directory):
    """--EXPLAIN recordings in the agreed format (/work/notes/explain-format.md:
    `=== CMD N/T [TAG] TITLE`, 8-column keys, a blank line after each block),
    one block per step the page names, with a line to find each by."""
    directory.mkdir()
    tags = explain_tags()
    with open(directory / 'all.txt', 'w') as f:
        f.write("$ bocker.sh --EXPLAIN run img_1 'echo hello'\n")
        for n, tag in enumerate(tags, 1):
            f.write('=== run %d/%d [%s] the step %s\nbash    ip link add dev veth0_"$uuid"\n'
                    'what    placeholder\nman     ip-link(8)\nkernel  recorded-for-%s\n'
                    '          a sub-item\n\n' % (n, len(tags), tag, tag, tag))
    return tags


def test_every_divergence_row_has_a_tag_and_a_plain_why():
    with open(os.path.join(ROOT, 'compat', 'DIVERGENCES.md'), encoding='utf-8') as f:
        rows = {int(n) for n in re.findall(r'^\| (\d+) \|', f.read(), re.M)}
    plain = teaching_rows()
    assert set(plain) == rows
    for tag, sentence in plain.values():
        assert tag in TAGS and sentence.endswith('.') and len(sentence.split()) >= 8, sentence


def test_check_names_stale_teaching(tmp_path):
    """A block whose first bash line is not the function's, an enter() step
    whose anchor bocker.py lost, a divergence row without its why: --check
    names each."""
    tool = project_copy(tmp_path, lambda t: re.sub(r'\bdrop_capabilities\(', 'drop_caps(', t))
    text = teaching_text().replace('from: cgcreate -g "$cgroups:/$uuid"', 'from: cgcreate -g nothing')
    text = re.sub(r'^33 robustness: .*\n', '', text, flags=re.M)
    (tmp_path / 'compat' / 'teaching.md').write_text(text, encoding='utf-8')
    r = side_by_side('--check', tool=tool)
    assert r.returncode == 1
    assert re.search(r"compat/teaching\.md: block 'the limits, cgroups' of bocker_run starts at a "
                     r"bash line the function does not have: cgcreate -g nothing", r.stdout), r.stdout
    assert re.search(r"compat/teaching\.md: enter step .*: bocker\.py enter\(\) has no line with "
                     r"'drop_capabilities\('", r.stdout), r.stdout
    assert 'compat/teaching.md: DIVERGENCES.md row 33 has no tag and plain why' in r.stdout
    assert len([line for line in r.stdout.split('\n') if line.startswith('compat/teaching.md')]) == 3


def test_terminal_view_teaches_each_block(tmp_path):
    tags = placeholder_explain(tmp_path / 'explain')
    env = {'COLUMNS': '100', 'SIDE_BY_SIDE_EXPLAIN': str(tmp_path / 'explain')}
    r = side_by_side('run', env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split('\n')
    titles = [line[4:] for line in lines if line.startswith(TEACHING + ' \u25a0 ')]
    assert titles == ['an id and the checks', 'the network', 'the root, an overlay',
                      'the limits, cgroups', 'into the container, the exec chain',
                      'enter(): the last two bash lines, step by step', 'cleanup']
    teaching = '\n'.join(line for line in lines if line.startswith(TEACHING))
    assert 'A veth pair is a virtual cable' in re.sub(r'\n\u2503 ', ' ', teaching)
    assert 'Read: network_namespaces(7), veth(4)' in teaching
    for tag in ('veth', 'netns', 'overlay', 'files', 'cgroups', 'container', 'cleanup'):
        assert tag in tags and '\u2503   kernel  recorded-for-%s' % tag in teaching, tag
    # enter()'s steps under the bash they replace
    assert '\u2503 bash: /bin/mount -t proc proc /proc' in teaching
    assert re.search(r'\u2503 bash: chroot "\$container_path/\$uuid"/merged\n(\u2503  .*\n)+'
                     r'\u2503 +[0-9]+ +syscall\(libc, .pivot_root.', teaching)
    # robustness folded, one line each, and shown with --unfold
    folds = [line for line in lines if '\u25b8 robustness, ' in line]
    assert folds and all(not line.split('\u2502')[0].strip() for line in folds)
    assert 'need_bridge()' not in r.stdout
    r = side_by_side('--unfold', 'run', env=env)
    assert r.returncode == 0 and 'need_bridge()' in r.stdout and '\u25b8' not in r.stdout


TEACHING_DOM = r"""
(() => {
  const blocks = [...document.querySelectorAll('tbody.block')].map((b) => ({
    id: b.dataset.block, section: b.closest('section').id,
    title: (b.querySelector('tr.prose h3') || {}).textContent || null,
    prose: [...b.querySelectorAll('tr.prose:not(.enter-head) div.prose p')].map((p) => p.textContent).join(' '),
    links: [...b.querySelectorAll('tr.prose a')].map((a) => a.href),
    see: [...b.querySelectorAll('tr.see pre')].map((p) => p.textContent),
    missing: b.querySelectorAll('tr.see p.missing').length,
    bash: b.querySelectorAll('td.sh[id]').length}));
  const enter = [...document.querySelectorAll('tr.enter')].map((t) => ({
    bash: t.querySelector('td.sh').textContent.trim(),
    lines: [...t.querySelectorAll('td.py[id]')].map((e) => +e.id.slice(3)),
    python: [...t.querySelectorAll('td.py[id]')].map((e) => e.textContent).join('\n')}));
  const folds = [...document.querySelectorAll('details.fold')];
  const twins = [...document.querySelectorAll('td.sh[data-twin]')].map(
    (e) => !!document.getElementById(e.dataset.twin).closest('details'));
  return {blocks, enter, twins, bashLines: document.querySelectorAll('td.sh[id]').length,
          folds: folds.length, open: folds.filter((d) => d.open).length,
          shown: folds.filter((d) => d.getBoundingClientRect().height
                              - d.querySelector('summary').getBoundingClientRect().height > 1).length,
          scripts: document.scripts.length};
})()
"""

FIRST_FOLD = r"""
(() => {
  const d = document.querySelectorAll('details.fold')[%d];
  d.scrollIntoView({block: 'center'});
  const r = d.querySelector('summary').getBoundingClientRect();
  return {x: r.left + 20, y: r.top + r.height / 2, open: d.open,
          height: d.getBoundingClientRect().height - r.height,   // drawn below the summary
          text: d.querySelector('table').textContent};
})()
"""


def test_page_in_chromium_teaches_each_block(reference, tmp_path):
    """Prose for every block of the bash, what you'd see at its end (the
    --EXPLAIN recording, or a golden output), enter()'s steps beside the bash
    they replace, robustness folded, opened by a click; no script, nothing
    fetched."""
    assert os.access(CHROMIUM, os.X_OK), 'chromium not found at %s (make deps installs it)' % CHROMIUM
    tags = placeholder_explain(tmp_path / 'explain')
    page = tmp_path / 'side-by-side.html'
    r = side_by_side('--html', str(page), env={'SIDE_BY_SIDE_EXPLAIN': str(tmp_path / 'explain')})
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    assert '<script' not in html and not re.search(r'<link|src=|url\(', html)
    with open(os.path.join(ROOT, 'bocker.py'), encoding='utf-8') as f:
        py_lines = f.read().split('\n')
    with Chromium() as browser:
        browser.open(page.as_uri(), 1400, 1000)
        dom = browser.evaluate(TEACHING_DOM)
        before = browser.evaluate(FIRST_FOLD % 0)
        browser.click(before['x'], before['y'])
        after = browser.evaluate(FIRST_FOLD % 0)
        browser.click(after['x'], after['y'])
        again = browser.evaluate(FIRST_FOLD % 0)
        assert [u for u in browser.requests() if u != page.as_uri()] == []
    assert dom['scripts'] == 0
    # every bash line is in a block, every block has its prose and what you'd see
    assert sum(b['bash'] for b in dom['blocks']) == dom['bashLines'] == len(reference_lines(reference))
    for b in dom['blocks']:
        assert b['title'] and len(b['prose']) > 60, b
        assert b['see'] and all(s.strip() for s in b['see']) and not b['missing'], b
        for url in b['links']:
            assert url.startswith(('https://man7.org/linux/man-pages/man', 'https://manpages.debian.org/',
                                   'https://docs.kernel.org/', 'https://github.com/opencontainers/')), url
    sections = {b['section'] for b in dom['blocks']}
    assert sections >= {'prologue', 'bocker_init', 'bocker_pull', 'bocker_run', 'bocker_exec',
                        'bocker_commit', 'main'}
    titles = {(b['section'], b['title']) for b in dom['blocks']}
    for section, word in [('bocker_run', 'network'), ('bocker_run', 'overlay'), ('bocker_run', 'cgroups'),
                          ('bocker_run', 'exec chain'), ('bocker_exec', 'nsenter'),
                          ('bocker_pull', 'whiteouts'), ('bocker_commit', 'image')]:
        assert any(s == section and word in t for s, t in titles), (section, word)
    network = next(b for b in dom['blocks'] if b['title'] == 'the network')
    assert 'https://man7.org/linux/man-pages/man7/network_namespaces.7.html' in network['links']
    assert 'https://man7.org/linux/man-pages/man4/veth.4.html' in network['links']
    # what you'd see: each --EXPLAIN step the page names, as recorded
    seen = '\n'.join(s for b in dom['blocks'] for s in b['see'])
    for tag in tags:
        assert re.search(r'^=== run \d+/\d+ \[%s\] .*\n(.*\n)*?kernel  recorded-for-%s\n'
                         r'          a sub-item$' % (re.escape(tag), re.escape(tag)), seen, re.M), tag
    commit = next(b for b in dom['blocks'] if b['section'] == 'bocker_commit')
    assert commit['see'][0].startswith('$ bocker commit ps_1 img_2\nCreated: img_2\n')
    # enter()'s steps: beside the bash they replace, all of enter() and what it calls, once
    steps = {e['bash']: e['python'] for e in dom['enter']}
    assert "mount(b'proc'" in steps['/bin/mount -t proc proc /proc']
    assert "syscall(libc, 'pivot_root'" in steps['chroot "$container_path/$uuid"/merged']
    assert 'exec_command(' in steps['/bin/sh -c "... && $cmd"']
    for step in ('os.setsid()', 'drop_capabilities(', 'seccomp_load('):   # none in the bash
        assert any(step in e['python'] for e in dom['enter'] if e['bash'] == '(none in the bash)'), step
    start = next(n for n, line in enumerate(py_lines, 1) if line.startswith('def enter('))
    following = next(n for n in range(start + 1, len(py_lines) + 1)
                     if py_lines[n - 1] and not py_lines[n - 1][0].isspace())   # the next def
    last = max(n for n in range(start, following) if py_lines[n - 1].strip())
    shown = [n for e in dom['enter'] for n in e['lines']]
    assert len(shown) == len(set(shown))                          # each line once
    assert [n for n in shown if start <= n <= last] == list(range(start, last + 1))
    # each step is a call: the function it calls is shown after it
    for name in ('own_session', 'make_proc', 'confine_proc', 'pivot_into', 'drop_capabilities'):
        d = next(n for n, line in enumerate(py_lines, 1) if line.startswith('def %s(' % name))
        assert d in shown, name
    # robustness folded: closed, not drawn, and no bash line's twin inside one
    assert dom['folds'] >= 10 and dom['open'] == 0 and dom['shown'] == 0
    assert not any(dom['twins'])
    assert not before['open'] and before['height'] < 1
    assert after['open'] and after['height'] > 15                 # a click opens it
    assert not again['open'] and again['height'] < 1              # another closes it


def test_recorded_explain_steps_exist():
    """Every --EXPLAIN step the page shows is recorded in fixtures/explain/
    (tests/explain_record.py records them, issue 19 part 1)."""
    found = set()
    directory = os.path.join(ROOT, 'fixtures', 'explain')
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        with open(os.path.join(directory, name), encoding='utf-8') as f:
            found.update(re.findall(r'^=== \w+ \d+/\d+ \[([\w-]+)\] ', f.read(), re.M))
    missing = [tag for tag in explain_tags() if tag not in found]
    assert not missing, 'not recorded in fixtures/explain/: %s' % ', '.join(missing)


def test_page_holds_no_path_of_the_machine_and_run_shows_a_working_run_first(reference):
    """`make side-by-side`, as the README and make shell's banner give it: the
    page names the reference, not where it lay on the machine that made it
    (nor the clone's path); bocker_run's first recorded example is a run that
    works (the unknown-image error comes after)."""
    import html as htmlmod
    r = subprocess.run(['make', '--no-print-directory', 'side-by-side'], cwd=ROOT,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                       env=dict(os.environ, BOCKER_REFERENCE=reference))
    assert r.returncode == 0, r.stderr
    with open(os.path.join(ROOT, 'side-by-side.html'), encoding='utf-8') as f:
        text = f.read()
    for path in (os.path.dirname(os.path.abspath(reference)), ROOT):
        assert path not in text, path
    assert 'Left: the bash <code>%s</code>' % os.path.basename(reference) in text
    section = text[text.index('id="bocker_run"'):]
    first = section.index('fixtures/golden/')
    assert section.startswith('fixtures/golden/run-stdout.txt', first), section[first:first + 80]
    shown = htmlmod.unescape(section[first:section.index("</pre>", first)])
    assert 'hello' in shown and "No image named" not in shown, shown


def test_piped_into_a_pager_it_fits_the_terminal_on_stderr(reference):
    """`compat/side-by-side --colour run | less -R`: stdout is the pager's
    pipe, the terminal is still on stderr; the columns fit its width, not 80."""
    import fcntl
    import struct
    import termios
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 132, 0, 0))
        env = {k: v for k, v in os.environ.items() if k != 'COLUMNS'}
        r = subprocess.run([TOOL, '--colour', 'run'], stdout=subprocess.PIPE, stderr=slave,
                           stdin=subprocess.DEVNULL, env=env, timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == 0
    plain = re.sub(r'\x1b\[[0-9;]*m', '', r.stdout.decode())
    assert '\x1b[' in r.stdout.decode()                     # --colour: colour on a pipe
    widest = max(len(line) for line in plain.split('\n'))
    assert 80 < widest <= 132, widest
