"""ResNet-18, DenseNet-121 and the small CNN (swarm.training.vision).

The reference values were taken from torchvision 0.28.0 (the release of the pinned torch 2.13)
in a throwaway environment: its ``state_dict`` layout (names, shapes, dtypes) and its initial
weights under a seed. Matching them is what lets a torchvision weights file load as is.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from swarm.merge.fedavg import apply_mean_update, model_delta
from swarm.training import vision

#: torchvision 0.28.0, num_classes=1000: parameters (its documentation's numbers), state_dict
#: tensors, and sha256 of the "name:shape:dtype" lines of its state_dict, joined by newlines
TORCHVISION_LAYOUT = {
    "resnet18": (
        11_689_512,
        122,
        "d0d3740da25de418400aefaf2175cf676f53480251c89108f9df5a3086a73f96",
    ),
    "densenet121": (
        7_978_856,
        727,
        "fb21ead2f6fd95f8e5c55f5051de89d0263f50766b7f5588ee7f3daa5d56f389",
    ),
}
#: torchvision 0.28.0 after torch.manual_seed(0), num_classes=2: sha256 over name + raw bytes
#: of every state_dict tensor, in order (:func:`_weights_digest`)
TORCHVISION_SEED0_WEIGHTS = {
    "resnet18": "14ea7213e9c9b1d8d62b2733b70f5cb2737111a4757323b4934fadfce93bb9f2",
    "densenet121": "7940dbdf711104067d4d969c3943172d572418f23b91b609bc51147524750c18",
}


def _layout_digest(state: dict[str, torch.Tensor]) -> str:
    lines = "\n".join(f"{k}:{tuple(v.shape)}:{v.dtype}" for k, v in state.items())
    return hashlib.sha256(lines.encode()).hexdigest()


def _weights_digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name, value in state.items():
        digest.update(name.encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_layout_and_parameter_count_are_torchvisions(name: str) -> None:
    """Fault: a renamed, reordered or reshaped module, so torchvision weights files no longer
    load (or the parameter count differs from torchvision's published one)."""
    params, tensors, layout = TORCHVISION_LAYOUT[name]
    model = vision.ARCHITECTURES[name](1000, 3, None)
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(state) == tensors
    assert _layout_digest(state) == layout


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_seeded_initial_weights_are_the_bytes_torchvision_draws(name: str) -> None:
    """Fault: an initialisation that differs from torchvision's (another init function, another
    module order), so a seed no longer means the same model as torchvision's under that seed."""
    state = vision.ARCHITECTURES[name](2, 3, 0).state_dict()
    assert _weights_digest(state) == TORCHVISION_SEED0_WEIGHTS[name]


@pytest.mark.parametrize("name", ["resnet18", "cnn"])
def test_same_seed_same_bytes_and_global_rng_untouched(name: str) -> None:
    """Fault: an initialisation that reads or advances the caller's global RNG, so the initial
    model (and its hash on the ledger) depends on what ran before."""
    build = vision.ARCHITECTURES[name]
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = build(3, 3, 7).state_dict()
    after = torch.rand(3)
    second = build(3, 3, 7).state_dict()
    other = build(3, 3, 8).state_dict()
    assert torch.equal(before, after)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize(
    ("name", "size", "channels"),
    [("resnet18", 16, 3), ("resnet18", 1, 1), ("densenet121", 32, 1), ("cnn", 4, 3), ("cnn", 9, 1)],
)
def test_logits_per_class_at_the_smallest_sizes(name: str, size: int, channels: int) -> None:
    """Fault: a model that gives one logit per row, or fails on grayscale input or on images
    as small as MIN_IMAGE_SIZE allows."""
    assert size >= vision.MIN_IMAGE_SIZE[name]
    model = vision.ARCHITECTURES[name](4, channels, 0).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, channels, size, size))
    assert logits.shape == (2, 4)
    assert torch.isfinite(logits).all()


def test_batchnorm_statistics_are_averaged_and_counters_kept() -> None:
    """Fault: BatchNorm running statistics left out of the update (every peer's evaluation
    would use the initial statistics forever) or an int64 counter averaged as a weight."""
    model = vision.cnn(2, 3, seed=0)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 8, 8) * 3 + 1)
    trained = model.state_dict()
    delta = model_delta(trained, base)
    assert "bn1.running_mean" in delta and "bn1.running_var" in delta
    assert "bn1.num_batches_tracked" not in delta
    assert base["bn1.num_batches_tracked"].dtype == torch.int64
    summed = {k: v.to(torch.float64) * 4 for k, v in delta.items()}  # one site, n = 4
    merged = apply_mean_update(base, summed, 4)
    assert torch.allclose(merged["bn1.running_mean"], trained["bn1.running_mean"])
    assert torch.equal(merged["bn1.num_batches_tracked"], base["bn1.num_batches_tracked"])


def test_invalid_shapes_are_refused() -> None:
    """Fault: a model built for zero classes or channels (fails later, far from the cause)."""
    with pytest.raises(ValueError, match="num_classes"):
        vision.resnet18(0)
    with pytest.raises(ValueError, match="in_channels"):
        vision.cnn(2, in_channels=0)
