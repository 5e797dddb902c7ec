"""Peers that act on the ledger's events, end to end: 4 hospital peers as OS processes on anvil.

Three peers hear the ledger only through its events: their reconciliation read is an hour
apart, so a step that waited for a look at the ledger would wait an hour and the test would
time out. The fourth hears no event at all (``deaf`` in tests/e2e/faulty_peer.py: its watch's
notes are dropped) and reads the ledger every second: the way a peer that missed events goes
on.

Fault exercised: a dead or silent peer's cousin, a peer that misses the ledger's events (a
dropped subscription, a note lost). It still joins, commits and acknowledges every round, no
round is lost, and every peer ends with the ledger's model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localnet import network
from localnet.peers import PeerProcess, start_peer, stop_peers, write_peer_configs
from swarm.audit import build_history
from swarm.ledger import LedgerClient, RpcChain
from swarm.training.checkpoint import latest_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

ROUNDS = 3
EVENTS_ONLY_RECONCILE_S = 3600.0
DEAF_RECONCILE_S = 1.0


@pytest.fixture
def net(tmp_path: Path) -> Iterator[network.LocalnetConfig]:
    config = network.up(tmp_path, peers=4, params=network.swarm_params())
    try:
        yield config
    finally:
        network.down(tmp_path)


def _reconcile_every(config: Path, seconds: float) -> None:
    text = config.read_text()
    text, n = re.subn(r"(?m)^reconcile_s = .*$", f"reconcile_s = {seconds!r}", text)
    assert n == 1, "the peer config has no reconcile_s line"
    config.write_text(text)


def test_peers_run_on_events_and_a_deaf_peer_still_finishes_every_round(
    net: network.LocalnetConfig, tmp_path: Path
) -> None:
    configs = write_peer_configs(net, tmp_path, rounds=ROUNDS)
    deaf = net.peers[0].address
    _reconcile_every(configs[0], DEAF_RECONCILE_S)
    for path in configs[1:]:
        _reconcile_every(path, EVENTS_ONLY_RECONCILE_S)
    ledger = LedgerClient(RpcChain(net.chain_url), net.contract)
    procs: list[PeerProcess] = [
        start_peer(path, env={"SWARM_TEST_FAULTS": "deaf" if i == 0 else ""}, module=_FAULTY)
        for i, path in enumerate(configs)
    ]
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and any(p.alive() for p in procs):
            time.sleep(0.5)
        logs = {p.name: p.log_path.read_text() for p in procs}
        if ledger.finalized_count() < ROUNDS or any(p.alive() for p in procs):
            for name, text in logs.items():
                print(f"==== {name}", *text.splitlines()[-40:], sep="\n")
        assert ledger.finalized_count() >= ROUNDS, "rounds were lost"
        assert all(p.process and p.process.returncode == 0 for p in procs), "a peer failed"
    finally:
        stop_peers(procs)

    # The deaf peer heard nothing, and took part in every round all the same.
    assert "fault deaf: dropped" in logs[procs[0].name]
    history = build_history(ledger.events())
    for rid in range(1, ROUNDS + 1):
        assert deaf in history.rounds[rid].contributors, f"round {rid} went on without it"
    # The others were woken by events alone: not one reconciliation read in their loops.
    for p in procs[1:]:
        wakes = re.search(r"looked at the ledger after: (.*)", logs[p.name])
        assert wakes is not None, logs[p.name][-2000:]
        counts = dict(item.split("=") for item in wakes.group(1).split())
        assert "reconcile" not in counts, counts
        assert int(counts.get("RoundFinalized", 0)) >= 1, counts
    # Everyone ends with the ledger's model.
    latest = ledger.latest_model()
    for path in configs:
        checkpoint = latest_checkpoint(path.parent / "data" / "checkpoints")
        assert checkpoint is not None and checkpoint.model_hash == latest


_FAULTY = "tests.e2e.faulty_peer"
