"""Model hashes and checkpoints: canonical, verified, atomic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from swarm.errors import CheckpointError
from swarm.training.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    model_bytes,
    model_hash,
    read_checkpoint,
    state_dict_from_bytes,
    write_checkpoint,
)


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "layer.weight": torch.randn(4, 3, generator=g),
        "layer.bias": torch.randn(4, generator=g),
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
    }


def test_hash_is_canonical_and_sensitive() -> None:
    a = _state()
    reordered = dict(reversed(list(a.items())))
    assert model_hash(a) == model_hash(reordered)
    b = {k: v.clone() for k, v in a.items()}
    b["layer.bias"][0] += 1e-7
    assert model_hash(a) != model_hash(b)


def test_model_bytes_roundtrip() -> None:
    a = _state()
    back = state_dict_from_bytes(model_bytes(a))
    assert back.keys() == a.keys()
    for k in a:
        assert back[k].dtype == a[k].dtype and torch.equal(back[k], a[k])


def test_checkpoint_roundtrip(tmp_path: Path) -> None:
    a = _state()
    path = write_checkpoint(tmp_path, 3, a, {"task": "t"})
    assert path == checkpoint_path(tmp_path, 3)
    ck = read_checkpoint(path)
    assert ck.round_id == 3 and ck.model_hash == model_hash(a) and ck.config == {"task": "t"}
    assert all(torch.equal(ck.state_dict[k], a[k]) for k in a)


def test_a_checkpoint_from_the_bytes_already_encoded_is_the_same_file(tmp_path: Path) -> None:
    """A member catching up writes the bytes it fetched (and a key holder the bytes it
    acknowledged) instead of encoding the state again: the file is byte for byte the one
    encoding would give, and reads back to the same state and hash."""
    a = _state()
    encoded = write_checkpoint(tmp_path / "encoded", 3, a, {"task": "t"})
    given = write_checkpoint(tmp_path / "given", 3, a, {"task": "t"}, body=model_bytes(a))
    assert given.read_bytes() == encoded.read_bytes()
    assert read_checkpoint(given).model_hash == model_hash(a)


def test_corrupted_checkpoint_is_refused(tmp_path: Path) -> None:
    """A corrupted checkpoint: a flipped weight byte no longer matches the stated hash."""
    path = write_checkpoint(tmp_path, 1, _state())
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="hash"):
        read_checkpoint(path)


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, 1, _state())
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError):
        read_checkpoint(path)


def test_latest_skips_corrupt_newest(tmp_path: Path) -> None:
    """A crash that left a damaged newest file: the last good checkpoint is used."""
    write_checkpoint(tmp_path, 1, _state(1))
    write_checkpoint(tmp_path, 2, _state(2))
    checkpoint_path(tmp_path, 2).write_bytes(b"SWARMCK1garbage")
    ck = latest_checkpoint(tmp_path)
    assert ck is not None and ck.round_id == 1 and ck.model_hash == model_hash(_state(1))
    assert latest_checkpoint(tmp_path / "empty") is None
