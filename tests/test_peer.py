"""Pure parts of the peer (the round state machine itself runs in tests/e2e/test_swarm.py)."""

from __future__ import annotations

import torch

from swarm.peer import apply_update
from swarm.training.checkpoint import model_hash


def test_apply_update_is_exact_and_deterministic() -> None:
    """Honest peers add the same decrypted mean to the same base: bit-identical models."""
    base = {
        "w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        "b": torch.tensor([0.5]),
        "steps": torch.tensor(3, dtype=torch.int64),
    }
    mean = {"w": torch.tensor([[0.25, -0.5], [0.0, 1.0]]), "b": torch.tensor([-0.5])}
    new = apply_update(base, mean)
    assert torch.equal(new["w"], torch.tensor([[1.25, 1.5], [3.0, 5.0]]))
    assert torch.equal(new["b"], torch.tensor([0.0]))
    assert new["steps"].dtype == torch.int64 and int(new["steps"]) == 3  # not in the update
    assert model_hash(new) == model_hash(apply_update(base, mean))
    assert torch.equal(base["w"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # base untouched
