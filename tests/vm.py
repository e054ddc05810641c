#!/usr/bin/env python3
"""Run one command inside a virtual machine that boots a cgroup v2 only kernel.

These machines are hybrid (cgroup v1 controllers, and a v2 hierarchy with none
of them); bocker must also work on hosts that have only cgroup v2. This module
makes such a host: virtme-ng (the `vng` command, PyPI `virtme-ng`, in the
project's .venv) boots Debian's kernel (linux-image-amd64, /boot/vmlinuz-*)
under QEMU (qemu-system-x86) with `cgroup_no_v1=all`, the guest's root being
this machine's root, shared read-only over 9p (virtme-ng lays tmpfs-backed
overlays on /etc, /usr, /var, /tmp, ... so the guest can write there; nothing
goes back to this machine). The command runs as root in the guest's root
cgroup, in the current directory; its output streams back and its exit status
is returned.

- No network: virtme-ng gives QEMU `-net none` unless --network is asked for,
  so the guest has only `lo`; this module never asks for one.
- No KVM: on these machines KVM fails (`failed to set MSR 0x10a`, and with other
  CPU models the kernel hangs while decompressing), so QEMU emulates (TCG,
  --disable-kvm). A boot takes about 30 s; most of it is udev loading modules,
  so the modules the tests never use are blacklisted on the kernel command line.
- Speed: emulated, a process runs some 25-45 times slower than here, and the
  9p root (no cache: every stat goes to QEMU) makes Python's imports slower
  still. So the root is exported a second time, mounted in the guest with
  cache=loose (read-only; files read once stay in the guest's page cache), and
  bound over /usr, the Python installation and the working directory: that
  makes `bocker.sh run` about 2.5 times faster (some 8 s instead of 20 s).
- The guest cannot write this directory: bocker.py's bytecode is compiled here
  first (compile_bocker()), or a container under a small memory limit would
  compile it in its own cgroup.
- The guest's environment is virtme-ng's, not ours: pass what the command needs
  with env=.

CLI:  tests/vm.py [--timeout S] [--verbose] [--memory SIZE] [--env K=V]... -- COMMAND [ARG...]
      (exit status: the command's; 125 when the VM cannot be started)
"""
import argparse
import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Modules the guest's udev would load (from 9p, emulated: seconds each) and the
# tests never need: KVM, the q35 board's AHCI/CD-ROM, watchdogs, input, crypto.
BLACKLIST = ('kvm,kvm_amd,kvm_intel,powernow_k8,acpi_cpufreq,ahci,libahci,sr_mod,cdrom,sg,'
             'iTCO_wdt,iTCO_vendor_support,i6300esb,pcspkr,i2c_i801,lpc_ich,psmouse,serio_raw,'
             'aesni_intel,ghash_clmulni_intel,crc32_pclmul,evdev,joydev')
KERNEL_ARGS = ('cgroup_no_v1=all', 'module_blacklist=' + BLACKLIST)
# The host's root once more, for a cached read-only mount (see above).
CACHE_TAG = 'hostcache'
CACHE_DIR = '/run/hostcache'
CACHE_OPTS = 'trans=virtio,version=9p2000.L,access=any,msize=512000,cache=loose,ro'
CACHE_QEMU = ('-fsdev local,id=%s,path=/,security_model=none,readonly=on,multidevs=remap '
              '-device virtio-9p-pci,fsdev=%s,mount_tag=%s' % (CACHE_TAG, CACHE_TAG, CACHE_TAG))
UP = '[vm] guest up'                 # the first line the guest prints
INSTALL_HINT = ('install them with `make deps` (apt-get install qemu-system-x86 '
                'linux-image-amd64; .venv/bin/pip install -r requirements.txt)')


class VMUnavailable(RuntimeError):
    """Something the VM needs is missing on this machine."""


@dataclass
class Result:
    code: int             # the command's exit status (124: timed out)
    output: str           # what the guest printed, stdout and stderr merged
    boot_seconds: float   # start to the guest's first line (None: never came up)
    seconds: float        # start to the end


def _version_key(path):
    return [int(p) if p.isdigit() else p for p in re.split(r'(\d+)', path)]


def find_kernel():
    """The kernel to boot: BOCKER_VM_KERNEL, else the newest /boot/vmlinuz-*
    that has its modules (/lib/modules/VERSION: 9p, overlay, veth, bridge...)."""
    wanted = os.environ.get('BOCKER_VM_KERNEL')
    if wanted:
        if not os.path.isfile(wanted):
            raise VMUnavailable('BOCKER_VM_KERNEL=%s: no such file' % wanted)
        return wanted
    kernels = [k for k in glob.glob('/boot/vmlinuz-*')
               if os.path.isdir('/lib/modules/' + os.path.basename(k)[len('vmlinuz-'):])]
    return sorted(kernels, key=_version_key)[-1] if kernels else None


