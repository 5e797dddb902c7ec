"""The swarm end to end: 4 hospital peers as separate OS processes, real libp2p on loopback, real
CKKS, a real anvil chain, real hospital data.

One scenario covers the faults, so the suite stays short: round 1 is clean; in round 2 the merge
peer dies right before merging (a dead peer mid-round: it is replaced and the round completes);
in round 3 a participant dies before committing (it is left out and the round completes); each
dead peer is restarted and catches up from the latest finalized model; round 4 is clean again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localnet import network
from localnet.peers import PeerProcess, peer_dir, start_peer, stop_peer, write_peer_configs
from swarm.audit import build_history
from swarm.audit.verify import Severity, verify
from swarm.ledger import LedgerClient, RoundState, RpcChain
from swarm.training.checkpoint import checkpoint_path, latest_checkpoint, read_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

ROUNDS = 4
FAULTS = "before-merge@2:0,before-commit@3:2"


@pytest.fixture
def net(tmp_path: Path) -> Iterator[network.LocalnetConfig]:
    # Short windows: a dead peer costs a window, and this test waits for two of them.
    params = network.swarm_params(
        join_window=12, key_window=10, commit_window=12, merge_window=10, ack_window=12
    )
    config = network.up(tmp_path, peers=4, params=params)
    try:
        yield config
    finally:
        network.down(tmp_path)


def test_rounds_with_dead_merge_peer_dead_participant_and_restarts(
    net: network.LocalnetConfig, tmp_path: Path
) -> None:
    """Dead merge peer mid-round, dead participant before committing, restarted peers."""
    configs = write_peer_configs(net, tmp_path, rounds=ROUNDS)
    ledger = LedgerClient(RpcChain(net.chain_url), net.contract)
    procs = [start_peer(path, env={"SWARM_FAULT": FAULTS}) for path in configs]
    crashed: dict[int, int] = {}  # process index -> the round it died in
    restarted = 0
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            current = ledger.current_round()
            for i, proc in enumerate(procs):
                died = i not in crashed and not proc.alive() and proc.process is not None
                if died and proc.process.returncode == 137:  # type: ignore[union-attr]
                    crashed[i] = current  # the crash we asked for
            for i, rid in list(crashed.items()):
                if _moved_on(ledger, rid):
                    # Start the same hospital again (same faults: any of the four processes may
                    # hold the faulty position of a later round); it must catch up.
                    procs[i] = start_peer(procs[i].config_path, env={"SWARM_FAULT": FAULTS})
                    del crashed[i]
                    restarted += 1
            if ledger.last_finalized_round() >= ROUNDS and not any(p.alive() for p in procs):
                break
            time.sleep(0.3)
        _print_logs_on_failure(procs, ledger)
        assert ledger.last_finalized_round() >= ROUNDS, "the swarm did not finish its rounds"
        assert all(p.process and p.process.returncode == 0 for p in procs), "a peer failed"
    finally:
        for p in procs:
            stop_peer(p)

    history = build_history(ledger.events())
    rounds = [history.rounds[r] for r in range(1, ROUNDS + 1)]
    assert all(r.outcome == "finalized" for r in rounds)
    # Round 2: the merge peer (order[0]) died; the first fallback merged attempt 1 instead.
    r2 = rounds[1]
    assert [(x.role, x.previous, x.next) for x in r2.replacements] == [
        ("merge peer", r2.order[0], r2.order[2])
    ]
    assert r2.aggregate_attempt == 1 and r2.aggregate_by == r2.order[2]
    # Round 3: order[2] died before committing; the round completed without it.
    r3 = rounds[2]
    assert r3.order[2] not in {c.account for c in r3.commits}
    assert r3.order[2] not in r3.contributors and len(r3.contributors) == 3
    assert restarted == 2

    # Every peer's checkpoint of every round it holds is bit-identical to the ledger's model,
    # and every peer, the restarted ones included, ends on the ledger's latest model.
    final = {r.round_id: r.final_model for r in rounds}
    for entry in net.peers:
        folder = peer_dir(tmp_path, entry) / "data" / "checkpoints"
        latest = latest_checkpoint(folder)
        assert latest is not None and latest.model_hash == ledger.latest_model(), entry.name
        for rid, model in final.items():
            path = checkpoint_path(folder, rid)
            if path.exists():
                assert read_checkpoint(path).model_hash == model, (entry.name, rid)
    # The merge peer never held the secret key of the attempt it merged (its own round log).
    merged = held = 0
    for entry in net.peers:
        log_path = peer_dir(tmp_path, entry) / "data" / "rounds.jsonl"
        for line in log_path.read_text().splitlines() if log_path.exists() else []:
            record = json.loads(line)
            if record["merged"]:
                merged += 1
                assert record["attempt"] not in record["secret_key_attempts"], record
            else:
                held += record["attempt"] in record["secret_key_attempts"]
    assert merged == ROUNDS
    assert held >= 2 * ROUNDS  # the key holders did hold it: the record is not empty by default
    errors = [f for f in verify(history) if f.severity == Severity.ERROR]
    assert errors == []
    assert ledger.round(ROUNDS).state == RoundState.FINALIZED


def _moved_on(ledger: LedgerClient, round_id: int) -> bool:
    """Whether a crashed peer's round got past the step it died in, so restarting it now shows
    the round completing without it: past a merge peer's replacement, or past the commits."""
    info = ledger.round(round_id)
    return info.attempt > 0 or info.state >= RoundState.ACKNOWLEDGING


def _print_logs_on_failure(procs: list[PeerProcess], ledger: LedgerClient) -> None:
    if ledger.last_finalized_round() >= ROUNDS:
        return
    for p in procs:
        lines = p.log_path.read_text(errors="replace").splitlines()
        print(f"==== {p.name}", *lines[-30:], sep="\n")
