"""bocker.py's table of contents (its opening comment, docs/HACKING.md's
"bocker.py's sections") is the file's own `# --- TITLE ---` banners, in
order; and no `'%s/%s' % (container_path, ...)` path is spelled outside
the Container record."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def source():
    with open(os.path.join(ROOT, 'bocker.py'), encoding='utf-8') as f:
        return f.read()


def banners():
    """The sections' titles: each banner's words before a colon."""
    return [m.split(':')[0].strip()
            for m in re.findall(r'^# --- (.*?) -+$', source(), re.M)]


def test_the_opening_comment_lists_the_sections_in_order():
    head = source().split('\nimport ', 1)[0]
    listed = re.findall(r'^#   (\S.*)$', head.split('# Its sections', 1)[1], re.M)
    assert listed == banners()


def test_hacking_md_lists_the_sections_in_order():
    with open(os.path.join(ROOT, 'docs', 'HACKING.md'), encoding='utf-8') as f:
        doc = f.read()
    table = doc.split("### bocker.py's sections", 1)[1].split('\n\n')[1]
    rows = [line.split('|')[1].strip() for line in table.splitlines()[2:]]
    assert rows == banners()


def test_container_paths_are_spelled_in_the_record_only():
    text = source()
    record = text.split("# --- A container's record", 1)[1].split('\n# --- ', 1)[0]
    rest = text.replace(record, '')
    spelled = [line for line in rest.splitlines()
               if re.search(r"%\s*\(container_path\b", line)]
    assert spelled == []
    assert re.search(r"%\s*\(container_path\b", record)
