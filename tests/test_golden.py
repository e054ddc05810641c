"""The golden-output suite: every scenario of tests/golden.py, run in a fresh
sandbox, compared with its plain-text golden file in fixtures/golden/.

- test_bocker_py[NAME]: bocker.py (bocker.sh) against <NAME>.txt, the
  reference's recorded output; for a scenario that declares rows of
  compat/DIVERGENCES.md (its test id ends in --diverges-row-N) against
  <NAME>.bocker.txt, what bocker.py does instead. Interop scenarios pin some
  steps to the reference (state made by one tool, used by the other) and so
  need it.
- test_reference[NAME]: the reference still gives <NAME>.txt (where the
  reference is present, as in CI).
- extension scenarios (ext-NAME, golden.EXT): what bocker.py does beyond the
  bash. test_bocker_py[ext-NAME] replays bocker.py against ext-NAME.txt, its
  own recorded document; test_extension_is_beyond_the_reference[ext-NAME]
  checks that the reference gives another document (else the scenario is an
  ordinary one, to be compared with the reference).
Record the golden files again with `make golden`. Needs root."""
import os

import pytest

from support import CONFLICT, unclash
from sandbox import FLAVOURS
from golden import (EXT, GOLDEN_DIR, REFERENCE, SCENARIOS, TRACE_READINGS, Normaliser, Runner,
                    S, X, _self_call, command_of, declared_rows, diff, divergence_titles,
                    expected_files, golden_path, read_both, reading_row, run_scenario)

HAVE_REFERENCE = os.path.isfile(REFERENCE)


def scenario_id(sc):
    rows = declared_rows(sc)
    return sc.name + ('--diverges-row-%s' % '-'.join(map(str, rows)) if rows else '')


def reference_id(sc):
    return sc.name


def expected(path):
    assert os.path.isfile(path), '%s missing: record it with `make golden`' % path
    with open(path, encoding='utf-8') as f:
        return f.read()


# Each scenario in the 'sandbox' flavour; those that run containers or pull
# also in the 'unshare' flavour (the host's /sys kept: tests/sandbox.py).
CASES = [pytest.param(sc, flavour, id=scenario_id(sc) + ('' if flavour == 'sandbox' else '--' + flavour))
         for sc in SCENARIOS for flavour in FLAVOURS
         if flavour == 'sandbox' or sc.containers]


@pytest.mark.parametrize('sc, flavour', CASES)
def test_bocker_py(sc, flavour):
    if sc.interop and not HAVE_REFERENCE:
        pytest.skip('interop scenario: needs the reference at %s' % REFERENCE)
    titles = divergence_titles()
    for row in sc.diverges:        # named in the report (pytest -rA / -s)
        print('diverges: row %d (%s)' % (row, titles.get(row, '?')))
    path = golden_path(sc, 'py')
    want = expected(path)
    if not sc.beyond:                         # an extension's document is bocker.py's own
        want = read_both(want)                # the readings of both documents (row 13)
    applied = set()
    got = run_scenario(sc, 'py', applied=applied, flavour=flavour)
    for name in sorted(applied):
        row = reading_row(name)
        print('diverges: row %s (%s): trace read as the reference\'s' % (row, name))
        assert row is not None, (
            'bocker.py differs from the reference in every run/exec (%s) and no row of '
            'compat/DIVERGENCES.md mentions any of %r: declare it there' % (name, TRACE_READINGS[name][0]))
    assert got == want, '\n' + diff(want, got, path)


COMPARED = [sc for sc in SCENARIOS if not sc.beyond]
EXTENSIONS = [sc for sc in SCENARIOS if sc.beyond]


@pytest.mark.skipif(not HAVE_REFERENCE, reason='the reference is not at %s' % REFERENCE)
@pytest.mark.parametrize('sc', COMPARED, ids=reference_id)
def test_reference(sc):
    path = golden_path(sc, 'ref')
    want = expected(path)
    got = run_scenario(sc, 'ref')
    assert got == want, '\n' + diff(want, got, path)


