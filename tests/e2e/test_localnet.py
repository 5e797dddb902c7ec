"""`swarm localnet up`: the swarm as long-lived background processes a person can watch and stop."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cli.app import run
from localnet import network
from localnet.peers import load_pids
from swarm.config import PeerConfig
from swarm.ledger import LedgerClient, RpcChain
from swarm.training.taskfile import TaskFile

pytestmark = [pytest.mark.slow, pytest.mark.anvil]


def test_localnet_runs_rounds_until_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--dir", str(tmp_path / "ln")]
    assert run(["localnet", "up", "--peers", "3", *where]) == 0
    try:
        config = json.loads((tmp_path / "ln" / "localnet.json").read_text())
        ledger = LedgerClient(RpcChain(config["chain_url"]), config["contract"])
        # The default: the heart study's task file, each hospital with only its own CSV.
        assert ledger.params().task_id == TaskFile.load(network.HEART_TASK_FILE).task_id
        peer_configs = [PeerConfig.load(p.config_path) for p in load_pids(tmp_path / "ln")]
        assert [c.task_file for c in peer_configs] == [network.HEART_TASK_FILE] * 3
        assert [c.data for c in peer_configs] == list(network.HEART_DATA[:3])
        deadline = time.monotonic() + 180
        while ledger.last_finalized_round() < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ledger.last_finalized_round() >= 2, "the background swarm finalized no rounds"
        peers = load_pids(tmp_path / "ln")
        assert len(peers) == 3 and all(p.alive() for p in peers)
    finally:
        assert run(["localnet", "down", *where]) == 0
    assert not any(p.alive() for p in load_pids(tmp_path / "ln"))
    capsys.readouterr()
