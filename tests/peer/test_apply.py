"""The peer's update arithmetic is swarm.merge's FedAvg, to the last bit."""

from __future__ import annotations

import torch

from swarm import crypto
from swarm.merge import fedavg, model_delta, weighted_sum
from swarm.peer.keyholder import apply_decrypted_sum
from swarm.training.checkpoint import model_bytes


def test_peer_applies_the_decrypted_sum_exactly_as_plaintext_fedavg() -> None:
    """The peer path (flat float64 sum -> tensors -> mean -> base) and swarm.merge.fedavg give
    bit-identical models from the same sum: one arithmetic for the peer, the benchmark, tests."""
    gen = torch.Generator().manual_seed(7)
    base = {
        "w": torch.randn(3, 4, generator=gen),
        "b": torch.randn(4, generator=gen),
        "steps": torch.tensor(3, dtype=torch.int64),
    }
    updates = []
    for n in (17, 40, 3):
        new = {
            k: (v + 0.01 * torch.randn(v.shape, generator=gen)) if v.is_floating_point() else v
            for k, v in base.items()
        }
        updates.append((model_delta(new, base), n))
    layout = crypto.layout_of(updates[0][0])
    summed = weighted_sum(updates)
    flat = torch.cat([summed[s.name].reshape(-1) for s in layout.tensors]).numpy()
    peer_model = apply_decrypted_sum(base, flat, layout, 60)
    assert model_bytes(peer_model) == model_bytes(fedavg(base, updates))
    assert peer_model["steps"].dtype == torch.int64 and int(peer_model["steps"]) == 3