@pytest.mark.skipif(not HAVE_REFERENCE, reason='the reference is not at %s' % REFERENCE)
@pytest.mark.parametrize('sc', EXTENSIONS, ids=reference_id)
def test_extension_is_beyond_the_reference(sc):
    """The reference, given an extension's steps, does not do what its
    golden file says bocker.py does (the header lines aside)."""
    print('beyond the bash: %s' % sc.beyond)

    def body(doc):
        return [l for l in doc.splitlines() if not l.startswith('# ')]
    ours = expected(golden_path(sc, 'py'))
    assert ours.startswith('# golden: %s\n# beyond the bash: %s\n' % (sc.name, sc.beyond)), ours[:200]
    assert body(run_scenario(sc, 'ref')) != body(ours), \
        '%s: the reference does this too: make it a scenario compared with the reference' % sc.name


def test_an_extension_is_named_and_read_as_one():
    """ext-* names extensions and only them; they have golden files of
    their own (ext-NAME.txt) and declare no row (nothing is read as the
    reference's); bocker.py's call of itself reads `bocker.py __enter__`."""
    assert EXTENSIONS and all(sc.name.startswith('ext-') for sc in EXTENSIONS)
    assert not any(sc.name.startswith('ext-') for sc in COMPARED)
    for sc in EXTENSIONS:
        assert golden_path(sc, 'py') == os.path.join(GOLDEN_DIR, sc.name + '.txt')
        assert declared_rows(sc) == [] and scenario_id(sc) == sc.name
    with pytest.raises(AssertionError):
        S('not-ext', [X('help')], beyond='something')
    with pytest.raises(AssertionError):
        EXT('diverging', [X('help')], beyond='something', diverges=(1,))
    line = ("+ cgexec -g cpu,cpuacct,memory:ps_1 -g pids:ps_1 nsenter -t 99 -u -i -n -p "
            "'/a b/.venv/bin/python' -I -S -c 'import sys;import bocker' '/a b' __join__ 99 cat /x")
    assert _self_call(line) == ('+ cgexec -g cpu,cpuacct,memory:ps_1 -g pids:ps_1 nsenter -t 99 '
                                '-u -i -n -p bocker.py __join__ PID cat /x')
    assert Normaliser().text(_self_call(line)).startswith(
        '+ cgexec -g cpu,cpuacct,memory:ps_1 -g pids:ps_1 nsenter -t PID ')
    line = ("+ unshare -fmuip --mount-proc /usr/bin/python3 -I -S -c 'import bocker' /srv "
            "__enter__ /var/lib/bocker/containers/ps_1/merged /bin/sh -c 'echo a  b'")
    assert _self_call(line) == ("+ unshare -fmuip --mount-proc bocker.py __enter__ "
                                "/var/lib/bocker/containers/ps_1/merged /bin/sh -c 'echo a  b'")


def test_golden_files_are_the_scenarios():
    """No golden file without its scenario, none missing."""
    assert sorted(os.listdir(GOLDEN_DIR)) == sorted(expected_files())


@pytest.mark.parametrize('sc', [s for s in SCENARIOS if s.diverges], ids=scenario_id)
def test_declared_divergence_is_real(sc):
    """A scenario that declares a divergence names existing rows, and
    bocker.py's golden differs from the reference's in more than the header."""
    titles = divergence_titles()
    assert all(row in titles for row in sc.diverges), (sc.diverges, sorted(titles))

    def body(path):
        return [l for l in expected(path).splitlines() if not l.startswith('# ')]
    assert body(golden_path(sc, 'py')) != body(golden_path(sc, 'ref')), \
        '%s: bocker.py does what the reference does; drop diverges=%s' % (sc.name, sc.diverges)


def test_normaliser_ids_addresses_and_macs():
    n = Normaliser()
    text = ('Created: img_42043\nveth1_ps_42100 inet 172.18.0.1/24 src 172.18.0.1 '
            'via 172.18.0.1 02:42:ac:11:001:00 fe80::42:acff:fe11:100/64\n'
            'ps_42101 172.18.0.11/24 ps_42110 172.18.0.110/24 172.18.0.11 ps_42002 inet 172.18.0.2 '
            '02:42:ac:11:000:02 02:42:ac:11:00:02 fe80::42:acff:fe11:2/64 nsenter -t 1234')
    assert n.text(text) == (
        'Created: img_1\nveth1_ps_1 inet IP_1/24 src IP_1 via 172.18.0.1 MAC_1 LINK_LOCAL_1/64\n'
        'ps_2 IP_2/24 ps_3 IP_3/24 172.18.0.11 ps_4 inet IP_4 MAC_4 MAC_4 LINK_LOCAL_4/64 '
        'nsenter -t 1234')
    assert n.text('+ nsenter -t 4321 -m') == '+ nsenter -t PID -m'
    assert n.text('%s: line 42: $1: unbound variable' % REFERENCE) == \
        'PROG: line N: $1: unbound variable'


