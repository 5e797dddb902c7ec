"""A member that stalls rounds, end to end: 4 hospital peers as OS processes on anvil, one of
which joins every round and never commits (``stall`` in tests/e2e/faulty_peer.py).

Fault exercised: a misbehaving member. Without a penalty it would hold every round until the
commit deadline, at no cost to itself. The ledger records each miss (``CommitMissed``); at the
consortium's threshold (here 2 in a row) the member sits out the next rounds (``SittingOut``,
its join refused, its peer waits instead of retrying), rounds without it close as soon as the
others committed, and `swarm audit verify` shows who stalled. No round is lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.app import run
from localnet import network
from localnet.peers import PeerProcess, start_peer, stop_peer, write_peer_configs
from swarm.audit import build_history
from swarm.audit.verify import Severity, verify
from swarm.ledger import LedgerClient, RpcChain

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

ROUNDS = 5
MAX_MISSED = 2
SIT_OUT = 2


@pytest.fixture
def net(tmp_path: Path) -> Iterator[network.LocalnetConfig]:
    # Short windows: each stalled round waits out the commit window.
    params = network.swarm_params(
        join_window=12,
        key_window=10,
        commit_window=10,
        merge_window=10,
        ack_window=12,
        max_missed_commits=MAX_MISSED,
        sit_out_rounds=SIT_OUT,
    )
    config = network.up(tmp_path, peers=4, params=params)
    try:
        yield config
    finally:
        network.down(tmp_path)


def test_a_member_that_stalls_is_recorded_benched_and_shown_by_the_audit(
    net: network.LocalnetConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = write_peer_configs(net, tmp_path, rounds=ROUNDS)
    staller = net.peers[0].address
    ledger = LedgerClient(RpcChain(net.chain_url), net.contract)
    procs: list[PeerProcess] = [
        start_peer(path, env={"SWARM_TEST_FAULTS": "stall" if i == 0 else ""}, module=_FAULTY)
        for i, path in enumerate(configs)
    ]
    try:
        deadline = time.monotonic() + 420
        honest = procs[1:]
        while time.monotonic() < deadline and any(p.alive() for p in honest):
            time.sleep(0.5)
        if ledger.finalized_count() < ROUNDS:
            for p in procs:
                print(f"==== {p.name}", *p.log_path.read_text().splitlines()[-30:], sep="\n")
        assert ledger.finalized_count() >= ROUNDS, "the swarm lost rounds to a staller"
        assert all(p.process and p.process.returncode == 0 for p in honest), "a peer failed"
    finally:
        for p in procs:
            stop_peer(p)

    history = build_history(ledger.events())
    missed = [e for e in history.events if e.name == "CommitMissed"]
    benched = [e for e in history.events if e.name == "SittingOut"]
    assert {e.args["account"] for e in missed} == {staller}
    assert [e.args["consecutiveMisses"] for e in missed][:MAX_MISSED] == list(
        range(1, MAX_MISSED + 1)
    )
    assert benched and benched[0].args["account"] == staller
    start, until = benched[0].args["fromRound"], benched[0].args["untilRound"]
    assert until - start + 1 == SIT_OUT
    for rid in range(start, min(until, ROUNDS) + 1):
        r = history.rounds[rid]
        assert staller not in r.joined, f"round {rid}: the benched member joined"
    for r in history.rounds.values():
        assert r.outcome == "finalized", f"round {r.round_id}: {r.outcome}"
        assert staller not in r.contributors
    # The benched peer waited instead of retrying joins the contract refuses: at most one
    # refusal (said once as `sitting out`; none when the others closed the window first, as a
    # member sitting out does not hold back the early close), never a failed-join warning.
    log = procs[0].log_path.read_text()
    assert sum(" sitting out " in line for line in log.splitlines()) <= len(benched)
    assert not [line for line in log.splitlines() if "failed" in line and "Join" in line]

    # The auditor sees who stalled, as warnings; the history breaks no rule.
    findings = verify(history)
    assert not [f for f in findings if f.severity == Severity.ERROR]
    assert {f.account for f in findings if f.kind.value == "commit-missed"} == {staller}
    code = run(["audit", "verify", "--chain-url", net.chain_url, "--contract", net.contract])
    out = capsys.readouterr().out
    assert code == 0 and "commit-missed" in out


_FAULTY = "tests.e2e.faulty_peer"
