"""The peer's privacy budget check (swarm.peer.privacy), without a ledger or a network.

Fault exercised: a hospital whose next round would take its cumulative epsilon past the
consortium's budget. It must refuse before touching a patient row (no join, no training), say
so once, and compare as the ledger will (micro-epsilon, rounded up), so that no commitment it
makes can revert on the budget.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from swarm.ledger import Params
from swarm.ledger.client import epsilon_to_micro
from swarm.peer import privacy
from swarm.training import Mechanism, TrainConfig

PARAMS = Params(
    min_peers=3,
    join_window=30,
    key_window=30,
    commit_window=30,
    merge_window=30,
    ack_window=30,
    ckks_params_id=1,
    task_id=b"\x07" * 32,
    initial_model_hash=b"\x01" * 32,
    metrics_enabled=True,
    epsilon_budget=8.0,
    dp_delta=1e-5,
    dp_noise_multiplier=1.0,
    dp_clip_norm=1.0,
)
CFG = TrainConfig(epochs=4, batch_size=32)


def fake_peer(tmp_path: Path) -> Any:
    """The attributes swarm.peer.privacy reads: a stand-in around the code under test."""
    events: list[tuple[str, dict[str, Any]]] = []
    return SimpleNamespace(
        data=SimpleNamespace(train_samples=200),
        privacy=privacy.PrivacyKeeper(tmp_path / "privacy.json"),
        privacy_spent=False,
        events=events,
        emit=lambda kind, **data: events.append((kind, data)),
    )


def test_a_fresh_account_affords_a_round_within_the_budget(tmp_path: Path) -> None:
    peer = fake_peer(tmp_path)
    ok, projected = privacy.affordable(peer, PARAMS, CFG)
    assert ok and 0 < projected < PARAMS.epsilon_budget


def test_a_round_past_the_budget_is_refused_and_said_once(tmp_path: Path) -> None:
    peer = fake_peer(tmp_path)
    account = peer.privacy.account
    for _ in range(4):
        account.record(Mechanism(noise_multiplier=1.0, sample_rate=32 / 200, steps=28))
    spent = account.epsilon(PARAMS.dp_delta)
    tight = dataclasses.replace(PARAMS, epsilon_budget=spent + 0.01)
    ok, projected = privacy.affordable(peer, tight, CFG)
    assert not ok and projected > tight.epsilon_budget
    privacy.refuse(peer, tight, 5, projected)
    privacy.refuse(peer, tight, 6, projected)
    assert peer.privacy_spent
    assert [kind for kind, _ in peer.events] == ["privacy budget spent"]
    ((_, data),) = peer.events
    assert data["budget"] == tight.epsilon_budget and data["would_be"] > data["epsilon"]


def test_the_budget_is_compared_in_the_ledgers_units(tmp_path: Path) -> None:
    """The ledger holds epsilons in micro-epsilon and rounds spending up: a projection is
    affordable exactly when its rounded-up value fits the budget on chain."""
    peer = fake_peer(tmp_path)
    _, projected = privacy.affordable(peer, PARAMS, CFG)
    on_chain = epsilon_to_micro(projected)  # what the commit would record
    fits = dataclasses.replace(PARAMS, epsilon_budget=on_chain / 1e6)
    one_short = dataclasses.replace(PARAMS, epsilon_budget=(on_chain - 1) / 1e6)
    assert privacy.affordable(peer, fits, CFG)[0]
    assert not privacy.affordable(peer, one_short, CFG)[0]
