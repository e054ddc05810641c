"""`make shell`, the learner's door: a shell in a fresh sandbox with br1 and a
busybox image, after installing only what bocker itself needs. Driven with
commands on stdin (a pipe), as a learner would type them. Needs root."""
import glob
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

RUN_PKGS = ['iproute2', 'util-linux', 'cgroup-tools', 'busybox-static', 'jq', 'uuid-runtime',
            'python3-venv']
TEST_ONLY = ['qemu-system-x86', 'linux-image-amd64', 'chromium', 'podman', 'skopeo',
             'docker-registry', 'requirements.txt']


def dry_run(target):
    """What `make TARGET` would run, had nothing been made yet (-B)."""
    r = subprocess.run(['make', '-n', '-B', target], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_make_shell_installs_only_what_bocker_needs():
    out = dry_run('shell')
    words = set(re.findall(r'[\w.+-]+', out))
    assert all(p in words for p in RUN_PKGS), out
    assert not [p for p in TEST_ONLY if p in words], out
    assert 'requirements-run.txt' in words, out


def test_make_test_and_demo_still_install_everything():
    for target in ('test', 'demo'):
        words = set(re.findall(r'[\w.+-]+', dry_run(target)))
        assert all(p in words for p in RUN_PKGS + TEST_ONLY), target


def make_shell(commands):
    r = subprocess.run(['make', '--no-print-directory', 'shell'], cwd=ROOT, input=commands,
                       capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def test_make_shell_gives_a_shell_where_a_container_runs():
    before = set(glob.glob('/tmp/bocker-shell.*'))
    code, out, err = make_shell(
        'bocker.sh run $IMG true; echo "run-exit=$?"\n'
        'bocker.sh run $IMG "ip -4 -o addr show; hostname" \n'
        'bocker.sh images\n'
        'ip -br addr show br1\n'
        'echo "exit-of-last=$(bocker.sh run $IMG false >/dev/null; echo $?)"\n')
    assert code == 0, (out, err)
    welcome, _, rest = out.partition('\n\n  bocker.sh images')
    assert re.search(r'A busybox image is ready: IMG=img_[0-9]+\. Try:', welcome), out
    for hint in ("bocker.sh --EXPLAIN run $IMG 'hostname; ps'", 'labs/01-uts-ipc.sh',
                 'compat/side-by-side run', 'make side-by-side',
                 os.path.join(ROOT, 'side-by-side.html')):
        assert hint in out, hint
    assert 'run-exit=0\n' in rest, out
    assert re.search(r'inet 172\.18\.0\.[0-9]+/24', rest), out      # the container's address
    img = re.search(r'IMG=(img_[0-9]+)', welcome)[1]
    assert re.search(r'^%s\t\t/tmp/bocker-shell\.\w+/busybox$' % img, rest, re.M), out
    assert re.search(r'^br1 +[A-Z]+ +172\.18\.0\.1/24', rest, re.M), out
    assert 'exit-of-last=0' in rest                                  # run ends 0, as the bash
    assert set(glob.glob('/tmp/bocker-shell.*')) == before          # its work dir is gone


def test_make_shell_passes_the_exit_status_on():
    code, _out, err = make_shell('exit 3\n')
    assert code != 0, err
