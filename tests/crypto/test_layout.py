"""Flattening a state dict into one vector and back, under a hashed layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from swarm.crypto import Layout, TensorSpec, flatten, layout_of, unflatten
from swarm.errors import LayoutMismatchError
from swarm.hashing import Tag, tagged_hash


def hand_state() -> dict[str, torch.Tensor]:
    return {
        "a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        "steps": torch.tensor(5, dtype=torch.int64),
        "b": torch.tensor([5.0]),
    }


def test_layout_keeps_float_tensors_in_order_and_skips_integer_buffers() -> None:
    """Layout recording: names, shapes, dtypes in state-dict order; int buffers do not travel."""
    layout = layout_of(hand_state())
    assert layout.tensors == (TensorSpec("a", (2, 2)), TensorSpec("b", (1,)))
    assert layout.param_count == 5


def test_layout_hash_is_the_layout_tagged_hash_of_the_canonical_encoding() -> None:
    """Layout hash: two peers must derive the same 32 bytes from the same architecture (fault:
    an encoding or tag that differs between peers)."""
    layout = layout_of(hand_state())
    canonical = b'{"tensors":[["a",[2,2],"float32"],["b",[1],"float32"]],"v":1}'
    assert layout.canonical_bytes() == canonical
    assert layout.hash == tagged_hash(Tag.LAYOUT, canonical)


def test_layout_hash_differs_for_another_architecture() -> None:
    """Mismatched models: a different shape must give a different layout hash."""
    same = layout_of(torch.nn.Linear(3, 2).state_dict())
    again = layout_of(torch.nn.Linear(3, 2).state_dict())
    other = layout_of(torch.nn.Linear(2, 3).state_dict())
    assert same.hash == again.hash
    assert same.hash != other.hash


def test_flatten_concatenates_row_major_and_unflatten_inverts_it() -> None:
    """Flatten/restore: values land at hand-computable offsets and come back bit-identical."""
    state = hand_state()
    layout = layout_of(state)
    vector = flatten(state, layout)
    assert vector.dtype == np.float32
    np.testing.assert_array_equal(vector, [1.0, 2.0, 3.0, 4.0, 5.0])
    restored = unflatten(vector, layout)
    assert list(restored) == ["a", "b"]
    assert torch.equal(restored["a"], state["a"]) and torch.equal(restored["b"], state["b"])


def test_flatten_refuses_a_state_with_other_tensor_names() -> None:
    """Layout mismatch: a model missing a tensor is refused, naming what differs."""
    state = hand_state()
    del state["b"]
    with pytest.raises(LayoutMismatchError) as info:
        flatten(state, layout_of(hand_state()))
    assert info.value.field == "tensor names"
    assert info.value.expected == ["a", "b"] and info.value.actual == ["a"]


def test_flatten_refuses_a_state_with_another_shape() -> None:
    """Layout mismatch: same names, different shape."""
    state = hand_state()
    state["a"] = torch.zeros(4, 1)
    with pytest.raises(LayoutMismatchError) as info:
        flatten(state, layout_of(hand_state()))
    assert info.value.field == "shape of a"
    assert info.value.expected == (2, 2) and info.value.actual == (4, 1)


def test_non_float32_tensors_are_refused_not_converted() -> None:
    """Wrong dtype: a float64 model would silently lose the stated precision budget."""
    with pytest.raises(LayoutMismatchError) as info:
        layout_of({"w": torch.zeros(3, dtype=torch.float64)})
    assert info.value.actual == "torch.float64"


def test_a_state_without_float_tensors_has_no_layout() -> None:
    """Empty update: nothing to encrypt is an error, not an empty blob."""
    with pytest.raises(LayoutMismatchError):
        layout_of({"steps": torch.tensor(1)})


def test_unflatten_refuses_a_vector_of_the_wrong_length() -> None:
    """Parameter-count mismatch on restore."""
    layout = Layout((TensorSpec("w", (2, 3)),))
    with pytest.raises(LayoutMismatchError) as info:
        unflatten(np.zeros(5, dtype=np.float32), layout)
    assert info.value.field == "param_count"
    assert (info.value.expected, info.value.actual) == (6, 5)
