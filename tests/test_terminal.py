"""A container you can work with (issue 28), part 1: a terminal of its own.

`run -it IMG sh` and `exec -it ID sh` from a real terminal: the test's own pty
(test_lifecycle.Terminal: bocker.sh its session leader, the pty its
controlling terminal, as a shell in a terminal starts a job). The container's
shell gets a pty of the container's own devpts as its controlling terminal;
bocker relays between the two in raw mode. Docker's and podman's own checks of
the same: moby's integration-cli docker_cli_run_unix_test.go (TestRunTTY...,
TestRunInteractiveWithRestartPolicy), podman's test/system 030-run.bats
(`run -t` ... `tty`) and 450-interactive.bats (ctrl-C, window size).
"""
import fcntl
import os
import select
import struct
import termios
import time

import pytest

from support import CONTAINERS
from support import Terminal, after_a_normal_end, new_container, running_container

pytestmark = pytest.mark.flavours
PROMPT = '/ # '


def lflag(term):
    """The caller's terminal's local modes (the pty's, read through its master)."""
    return termios.tcgetattr(term.master)[3]


def typed(term, line, until, timeout=30):
    """Type a line (a terminal's Enter is a CR) and read until `until` shows."""
    os.write(term.master, line.encode() + b'\r')
    return read_until(term, until, timeout)


def read_until(term, text, timeout=30):
    """Terminal.read_until, never blocked past the deadline (select(2))."""
    deadline = time.monotonic() + timeout
    while text.encode() not in term.seen:
        left = deadline - time.monotonic()
        assert left > 0, term.seen
        if select.select([term.master], [], [], left)[0]:
            try:
                term.seen += os.read(term.master, 4096)
            except OSError:                    # EIO: the other side is gone
                break
    return term.seen.decode('utf-8', 'replace')


@pytest.mark.v2(flavours=('sandbox',))
def test_run_it_gives_a_shell_on_a_terminal_of_its_own(box, busybox):
    """A prompt; `tty` names the container's /dev/pts/0; ctrl-C interrupts
    the shell's command and the shell lives on; the window size and its
    changes reach it; `exit 3` ends the run with 3, the caller's terminal
    set back as it was, the session in the log, and the run's end as a
    foreground run's."""
    img = box.init(busybox)
    term = Terminal(box, 'run', '-it', img, 'sh')
    fcntl.ioctl(term.master, termios.TIOCSWINSZ, struct.pack('HHHH', 31, 97, 0, 0))
    cooked = lflag(term)
    try:
        read_until(term, PROMPT)
        uuid = new_container(box)
        assert not lflag(term) & (termios.ICANON | termios.ECHO)     # raw while it runs
        assert typed(term, 'tty', '/dev/pts/0\r\n' + PROMPT)
        assert typed(term, 'stty size', '31 97\r\n' + PROMPT)
        fcntl.ioctl(term.master, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 120, 0, 0))
        time.sleep(0.2)                        # SIGWINCH to bocker, TIOCSWINSZ passed on
        assert typed(term, 'stty size', '40 120\r\n' + PROMPT)
        start = len(term.seen)
        typed(term, 'sleep 300; echo slept $((1 + 1))', 'sleep 300')
        time.sleep(0.5)
        term.ctrl_c()
        assert typed(term, 'echo alive $((40 + 2))', 'alive 42')
        assert b'slept 2' not in term.seen[start:]   # ctrl-C ended the whole line
        typed(term, 'exit 3', 'exit 3')
        assert term.wait() == 3
        assert lflag(term) == cooked           # set back as it was
        log = box.read('%s/%s/%s.log' % (CONTAINERS, uuid, uuid))
        assert '/dev/pts/0' in log and 'alive 42' in log
        after_a_normal_end(box, uuid)
    finally:
        term.close()


def test_run_it_needs_a_terminal(box, busybox):
    """-it from a pipe: refused in one line, as Docker refuses it, nothing made."""
    img = box.init(busybox)
    for args in (('run', '-it', img, 'sh'), ('exec', '-it', 'ps_42002', 'sh')):
        r = box.bocker(*args, stdin=b'tty\n')
        assert (r.out, r.code) == ('', 1), r
        assert r.err == 'bocker.sh: the input device is not a TTY: -it needs a terminal ' \
            '(-t alone does not)\n'
    assert box.containers() == []


def test_run_t_without_i_reads_no_stdin(box, busybox):
    """-t alone: a terminal, but nothing of the caller's stdin reaches it."""
    img = box.init(busybox)
    r = box.bocker('run', '-t', img, 'tty; read -t 1 line || echo nothing; exit 5',
                   stdin=b'something\n')
    assert r.code == 5, r
    assert r.out.split() == ['/dev/pts/0', 'nothing']


def test_a_plain_run_keeps_the_bashs_ways(box, busybox):
    """Without the flags: no terminal (`tty` says so, as in the bash's
    container), the caller's stdin as it was, status 0 whatever the command's."""
    img = box.init(busybox)
    r = box.bocker('run', img, 'tty; read line; echo "got $line"; exit 3', stdin=b'hi\n')
    assert (r.out, r.code) == ('not a tty\ngot hi\n', 0), r


def test_exec_it_enters_a_running_container_on_a_terminal(box, busybox):
    """`exec -it ID sh` into a running container: a terminal of the
    container's devpts (its /dev/pts lists it, not the host's), ctrl-C
    interrupts the shell's command, `exit 6` ends the exec with 6 (a job it
    left behind holding the terminal notwithstanding), the caller's terminal
    set back; the container runs on."""
    run, uuid = running_container(box, busybox)
    try:
        term = Terminal(box, 'exec', '-it', uuid, 'sh')
        cooked = lflag(term)
        try:
            read_until(term, PROMPT)
            assert typed(term, 'tty; echo $(ls /dev/pts)', '/dev/pts/0\r\n0 ptmx\r\n' + PROMPT)
            typed(term, 'sleep 300; echo slept $((1 + 1))', 'sleep 300')
            time.sleep(0.5)
            term.ctrl_c()
            assert typed(term, 'echo alive $((40 + 2))', 'alive 42')
            # a job left in the background holds the terminal: exec ends all the same
            typed(term, 'sleep 300 & exit 6', 'exit 6')
            assert term.wait(timeout=20) == 6, term.seen
            assert lflag(term) == cooked
        finally:
            term.close()
        assert box.bocker('exec', uuid, 'echo', 'still').out == 'still\n'
    finally:
        box.bocker('rm', uuid)
        run.wait(timeout=60)


def test_the_callers_terminal_is_set_back_when_rm_ends_the_run(box, busybox):
    """Another way out: the container removed under a `run -it` (exit 137):
    the caller's terminal is cooked again."""
    img = box.init(busybox)
    term = Terminal(box, 'run', '-it', img, 'sh')
    cooked = lflag(term)
    try:
        read_until(term, PROMPT)
        uuid = new_container(box)
        assert lflag(term) != cooked
        assert box.bocker('rm', uuid).code == 0
        assert term.wait() == 137
        assert lflag(term) == cooked
    finally:
        term.close()
