"""Checkpoint files against the ledger: real checkpoints of the models the driven rounds
finalized (their model_hash is what the hospitals acknowledged), and tampered ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.audit import build_history
from swarm.audit.checkpoints import read_checkpoints
from swarm.audit.verify import verify_checkpoints
from swarm.errors import ConfigError
from swarm.training.checkpoint import checkpoint_path, model_hash, write_checkpoint
from tests.audit.driven import FINALIZED, driven, model


def _write_all(directory: Path) -> None:
    for rid, state in driven().models.items():
        write_checkpoint(directory, rid, state, {"task": "test"})


def test_checkpoints_of_the_finalized_models_verify(tmp_path: Path) -> None:
    """Every finalized round has a checkpoint whose weights hash to the ledger's model."""
    d = driven()
    _write_all(tmp_path)
    (tmp_path / "notes.txt").write_text("not a checkpoint: ignored")
    records = read_checkpoints(tmp_path)
    history = build_history(d.ledger.events())
    assert [(r.round_id, r.model_hash) for r in records] == [
        (rid, history.rounds[rid].final_model) for rid in FINALIZED
    ]
    assert verify_checkpoints(history, records) == []


def test_tampered_missing_and_misplaced_checkpoints(tmp_path: Path) -> None:
    """Four failures at once, each reported exactly: flipped bytes (corrupt), weights re-saved
    with a change (mismatch), a file renamed to another round (mismatch), a checkpoint of a
    lapsed round (not finalized); and the finalized round left without one (missing)."""
    d = driven()
    _write_all(tmp_path)
    # Round 1: one byte of the weights flipped; the file no longer matches its own header.
    path1 = checkpoint_path(tmp_path, 1)
    data = bytearray(path1.read_bytes())
    data[-3] ^= 0xFF
    path1.write_bytes(bytes(data))
    # Round 2: a consistent checkpoint of other weights, as someone substituting a model would.
    tampered = {k: v.clone() for k, v in d.models[2].items()}
    tampered["linear.bias"][0] += 1e-3
    write_checkpoint(tmp_path, 2, tampered)
    # Round 4's checkpoint is renamed to round 7 (in progress): round 4 has none now.
    checkpoint_path(tmp_path, 4).rename(checkpoint_path(tmp_path, 7))
    # Round 3 lapsed: nothing was finalized to checkpoint.
    write_checkpoint(tmp_path, 3, model(3))

    history = build_history(d.ledger.events())
    found = verify_checkpoints(history, read_checkpoints(tmp_path))
    assert {(f.severity.value, f.kind.value, f.round_id) for f in found} == {
        ("error", "checkpoint-corrupt", 1),
        ("error", "checkpoint-mismatch", 2),
        ("warning", "checkpoint-not-finalized", 3),
        ("error", "checkpoint-mismatch", 7),
        ("warning", "checkpoint-missing", 4),
    }
    by_round = {f.round_id: f.message for f in found}
    assert model_hash(tampered).hex() in by_round[2]
    assert "header says round 4" in by_round[7]


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    """A checkpoint directory that does not exist: a clear error, not an empty audit."""
    with pytest.raises(ConfigError, match="does not exist"):
        read_checkpoints(tmp_path / "nowhere")
