"""FedAvg arithmetic: hand-computed means, exact and bit-deterministic application."""

from __future__ import annotations

import pytest
import torch

from swarm.merge import apply_mean_update, fedavg, model_delta, weighted_sum
from swarm.training.checkpoint import model_bytes


def _state(w: list[float], b: float) -> dict[str, torch.Tensor]:
    return {
        "layer.weight": torch.tensor(w, dtype=torch.float32),
        "layer.bias": torch.tensor([b], dtype=torch.float32),
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
    }


def test_fedavg_of_two_tiny_deltas_by_hand() -> None:
    """base [1, 2]; deltas [0.5, -1] x 1 sample and [2, 1] x 3 samples.

    sum n_i * delta_i = [0.5 + 6, -1 + 3] = [6.5, 2]; / 4 = [1.625, 0.5]; new = [2.625, 2.5].
    Bias: base 0, deltas 1 x 1 and -1 x 3 -> (1 - 3) / 4 = -0.5. All exact in binary.
    """
    base = _state([1.0, 2.0], 0.0)
    delta_a = {"layer.weight": torch.tensor([0.5, -1.0]), "layer.bias": torch.tensor([1.0])}
    delta_b = {"layer.weight": torch.tensor([2.0, 1.0]), "layer.bias": torch.tensor([-1.0])}
    new = fedavg(base, [(delta_a, 1), (delta_b, 3)])
    assert new["layer.weight"].tolist() == [2.625, 2.5]
    assert new["layer.bias"].tolist() == [-0.5]
    assert new["layer.weight"].dtype == torch.float32


def test_weighted_sum_is_float64_sum_of_weighted_deltas() -> None:
    """weighted_sum returns sum n_i * delta_i in float64, what the decrypted aggregate holds."""
    summed = weighted_sum([({"w": torch.tensor([0.5])}, 1), ({"w": torch.tensor([2.0])}, 3)])
    assert summed["w"].dtype == torch.float64
    assert summed["w"].tolist() == [6.5]
    with pytest.raises(ValueError):
        weighted_sum([])


def test_model_delta_skips_integer_buffers() -> None:
    """Deltas hold float tensors only (float32); integer buffers such as BatchNorm's counter
    have no mean and do not travel."""
    base = _state([1.0, 2.0], 0.5)
    new = _state([1.5, 1.0], 0.25)
    new["bn.num_batches_tracked"] = torch.tensor(9)
    delta = model_delta(new, base)
    assert list(delta) == ["layer.weight", "layer.bias"]
    assert delta["layer.weight"].tolist() == [0.5, -1.0]
    assert delta["layer.bias"].tolist() == [-0.25]
    assert all(v.dtype == torch.float32 for v in delta.values())


def test_model_delta_refuses_mismatched_states() -> None:
    """A state with other tensors or other shapes is refused rather than partially subtracted."""
    base = _state([1.0, 2.0], 0.0)
    with pytest.raises(ValueError, match="missing"):
        model_delta({"layer.weight": base["layer.weight"]}, base)
    wrong = _state([1.0, 2.0, 3.0], 0.0)
    with pytest.raises(ValueError, match="shape"):
        model_delta(wrong, base)


def test_apply_mean_update_rounds_once_from_float64() -> None:
    """Result = float32(base + sum / total) computed in float64, one rounding, not float32 ops.

    1 + 1/3 has no exact float32; the float64 route gives the nearest float32 to 4/3.
    """
    base = {"w": torch.tensor([1.0], dtype=torch.float32)}
    out = apply_mean_update(base, {"w": torch.tensor([1.0], dtype=torch.float64)}, 3)
    expected = torch.tensor([1.0 + 1.0 / 3.0], dtype=torch.float64).to(torch.float32)
    assert torch.equal(out["w"], expected)


def test_apply_mean_update_is_bit_deterministic() -> None:
    """The same decrypted sum gives the same bytes every time, whatever the dict order and
    whether the sum arrives as float64 or as the same values in float32 tensors."""
    gen = torch.Generator().manual_seed(1)
    base = {"a": torch.randn(64, 8, generator=gen), "b": torch.randn(8, generator=gen)}
    summed = {
        k: torch.randn(v.shape, generator=gen, dtype=torch.float64) * 300 for k, v in base.items()
    }
    first = model_bytes(apply_mean_update(base, summed, 917))
    again = model_bytes(apply_mean_update(dict(reversed(base.items())), summed, 917))
    assert first == again
    as32 = {k: v.to(torch.float32) for k, v in summed.items()}
    assert model_bytes(apply_mean_update(base, as32, 917)) == model_bytes(
        apply_mean_update(base, {k: v.to(torch.float64) for k, v in as32.items()}, 917)
    )


def test_apply_mean_update_keeps_base_buffers_and_inputs() -> None:
    """Integer buffers come from the base unchanged; the base tensors are not modified."""
    base = _state([1.0, 2.0], 0.0)
    before = {k: v.clone() for k, v in base.items()}
    summed = {"layer.weight": torch.tensor([4.0, 4.0]), "layer.bias": torch.tensor([2.0])}
    out = apply_mean_update(base, summed, 4)
    assert out["bn.num_batches_tracked"].item() == 7
    assert out["layer.weight"].tolist() == [2.0, 3.0]
    assert all(torch.equal(base[k], before[k]) for k in base)


def test_apply_mean_update_refuses_bad_input() -> None:
    """A sum missing a tensor, a wrong shape or a non-positive sample count is refused."""
    base = _state([1.0, 2.0], 0.0)
    good = {"layer.weight": torch.zeros(2), "layer.bias": torch.zeros(1)}
    with pytest.raises(ValueError, match="missing"):
        apply_mean_update(base, {"layer.weight": torch.zeros(2)}, 3)
    with pytest.raises(ValueError, match="shape"):
        apply_mean_update(base, {**good, "layer.weight": torch.zeros(3)}, 3)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="sample count"):
            apply_mean_update(base, good, bad)  # type: ignore[arg-type]


def test_single_update_roundtrip_recovers_trained_weights() -> None:
    """One site alone: base + (n * delta) / n is the site's own new weights (to float32 ulp)."""
    gen = torch.Generator().manual_seed(2)
    base = {"w": torch.randn(100, generator=gen)}
    new = {"w": base["w"] + 0.01 * torch.randn(100, generator=gen)}
    out = fedavg(base, [(model_delta(new, base), 137)])
    assert torch.allclose(out["w"], new["w"], rtol=0, atol=1e-6)
