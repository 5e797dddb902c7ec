"""The swarm end to end: 4 hospital peers as separate OS processes, real libp2p on loopback, real
CKKS, a real anvil chain, real hospital data.

One scenario covers the faults, so the suite stays short:

- round 1 is clean;
- round 2: the merge peer dies right before merging (a dead peer mid-round): it is replaced and
  attempt 1 completes; the dead peer is restarted afterwards and catches up;
- round 3: a participant dies right before committing and is restarted at once (a peer killed
  and restarted mid-round): the round completes, and the peer is back in the next round;
- round 4: a participant freezes (SIGSTOP: its connections stay open, nothing answers on them,
  a silently dead peer): the round finishes without it within one commit window, with no role
  replaced; it is woken (SIGCONT) once the round finalized and catches up;
- round 5: every hospital contributes again.
"""

from __future__ import annotations

import json
import os
import signal
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
from tests.e2e.faulty_peer import CRASH_EXIT

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

ROUNDS = 5
FAULTS = "before-merge@2:0,before-commit@3:2,freeze@4:3"
COMMIT_WINDOW = 12
MERGE_WINDOW = 10


@pytest.fixture
def net(tmp_path: Path) -> Iterator[network.LocalnetConfig]:
    # Short windows: a dead peer costs a window, and this test waits for two of them.
    params = network.swarm_params(
        join_window=12,
        key_window=10,
        commit_window=COMMIT_WINDOW,
        merge_window=MERGE_WINDOW,
        ack_window=12,
    )
    config = network.up(tmp_path, peers=4, params=params)
    try:
        yield config
    finally:
        network.down(tmp_path)


def _start(config: Path, after_round: int = 0) -> PeerProcess:
    """A peer process with the scenario's faults of rounds after ``after_round`` (a restarted
    process must not repeat the fault it just acted out)."""
    faults = ",".join(
        f for f in FAULTS.split(",") if int(f.split("@")[1].split(":")[0]) > after_round
    )
    return start_peer(config, env={"SWARM_TEST_FAULTS": faults}, module="tests.e2e.faulty_peer")


def _frozen(proc: PeerProcess) -> bool:
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def test_rounds_with_dead_merge_peer_dead_participant_frozen_peer_and_restarts(
    net: network.LocalnetConfig, tmp_path: Path
) -> None:
    """Dead merge peer mid-round, participant killed and restarted at once, a silently dead
    (frozen) participant, restarted peers catching up."""
    configs = write_peer_configs(net, tmp_path, rounds=ROUNDS)
    ledger = LedgerClient(RpcChain(net.chain_url), net.contract)
    procs = [_start(path) for path in configs]
    crashed: dict[int, int] = {}  # process index -> the round it died in, until restarted
    frozen: dict[int, int] = {}  # process index -> the round it froze in
    restarted: dict[int, tuple[int, str]] = {}  # round of the crash -> (index, address)
    addresses = {i: _address_of(net, i) for i in range(len(procs))}
    try:
        deadline = time.monotonic() + 480
        while time.monotonic() < deadline:
            current = ledger.current_round()
            for i, proc in enumerate(procs):
                died = i not in crashed and not proc.alive() and proc.process is not None
                if died and proc.process.returncode == CRASH_EXIT:  # type: ignore[union-attr]
                    crashed[i] = current  # the crash we asked for
                if i not in frozen and _frozen(proc):
                    frozen[i] = current
            for i, rid in list(crashed.items()):
                # The merge peer of round 2 comes back once it was replaced (it catches up);
                # the participant of round 3 at once, mid-round.
                if rid == 3 or _moved_on(ledger, rid):
                    procs[i] = _start(procs[i].config_path, after_round=rid)
                    restarted[rid] = (i, addresses[i])
                    del crashed[i]
            for i, rid in list(frozen.items()):
                if rid and ledger.last_finalized_round() >= rid:
                    os.kill(procs[i].pid, signal.SIGCONT)
                    frozen[i] = 0  # woken
            if ledger.last_finalized_round() >= ROUNDS and not any(p.alive() for p in procs):
                break
            time.sleep(0.3)
        _print_logs_on_failure(procs, ledger)
        assert ledger.last_finalized_round() >= ROUNDS, "the swarm did not finish its rounds"
        assert all(p.process and p.process.returncode == 0 for p in procs), "a peer failed"
    finally:
        for p in procs:
            if p.alive():
                os.kill(p.pid, signal.SIGCONT)
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
    # Round 3: order[2] died before committing and was restarted at once; the round completed
    # (with or without it, depending on whether it made the commit window), and the peer is
    # back in round 4.
    r3 = rounds[2]
    assert set(restarted) == {2, 3}
    assert restarted[3][1] == r3.order[2]
    assert len(r3.contributors) >= 3
    assert r3.order[2] in rounds[3].joined
    # Round 4: order[3] froze as the roles were drawn. No role was replaced, attempt 0
    # finalized without it, within one commit window (plus the merge) of the key.
    r4 = rounds[3]
    assert list(frozen.values()) == [0], "the frozen peer was never seen frozen and woken"
    assert r4.replacements == [] and r4.aggregate_attempt == 0
    assert r4.order[3] not in r4.contributors and len(r4.contributors) == 3
    posted = next(e for e in r4.events if e.name == "RoundKeyPosted").timestamp
    finalized = next(e for e in r4.events if e.name == "RoundFinalized").timestamp
    assert finalized - posted <= COMMIT_WINDOW + MERGE_WINDOW
    # Round 5: the woken peer caught up and contributes again, as does everyone.
    assert set(rounds[4].contributors) == set(r4.joined)

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


def _address_of(net: network.LocalnetConfig, index: int) -> str:
    return net.peers[index].address


def _print_logs_on_failure(procs: list[PeerProcess], ledger: LedgerClient) -> None:
    if ledger.last_finalized_round() >= ROUNDS:
        return
    for p in procs:
        lines = p.log_path.read_text(errors="replace").splitlines()
        print(f"==== {p.name}", *lines[-30:], sep="\n")
