"""The model a peer holds and the round keys a steward keeps (swarm.peer.model, .work)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from swarm.errors import CheckpointError, ConfigError
from swarm.peer.model import ModelKeeper
from swarm.peer.work import RoundWork, StewardKeys, prune_steward_keys
from swarm.training.checkpoint import latest_checkpoint, model_hash, write_checkpoint

INITIAL = {"w": torch.zeros(2, 3), "b": torch.zeros(3), "steps": torch.tensor(0)}


def keeper(directory: Path) -> ModelKeeper:
    return ModelKeeper(directory, INITIAL, model_hash(INITIAL), {"task": "t"})


def test_a_fresh_peer_starts_from_the_consortiums_initial_model(tmp_path: Path) -> None:
    """No checkpoint: the task's initial model, whose hash the ledger recorded."""
    k = keeper(tmp_path)
    assert k.round == 0 and k.hash == model_hash(INITIAL)


def test_an_initial_model_the_consortium_did_not_record_is_refused_in_full(
    tmp_path: Path,
) -> None:
    """Config typo (another task or seed): one line naming both full hashes and what to check."""
    with pytest.raises(ConfigError) as err:
        ModelKeeper(tmp_path, INITIAL, b"\x01" * 32, {})
    text = str(err.value)
    assert model_hash(INITIAL).hex() in text and ("01" * 32) in text and "[task]" in text


def test_a_checkpoint_with_the_right_names_but_wrong_shapes_is_refused(tmp_path: Path) -> None:
    """Corrupt or foreign checkpoint (names match, shapes do not): refused at start-up with the
    tensor named, instead of being adopted and then refusing every update of every round."""
    wrong = {"w": torch.zeros(3, 2), "b": torch.zeros(3), "steps": torch.tensor(0)}
    write_checkpoint(tmp_path, 7, wrong)
    with pytest.raises(CheckpointError, match=r"tensor w is torch.float32 \[3, 2\]"):
        keeper(tmp_path)


def test_a_wrong_model_is_never_adopted_and_nothing_is_overwritten(tmp_path: Path) -> None:
    """A member serves a model of another shape (or dtype): adopt refuses it, the current model
    and the checkpoints on disk stay as they were."""
    k = keeper(tmp_path)
    good = {"w": torch.ones(2, 3), "b": torch.ones(3), "steps": torch.tensor(1)}
    k.adopt(1, good, model_hash(good))
    bad = {"w": torch.ones(2, 3, dtype=torch.float64), "b": torch.ones(3), "steps": torch.tensor(1)}
    with pytest.raises(CheckpointError, match="tensor w"):
        k.adopt(2, bad, model_hash(bad))
    assert k.round == 1 and k.hash == model_hash(good)
    ck = latest_checkpoint(tmp_path)
    assert ck is not None and ck.round_id == 1 and ck.model_hash == model_hash(good)
    assert keeper(tmp_path).hash == model_hash(good)  # a restart resumes from round 1


def test_steward_keys_survive_a_restart_and_an_interrupted_save_is_ignored(
    tmp_path: Path,
) -> None:
    """Steward restarted after posting its key: it reads back the same keys. A save that died
    before its index was written is not taken for a key."""
    keys = StewardKeys(3, 1, b"context", b"\x05" * 32, {"0xA": b"sealed-a", "0xB": b"sealed-b"})
    keys.save(tmp_path)
    assert StewardKeys.load(tmp_path, 3, 1) == keys
    assert StewardKeys.load(tmp_path, 3, 0) is None  # another attempt's key is another key
    (tmp_path / "round000003-attempt1" / "index.json").unlink()
    assert StewardKeys.load(tmp_path, 3, 1) is None
    StewardKeys(5, 0, b"c", b"\x06" * 32, {}).save(tmp_path)
    prune_steward_keys(tmp_path, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["round000005-attempt0"]


def test_a_new_attempt_forgets_the_old_attempts_key_and_push_but_not_the_training() -> None:
    """Merge peer replaced: the key and the update of attempt 0 are void; the trained delta is
    reused (same base model)."""
    work = RoundWork(4, b"\x00" * 32, delta={"w": torch.zeros(1)}, samples=10, pushed=True)
    work.keys_delivered = True
    work.at_attempt(1)
    assert work.attempt == 1 and not work.pushed and not work.keys_delivered
    assert work.delta is not None and work.samples == 10
