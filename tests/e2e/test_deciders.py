"""Deciders and stand-bys, end to end: 4 hospital peers as OS processes on anvil with a
1M-parameter model (the heart study with an MLP), masks on.

For a model this size only the first majority of key holders in the drawn order decrypts the
aggregate (swarm.protocol.deciders: 2 of the 3 key holders); the third stands by and fetches
the finalized model. Round 1 is healthy: two acknowledgements finalize it and all four peers end
on the same model. In round 2 the first decider dies right before it decrypts (fault: a dead
peer, ``before-decrypt`` in tests/e2e/faulty_peer.py); the stand-by decrypts once half the ack
window passed, and its acknowledgement with the other decider's finalizes the round: no round
is lost to a dead decider.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localnet import network
from localnet.peers import PeerProcess, start_peer, stop_peer, write_peer_configs
from swarm.audit import build_history
from swarm.audit.verify import Severity, verify
from swarm.ledger import LedgerClient, RpcChain
from swarm.peer.decide import STANDBY_MIN_PARAMS
from swarm.protocol import ack_eligible, deciders
from tests.support.heart import heart_mlp_task

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

ROUNDS = 2


@pytest.fixture
def net(tmp_path: Path) -> Iterator[network.LocalnetConfig]:
    task = network.local_task(
        heart_mlp_task(tmp_path, STANDBY_MIN_PARAMS),
        network.HEART_DATA,
        network.HEART_SITES,
        peers=4,
    )
    assert task.fingerprint.param_count >= STANDBY_MIN_PARAMS
    # a short ack window: the stand-by waits half of it for the dead decider
    params = network.swarm_params(fingerprint=task.fingerprint, hospitals=4, ack_window=24)
    config = network.up(tmp_path / "net", params=params, task=task)
    try:
        yield config
    finally:
        network.down(tmp_path / "net")


def test_a_stand_by_decrypts_in_place_of_a_dead_decider(
    net: network.LocalnetConfig, tmp_path: Path
) -> None:
    configs = write_peer_configs(net, tmp_path / "net", rounds=ROUNDS)
    ledger = LedgerClient(RpcChain(net.chain_url), net.contract)
    # position 1 of round 2's drawn order is its first key holder: a decider (0 merges)
    faults = "before-decrypt@2:1"
    procs: list[PeerProcess] = [
        start_peer(path, env={"SWARM_TEST_FAULTS": faults}, module=_FAULTY) for path in configs
    ]
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and ledger.finalized_count() < ROUNDS:
            time.sleep(0.5)
        if ledger.finalized_count() < ROUNDS:
            for p in procs:
                print(f"==== {p.name}", *p.log_path.read_text().splitlines()[-30:], sep="\n")
        assert ledger.finalized_count() >= ROUNDS, "a dead decider cost the round"
        time.sleep(3)  # the stand-bys fetch the finalized model
    finally:
        for p in procs:
            stop_peer(p)

    history = build_history(ledger.events())
    for rid in (1, 2):
        r = history.rounds[rid]
        assert r.outcome == "finalized", f"round {rid}: {r.outcome}"
        eligible = ack_eligible(r.contributors, r.merge_peers[-1])
        chosen = deciders(r.order, eligible, (), len(eligible))
        assert len(eligible) == 3 and len(chosen) == 2
        if rid == 1:
            # healthy: the deciders' two acknowledgements finalize; the stand-by never decrypted
            assert set(r.acks) == set(chosen), f"round 1 acks {sorted(r.acks)}"
        else:
            dead = r.order[1]
            assert dead in chosen and dead not in r.acks
            standby = next(a for a in eligible if a not in chosen)
            assert standby in r.acks, "the stand-by did not decrypt for the dead decider"
            assert len(set(r.acks.values())) == 1
    # every live peer holds round 2's model: the stand-bys fetched it
    final = history.rounds[ROUNDS].final_model
    assert final is not None
    for p in procs:
        log = p.log_path.read_text()
        if "crashing on purpose" in log:
            continue
        assert f"finalized round={ROUNDS} model={final.hex()}" in log, p.name
    findings = verify(history)
    assert not [f for f in findings if f.severity == Severity.ERROR]


_FAULTY = "tests.e2e.faulty_peer"
