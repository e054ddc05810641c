#!/usr/bin/env python3
"""Golden-output scenarios: bocker.py against the reference, scenario by scenario.

Each scenario is a short sequence of bocker invocations run in a fresh sandbox
(tests/sandbox.py). What a run produced is written down as one plain-text
document: per step the argv, exit code, stdout, stderr and the trace of system
commands (ip, mount, umount, cgcreate, cgset, cgexec, cgdelete, unshare,
nsenter, chroot); then the tree under /var/lib/bocker, the mounts, network
namespaces and links left in the sandbox, and the cgroups of every ps_N.

The expected documents live in fixtures/golden/:
  <scenario>.txt         what the reference does (recorded from it)
  <scenario>.bocker.txt  what bocker.py does instead, for a scenario that
                         declares rows of compat/DIVERGENCES.md (recorded from
                         bocker.py, reviewed against those rows)
  ext-<name>.txt         an extension scenario (EXT): what bocker.py does
                         beyond the bash, where the reference has nothing to
                         compare with (recorded from bocker.py alone, as it
                         is: no trace or tree line read as the reference's;
                         its cgroups with the pids controller). test_golden
                         checks that the reference does not give that document.

Record them all (needs root and the reference, BOCKER_REFERENCE; extension
scenarios alone need no reference):
    make golden                   # = .venv/bin/python tests/golden.py --record
    .venv/bin/python tests/golden.py --record NAME...   # only these scenarios
    .venv/bin/python tests/golden.py --show NAME [--tool py|ref]   # print, no write

System commands are seen the way bash shows them: the reference runs under
`bash -x`, bocker.py with BOCKER_TRACE=1 in its environment (argv unchanged);
its trace() prints the same `+ cmd args` lines. Trace lines are taken out of
stderr before stderr is compared.

Normalised, and nothing else: ids by order of first appearance (img_N ->
img_1.., ps_N -> ps_1..) and the container address and MAC derived from a ps
id (the reference's `sed 's/0//g'` and bocker.py's number alike, only where
they stand as addresses: `172.18.0.X/24`, `inet 172.18.0.X`, `src 172.18.0.X`);
the program's path (the reference's, bocker.sh's) -> PROG and bocker.sh's
directory -> PROGDIR; bash's `line N:`; overlayfs's temporary names in work/;
the pid in `nsenter -t PID` (a process id, different on every run). In an
extension's document, bocker.py's call of itself (`PYTHON -I -S -c IMPORT DIR
__enter__ ROOT CMD`, `... __join__ PID CMD`: the interpreter, the import line
and the directory differ from one install to the next) reads `bocker.py
__enter__ ROOT CMD` and `bocker.py __join__ PID CMD`.

Ids are random (42002-42254) in both tools, so a run in a store that holds a
container may draw a taken id: it prints `UUID conflict, retrying...` first
and draws again. Such a step's stdout is read without those leading lines (and
only such a step's: where no clash was possible, the line stays and differs).
The reference's init (and so its pull), on a clash, calls bocker_run instead:
nothing of init is left to compare, and the scenario is run again (only for
a reference init into a store that holds an image; CLASH_RETRIES at most).
So is a scenario whose reference run drew a taken id: its retry, inside an
`&&` list where bash ignores errexit, runs on past a failed step.
"""
import argparse
import difflib
import hashlib
import os
import re
import shlex
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from support import BOCKER, CONFLICT, REFERENCE, STORE, Box, clean_env, unclash  # noqa: E402
from sandbox import Sandbox  # noqa: E402

GOLDEN_DIR = os.path.join(ROOT, 'fixtures', 'golden')
DIVERGENCES_MD = os.path.join(ROOT, 'compat', 'DIVERGENCES.md')

# The scenarios' own files: a private tmpfs on /media inside each sandbox
# (so the paths are the same everywhere), holding the test image.
MEDIA = '/media'
IMAGE = MEDIA + '/image'
PRIVATE_TMP = 'mount -t tmpfs pulltmp /tmp'      # a prep: see expand_prep()
BUSYBOX = os.environ.get('BUSYBOX', '/bin/busybox')
APPLETS = ('sh', 'mount', 'echo', 'cat', 'ls', 'ip', 'tr', 'true', 'false', 'sleep',
           'printf', 'ps', 'ping', 'id', 'hostname', 'wc')
PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

TRACED = ('ip', 'mount', 'umount', 'cgcreate', 'cgset', 'cgexec', 'cgdelete',
          'unshare', 'nsenter', 'chroot')
CONTROLLERS = ('cpu', 'cpuacct', 'memory')
KNOBS = {'cpu': 'cpu.shares', 'memory': 'memory.limit_in_bytes', 'pids': 'pids.max'}


# --- The scenario table's vocabulary ----------------------------------------------

@dataclass
class Step:
    """kind: 'bocker' (a bocker command), 'bg' (a bocker command started in
    the background), 'running' (wait until the background container's command
    runs), 'wait' (wait for the background command to end, record its result),
    'sh' (a shell command in the sandbox, not bocker).
    tool: None = the tool under test; 'ref' or 'py' pins the step to one tool
    when bocker.py is tested (interop). Recording the reference's golden runs
    every step with the reference."""
    kind: str
    args: tuple = ()
    env: dict = field(default_factory=dict)
    tool: str = None


def X(*args, env=None, tool=None):
    """A bocker command. {img1}, {ps2}, ... stand for the first image, the
    second container, ... the scenario made (in the order they appeared)."""
    return Step('bocker', args, env or {}, tool)


def BG(*args, env=None, tool=None):
    return Step('bg', args, env or {}, tool)


RUNNING = Step('running')
WAIT = Step('wait')


def SH(script):
    return Step('sh', (script,))


@dataclass
class Scenario:
    name: str
    steps: list
    diverges: tuple = ()      # rows of compat/DIVERGENCES.md
    prep: str = ''            # shell, run in the sandbox once the image is made
    br1: bool = True
    registry: bool = False    # a docker-registry in the sandbox, pulled_layers() as golden:v1
    beyond: str = ''          # an extension (EXT): what bocker.py does that the bash cannot

    def __post_init__(self):
        assert self.name.startswith('ext-') == bool(self.beyond), \
            '%s: an extension scenario, and only one, is named ext-*' % self.name
        assert not (self.beyond and (self.diverges or self.interop)), \
            '%s: an extension has no reference to diverge from or share state with' % self.name

    @property
    def interop(self):
        return any(s.tool for s in self.steps)

    @property
    def containers(self):
        """Does it run a container or pull (the commands that touch the
        network, mounts and cgroups)?"""
        return any(s.kind in ('bocker', 'bg') and command_of(s.args) in
                   ('run', 'exec', 'rm', 'commit', 'pull') for s in self.steps)


S = Scenario


def EXT(name, steps, beyond, **kw):
    """An extension scenario, ext-NAME: bocker.py alone, for what it does
    beyond the bash (beyond: what, in a few words, and the DIVERGENCES.md row
    or issue that added it). Its golden file is bocker.py's own document."""
    return Scenario('ext-' + name, steps, beyond=beyond, **kw)
