"""A container you can work with (issue 28), part 2: detached runs (`run -d`),
`stop`, `start`, names, `logs -f` and `ls` (what `docker ps -a` shows).

Cases after podman's test/system 050-stop.bats, 045-start.bats and
035-logs.bats, and moby's integration-cli docker_cli_start_test.go: each from a
fresh sandbox, through bocker.sh as a black box.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from support import BOCKER, CONTAINERS, READY

pytestmark = pytest.mark.flavours
SERVER = 'echo up; trap "echo got TERM; exit 7" TERM; while :; do sleep 0.1; done'


def detached(box, img, *args, cmd=SERVER):
    r = box.bocker('run', '-d', *args, img, cmd)
    assert r.code == 0 and r.err == '', r
    (uuid,) = r.out.split()
    assert uuid in box.containers()
    return uuid


def ls(box):
    """`ls`'s rows as {id: [name, status, address, command]}."""
    lines = box.bocker('ls').out.splitlines()
    assert lines[0].split() == ['CONTAINER_ID', 'NAME', 'STATUS', 'ADDRESS', 'COMMAND']
    rows = {}
    for line in lines[1:]:
        uuid, name, rest = line.split(None, 2)
        rows[uuid] = [name, rest]
    return rows


def until(what, timeout=20):
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, 'waited %d s' % timeout
        time.sleep(0.05)


def test_run_d_prints_the_id_and_the_container_runs_on(box, busybox):
    """The id at once; exec finds it running right away; its output in
    its log; ls says running, with its name and address; the bash's ps
    prints its two columns as ever."""
    img = box.init(busybox)
    uuid = detached(box, img, '--name', 'web')
    assert box.bocker('exec', uuid, 'hostname').code == 0
    assert box.bocker('exec', 'web', 'cat', '/proc/1/cmdline').out.startswith('/bin/sh')
    until(lambda: box.bocker('logs', 'web').out == 'up\n')
    row = ls(box)[uuid]
    assert row[0] == 'web' and row[1].startswith('running since ')
    assert ' 172.18.0.%d ' % int(uuid[-3:]) in row[1]
    assert box.bocker('ps').out == 'CONTAINER_ID\t\tCOMMAND\n%s\t\t%s\n' % (uuid, SERVER)
    assert box.netns() == ['netns_' + uuid]
    r = box.bocker('--TRACE', '--EXPLAIN', 'run', '-d', img, 'echo hi')
    # the run's steps shown (up to the supervisor's: not its cgexec); the log the command's alone
    assert r.code == 0 and '+ cgcreate ' in r.err and '+ cgexec ' not in r.err, r
    until(lambda: ls(box)[r.out.strip()][1].startswith('exited (0)'))
    assert box.bocker('logs', r.out.strip()).out == 'hi\n'
    r = box.bocker('commit', 'web', 'img_1')   # as of a foreground run's: frozen, copied
    assert (r.out, r.code) == ('Created: img_1\n', 0), r
    assert ls(box)[uuid][1].startswith('running')


@pytest.mark.v2(flavours=('sandbox',))
def test_stop_start_and_rm_by_name(box, busybox):
    """stop: SIGTERM to pid 1 (its trap says so), the container stays
    (exited (7) in ls), its veth and netns gone as after a run; start:
    the same command again in the same root (a file it wrote is there),
    the log goes on; rm by name takes it and its name."""
    img = box.init(busybox)
    uuid = detached(box, img, '--name', 'web')
    until(lambda: 'up' in box.bocker('logs', uuid).out)
    assert box.bocker('exec', 'web', 'sh', '-c', 'echo kept > /kept').code == 0
    r = box.bocker('stop', 'web')
    assert (r.out, r.code) == (uuid + '\n', 0), r
    assert ls(box)[uuid][1].startswith('exited (7) since ')
    assert box.bocker('logs', 'web').out == 'up\ngot TERM\n'
    assert box.netns() == [] and not [l for l in box.links() if uuid in l]
    assert box.bocker('exec', 'web', 'true').out == "Container '%s' exists but is not running\n" % uuid
    r = box.bocker('start', 'web')
    assert (r.out, r.code) == (uuid + '\n', 0), r
    assert box.bocker('exec', 'web', 'cat', '/kept').out == 'kept\n'
    until(lambda: box.bocker('logs', 'web').out == 'up\ngot TERM\nup\n')
    assert ls(box)[uuid][1].startswith('running')
    r = box.bocker('rm', 'web')
    assert (r.out, r.code) == ('Removed: %s\n' % uuid, 0), r
    assert box.leftovers() == {}
    assert box.ls('/var/lib/bocker/names') == []


def test_stop_kills_after_the_grace_and_logs_f_follows_to_the_end(box, busybox):
    """A pid 1 with no handler ignores SIGTERM (pid_namespaces(7)): killed
    after -t seconds. logs -f, started before, prints all and ends with it."""
    img = box.init(busybox)
    uuid = detached(box, img, cmd='echo up; sleep 600')
    follow = box.popen([BOCKER, 'logs', '-f', uuid], stdout=subprocess.PIPE)
    try:
        assert follow.stdout.readline() == b'up\n'
        started = time.monotonic()
        assert box.bocker('stop', '-t', '1', uuid).code == 0
        assert time.monotonic() - started >= 1
        assert follow.wait(timeout=20) == 0
    finally:
        if follow.poll() is None:
            follow.kill()
        follow.wait()
    assert ls(box)[uuid][1].startswith('exited (137)')