def find_vng():
    """virtme-ng's `vng`: the project's .venv first, then PATH."""
    venv = os.path.join(ROOT, '.venv', 'bin', 'vng')
    return venv if os.access(venv, os.X_OK) else shutil.which('vng')


def check():
    """(vng, kernel) or VMUnavailable naming everything that is missing."""
    missing = []
    vng = find_vng()
    if not vng:
        missing.append('vng (PyPI virtme-ng, pinned in requirements.txt)')
    if not shutil.which('qemu-system-x86_64'):
        missing.append('qemu-system-x86_64 (Debian package qemu-system-x86)')
    kernel = None
    try:
        kernel = find_kernel()
        if not kernel:
            missing.append('a kernel /boot/vmlinuz-* with its /lib/modules '
                           '(Debian package linux-image-amd64)')
    except VMUnavailable as e:
        missing.append(str(e))
    if os.geteuid() != 0:
        missing.append('root (the guest runs as the caller; bocker needs root)')
    if missing:
        raise VMUnavailable('cannot boot the cgroup v2 VM; missing: %s; %s'
                            % ('; '.join(missing), INSTALL_HINT))
    return vng, kernel


def cached_dirs(cwd):
    """The host directories the guest sees through the cached 9p export: /usr,
    this Python's installation and the working directory (outermost only)."""
    wanted = {'/usr', os.path.realpath(sys.base_prefix), os.path.realpath(cwd)}
    venv_python = os.path.join(ROOT, '.venv', 'bin', 'python')
    if os.path.exists(venv_python):     # the project's Python, whoever runs this
        wanted.add(os.path.dirname(os.path.dirname(os.path.realpath(venv_python))))
    dirs = []
    for d in sorted(wanted):
        if d != '/' and not any(d == p or d.startswith(p + '/') for p in dirs):
            dirs.append(d)
    return dirs


def guest_script(argv, cwd, env):
    """The shell line the guest runs: bind the cached view of the host over
    cached_dirs, announce itself, then exec argv."""
    assigns = ['%s=%s' % (k, v) for k, v in sorted((env or {}).items())]
    binds = ' && '.join('mount --bind %s %s' % (shlex.quote(CACHE_DIR + d), shlex.quote(d))
                        for d in cached_dirs(cwd))
    return ('{ mkdir -p %(cache)s && mount -t 9p -o %(opts)s %(tag)s %(cache)s && %(binds)s; } '
            '|| echo "[vm] no cached view of the host (slower)"; '
            'printf "%%s (uptime %%ss, kernel %%s)\\n" %(up)s "$(cut -d" " -f1 /proc/uptime)" '
            '"$(uname -r)"; cd %(cwd)s && exec env %(cmd)s'
            % dict(cache=CACHE_DIR, opts=CACHE_OPTS, tag=CACHE_TAG, binds=binds,
                   up=shlex.quote(UP), cwd=shlex.quote(cwd),
                   cmd=shlex.join(assigns + list(argv))))


def command_line(argv, cwd=None, env=None, memory='2G', cpus=2, verbose=False):
    """The vng command line that boots the VM and runs argv in it."""
    vng, kernel = check()
    # The guest script changes to cwd itself: vng would split a --cwd that
    # holds a space (a clone under 'My Projects') into two arguments.
    args = [vng, '--run', kernel, '--disable-kvm', '--memory', memory, '--cpus', str(cpus),
            '--cwd', '/']
    for a in KERNEL_ARGS:
        args += ['--append', a]
    args.append('--qemu-opts=' + CACHE_QEMU)
    if verbose:
        args.append('--verbose')    # the kernel's console too
    return args + ['--exec', guest_script(argv, cwd or os.getcwd(), env)]


RUNNING = []        # a stop() for each VM booting or running (boot()): kill_all()


def kill_all():
    """Kill every VM this process still runs (its caller is leaving early:
    a VM run from a thread would outlive it)."""
    for stop in list(RUNNING):
        stop()


def run(argv, cwd=None, env=None, timeout=1200, out=None, memory='2G', cpus=2, verbose=False):
    """Boot the VM, run argv (a list) in it as root, stream its output (stdout
    and stderr merged) to out (default sys.stdout), return a Result."""
    cmd = command_line(argv, cwd, env, memory, cpus, verbose)
    compile_bocker()
    alias = space_free(cmd)
    try:
        return boot(cmd, timeout, out or sys.stdout)
    finally:
        if alias:
            shutil.rmtree(alias)