def test_addresses_read_alike_whatever_ids_are_drawn():
    """A container's address is bocker.py's number of the id's last three
    digits and the reference's `sed 's/0//g'` of them; both read as IP_k of
    the k-th container, for every id and for every two ids whose addresses
    can meet (ps_42011 and ps_42110: .11 and .110, or .11 twice), either way
    round: no draw of ids changes a golden document."""
    def lines(ps, addr):
        return ['+ ip netns exec netns_%s ip addr add %s/24 dev veth1_%s' % (ps, addr, ps),
                '2: veth1_%s    inet %s/24 scope global veth1_%s' % (ps, addr, ps),
                '172.18.0.0/24 dev veth1_%s proto kernel scope link src %s' % (ps, addr),
                'default via 172.18.0.1 dev veth1_%s' % ps]

    def octets(n):
        digits = str(n)[-3:]
        return {str(int(digits)), digits.replace('0', '')}
    derive = {'py': lambda n: str(int(str(n)[-3:])), 'ref': lambda n: str(n)[-3:].replace('0', '')}
    ids = range(42002, 42255)
    groups = [(a,) for a in ids] + [(a, b) for a in ids for b in ids
                                    if a != b and octets(a) & octets(b)]
    assert len(groups) > 253
    for group in groups:
        want = [l for k in range(len(group)) for l in lines('ps_%d' % (k + 1), 'IP_%d' % (k + 1))]
        for tool, octet in derive.items():
            n = Normaliser()
            got = [n.text(l) for ps in group
                   for l in lines('ps_%d' % ps, '172.18.0.' + octet(ps))]
            assert got == want, (tool, group)


def test_a_clash_line_is_dropped_only_before_the_output_and_only_where_possible():
    assert unclash(CONFLICT * 2 + 'out\n', True) == 'out\n'
    assert unclash(CONFLICT + 'out\n', False) == CONFLICT + 'out\n'
    assert unclash('out\n' + CONFLICT, True) == 'out\n' + CONFLICT
    assert unclash('', True) == ''
    assert command_of(['--MEM_LIMIT=64', '--TRACE', 'run', 'img_1', 'true']) == 'run'
    assert command_of([]) is None


@pytest.mark.parametrize('mode, tool, held, clash', [
    ('ref', None, (True, True), True),      # the reference's run drew a taken id: again
    ('py', None, (True, True), False),      # bocker.py's retry is a clean one: compared
    ('ref', None, (True, False), False),    # no container held: no clash possible, compared
    ('py', 'ref', (True, True), True),      # a step pinned to the reference
])
def test_a_reference_run_that_drew_a_taken_id_runs_the_scenario_again(mode, tool, held, clash):
    """test_reference[run-container-id-as-image] once failed by chance: the
    reference's run drew the id of the container the scenario held, and its
    retry ran on past the failed copy (exit 0, chroot's error). Such a run
    marks the scenario to be run again, as a clashing reference init does."""
    sc = [s for s in SCENARIOS if s.name == 'run-container-id-as-image'][0]
    runner = Runner(sc, mode, None)
    runner.known = {'img': ['img_42050'], 'ps': ['ps_42100']}
    step = X('run', '{ps1}', 'true', tool=tool)
    out = CONFLICT + 'chroot: cannot change root directory\n'
    runner.record(3, step, ['run', 'ps_42100', 'true'], 0, out, '', held)
    assert runner.clash is clash


def test_a_trace_line_inside_another_commands_message_is_taken_apart():
    """The reference's `ls ... | grep -qw` under bash -x: grep's trace line
    once landed between ls's `ls: ` and the rest of its message (one stderr,
    two writers), and test_reference failed by chance."""
    from golden import split_trace
    err = ("ls: ++ grep -qw ps_1\ncannot access '/var/lib/bocker/containers': "
           "No such file or directory\n+ ip link add dev veth0_ps_1 type veth\n")
    rest, trace = split_trace(err)
    assert rest == "ls: cannot access '/var/lib/bocker/containers': No such file or directory\n"
    assert trace == ['+ ip link add dev veth0_ps_1 type veth']