INIT = X('init', IMAGE)
# pull: the registry started in the sandbox, compat/ on PATH (the reference
# finds download-frozen-image-v2 there, as a host with it installed would)
PULL_ENV = {'BOCKER_REGISTRY': '{registry}', 'PATH': os.path.join(ROOT, 'compat') + ':' + PATH}


def pulled_layers():
    """The image the pull scenario pushes: two layers, the second changing
    a file and deleting one of the first (a whiteout)."""
    import registry
    first = {'bin/': None, 'etc/': None, 'proc/': None, 'tmp/': registry.Dir(0o1777),
             'bin/busybox': (open(BUSYBOX, 'rb').read(), 0o755),
             'etc/motd': 'old\n', 'etc/gone': 'deleted in the second layer\n'}
    for applet in ('sh', 'mount', 'cat', 'ls'):
        first['bin/' + applet] = registry.Symlink('busybox')
    second = {'etc/': None, 'etc/motd': 'hello from the second layer\n',
              registry.whiteout('etc/gone'): b''}
    return [registry.make_layer(first, compress=True), registry.make_layer(second, compress=True)]
RUN_TRUE = X('run', '{img1}', 'true')

SCENARIOS = [
    # -- no command, help, unknown commands ----------------------------------
    S('no-arguments', [X()]),
    S('empty-command', [X('')]),
    S('help', [X('help')]),
    S('unknown-command', [X('frobnicate', 'x')]),
    S('option-only', [X('--TRACE')], diverges=(10,)),
    S('option-bad-name', [X('--NO-SUCH=1', 'images')], diverges=(10,)),
    # -- init, images ---------------------------------------------------------
    S('images-empty', [X('images'), X('ps')]),
    S('init', [INIT, X('images'), X('ps')]),
    S('init-twice', [INIT, INIT]),     # (no listing: two random ids sort either way)
    S('init-missing-directory', [X('init', MEDIA + '/missing'), X('images')]),
    S('init-a-file', [X('init', IMAGE + '/etc/hostname'), X('images')]),
    S('init-keeps-img-source-and-proc',
      [INIT, X('images')], prep='echo from-somewhere > %s/img.source; mkdir %s/proc' % (IMAGE, IMAGE)),
    S('init-empty-directory', [X('init', MEDIA + '/empty'), X('images')],
      prep='mkdir %s/empty' % MEDIA, diverges=(14,)),
    S('init-dotfile', [INIT], prep='echo hidden > %s/.hidden' % IMAGE, diverges=(12,)),
    S('init-of-the-store', [X('init', STORE), X('images')], diverges=(15,)),
    # -- rm -------------------------------------------------------------------
    S('rm-image', [INIT, X('rm', '{img1}'), X('images')]),
    S('rm-unknown-image', [X('rm', 'img_77777')]),
    S('rm-unknown-container', [X('rm', 'ps_77777')]),
    S('rm-neither-kind', [X('rm', 'foo')], diverges=(6,)),
    S('rm-dotdot-containers', [INIT, RUN_TRUE, X('rm', '../containers'), X('ps'), X('images')],
      diverges=(6,)),
    S('rm-empty-name', [INIT, X('rm', ''), X('images')], diverges=(6,)),
    S('rm-name-with-newline', [X('rm', 'img_1\nimg_2')], diverges=(24,)),
    S('rm-container', [INIT, RUN_TRUE, X('rm', '{ps1}'), X('ps'), X('images')], diverges=(3, 5)),
    S('rm-running-container',
      [INIT, BG('run', '{img1}', 'sleep 2'), RUNNING, X('rm', '{ps1}'), WAIT, X('ps')],
      diverges=(3, 4, 5, 46)),
    # -- run ------------------------------------------------------------------
    S('run-stdout', [INIT, X('run', '{img1}', 'echo hello'), X('ps'), X('logs', '{ps1}')]),
    S('run-stderr', [INIT, X('run', '{img1}', 'echo to-stderr >&2'), X('logs', '{ps1}')]),
    S('run-stdout-and-stderr',
      [INIT, X('run', '{img1}', 'echo one; echo two >&2; echo three'), X('logs', '{ps1}')]),
    S('run-failing-command', [INIT, X('run', '{img1}', 'echo before; exit 3'), X('logs', '{ps1}')]),
    S('run-false', [INIT, X('run', '{img1}', 'false')]),
    S('run-command-not-found', [INIT, X('run', '{img1}', 'no-such-command')]),
    S('run-prints-nothing', [INIT, RUN_TRUE, X('ps'), X('logs', '{ps1}')]),
    S('run-quotes', [INIT, X('run', '{img1}', 'echo "a  b" \'c  d\' e\\"f'), X('ps')]),
    S('run-and-chain', [INIT, X('run', '{img1}', 'true && echo yes && false && echo no')]),
    S('run-pipe', [INIT, X('run', '{img1}', 'echo hello | tr a-z A-Z | wc -c')]),
    S('run-several-words', [INIT, X('run', '{img1}', 'echo', 'several', 'words', 'here'), X('ps')]),
    S('run-writes-a-file', [INIT, X('run', '{img1}', 'echo data > /root/file; cat /root/file')]),
    S('run-inside-view',
      [INIT, X('run', '{img1}', 'echo pid $$; cat /etc/hostname /etc/resolv.conf; id; ls /')],
      diverges=(38, 45)),
    S('run-network',
      [INIT, X('run', '{img1}', 'ip -o addr; ip route; ip -o link')]),
    S('run-ping-bridge',
      [INIT, X('run', '{img1}', 'ping -c 1 -W 5 172.18.0.1 > /tmp/p && echo bridge reachable; rm /tmp/p')]),
    S('run-two-containers', [INIT, RUN_TRUE, X('run', '{img1}', 'echo second'), X('logs', '{ps2}')]),
    S('run-unknown-image', [X('run', 'img_77777', 'true'), X('ps')]),
    S('run-container-id-as-image', [INIT, RUN_TRUE, X('run', '{ps1}', 'true')], diverges=(7,)),
    S('run-image-without-sh', [INIT, X('run', '{img1}', 'true')],
      prep='rm %s/bin/sh' % IMAGE, diverges=(21,)),
    S('run-without-bridge', [INIT, X('run', '{img1}', 'true'), X('ps')], br1=False,
      diverges=(22,)),
    S('run-without-containers-directory', [INIT, X('run', '{img1}', 'true')],
      prep='rmdir %s/containers' % STORE, diverges=(23,)),
    S('run-resolv-conf-symlink',
      [INIT, X('run', '{img1}', 'cat /etc/resolv.conf'), SH('cat %s/escaped' % MEDIA)],
      prep='ln -s %s/escaped %s/etc/resolv.conf' % (MEDIA, IMAGE), diverges=(18,)),
    S('ps-backslashes', [INIT, X('run', '{img1}', 'echo a\\tb'), X('ps')], diverges=(19,)),
    # -- options ----------------------------------------------------------------
    S('option-mem-limit', [INIT, X('--MEM_LIMIT=64', 'run', '{img1}', 'true')]),
    S('option-cpu-share', [INIT, X('--CPU_SHARE=256', 'run', '{img1}', 'true')]),
    S('options-both', [INIT, X('--CPU_SHARE=1024', '--MEM_LIMIT=16', 'run', '{img1}', 'echo ok')]),
    S('options-from-environment',
      [INIT, X('run', '{img1}', 'true', env={'BOCKER_MEM_LIMIT': '32', 'BOCKER_CPU_SHARE': '128'})]),
    S('option-beats-environment',
      [INIT, X('--MEM_LIMIT=64', 'run', '{img1}', 'true', env={'BOCKER_MEM_LIMIT': '32'})]),
    S('option-octal-and-hex', [INIT, X('--MEM_LIMIT=010', '--CPU_SHARE=0x100', 'run', '{img1}', 'true')]),
    S('option-flag-without-value', [INIT, X('--TRACE', '--VERBOSE', 'run', '{img1}', 'echo traced'),
                                    X('--TRACE', 'images')]),
    S('option-not-a-number', [INIT, X('--MEM_LIMIT=lots', 'run', '{img1}', 'true'), X('ps')],
      diverges=(11,)),
    # -- logs, exec -------------------------------------------------------------------
    S('logs-unknown-container', [X('logs', 'ps_77777')]),
    S('logs-of-an-image-id', [INIT, X('logs', '{img1}')], diverges=(7,)),
    S('exec-unknown-container', [X('exec', 'ps_77777', 'true')]),
    S('exec-of-an-image-id', [INIT, X('exec', '{img1}', 'true')], diverges=(7,)),
    S('exec-not-running', [INIT, RUN_TRUE, X('exec', '{ps1}', 'true')]),
    S('exec-running-container',
      [INIT, BG('run', '{img1}', 'sleep 2'), RUNNING,
       X('exec', '{ps1}', 'cat', '/etc/hostname'),
       X('exec', '{ps1}', 'sh', '-c', 'echo out; echo err >&2; exit 3'),
       WAIT, X('exec', '{ps1}', 'true')],
      diverges=(1, 37)),
    # -- commit -------------------------------------------------------------------
    S('commit', [INIT, X('run', '{img1}', 'echo kept > /root/mark'), X('commit', '{ps1}', 'img_5'),
                 X('images'), X('run', 'img_5', 'cat /root/mark')]),
    S('commit-unknown-container', [X('commit', 'ps_77777', 'img_5')]),
    S('commit-of-an-image-id', [INIT, X('commit', '{img1}', 'img_5'), X('images')], diverges=(7,)),
    S('commit-onto-an-existing-image', [INIT, RUN_TRUE, X('commit', '{ps1}', '{img1}'), X('images')]),
    S('commit-to-a-non-image-name', [INIT, RUN_TRUE, X('commit', '{ps1}', 'myimage'), X('images')],
      diverges=(8,)),
    # -- missing arguments --------------------------------------------------------
    S('missing-arguments',
      [X('init'), X('rm'), X('run'), X('run', 'img_77777'), X('exec'), X('exec', 'ps_77777'),
       X('logs'), X('commit'), X('commit', 'ps_77777'), X('images')],
      diverges=(9,)),
    S('pull-missing-arguments', [X('pull'), X('pull', 'busybox')],
      prep=PRIVATE_TMP, diverges=(9,)),
    S('pull', [X('pull', 'golden', 'v1', env=PULL_ENV), X('images'),
               X('run', '{img1}', 'cat /etc/motd; ls /etc')],
      registry=True, prep=PRIVATE_TMP, diverges=(12, 26, 27, 52)),
    # -- interop: state made by one, used by the other ----------------------------
    S('interop-reference-image',
      [X('init', IMAGE, tool='ref'), X('images'), X('run', '{img1}', 'cat /etc/hostname'),
       X('ps'), X('logs', '{ps1}'), X('rm', '{img1}'), X('images')],
      diverges=(51,)),
    S('interop-reference-container',
      [X('init', IMAGE, tool='ref'), X('run', '{img1}', 'echo from-ref > /mark; echo logged', tool='ref'),
       X('ps'), X('logs', '{ps1}'), X('exec', '{ps1}', 'true'), X('commit', '{ps1}', 'img_5'),
       X('run', 'img_5', 'cat /mark'), X('rm', '{ps1}'), X('ps')],
      diverges=(3, 5)),
    S('interop-bocker-py-image',
      [INIT, X('images', tool='ref'), X('run', '{img1}', 'cat /etc/hostname', tool='ref'),
       X('ps', tool='ref'), X('rm', '{img1}', tool='ref'), X('images', tool='ref')]),
    S('interop-bocker-py-container',
      [INIT, X('run', '{img1}', 'echo from-py > /mark; echo logged'),
       X('ps', tool='ref'), X('logs', '{ps1}', tool='ref'), X('exec', '{ps1}', 'true', tool='ref'),
       X('commit', '{ps1}', 'img_5', tool='ref'), X('run', 'img_5', 'cat /mark', tool='ref'),
       X('rm', '{ps1}', tool='ref'), X('ps', tool='ref')]),
    # -- beyond the bash: bocker.py alone (EXT), no reference to compare with ---------
    EXT('pids-limit',
        [INIT, X('--PIDS_LIMIT=64', 'run', '{img1}', 'cat /sys/fs/cgroup/pids/pids.max'),
         X('run', '{img1}', 'cat /sys/fs/cgroup/pids/pids.max', env={'BOCKER_PIDS_LIMIT': '32'}),
         X('run', '{img1}', 'cat /sys/fs/cgroup/pids/pids.max'),
         BG('--PIDS_LIMIT=16', 'run', '{img1}', 'sleep 2'), RUNNING,
         X('exec', '{ps4}', 'cat', '/sys/fs/cgroup/pids/pids.max'), WAIT],
        beyond='a pids cgroup: --PIDS_LIMIT, BOCKER_PIDS_LIMIT, 2048 by default; exec joins it '
               '(row 42)'),
    EXT('pids-limit-refused',
        [INIT, X('--PIDS_LIMIT=0', 'run', '{img1}', 'echo ran'),
         X('run', '{img1}', 'echo ran', env={'BOCKER_PIDS_LIMIT': 'many'}), X('ps')],
        beyond='a pids limit that is no number of 1 or more refused, nothing made (row 42)'),
]


