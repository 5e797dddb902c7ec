"""`swarm task info`: what the ledger records for a task (no chain needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.app import run
from swarm.training.task_id import task_fingerprint
from swarm.training.taskfile import TaskFile, fingerprint


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


HEART = Path(__file__).resolve().parents[2] / "examples" / "heart"


def test_task_info_of_a_task_file_prints_what_the_ledger_records(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`swarm task info task.toml`: the file's id and initial model, as deploy records them."""
    spec = TaskFile.load(HEART / "task.toml")
    fp = fingerprint(spec)
    assert run(["task", "info", str(HEART / "task.toml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["task_id"] == "0x" + spec.task_id.hex()
    assert data["initial_model_hash"] == "0x" + fp.initial_model_hash.hex()
    assert data["kind"] == "csv" and data["param_count"] == 36
    assert data["update_bytes"] > 0 and data["aggregate_bytes"] > data["update_bytes"]
    assert run(["task", "info", str(HEART / "task.toml")]) == 0
    out = capsys.readouterr().out
    assert "0x" + spec.task_id.hex() in out and "per hospital per round" in out


def test_task_check_reads_a_sites_data_and_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`swarm task check`: a hospital's own CSV passes; one without a column the task needs (a
    CSV that does not match the schema) fails with exit 2 and one error line naming it."""
    good = HEART / "data" / "hungary.csv"
    assert run(["task", "check", str(HEART / "task.toml"), "--data", str(good)]) == 0
    assert "hungary: 294 rows" in capsys.readouterr().out
    lines = good.read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("chol")
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "\n".join(",".join(c for i, c in enumerate(r.split(",")) if i != drop) for r in lines)
    )
    assert run(["task", "check", str(HEART / "task.toml"), "--data", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "chol" in err[0]