def test_failure_paths(box, busybox):
    """start of a running container, stop of a stopped one (its id, as
    Docker), two starts at once (one wins), a taken or malformed name:
    refused in one line, nothing made."""
    img = box.init(busybox)
    uuid = detached(box, img, '--name', 'web')
    r = box.bocker('start', 'web')
    assert (r.out, r.err, r.code) == ('', 'bocker.sh: container %s is running\n' % uuid, 1), r
    assert box.bocker('stop', '-t', '0', 'web').code == 0
    assert box.bocker('stop', 'web').out == uuid + '\n'
    starts = [box.popen([BOCKER, 'start', 'web'], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for _ in range(2)]
    results = sorted((p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in starts)
    for p in starts:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _, _ in results] == [0, 1], results
    assert results[1][2] == b'bocker.sh: container %s is running\n' % uuid.encode()
    before = box.containers()
    for name, err in (('web', "the name 'web' is taken by %s" % uuid),
                      ('..', "'..' is not a valid container name"),
                      ('a/b', "'a/b' is not a valid container name"),
                      ('a b', "'a b' is not a valid container name"),
                      ('', "'' is not a valid container name"),
                      ('ps_42002', "'ps_42002' is not a valid container name")):
        r = box.bocker('run', '--name', name, img, 'true')
        assert r.code == 1 and r.out == '' and r.err.startswith('bocker.sh: ' + err), r
        assert r.err.count('\n') == 1
    assert box.containers() == before


def test_a_killed_supervisor_ends_its_container(box, busybox):
    """kill -9 of the supervisor: the container ends with it (none runs on
    unseen), ls says exited, start runs it again, rm cleans everything."""
    img = box.init(busybox)
    uuid = detached(box, img)
    state = box.read('%s/%s/%s.state' % (CONTAINERS, uuid, uuid))
    supervisor = int([l for l in state.splitlines() if l.startswith('supervisor=')][0].split('=')[1])
    os.kill(supervisor, signal.SIGKILL)
    ended_then_started_again(box, uuid)


def ended_then_started_again(box, uuid):
    """Its run or supervisor killed, the container ends: ls says exited, exec
    finds nothing running, start runs it again, rm takes everything."""
    until(lambda: ls(box)[uuid][1].startswith('exited'))
    assert box.bocker('exec', uuid, 'true').code == 1
    assert box.bocker('start', uuid).code == 0
    assert box.bocker('exec', uuid, 'true').code == 0
    assert box.bocker('rm', uuid).code == 0
    assert box.leftovers() == {}


def test_what_the_kernel_holds_for_explain(box, busybox):
    """The readers of issue 28's --EXPLAIN blocks (explain_terminal,
    explain_supervisor): pid 1 leads its own session with pts 0 of its own
    devpts as its terminal, the supervisor (its own session) holds the
    master and the lock."""
    img = box.init(busybox)
    uuid = detached(box, img, '-t', cmd='sleep 600')
    code = ('import sys; sys.path.insert(0, %r); import bocker; '
            'print("\\n".join(bocker.explain_terminal(%r) + bocker.explain_supervisor(%r)))'
            % (os.path.dirname(BOCKER), uuid, uuid))
    r = box._run([sys.executable, '-c', code])
    lines = r.out.splitlines()
    assert r.code == 0 and len(lines) == 5, r
    pid1 = lines[0].split()[4].rstrip('):')
    assert lines[0] == 'pid 1 (host pid %s): session %s, controlling terminal 136:0 (pts 0)' % (pid1, pid1)
    assert lines[1] == 'its fd 0: /dev/pts/0'
    supervisor = lines[3].split()[2].rstrip(',')
    assert lines[2].startswith('the master: fd ') and lines[2].endswith(' of pid ' + supervisor)
    assert lines[3] == 'supervisor: pid %s, session %s (its own: True)' % (supervisor, supervisor)
    assert lines[4].startswith('flock on %s.lock: held' % uuid)


def test_a_full_disk_for_the_log_ends_the_container_without_a_hang(busybox):
    """The store fills while the supervisor writes a flood of output to the
    log: the supervisor ends (ENOSPC), its container with it; ls says
    exited, rm takes everything. Nothing waits for ever."""
    from support import Box
    from sandbox import Sandbox
    with Sandbox(store_size='24m') as sb:
        box = Box(sb)
        img = box.init(busybox)
        uuid = detached(box, img, cmd='yes flood')
        until(lambda: ls(box)[uuid][1].startswith('exited'), timeout=60)
        assert box.bocker('exec', uuid, 'true').code == 1
        r = box.bocker('rm', uuid)
        assert r.code == 0, r
        assert box.leftovers() == {}


def test_start_runs_a_plain_runs_container_again(box, busybox):
    """A container of a plain foreground run (no state of a supervisor):
    start runs its command again, detached; the log goes on; ls says
    exited (0) once it ended, and its network is gone again."""
    img = box.init(busybox)
    uuid, r = box.run_container(img, 'echo hi from $(hostname)')
    assert r.out.startswith('hi from ') and r.code == 0, r
    assert ls(box)[uuid][1].startswith('exited ')      # its status unknown: `exited`
    assert box.bocker('start', uuid).out == uuid + '\n'
    until(lambda: ls(box)[uuid][1].startswith('exited (0) since '))
    assert box.bocker('logs', uuid).out == r.out * 2
    assert box.netns() == []


def test_a_named_foreground_run_notes_its_end_and_stop_ends_a_plain_one(box, busybox):
    """A foreground run given a flag returns its command's status and ls
    shows it (exited (3)); stop ends a plain foreground run from outside
    (its pid 1 killed after the grace), which exits as the bash's does (0)
    and leaves what a run's end leaves, and no file of bocker.py's own."""
    img = box.init(busybox)
    r = box.bocker('run', '--name', 'three', img, 'exit 3')
    assert r.code == 3, r
    uuid = box.bocker('ls').out.split('\n')[1].split()[0]
    assert ls(box)[uuid][0] == 'three' and ls(box)[uuid][1].startswith('exited (3) since ')
    run = box.popen([BOCKER, 'run', img, 'touch /tmp/ready; sleep 600'], stdout=subprocess.DEVNULL)
    plain = box.wait_ready()
    assert ls(box)[plain][1] .startswith('running')
    assert box.bocker('stop', '-t', '0', plain).out == plain + '\n'
    assert run.wait(timeout=30) == 0
    assert ls(box)[plain][1].startswith('exited ')
    assert sorted(f for f in box.ls('%s/%s' % (CONTAINERS, plain)) if f.startswith('ps_')) == \
        ['%s.cmd' % plain, '%s.log' % plain, '%s.state' % plain]
    assert box.netns() == []


def test_kill_9_of_a_foreground_run_ends_its_container(box, busybox):
    """The reference's container runs on unseen after its run is killed;
    bocker.py's dies with its run (row 54): ls says exited, start runs it
    again (what the run left, its veth and netns, taken first), rm takes all."""
    img = box.init(busybox)
    run = box.popen([BOCKER, 'run', img, READY], stdout=subprocess.DEVNULL)
    uuid = box.wait_ready()
    run.kill()
    run.wait()
    ended_then_started_again(box, uuid)


def test_the_same_life_under_podman(busybox, tmp_path):
    """The same scenario under a podman of the test's own (tests/engines.py),
    the image exported to it (compat/export-image): run -d with a name, stop
    (pid 1's TERM trap exits 7), start, stop again. The same observable
    outcome: the status each stop leaves, the log, the container kept."""
    import shutil
    import tempfile
    from support import ROOT, Box
    from sandbox import Sandbox
    import engines
    with Sandbox(engines=True) as sb:
        box = Box(sb)
        img = box.init(busybox)
        runroot = tempfile.mkdtemp(prefix='bocker-podman-')
        try:
            podman = engines.Podman(box, tmp_path / 'podman', runroot)
            r = podman(os.path.join(ROOT, 'compat', 'export-image'), img,
                       script='"$1" "$2" demo:v1 | $P load')
            assert r.code == 0, r
            base = engines.podman_run()        # run --rm ... --log-driver none --ulimit ...
            opts = ['run', '--network', 'none', '--pull', 'never'] + base[base.index('--ulimit'):]
            seen = {}
            for tool in ('podman', 'bocker'):
                if tool == 'podman':
                    r = podman(*opts[:1], '-d', '--name', 'web', *opts[1:], 'demo:v1',
                               'sh', '-c', SERVER)
                    status = lambda: podman('inspect', '--format', '{{.State.ExitCode}}', 'web').out.strip()  # noqa: E731
                    logs = lambda: podman('logs', 'web').out  # noqa: E731
                    cmd = podman
                else:
                    r = box.bocker('run', '-d', '--name', 'web', img, SERVER)
                    status = lambda: ls(box)[box.containers()[0]][1].split()[1].strip('()')  # noqa: E731
                    logs = lambda: box.bocker('logs', 'web').out  # noqa: E731
                    cmd = box.bocker
                assert r.code == 0, r
                until(lambda: logs() == 'up\n', timeout=60)
                assert cmd('stop', '-t', '5', 'web').code == 0
                first = (status(), logs())
                assert cmd('start', 'web').code == 0
                until(lambda: logs().count('up\n') == 2, timeout=60)
                assert cmd('stop', '-t', '5', 'web').code == 0
                seen[tool] = (first, status(), logs())
                assert cmd('rm', 'web').code == 0
            assert seen['bocker'] == seen['podman'] == (
                ('7', 'up\ngot TERM\n'), '7', 'up\ngot TERM\nup\ngot TERM\n'), seen
        finally:
            shutil.rmtree(runroot)
