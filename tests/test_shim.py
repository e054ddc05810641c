"""bocker.sh is a drop-in for the bash `bocker`: absolute or relative path, a
symlink on PATH, any working directory, the project's venv."""
import os
import shutil
import subprocess
import sys

from support import BOCKER, REFERENCE, ROOT, clean_env, help_text


def run(argv, cwd=None, env=None):
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=clean_env(env))


def test_absolute_path():
    r = run([BOCKER, 'help'])
    assert (r.stdout, r.returncode) == (help_text(BOCKER), 0)


def test_relative_path_from_another_directory(tmp_path):
    rel = os.path.relpath(BOCKER, tmp_path)
    r = run([rel, 'help'], cwd=tmp_path)
    assert (r.stdout, r.returncode) == (help_text(rel), 0)


def test_symlink_on_path_named_bocker(tmp_path):
    (tmp_path / 'bocker').symlink_to(BOCKER)
    r = run(['bocker'], cwd='/', env={'PATH': '%s:%s' % (tmp_path, os.environ['PATH'])})
    # bash sets $0 to the path PATH lookup found; so does the shim
    assert (r.stdout, r.returncode) == (help_text(str(tmp_path / 'bocker')), 1)


def test_arguments_and_exit_status_pass_through():
    r = run([BOCKER, 'init'])
    assert (r.stdout, r.stderr, r.returncode) == ('', 'usage: %s init <directory>\n' % BOCKER, 1)
    r = run([BOCKER, 'init', '/no such dir'])
    assert (r.stdout, r.returncode) == ("No directory named '/no such dir' exists\n", 0)


def test_uses_the_project_venv(tmp_path):
    """The shim runs bocker.py under the .venv beside it, not the python3 on
    PATH: .venv/bin/python (here a wrapper that writes down its name) is what
    the shim starts. (Its site-packages, where plumbum is, the shim puts on the
    path itself: every run through the shim imports plumbum from there.)"""
    project = tmp_path / 'project'
    project.mkdir()
    for name in ('bocker.py', 'bocker.sh'):
        shutil.copy2(os.path.join(ROOT, name), project / name)
    venv = project / '.venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    seen = tmp_path / 'seen'
    wrapper = venv / 'bin' / 'python'
    real = os.path.realpath(wrapper)
    wrapper.unlink()
    wrapper.write_text('#!/bin/sh\necho "$0" >> "%s"\nexec "%s" "$@"\n' % (seen, real))
    wrapper.chmod(0o755)
    fake = tmp_path / 'python3'
    fake.write_text('#!/bin/sh\necho wrong python >&2; exit 99\n')
    fake.chmod(0o755)
    shim = str(project / 'bocker.sh')
    # an option first: the shim hands it to bocker.py rather than answer help itself
    r = run([shim, '--TRACE', 'help'], env={'PATH': '%s:/usr/bin:/bin' % tmp_path})
    assert (r.stdout, r.stderr, r.returncode) == (help_text(shim), '', 0)
    assert set(seen.read_text().splitlines()) == {str(venv / 'bin' / 'python')}


def test_help_from_the_shim_is_bocker_pys_own(tmp_path):
    """The shim answers help (and no command) itself, without starting Python,
    and bocker.py an unknown command: the same words and exit status as
    bocker.py's help, for an odd program name too."""
    link = tmp_path / 'my &bo\\cker!'
    link.symlink_to(BOCKER)
    py = os.path.join(ROOT, '.venv', 'bin', 'python')
    for args in ([], [''], ['help'], ['nonsense', 'x'], ['-h']):
        shim = run([str(link)] + args)
        own = run([py, os.path.join(ROOT, 'bocker.py')] + args, env={'BOCKER_PROG': str(link)})
        assert (shim.stdout, shim.stderr, shim.returncode) == (own.stdout, own.stderr, own.returncode)
        assert shim.stdout == help_text(str(link)) and shim.returncode == (0 if args[:1] not in ([], ['']) else 1)


BEYOND = """

def bocker_hello(*args):  #HELP Say hello (beyond the bash):\\nBOCKER hello <name>
    need(args, 1, 'bocker_hello')
    say('hello, ' + args[0])
    return 3


"""


def test_a_command_added_in_one_place_reaches_help_the_shim_and_dispatch(tmp_path):
    """A copy of the project with one more `def bocker_NAME ... #HELP` in
    bocker.py's "Beyond the bash" section, and nothing else changed: the shim
    runs it (status and output passed through), its usage comes from its
    #HELP line, and help lists it last, marked as beyond the bash."""
    for name in ('bocker.py', 'bocker.sh'):
        shutil.copy2(os.path.join(ROOT, name), tmp_path / name)
    py = tmp_path / 'bocker.py'
    text = py.read_text()
    at = text.index('\n# --- The dispatcher')
    py.write_text(text[:at] + BEYOND + text[at:])
    shim = str(tmp_path / 'bocker.sh')
    r = run([shim, 'hello', 'you'])
    assert (r.stdout, r.stderr, r.returncode) == ('hello, you\n', '', 3)
    r = run([shim, 'hello'])
    assert (r.stdout, r.stderr, r.returncode) == ('', 'usage: %s hello <name>\n' % shim, 1)
    r = run([shim, 'help'])
    assert r.returncode == 0
    assert r.stdout.endswith('Say hello (beyond the bash):\n\t%s hello <name>\n\n' % shim)
    # the same project without it: `hello` is an unknown command, answered with help
    r = run([BOCKER, 'hello', 'you'])
    assert (r.stdout, r.returncode) == (help_text(BOCKER), 0)


def test_commands_the_bash_lacks_are_marked_in_help():
    """help lists the bash's commands in the bash's order, with its words;
    any other is marked "(beyond the bash)"."""
    import re
    with open(REFERENCE) as f:
        bash = re.findall(r'^function bocker_(\w+)\(\) \{ #HELP (.*)$', f.read(), re.M)
    with open(os.path.join(ROOT, 'bocker.py')) as f:
        ours = re.findall(r'^def bocker_(\w+)\(.*#HELP (.*)$', f.read(), re.M)
    assert ours[:len(bash)] == bash
    for name, text in ours[len(bash):]:
        assert '(beyond the bash)' in text.split('\\n')[0], name
