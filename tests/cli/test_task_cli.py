"""`swarm task info`: what the ledger records for a task (no chain needed)."""

from __future__ import annotations

import json

import pytest

from cli.app import run
from swarm.training.task_id import task_fingerprint


def test_task_info_prints_id_hash_and_parameter_count(capsys: pytest.CaptureFixture[str]) -> None:
    fp = task_fingerprint("heart-disease-uci/mlp", 2)
    assert run(["task", "info", "heart-disease-uci/mlp", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "0x" + fp.task_id.hex() in out and "0x" + fp.initial_model_hash.hex() in out
    assert str(fp.param_count) in out
    assert run(["task", "info", "heart-disease-uci/mlp", "--seed", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["task_id"] == "0x" + fp.task_id.hex()
    assert data["initial_model_hash"] == "0x" + fp.initial_model_hash.hex()
    assert data["param_count"] == fp.param_count


def test_task_info_of_an_unknown_task_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["task", "info", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown task 'nope'")
