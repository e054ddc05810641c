"""Where the tests' helpers live (issue 27): what tests share is in
tests/support.py, pytest's hooks and fixtures in conftest.py, and no module
imports a test module or conftest.py. A helper kept in a test module is found
only by reading the tests, ties the importer to that module's fixtures and
marks (test_export_image once took its registry fixture from test_pull that
way), and a script (golden.py) that imports it imports pytest's test code.
Reads the sources only: no sandbox, no root."""
import ast
import glob
import os

from support import HERE, ROOT


def modules():
    """{path relative to the project: its syntax tree} of every Python file
    under tests/ and of the scripts in compat/ and labs/ written in Python."""
    found = {}
    paths = glob.glob(os.path.join(HERE, '*.py'))
    for d in ('compat', 'labs'):
        for p in glob.glob(os.path.join(ROOT, d, '*')):
            if os.path.isfile(p):
                with open(p, 'rb') as f:
                    head = f.readline()
                if p.endswith('.py') or (head.startswith(b'#!') and b'python' in head):
                    paths.append(p)
    for p in paths:
        with open(p, encoding='utf-8') as f:
            found[os.path.relpath(p, ROOT)] = ast.parse(f.read(), p)
    return found


def imported(tree):
    """(line, module name) of every import in a module, nested ones too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def is_test_module(name):
    top = name.split('.')[0]
    return top == 'conftest' or top.startswith('test_')


def test_no_module_imports_a_test_module_or_conftest():
    found = modules()
    assert 'tests/support.py' in found and 'tests/test_pull.py' in found, sorted(found)
    wrong = ['%s:%d imports %s' % (path, line, name)
             for path, tree in sorted(found.items())
             for line, name in imported(tree) if is_test_module(name)]
    assert wrong == [], 'import it from tests/support.py instead:\n' + '\n'.join(wrong)


def test_the_check_sees_every_kind_of_import():
    """The check above fails where it should: plain, from, and nested imports."""
    tree = ast.parse('import test_pull\nfrom conftest import Box\n'
                     'def f():\n    from test_kill import fired\n'
                     'from support import Box\nimport sandbox\n')
    assert [n for _line, n in imported(tree) if is_test_module(n)] == \
        ['test_pull', 'conftest', 'test_kill']


def fixture_or_hook(node):
    """A pytest hook (pytest_*) or a function decorated @pytest.fixture."""
    if not isinstance(node, ast.FunctionDef):
        return False
    if node.name.startswith('pytest_'):
        return True
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute) and target.attr == 'fixture':
            return True
    return False


def test_conftest_holds_hooks_and_fixtures_only():
    """No helper function, class or constant for tests to import: those are
    in support.py (REPORT, the hardening report's lines, is a fixture's state)."""
    tree = modules()['tests/conftest.py']
    other = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or fixture_or_hook(node):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue                       # the docstring
        if isinstance(node, ast.Assign) and [getattr(t, 'id', None) for t in node.targets] == ['REPORT']:
            continue
        other.append('line %d: %s' % (node.lineno, ast.dump(node)[:60]))
    assert other == [], other
