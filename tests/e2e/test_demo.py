"""`swarm demo`, the README's main command, end to end: 4 hospital processes, 3 rounds."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cli.app import run

pytestmark = [pytest.mark.slow, pytest.mark.anvil]


def test_demo_trains_three_rounds_and_every_hospital_agrees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = run(["demo", "--rounds", "3", "--dir", str(tmp_path / "demo"), "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stdout + stderr
    # Every hospital's newest checkpoint has the ledger's latest model hash.
    agreement = stdout.split("Every hospital's newest checkpoint")[1]
    assert agreement.count("│ yes") == 4 and "NO" not in agreement
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert {int(r["round"]) for r in rows} == {1, 2, 3}
    assert len({r["hospital"] for r in rows}) == 4
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "demo").exists()  # the scratch directory is cleaned up
