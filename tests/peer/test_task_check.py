"""A peer whose task is not the consortium's stops at start, with one line naming both ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.config import PeerConfig
from swarm.errors import TaskMismatchError
from swarm.ledger import EmbeddedChain
from swarm.peer import Peer
from swarm.training.task_id import task_id
from tests.conftest import make_consortium, make_params


def test_peer_refuses_a_task_id_mismatch(tmp_path: Path) -> None:
    ledger_id = task_id("heart-disease-uci/mlp")
    c = make_consortium(EmbeddedChain(), 3, make_params(task_id=ledger_id))
    me = c.hospitals[0]
    config = PeerConfig(
        keystore=tmp_path / "key.json",
        chain_url="embedded",
        contract=c.admin.address,
        site="Cleveland",
        data_dir=tmp_path / "data",
        task="heart-disease-uci/logreg",
    )
    with pytest.raises(TaskMismatchError) as exc:
        Peer(config, me, c.client(me))
    text = str(exc.value)
    assert "0x" + ledger_id.hex() in text
    assert "0x" + task_id("heart-disease-uci/logreg").hex() in text
    assert "operator" in text
    assert not (tmp_path / "data").exists()  # refused before anything was loaded or written


def test_peer_refuses_an_empty_account_and_warns_on_a_low_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a chain whose gas costs (1 gwei here), a hospital without ETH cannot send a single
    transaction: the peer says so at start; with little ETH it warns with what a round costs."""
    from swarm.errors import InsufficientFundsError
    from swarm.identity import Identity
    from swarm.ledger.gas import ROUND_GAS_MAX
    from swarm.training.task_id import task_fingerprint

    fp = task_fingerprint("heart-disease-uci/logreg")
    c = make_consortium(
        EmbeddedChain(),
        3,
        make_params(task_id=fp.task_id, initial_model_hash=fp.initial_model_hash),
    )
    poor = Identity.generate()
    c.admin.add_member_identity(poor, "Poor", ["/ip4/127.0.0.1/tcp/4100"])
    config = PeerConfig(
        keystore=tmp_path / "key.json",
        chain_url="embedded",
        contract=c.admin.address,
        site="Cleveland",
        data_dir=tmp_path / "data",
    )
    ledger = c.admin.as_identity(poor)
    with pytest.raises(InsufficientFundsError) as exc:
        Peer(config, poor, ledger)
    assert poor.address in str(exc.value) and "must send it ETH" in str(exc.value)
    c.chain.fund(poor.address, 2 * ROUND_GAS_MAX * c.chain.w3.eth.gas_price)
    with caplog.at_level("WARNING", logger="swarm.peer.runner"):
        Peer(config, poor, ledger)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("enough for 2 rounds" in w and poor.address in w for w in warnings), warnings