def compile_bocker():
    """bocker.py's bytecode (__pycache__), written here before the boot: the
    guest sees this directory read-only and cannot keep what it compiles.
    Without it every bocker.sh in the guest compiles bocker.py again (seconds,
    emulated), and run's __enter__, imported inside the container's memory
    cgroup, compiles it there: some 22 MB at the peak (8 MB from the
    bytecode), so a container under --MEM_LIMIT=16 is OOM-killed before its
    command starts (`unshare: sigprocmask unblock failed`). Compiled by the
    project's Python, which the guest runs too."""
    python = os.path.join(ROOT, '.venv', 'bin', 'python')
    subprocess.run([python if os.access(python, os.X_OK) else sys.executable, '-c',
                    'import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True)',
                    os.path.join(ROOT, 'bocker.py')], check=True)


def space_free(cmd):
    """virtme-ng cannot boot from a path with white space in it (a clone
    under 'My Projects'): it names its guest init, under its own install, on
    the kernel command line, where a space ends the init= option. For such a
    path, vng and virtme-run run through a space-free alias of their venv,
    made here (a directory under /tmp, which the guest sees too); cmd[0]
    becomes the alias's vng. Returns that directory, or None."""
    if not any(c.isspace() for c in cmd[0]):
        return None
    import tempfile
    alias = tempfile.mkdtemp(prefix='bocker-vng-', dir='/tmp')
    venv = os.path.dirname(os.path.dirname(cmd[0]))
    os.symlink(venv, os.path.join(alias, 'venv'))
    os.mkdir(os.path.join(alias, 'bin'))
    for tool in ('vng', 'virtme-run'):
        path = os.path.join(alias, 'bin', tool)
        with open(path, 'w') as f:
            f.write('#!/bin/sh\nexec %s/venv/bin/python %s/venv/bin/%s "$@"\n' % (alias, alias, tool))
        os.chmod(path, 0o755)
    cmd[0] = os.path.join(alias, 'bin', 'vng')
    return alias


def boot(cmd, timeout, out):
    """run()'s work: the vng command line cmd, its output to out."""
    host_env = dict(os.environ)
    # vng runs virtme-run and virtme-ng-init from beside itself.
    host_env['PATH'] = os.path.dirname(cmd[0]) + os.pathsep + host_env.get('PATH', '')
    start = time.monotonic()
    boot = None
    lines = []
    # Through a pipe: QEMU opens /proc/self/fd/1 and /proc/self/fd/2 again, so
    # with a regular file the two would overwrite each other (no O_APPEND).
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=host_env, start_new_session=True)
    killed = []

    def stop(*_):
        killed.append(True)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    RUNNING.append(stop)

    timer = threading.Timer(timeout, stop)
    timer.start()
    try:
        for raw in proc.stdout:
            line = raw.decode('utf-8', 'replace')
            if boot is None and line.startswith(UP):
                boot = time.monotonic() - start
                line = line.rstrip('\n') + ' [host: %.1fs since start]\n' % boot
            lines.append(line)
            out.write(line)
            out.flush()
        code = proc.wait()
    except BaseException:
        stop()
        proc.wait()
        raise
    finally:
        timer.cancel()
        RUNNING.remove(stop)
    if killed:
        msg = '[vm] killed after %ds (timeout)\n' % timeout
        lines.append(msg)
        out.write(msg)
        code = 124
    return Result(code, ''.join(lines), boot, time.monotonic() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--timeout', type=int, default=1200, help='seconds (default 1200)')
    ap.add_argument('--memory', default='2G', help='guest memory (default 2G)')
    ap.add_argument('--cpus', type=int, default=2, help='guest CPUs (default 2)')
    ap.add_argument('--verbose', action='store_true', help="show the guest kernel's console")
    ap.add_argument('--env', action='append', default=[], metavar='K=V',
                    help='environment for the command in the guest')
    ap.add_argument('command', nargs='+')
    a = ap.parse_args()
    try:
        r = run(a.command, env=dict(e.split('=', 1) for e in a.env), timeout=a.timeout,
                memory=a.memory, cpus=a.cpus, verbose=a.verbose)
    except VMUnavailable as e:
        sys.stderr.write('tests/vm.py: %s\n' % e)
        return 125
    sys.stdout.write('[vm] exit status %d; boot %s; total %.1fs\n' % (
        r.code, '%.1fs' % r.boot_seconds if r.boot_seconds is not None else 'never came up',
        r.seconds))
    return r.code


if __name__ == '__main__':
    sys.exit(main())
