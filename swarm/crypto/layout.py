"""Flatten a model's float32 tensors into one vector and back, under a recorded layout.

CKKS encrypts flat vectors of numbers; a model is a mapping of named tensors. The layout is the
contract between the two: the ordered names, shapes and dtypes of the tensors that travel. Its
hash goes into every blob header, so an update made for one architecture is refused by a peer
that runs another instead of being added slot by slot into the wrong weights.

Only floating-point tensors travel. Integer and boolean buffers (BatchNorm's
``num_batches_tracked``, masks) have no meaningful weighted mean; they are left out of the
layout and the caller keeps them from its base model. A floating tensor that is not float32 is
refused rather than silently converted: the precision budget is stated for float32 updates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from swarm.errors import LayoutMismatchError
from swarm.hashing import Tag, tagged_hash

if TYPE_CHECKING:
    # imported where tensors are made or inspected: the crypto workers of swarm.peer.cores
    # import this package and must not pay torch's ~120 MB for it
    import torch

#: bumped if the canonical encoding below ever changes (it is hashed into every blob)
LAYOUT_ENCODING_VERSION = 1


@dataclass(frozen=True)
class TensorSpec:
    """One tensor's place in the flat vector."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class Layout:
    """The ordered tensors of a model update; the vector is their concatenation."""

    tensors: tuple[TensorSpec, ...]

    @cached_property
    def param_count(self) -> int:
        return sum(spec.numel for spec in self.tensors)

    def canonical_bytes(self) -> bytes:
        """A byte encoding that two peers with the same architecture produce identically."""
        doc = {
            "v": LAYOUT_ENCODING_VERSION,
            "tensors": [[s.name, list(s.shape), s.dtype] for s in self.tensors],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
            "ascii"
        )

    @cached_property
    def hash(self) -> bytes:
        """Tagged hash (``swarm/v1/layout``) of :meth:`canonical_bytes`: 32 bytes, carried in
        every blob header."""
        return tagged_hash(Tag.LAYOUT, self.canonical_bytes())


def layout_of(state: Mapping[str, torch.Tensor]) -> Layout:
    """The layout of a state dict (or of an update shaped like one): its float tensors, in order.

    Raises :class:`LayoutMismatchError` for a floating tensor that is not float32 and for a
    state with no float tensor at all.
    """
    import torch

    specs: list[TensorSpec] = []
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            continue  # integer/bool buffers do not travel (module docstring)
        if tensor.dtype != torch.float32:
            raise LayoutMismatchError(f"dtype of {name}", "float32", str(tensor.dtype))
        specs.append(TensorSpec(name=name, shape=tuple(int(d) for d in tensor.shape)))
    if not specs:
        raise LayoutMismatchError("tensors", "at least one float32 tensor", "none")
    return Layout(tensors=tuple(specs))


def _check_matches(state: Mapping[str, torch.Tensor], layout: Layout) -> None:
    actual = layout_of(state)
    if actual == layout:
        return
    expected_names = [s.name for s in layout.tensors]
    actual_names = [s.name for s in actual.tensors]
    if expected_names != actual_names:
        raise LayoutMismatchError("tensor names", expected_names, actual_names)
    for want, got in zip(layout.tensors, actual.tensors, strict=True):
        if want != got:
            raise LayoutMismatchError(f"shape of {want.name}", want.shape, got.shape)
    raise LayoutMismatchError("layout", layout.hash, actual.hash)  # pragma: no cover


def flatten(state: Mapping[str, torch.Tensor], layout: Layout) -> npt.NDArray[np.float32]:
    """Concatenate the layout's tensors of ``state`` into one float32 vector.

    Raises :class:`LayoutMismatchError` naming the first tensor that differs.
    """
    _check_matches(state, layout)
    out = np.empty(layout.param_count, dtype=np.float32)
    offset = 0
    for spec in layout.tensors:
        flat = state[spec.name].detach().to("cpu").reshape(-1).numpy()
        out[offset : offset + spec.numel] = flat
        offset += spec.numel
    return out


def unflatten(
    vector: npt.NDArray[np.floating],
    layout: Layout,
    *,
    dtype: type[np.floating] = np.float32,
) -> dict[str, torch.Tensor]:
    """Cut a flat vector back into the layout's named tensors (float32 unless ``dtype`` says;
    a decrypted sum stays float64 until swarm.merge divides it, so it is rounded only once).

    Raises :class:`LayoutMismatchError` when the vector's length is not the layout's
    parameter count.
    """
    if vector.ndim != 1 or vector.shape[0] != layout.param_count:
        raise LayoutMismatchError("param_count", layout.param_count, int(vector.size))
    import torch

    values = np.asarray(vector, dtype=dtype)
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for spec in layout.tensors:
        piece = values[offset : offset + spec.numel].reshape(spec.shape)
        out[spec.name] = torch.from_numpy(piece.copy())
        offset += spec.numel
    return out