# --- Divergences that touch every run or exec ---------------------------------------
# Where bocker.py, on purpose, runs a different system command in every run or
# exec, the reference's golden still holds for everything else: bocker.py's
# trace line is read back into the reference's form before the comparison
# (also when recording), and the test names the row. A reading that changed a
# line needs its row in compat/DIVERGENCES.md (found by keyword): without one
# test_bocker_py fails.

def _xtrace_word(word):
    """Quote one word as bash's xtrace prints it."""
    if word and not re.search(r'''[\s'"\\|&;()<>!{}*?\[\]^$`~#]''', word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def _enter_as_chroot(line):
    """`PYTHON -I -S -c IMPORT DIR __enter__ ROOT CMD...` (bocker.py's own
    last step into a container, imported from DIR: mounts /proc and /dev,
    chroot(2), drops capabilities) read as the reference's `chroot ROOT
    CMD...`; in run the reference's `/bin/sh -c CMD` mounted /proc itself:
    `/bin/sh -c '/bin/mount -t proc proc /proc && CMD'`."""
    m = re.match(r'^(\++ )(.*)$', line)
    words = shlex.split(m.group(2))
    if '__enter__' not in words:
        return line
    j = words.index('__enter__')
    if j < 5 or words[j - 4:j - 2] != ['-S', '-c'] or words[j - 5] != '-I':
        return line
    words[j - 6:j + 1] = ['chroot']
    i = j - 6
    if words[0] == 'cgexec' and words[i + 2:i + 4] == ['/bin/sh', '-c']:
        words[i + 4] = '/bin/mount -t proc proc /proc && ' + words[i + 4]
    return m.group(1) + ' '.join(_xtrace_word(w) for w in words)


def _without_dev_mount_point(line):
    """The empty /dev (and /sys, row 45) that run adds to a container's lower/ (and so to its
    merged/) for an image without one: the mount point of the container's own
    /dev tmpfs (and what the reference's commit of such a container copies).
    The reference has none: the line is dropped (None), and so is run's note
    that it made it (ps_N/dev.mountpoint, ps_N/sys.mountpoint). A /dev that
    holds anything still shows in its entries."""
    if re.fullmatch(r'd 0755 (containers/ps_[0-9]+/(lower|merged)|overlay/img_[0-9]+)/(dev|sys)', line):
        return None
    if re.fullmatch(r'f 0644 containers/ps_[0-9]+/(dev|sys)\.mountpoint\b.*', line):   # run's note
        return None
    return line


def _join_as_nsenter_m(line):
    """exec's `nsenter -t PID -u -i -n -p PYTHON -I -S -c IMPORT DIR __join__
    PID CMD...` (bocker.py's join() enters the mount namespace itself, then
    the container's root with it) read as the reference's `nsenter -t PID -m
    -u -i -n -p chroot ROOT CMD...`, ROOT the merged directory of the
    container named in the cgexec before it."""
    m = re.match(r'^(\++ )(.*)$', line)
    words = shlex.split(m.group(2))
    if '__join__' not in words or 'nsenter' not in words:
        return line
    j = words.index('__join__')
    uuid = re.search(r'(?<=:)ps_[0-9]+\b', m.group(2))
    n = words.index('nsenter')
    if j < 5 or words[j - 4:j - 2] != ['-S', '-c'] or words[n + 3] == '-m' or not uuid:
        return line
    root = '/var/lib/bocker/containers/%s/merged' % uuid.group(0)
    words[j - 6:j + 2] = ['chroot', root]
    words[n + 3:n + 3] = ['-m']
    return m.group(1) + ' '.join(_xtrace_word(w) for w in words)


def _without_pids_cgroup(line):
    """The container's pids cgroup (row 42: `-g pids:...` beside the bash's
    `-g cpu,cpuacct,memory:...` in cgcreate and cgexec, `cgset -r pids.max=N`,
    `cgdelete -g pids:/...`): the reference has none, so they are left out."""
    if re.match(r'^\++ (cgset -r pids\.max=[0-9]+ |cgdelete -g pids:/)ps_[0-9]+$', line):
        return None
    return re.sub(r'^(\++ cg(?:create|exec) -g \S+) -g pids:/?ps_[0-9]+', r'\1', line)


def _self_call(line):
    """bocker.py's call of its own last step, `PYTHON -I -S -c IMPORT DIR
    __enter__ ROOT CMD...` (or `__join__ PID CMD...`), as `bocker.py __enter__
    ROOT CMD...` (`bocker.py __join__ PID CMD...`): what an extension's
    document shows of it. Not a reading as the reference's: the reference
    has no such step."""
    m = re.match(r'^(\++ )(.*)$', line)
    if not m or ('__enter__' not in line and '__join__' not in line):
        return line
    words = shlex.split(m.group(2))
    for j, word in enumerate(words):
        # the interpreter: the last word before the step's name that runs python
        python = [i for i in range(j) if os.path.basename(words[i]).startswith('python')]
        if word in ('__enter__', '__join__') and python:
            if word == '__join__' and j + 1 < len(words):
                words[j + 1] = 'PID'
            words[python[-1]:j] = ['bocker.py']
            return m.group(1) + ' '.join(_xtrace_word(w) for w in words)
    return line


def _without_container_record(line):
    """bocker.py's record of a container (row 50: containers/ps_N/ps_N.state,
    what run knew of it): the reference keeps none, so it is left out, with
    its content lines."""
    if re.fullmatch(r'f 0644 containers/(ps_[0-9]+)/\1\.state\b.*', line):
        return None
    return line


def _lower_as_the_reference(line):
    """run's overlay (row 13): `lowerdir=C/lower:/var/lib/bocker/overlay/img_N`,
    the container's own layer above the image itself, read as the reference's
    `lowerdir=C/lower` (a copy of the image)."""
    return re.sub(r'^(\++ mount -t overlay overlay -o lowerdir=\S*/containers/ps_[0-9]+/lower)'
                  r':/var/lib/bocker/overlay/img_[0-9]+,', r'\1,', line)


def _without_lower_entries(line):
    """What a container's lower/ holds (row 13): the reference's is a copy of the
    image, bocker.py's only the mount points rows 38 and 45 read away. Read from
    both documents (the reference's too, 'tree-both'): the entries under
    containers/ps_N/lower/ are dropped, lower/ itself stays."""
    if re.match(r'^[a-z] [0-7]{4} containers/ps_[0-9]+/lower/|^l containers/ps_[0-9]+/lower/', line):
        return None
    return line


def read_both(doc):
    """A recorded document (the reference's) with the 'tree-both' readings
    applied, as bocker.py's run of the scenario applies them to its own."""
    return '\n'.join(drop_lines(doc.split('\n'), [r for _k, r, what in TRACE_READINGS.values()
                                                 if what == 'tree-both']))


def drop_lines(doc, readings):
    """Each reading applied to each line; a file's line dropped (None) takes
    its content lines with it."""
    for reading in readings:
        read, dropped = [], False
        for l in doc:
            if dropped and l.startswith('    '):
                continue
            r = reading(l)
            dropped = r is None
            if r is not None:
                read.append(r)
        doc = read
    return doc


def _help_without_beyond(out):
    """help (and no command, an unknown one) also lists bocker.py's own
    commands, each marked `(beyond the bash)` (issue 28): left out, so the
    rest is still held to the reference's help, byte for byte."""
    return re.sub(r'^[^\n]*\(beyond the bash\):\n\t[^\n]*\n\n', '', out, flags=re.M)


TRACE_READINGS = {
    # name: (keywords of its DIVERGENCES.md row, the reading, what it reads:
    # 'trace' lines, or 'tree' lines of what a scenario left)
    'bocker.py __join__ in place of nsenter -m': (('__join__',), _join_as_nsenter_m, 'trace'),
    'the pids cgroup': (('pids.max',), _without_pids_cgroup, 'trace'),
    'bocker.py __enter__ in place of chroot': (('capabilit', '__enter__'), _enter_as_chroot, 'trace'),
    'a /dev mount point in lower': (('/dev` gets the mount point',), _without_dev_mount_point, 'tree'),
    "the container's record": (('ps_N.state',), _without_container_record, 'tree'),
    'the image itself as the lower layer': (('lowerdir=ps_N/lower:overlay/img_N',),
                                            _lower_as_the_reference, 'trace'),
    'nothing copied into lower': (('lowerdir=ps_N/lower:overlay/img_N',),
                                  _without_lower_entries, 'tree-both'),
    "help's own commands": (('(beyond the bash)',), _help_without_beyond, 'stdout'),
}


def reading_row(name):
    """The DIVERGENCES.md row of a reading, or None."""
    keywords = TRACE_READINGS[name][0]
    for row, text in sorted(divergence_rows().items()):
        if any(k.lower() in text.lower() for k in keywords):
            return row
    return None


def runs_or_execs(sc):
    """Does bocker.py run or exec a container in this scenario?"""
    return any(st.tool != 'ref' and st.kind in ('bocker', 'bg') and
               any(a in ('run', 'exec') for a in st.args) for st in sc.steps)


def declared_rows(sc, tool='py'):
    """The rows a scenario's bocker.py run differs from the reference by."""
    rows = list(sc.diverges)
    if tool == 'py' and runs_or_execs(sc) and not sc.beyond:
        for name in TRACE_READINGS:
            if TRACE_READINGS[name][2] == 'stdout':   # help's: no run's
                continue
            row = reading_row(name)
            if row is not None and row not in rows:
                rows.append(row)
    return rows

BY_NAME = {s.name: s for s in SCENARIOS}
assert len(BY_NAME) == len(SCENARIOS), 'scenario names must be unique'


def divergence_rows():
    """{row number: the row's text} of compat/DIVERGENCES.md."""
    rows = {}
    try:
        with open(DIVERGENCES_MD, encoding='utf-8') as f:
            for line in f:
                m = re.match(r'^\|\s*([0-9]+)\s*\|', line)
                if m:
                    rows[int(m.group(1))] = line.strip()
    except OSError:
        pass
    return rows


def divergence_titles():
    """{row number: its 'why' column}."""
    titles = {}
    for row, text in divergence_rows().items():
        cells = [c.strip() for c in re.split(r'(?<!\\)\|', text.strip('|'))]
        titles[row] = cells[3] if len(cells) > 3 else text
    return titles


def golden_path(sc, tool):
    """Where the expected document of a scenario run by tool lives (an
    extension's, ext-NAME.txt, is bocker.py's: the reference has none)."""
    suffix = '.bocker.txt' if tool == 'py' and sc.diverges else '.txt'
    return os.path.join(GOLDEN_DIR, sc.name + suffix)


# --- Normalising ---------------------------------------------------------------------

ID_RE = re.compile(r'(?<![A-Za-z0-9])(img|ps)_([0-9]+)')
ADDR_RE = re.compile(r'(?:(?<=inet )|(?<=src ))172\.18\.0\.([0-9]+)\b|172\.18\.0\.([0-9]+)(?=/24)')
MAC_RE = re.compile(r'02:42:ac:11:00?([0-9]):([0-9]{2})\b')
LINK_LOCAL_RE = re.compile(r'fe80::42:acff:fe11:([0-9a-f]{1,4})(?=/64)')   # from the MAC
NSENTER_RE = re.compile(r'^(\+ (?:cgexec (?:-g \S+ )+)?nsenter -t )[0-9]+', re.M)
OVL_TEMP_RE = re.compile(r'(/work/work/)#[0-9a-f]+\b')   # overlayfs's own temporary names


def natural(text):
    """Sort key: ps_2 before ps_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r'([0-9]+)', text)]


class Normaliser:
    def __init__(self):
        self.ids = {}            # 'ps_42167' -> 'ps_1'
        self.count = {'img': 0, 'ps': 0}

    def register(self, name):
        if name not in self.ids:
            kind = name.split('_')[0]
            self.count[kind] += 1
            self.ids[name] = '%s_%d' % (kind, self.count[kind])
        return self.ids[name]

    def _addresses(self, first=()):
        """{last octet: placeholder} for both ways of deriving it. The ids in
        `first` (those named on the same line) win where two ids' octets meet
        (ps_42011 by bocker.py and ps_42110 by the reference are both .11)."""
        found = {}
        ordered = [n for n in first if n in self.ids] + list(self.ids)
        for name in ordered:
            short = self.ids[name]
            if name.startswith('ps_') and len(name) >= 6:
                digits = name[-3:]
                n = short.split('_')[1]
                for octet in (str(int(digits)), digits.replace('0', '')):
                    found.setdefault(octet, 'IP_' + n)
        return found

    def text(self, s):
        for kind, num in ID_RE.findall(s):
            self.register('%s_%s' % (kind, num))
        s = s.replace(REFERENCE, 'PROG').replace(BOCKER, 'PROG')
        s = s.replace(os.path.dirname(BOCKER) + '/', 'PROGDIR/')     # bocker.sh's directory
        s = re.sub(r'\bline [0-9]+:', 'line N:', s)
        def addresses(line):
            addrs = self._addresses(['%s_%s' % k for k in ID_RE.findall(line) if k[0] == 'ps'])

            def addr(m):
                octet = m.group(1) or m.group(2)
                return addrs[octet] if octet in addrs else m.group(0)
            return ADDR_RE.sub(addr, line)
        s = '\n'.join(addresses(line) for line in s.split('\n'))
        macs = {name[-3:]: 'MAC_' + short.split('_')[1]
                for name, short in self.ids.items() if name.startswith('ps_') and len(name) >= 6}

        def mac(m):
            return macs.get(m.group(1) + m.group(2), m.group(0))
        s = MAC_RE.sub(mac, s)
        link_local = {'%x' % int(digits, 16): 'LINK_LOCAL_' + n[4:] for digits, n in macs.items()}
        s = LINK_LOCAL_RE.sub(lambda m: link_local.get(m.group(1), m.group(0)), s)
        s = NSENTER_RE.sub(r'\1PID', s)
        s = OVL_TEMP_RE.sub(r'\1#N', s)
        return ID_RE.sub(lambda m: self.ids[m.group(0)], s)


# --- Running a scenario ------------------------------------------------------------

class SandboxBroken(Exception):
    """The sandbox's store or netns mount went away under the scenario (a
    concurrent sandbox's cleanup removed the host directory it sits on)."""


def block(title, data):
    """One stream as readable, unambiguous text lines."""
    if data == '':
        return ['%s: (empty)' % title]
    lines = ['%s:' % title] + ['  | ' + l for l in data.split('\n')]
    if data.endswith('\n'):
        lines.pop()
    else:
        lines.append('  (no newline at end)')
    return lines


def _quote_open(line, inside=False):
    """Is a single-quoted word still open at the end of this xtrace line?
    (bash -x prints a word with newlines in quotes over several lines.)"""
    escaped = False
    for ch in line:
        if inside:
            inside = ch != "'"
        elif escaped:
            escaped = False
        elif ch == '\\':
            escaped = True
        elif ch == "'":
            inside = True
    return inside


def split_trace(err):
    """(stderr without xtrace lines, the traced system commands)."""
    rest, trace = [], []
    lines = err.split('\n')
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        # A pipeline's commands write to the one stderr at once: bash -x's
        # line for one (`++ grep -qw ps_1`) can land inside another's message,
        # after the `ls: ` that GNU ls writes on its own (error(3)). The
        # message is joined again, the trace line kept apart.
        cut = re.match(r'^([\w.-]+: )(\++ \S.*)$', line)
        if cut and i < len(lines):
            lines[i] = cut.group(1) + lines[i]
            line = cut.group(2)
        m = re.match(r'^\++ (\S+)', line)
        if not m:
            rest.append(line)
            continue
        entry, inside = [line], _quote_open(line)
        while inside and i < len(lines):        # the rest of a multi-line word
            entry.append(lines[i])
            inside = _quote_open(lines[i], True)
            i += 1
        if re.match(r'^\++ \[\[ ', line):        # [[ ]] shows its words unquoted
            while not entry[-1].endswith(' ]]') and i < len(lines):
                entry.append(lines[i])
                i += 1
        if m.group(1) in TRACED:
            trace += entry
    return '\n'.join(rest), trace


def command_of(args):
    """The bocker command among a step's arguments (after the --options)."""
    return next((a for a in args if not a.startswith('--')), None)


# Runs of a scenario again after the reference's init or run drew a taken id.
# Each draw clashes with a chance of 1/253 per image or container held.
CLASH_RETRIES = 10


class Runner:
    def __init__(self, sc, mode, box):
        """mode 'ref': every step by the reference (its golden);
        mode 'py': steps by bocker.py unless pinned to the reference."""
        self.sc, self.mode, self.box = sc, mode, box
        self.norm = Normaliser()
        self.known = {'img': [], 'ps': []}
        self.registry_url = ''
        self.bg = None
        self.doc = []
        self.clash = False
        self.applied = set()    # the TRACE_READINGS that changed a line of bocker.py's

    def tool(self, step):
        return 'ref' if self.mode == 'ref' else (step.tool or 'py')

    def resolve(self, arg):
        def sub(m):
            return self.known[m.group(1)][int(m.group(2)) - 1]
        return re.sub(r'\{(img|ps)([0-9]+)\}', sub, arg)

    def argv(self, step):
        args = [self.resolve(a) for a in step.args]
        env = dict({'PATH': PATH}, **{k: v.replace('{registry}', self.registry_url)
                                      for k, v in step.env.items()})
        if self.tool(step) == 'ref':
            return ['bash', '-x', REFERENCE] + args, env
        env['BOCKER_TRACE'] = '1'
        return [BOCKER] + args, env

    def discover(self):
        """Ids of images and containers that appeared, in order."""
        for kind, sub in (('img', 'overlay'), ('ps', 'containers')):
            for name in self.box.ls('%s/%s' % (STORE, sub)):
                if re.fullmatch(r'%s_[0-9]+' % kind, name) and name not in self.known[kind]:
                    self.known[kind].append(name)
                    self.norm.register(name)

    def held(self):
        """Does the store hold (an image, a container) now? Where it does, an
        init, or a run, may draw a taken id."""
        def some(kind, sub):
            return any(re.fullmatch(r'%s_[0-9]+' % kind, name)
                       for name in self.box.ls('%s/%s' % (STORE, sub)))
        return some('img', 'overlay'), some('ps', 'containers')

    def header(self, n, step, args):
        pin = ' (pinned: %s)' % step.tool if step.tool else ''
        words = ' '.join(shlex.quote(a) for a in args)
        if step.kind == 'sh':
            return '== step %d: sh -c %s' % (n, shlex.quote(step.args[0]))
        label = {'bocker': 'bocker', 'bg': 'bocker (background)'}[step.kind]
        return '== step %d: %s %s%s' % (n, label, words, pin)

    def record(self, n, step, args, code, out, err, held):
        """One step's result; held: what the store held when it started."""
        err, trace = split_trace(err)
        if self.sc.beyond:
            trace = [_self_call(l) for l in trace]
        elif self.tool(step) == 'py':
            for name, (_keywords, reading, what) in TRACE_READINGS.items():
                if what != 'trace':
                    continue
                read = [l for l in (reading(l) for l in trace) if l is not None]
                if read != trace:
                    self.applied.add(name)
                trace = read
            for name, (_keywords, reading, what) in TRACE_READINGS.items():
                if what == 'stdout' and reading(out) != out:
                    self.applied.add(name)
                    out = reading(out)
        images, containers = held
        if command_of(args) == 'run':
            # The reference's run on a taken id retries with `bocker_run "$@"`
            # inside an `&&` list, where bash ignores errexit: the retry runs on
            # past a failed step (chroot's error, exit 0 for the recorded 1).
            # What it did is no run to compare: the scenario is run again.
            if self.tool(step) == 'ref' and containers and out.startswith(CONFLICT):
                self.clash = True
            out = unclash(out, containers)
        # The reference's init on a taken id calls bocker_run (it makes a veth)
        if (self.tool(step) == 'ref' and images and command_of(args) in ('init', 'pull')
                and any(' link add ' in l for l in trace)):
            self.clash = True
        self.doc.append(self.norm.text(self.header(n, step, args)))
        self.doc.append('exit: %d' % code)
        self.doc += [self.norm.text(l) for l in block('stdout', out)]
        self.doc += [self.norm.text(l) for l in block('stderr', err)]
        self.doc += ['trace:' if trace else 'trace: (none)'] + \
            ['  ' + self.norm.text(l) for l in trace]

    def run(self):
        self.doc = ['# golden: %s' % self.sc.name]
        if self.sc.beyond:
            self.doc.append('# beyond the bash: %s' % self.sc.beyond)
        if self.sc.diverges:
            titles = divergence_titles()
            for row in self.sc.diverges:
                self.doc.append('# diverges: row %d (%s)' % (row, titles.get(row, '?')))
        if self.sc.prep:
            self.doc.append('# prep: %s' % self.sc.prep)
        if not self.sc.br1:
            self.doc.append('# sandbox without bridge br1')
        for n, step in enumerate(self.sc.steps, 1):
            getattr(self, 'step_' + step.kind)(n, step)
            self.discover()
        self.doc += self.state()
        doc = '\n'.join(self.doc) + '\n'
        if self.sc.beyond and self.mode == 'py' and re.search(r'%s\b' % re.escape(ROOT), doc):
            # nothing else would catch it on the machine that records it
            raise RuntimeError('%s: the project\'s path %s is left in the document: '
                               'normalise it' % (self.sc.name, ROOT))
        return doc

    def spawn(self, argv, env, terminal=True):
        """Start argv in the sandbox, stdout and stderr to pipes, in a session
        of its own. The reference's exec looks for the container among the
        processes that have a terminal (`ps o`): a step gets a terminal of its
        own, so that `ps o` lists its own processes and never depends on what
        else runs on the host; a background run gets none (as a container
        started by a daemon), so the reference's exec never sees it. (From a
        terminal, and with 5-digit pids filling ps's PPID column, the
        reference's exec does find a container: not something a golden file
        can rely on.)"""
        master, slave = os.openpty()
        tty = os.ttyname(slave)
        os.close(slave)
        sb = self.box.sb

        def preexec():
            sb._join()
            if terminal:
                os.close(os.open(tty, os.O_RDWR))      # the session's controlling tty
        p = subprocess.Popen(sb.argv(argv), env=clean_env(env), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True, preexec_fn=preexec)
        p.master = master
        return p

    @staticmethod
    def finish(p, timeout=120):
        try:
            out, err = p.communicate(timeout=timeout)
        finally:
            os.close(p.master)
        return p.returncode, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')

    def step_bocker(self, n, step):
        argv, env = self.argv(step)
        held = self.held()
        code, out, err = self.finish(self.spawn(argv, env))
        self.record(n, step, list(argv[len(argv) - len(step.args):]), code, out, err, held)

    def step_bg(self, n, step):
        argv, env = self.argv(step)
        held = self.held()
        self.bg = (n, step, argv[len(argv) - len(step.args):], self.spawn(argv, env, False), held)
        self.doc.append(self.norm.text('== step %d: started in the background, recorded at its end' % n))

    def step_running(self, n, step):
        """Wait until the background container's command runs (a process
        other than the container's sh in its memory cgroup)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.discover()
            for ps in self.known['ps']:
                try:
                    with open(self.box.path('/sys/fs/cgroup/memory/%s/tasks' % ps)) as f:
                        pids = f.read().split()
                except OSError:
                    continue
                for pid in pids:
                    try:
                        with open('/proc/%s/comm' % pid) as f:
                            if f.read().strip() == 'sleep':
                                self.doc.append('== step %d: the container runs' % n)
                                return
                    except OSError:
                        pass
            time.sleep(0.02)
        raise RuntimeError('%s: the background container never ran' % self.sc.name)

    def step_wait(self, n, step):
        bn, bstep, args, p, held = self.bg
        self.bg = None
        self.record(bn, bstep, list(args), *self.finish(p, 60), held)

    def step_sh(self, n, step):
        r = self.box._run(['sh', '-c', step.args[0]], env={'PATH': PATH})
        self.doc.append(self.norm.text(self.header(n, step, [])))
        self.doc.append('exit: %d' % r.code)
        self.doc += [self.norm.text(l) for l in block('stdout', r.out)]
        self.doc += [self.norm.text(l) for l in block('stderr', r.err)]

    # -- what is left ----------------------------------------------------------
    def state(self):
        """What the scenario left: every line normalised once, then sorted
        by its normalised name (raw ids sort differently on every run)."""
        n = self.norm.text
        doc = ['', '== tree %s' % STORE]
        entries = [(tuple(n(rel).split('/')), [n(l) for l in lines])
                   for rel, lines in self.tree(self.box.path(STORE), '')]
        for _key, lines in sorted(entries):
            doc += lines
        if self.mode == 'py' and not self.sc.beyond:
            for name, (_keywords, reading, what) in TRACE_READINGS.items():
                if what in ('tree', 'tree-both'):
                    read = drop_lines(doc, [reading])
                    if read != doc:
                        self.applied.add(name)
                    doc = read
        mountinfo = self.mountinfo()
        if STORE not in mountinfo or '/run/netns' not in mountinfo:
            raise SandboxBroken(self.sc.name)
        doc.append('== mounts under %s' % STORE)
        doc += sorted('%s %s' % (n(m), mountinfo[m]) for m in mountinfo
                      if m.startswith(STORE + '/')) or ['(none)']
        doc.append('== network namespaces')
        doc += sorted(n(x) for x in self.box.netns()) or ['(none)']
        doc.append('== links in the sandbox')
        doc += sorted(n(x) for x in self.box.links())
        doc.append('== cgroups')
        doc += self.cgroups() or ['(none)']
        return doc

    def mountinfo(self):
        found = {}
        with open('/proc/%d/mountinfo' % self.box.sb.holder.pid) as f:
            for line in f:
                left, right = line.split(' - ')
                found[left.split()[4]] = right.split()[0]
        return found

    def tree(self, top, rel):
        """[(relative path, its lines)] of everything under top/rel."""
        entries = []
        try:
            names = os.listdir(os.path.join(top, rel))
        except OSError as e:
            return [(rel or '.', ['(%s: %s)' % (rel or '.', e.strerror)])]
        for name in names:
            r = os.path.join(rel, name)
            p = os.path.join(top, r)
            st = os.lstat(p)
            mode = '%04o' % stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                entries.append((r, ['l %s -> %s' % (r, os.readlink(p))]))
            elif stat.S_ISDIR(st.st_mode):
                entries.append((r, ['d %s %s' % (mode, r)]))
                entries += self.tree(top, r)
            elif stat.S_ISREG(st.st_mode):
                with open(p, 'rb') as f:
                    data = f.read()
                text = None
                if len(data) <= 2048 and b'\0' not in data:
                    try:
                        text = data.decode('utf-8')
                    except UnicodeDecodeError:
                        pass
                if text is None:
                    entries.append((r, ['f %s %s  %d bytes, sha256 %s' % (
                        mode, r, len(data), hashlib.sha256(data).hexdigest())]))
                else:
                    entries.append((r, ['f %s %s' % (mode, r)] + self.content(text)))
            else:
                kind = {stat.S_IFIFO: 'p', stat.S_IFSOCK: 's', stat.S_IFCHR: 'c',
                        stat.S_IFBLK: 'b'}[stat.S_IFMT(st.st_mode)]
                entries.append((r, ['%s %s %s %d,%d' % (kind, mode, r, os.major(st.st_rdev),
                                                        os.minor(st.st_rdev))]))
        return entries

    @staticmethod
    def content(text):
        if text == '':
            return ['    (empty)']
        lines = ['    | ' + l for l in text.split('\n')]
        if text.endswith('\n'):
            lines.pop()
        else:
            lines.append('    (no newline at end)')
        return lines

    def cgroups(self):
        """Each ps_N cgroup, its controllers and their knobs; an extension's
        with the pids controller too (the reference has none: row 42)."""
        controllers = CONTROLLERS + (('pids',) if self.sc.beyond else ())
        names = set()
        for c in controllers:
            for name in self.box.ls('/sys/fs/cgroup/' + c):
                if name.startswith('ps_'):
                    names.add(name)
        lines = []
        for name in sorted(names):
            parts = []
            for c in controllers:
                d = '/sys/fs/cgroup/%s/%s' % (c, name)
                if not self.box.exists(d):
                    parts.append('%s: none' % c)
                elif c in KNOBS:
                    parts.append('%s: %s=%s' % (c, KNOBS[c], self.box.read(d + '/' + KNOBS[c]).strip()))
                else:
                    parts.append('%s: yes' % c)
            lines.append(self.norm.text('%s  %s' % (name, ', '.join(parts))))
        return sorted(lines, key=natural)


def expand_prep(prep):
    """The prep as it runs. A tmpfs on /tmp (the reference's pull leaves
    /tmp/UUID behind) would hide the project and the reference when they live
    under /tmp (a clone there): they are bound back in."""
    if prep != PRIVATE_TMP:
        return prep
    old = MEDIA + '/oldtmp'
    lines = ['mkdir -p %s' % old, 'mount --bind /tmp %s' % old, PRIVATE_TMP]
    for path in sorted({ROOT, os.path.dirname(REFERENCE)}):
        if path.startswith('/tmp/'):
            lines += ['mkdir -p %s' % shlex.quote(path),
                      'mount --bind %s %s' % (shlex.quote(old + path[4:]), shlex.quote(path))]
    return '\n'.join(lines)


def make_image(box, sc):
    """The test image at /media/image: busybox and the applets the scenarios
    use, in a tmpfs private to the sandbox; then the scenario's prep."""
    script = ['set -e', 'umask 022', 'mount -t tmpfs -o mode=755 golden %s' % MEDIA,
              'mkdir -p %s/bin %s/etc %s/tmp %s/root' % ((IMAGE,) * 4),
              'cp %s %s/bin/busybox' % (shlex.quote(BUSYBOX), IMAGE)]
    script += ['ln -s /bin/busybox %s/bin/%s' % (IMAGE, a) for a in APPLETS]
    script += ["echo 'root:x:0:0:root:/root:/bin/sh' > %s/etc/passwd" % IMAGE,
               'echo bocker-test > %s/etc/hostname' % IMAGE]
    if sc.prep:
        script.append(expand_prep(sc.prep))
    r = box._run(['sh', '-c', '\n'.join(script)], env={'PATH': PATH})
    if r.code:
        raise RuntimeError('%s: making the image failed: %s' % (sc.name, r.err))


def serve_registry(box):
    """docker-registry on 127.0.0.1 in the sandbox's network namespace (as
    the reg fixture starts it: support.InNetns), with the pull scenario's
    image pushed as golden:v1."""
    import tempfile
    import registry
    from support import InNetns
    worker = InNetns(box.sb.holder.pid)
    tmp = tempfile.mkdtemp(prefix='bocker-golden-registry-')
    try:
        handle = worker(registry.start_registry, os.path.join(tmp, 'registry'))
        worker(registry.push_image, handle.url, 'golden', 'v1', pulled_layers())
    except BaseException:
        worker.close()
        raise
    return worker, handle, tmp


def stop_registry(worker, handle, tmp):
    import shutil
    worker(handle.stop)
    worker.close()
    shutil.rmtree(tmp, ignore_errors=True)


def run_scenario(sc, mode, attempts=3, applied=None, flavour='sandbox'):
    """The normalised document of one run of the scenario in fresh sandboxes
    of the given flavour (tests/sandbox.py; the golden files are the same for
    both). A run is repeated when the sandbox broke under it (attempts in all)
    or the reference's init or run drew a taken id (CLASH_RETRIES more at most).
    applied: a set that receives the names of the TRACE_READINGS used."""
    os.makedirs(MEDIA, exist_ok=True)
    broken = clashes = 0
    while True:
        with Sandbox(br1=sc.br1, flavour=flavour) as sb:
            box = Box(sb)
            make_image(box, sc)
            runner = Runner(sc, mode, box)
            served = serve_registry(box) if sc.registry else None
            try:
                if served:
                    runner.registry_url = served[1].url
                doc = runner.run()
            except SandboxBroken:
                broken += 1
                if broken == attempts:
                    raise
                continue
            finally:
                if runner.bg:
                    runner.bg[3].kill()
                    runner.finish(runner.bg[3])
                if served:
                    stop_registry(*served)
        if not runner.clash or clashes == CLASH_RETRIES:
            break
        clashes += 1
    if applied is not None:
        applied |= runner.applied
    return doc


def diff(expected, actual, path):
    return ''.join(difflib.unified_diff(
        expected.splitlines(True), actual.splitlines(True),
        fromfile=os.path.relpath(path, ROOT), tofile='this run'))


def expected_files():
    files = {sc.name + '.txt' for sc in SCENARIOS}
    files |= {sc.name + '.bocker.txt' for sc in SCENARIOS if sc.diverges}
    return files


def main():
    ap = argparse.ArgumentParser(description='Record or show golden documents.')
    ap.add_argument('--record', action='store_true',
                    help='write fixtures/golden/ (reference; bocker.py for diverging and '
                         'extension scenarios)')
    ap.add_argument('--show', action='store_true', help='print the documents, write nothing')
    ap.add_argument('--tool', choices=('ref', 'py'), help='with --show: only this tool')
    ap.add_argument('names', nargs='*', help='scenarios (default: all)')
    a = ap.parse_args()
    if not (a.record or a.show):
        ap.error('--record or --show')
    names = a.names or [s.name for s in SCENARIOS]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        ap.error('unknown scenarios: %s' % ', '.join(unknown))
    needs_reference = any(not BY_NAME[n].beyond for n in names) or a.tool == 'ref' or \
        (a.show and not a.tool)
    if needs_reference and not os.path.isfile(REFERENCE):
        ap.error('the reference is not at %s (set BOCKER_REFERENCE)' % REFERENCE)
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    for name in names:
        sc = BY_NAME[name]
        tools = ['py'] if sc.beyond else ['ref'] + (['py'] if sc.diverges else [])
        if a.show:
            tools = [a.tool] if a.tool else ['ref', 'py']
        for tool in tools:
            doc = run_scenario(sc, tool)
            if a.show:
                sys.stdout.write('#### %s (%s)\n%s' % (name, tool, doc))
                continue
            path = golden_path(sc, tool)
            old = open(path).read() if os.path.exists(path) else ''
            with open(path, 'w') as f:
                f.write(doc)
            print('%-9s %s' % ('same' if old == doc else 'written', os.path.relpath(path, ROOT)))
    if a.record and not a.names:
        for stale in sorted(set(os.listdir(GOLDEN_DIR)) - expected_files()):
            os.remove(os.path.join(GOLDEN_DIR, stale))
            print('removed   %s' % os.path.join('fixtures', 'golden', stale))
    return 0


if __name__ == '__main__':
    sys.exit(main())
