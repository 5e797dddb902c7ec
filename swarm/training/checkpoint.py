"""Model bytes, model hashes and checkpoints: one canonical encoding of a state_dict.

The hash every peer acknowledges on the ledger is the tagged hash (``swarm/v1/model``,
swarm.hashing) of ``model_bytes(state_dict)``. The
encoding is canonical (tensors in sorted name order, each with its name, dtype and shape, then
its little-endian bytes), so honest peers that compute bit-identical weights get the same hash,
whatever their torch version or platform.

A checkpoint file is ``MAGIC``, a length-prefixed JSON header (round, model hash, config) and the
model bytes; the header's model hash is checked against the bytes. Loading never unpickles
anything: a checkpoint from another peer is data, not code. Writes are atomic (temporary file,
fsync, rename), so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swarm._files import write_atomic
from swarm.errors import CheckpointError
from swarm.hashing import Tag, tagged_hash

MAGIC = b"SWARMCK1"
_MODEL_MAGIC = b"SWARMMD1"

_DTYPES: dict[torch.dtype, str] = {
    torch.float32: "f4",
    torch.float64: "f8",
    torch.float16: "f2",
    torch.int64: "i8",
    torch.int32: "i4",
    torch.uint8: "u1",
    torch.bool: "b1",
}
_TORCH_DTYPES = {v: k for k, v in _DTYPES.items()}


def model_bytes(state_dict: Mapping[str, torch.Tensor]) -> bytes:
    """The canonical encoding of a state_dict."""
    header = []
    blobs = []
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        if tensor.dtype not in _DTYPES:
            raise CheckpointError(f"{name}: dtype {tensor.dtype} is not supported")
        array = tensor.numpy()
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header.append({"name": name, "dtype": _DTYPES[tensor.dtype], "shape": list(tensor.shape)})
        blobs.append(raw)
    meta = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    return _MODEL_MAGIC + struct.pack("<Q", len(meta)) + meta + b"".join(blobs)


def model_hash(state_dict: Mapping[str, torch.Tensor]) -> bytes:
    """The hash peers acknowledge on the ledger: :func:`model_bytes_hash` of the canonical
    encoding."""
    return model_bytes_hash(model_bytes(state_dict))


def model_bytes_hash(data: bytes | memoryview) -> bytes:
    """The model hash of an already encoded model (:func:`model_bytes`): tag
    ``swarm/v1/model``. A finalized model fetched from a peer is addressed by it too."""
    return tagged_hash(Tag.MODEL, data)


def state_dict_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    """Decode :func:`model_bytes`; CheckpointError if anything does not add up."""
    if data[:8] != _MODEL_MAGIC or len(data) < 16:
        raise CheckpointError("not a swarm model encoding")
    (meta_len,) = struct.unpack("<Q", data[8:16])
    try:
        header = json.loads(data[16 : 16 + meta_len])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError("model header is corrupt") from exc
    offset = 16 + meta_len
    out: dict[str, torch.Tensor] = {}
    try:
        for entry in header:
            np_dtype = np.dtype(entry["dtype"]).newbyteorder("<")
            count = int(np.prod(entry["shape"], dtype=np.int64))
            size = count * np_dtype.itemsize
            if offset + size > len(data):
                raise CheckpointError(f"model bytes truncated in {entry['name']}")
            array = np.frombuffer(data, dtype=np_dtype, count=count, offset=offset)
            tensor = torch.from_numpy(array.astype(np_dtype.newbyteorder("="))).reshape(
                entry["shape"]
            )
            out[entry["name"]] = tensor.to(_TORCH_DTYPES[entry["dtype"]])
            offset += size
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"model header is malformed: {exc}") from exc
    if offset != len(data):
        raise CheckpointError(f"{len(data) - offset} unexpected bytes after the model")
    return out


@dataclass(frozen=True)
class Checkpoint:
    """A finalized model, with the round that produced it and the config it was trained under."""

    round_id: int
    model_hash: bytes
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)


def checkpoint_path(directory: Path, round_id: int) -> Path:
    return Path(directory) / f"round-{round_id:06d}.ckpt"


def write_checkpoint(
    directory: Path,
    round_id: int,
    state_dict: Mapping[str, torch.Tensor],
    config: Mapping[str, Any] | None = None,
    *,
    body: bytes | None = None,
) -> Path:
    """Write atomically; the hash stored is recomputed from the bytes written. ``body``: the
    state's :func:`model_bytes`, where the caller has them already (a fetched or just
    acknowledged model: 45 MB at 11.2M parameters, not encoded again)."""
    if body is None:
        body = model_bytes(state_dict)
    digest = model_bytes_hash(body)
    header = json.dumps(
        {"round": round_id, "model_hash": "0x" + digest.hex(), "config": dict(config or {})},
        sort_keys=True,
    ).encode()
    path = checkpoint_path(directory, round_id)
    write_atomic(path, MAGIC + struct.pack("<Q", len(header)) + header + body)
    return path


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and verify a checkpoint: the model bytes must hash to the hash in its header."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from exc
    if data[:8] != MAGIC or len(data) < 16:
        raise CheckpointError(f"{path}: not a swarm checkpoint")
    (header_len,) = struct.unpack("<Q", data[8:16])
    try:
        header = json.loads(data[16 : 16 + header_len])
        round_id = int(header["round"])
        stated = bytes.fromhex(str(header["model_hash"]).removeprefix("0x"))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint header is corrupt") from exc
    body = data[16 + header_len :]
    actual = model_bytes_hash(body)
    if actual != stated:
        raise CheckpointError(
            f"{path}: model bytes hash to 0x{actual.hex()}, header says 0x{stated.hex()}"
        )
    return Checkpoint(round_id, actual, state_dict_from_bytes(body), header.get("config", {}))


def latest_checkpoint(directory: Path) -> Checkpoint | None:
    """The newest valid checkpoint in ``directory`` (corrupt ones are skipped), or None."""
    for path in sorted(Path(directory).glob("round-*.ckpt"), reverse=True):
        try:
            return read_checkpoint(path)
        except CheckpointError:
            continue
    return None


_CHECKPOINT_NAME = re.compile(r"round-(\d+)\.ckpt")


def checkpoints_to_prune(paths: Iterable[Path], keep: int) -> list[Path]:
    """Which of ``paths`` go when only the checkpoints of the ``keep`` newest rounds stay.

    Pure (reads nothing): rounds are read from the file names (``round-NNNNNN.ckpt``); a file
    named otherwise (a temporary file, anything an operator put there) is never chosen.
    ``keep`` 0 keeps every checkpoint. Returned oldest first.
    """
    if keep < 0:
        raise ValueError(f"keep must be at least 0, not {keep}")
    rounds = []
    for path in paths:
        match = _CHECKPOINT_NAME.fullmatch(Path(path).name)
        if match:
            rounds.append((int(match.group(1)), Path(path)))
    if keep == 0 or len(rounds) <= keep:
        return []
    rounds.sort()
    return [path for _, path in rounds[:-keep]]


def prune_checkpoints(directory: Path, keep: int) -> list[Path]:
    """Delete all but the checkpoints of the ``keep`` newest rounds in ``directory`` (0: delete
    none); returns what was deleted. Call it right after writing the newest checkpoint, so the
    file kept last is one that was just written and verified."""
    doomed = checkpoints_to_prune(Path(directory).glob("round-*.ckpt"), keep)
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed
