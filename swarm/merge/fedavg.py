"""FedAvg: the next model is the base plus the sample-weighted mean of the sites' updates.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas: "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017 (arXiv:1602.05629). With site i training from
the base weights w on n_i samples to w_i,

    delta_i = w_i - w,        w_next = w + (sum_i n_i * delta_i) / (sum_i n_i).

In the swarm, each site encrypts ``n_i * delta_i``; the merge peer adds the ciphertexts; every key
holder decrypts the same sum and calls :func:`apply_mean_update` with the total sample count from
the ledger. FedProx (swarm.training.loop) changes local training only and merges the same way.

Which tensors take part: only floating-point ones (weights, biases, float buffers). Integer and
boolean buffers, such as BatchNorm's ``num_batches_tracked``, have no meaningful weighted mean:
:func:`model_delta` leaves them out (as swarm.crypto's layout does) and
:func:`apply_mean_update` copies them from the base model unchanged.

Determinism: :func:`apply_mean_update` is elementwise IEEE arithmetic in float64 (one division,
one addition, each correctly rounded) and one rounding to float32; no reduction, no
thread-dependent order. Every honest peer that decrypts the same sum therefore gets
bit-identical weights and the same model hash (swarm.training.checkpoint.model_hash).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import torch

log = logging.getLogger(__name__)


def _check_same_keys(
    left: Mapping[str, torch.Tensor], right: Mapping[str, torch.Tensor], what: str
) -> None:
    if set(left) != set(right):
        missing = sorted(set(left) - set(right))
        extra = sorted(set(right) - set(left))
        raise ValueError(f"{what}: missing tensors {missing}, unexpected tensors {extra}")


def model_delta(
    new_state: Mapping[str, torch.Tensor], base_state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``new - base`` for every floating tensor of ``base_state``, float32, in its order.

    Non-float tensors are left out (module docstring). Raises ValueError when the two states
    do not hold the same tensors with the same shapes.
    """
    _check_same_keys(base_state, new_state, "new state vs base state")
    delta: dict[str, torch.Tensor] = {}
    for name, base in base_state.items():
        new = new_state[name]
        if new.shape != base.shape:
            raise ValueError(f"{name}: shape {tuple(new.shape)} vs base {tuple(base.shape)}")
        if not base.is_floating_point():
            continue
        delta[name] = (
            new.detach().to(torch.float32).cpu() - base.detach().to(torch.float32).cpu()
        ).contiguous()
    return delta


def weighted_sum(
    updates: Iterable[tuple[Mapping[str, torch.Tensor], int]],
) -> dict[str, torch.Tensor]:
    """``sum_i n_i * delta_i`` in float64: what the decrypted aggregate holds (up to CKKS noise).

    ``updates`` are (delta, n_i) pairs, all with the same tensors; n_i must be positive.
    """
    total: dict[str, torch.Tensor] | None = None
    for delta, samples in updates:
        _check_samples(samples)
        if total is None:
            total = {k: v.detach().to(torch.float64) * samples for k, v in delta.items()}
            continue
        _check_same_keys(total, delta, "update vs first update")
        for name, value in delta.items():
            if value.shape != total[name].shape:
                raise ValueError(f"{name}: shape {tuple(value.shape)} differs between updates")
            total[name] = total[name] + value.detach().to(torch.float64) * samples
    if total is None:
        raise ValueError("no updates to sum")
    return total


def _check_samples(samples: int) -> None:
    # bool is an int subclass; a sample count of True is a bug, not 1
    if isinstance(samples, bool) or not isinstance(samples, int) or samples <= 0:
        raise ValueError(f"sample count must be a positive int, got {samples!r}")


def apply_mean_update(
    base_state: Mapping[str, torch.Tensor],
    summed_weighted_delta: Mapping[str, torch.Tensor],
    total_samples: int,
) -> dict[str, torch.Tensor]:
    """``base + summed / total_samples`` for each floating tensor; other tensors from the base.

    ``summed_weighted_delta`` is the decrypted aggregate (sum of n_i * delta_i, float32 or
    float64) with exactly the base's floating tensors; ``total_samples`` is sum n_i from the
    ledger. Float tensors come back float32 (the layout the swarm encrypts), computed in float64
    and rounded once, bit-identically at every peer (module docstring). Returns new tensors in
    the base's key order; the inputs are not modified.
    """
    _check_samples(total_samples)
    float_names = {k for k, v in base_state.items() if v.is_floating_point()}
    if set(summed_weighted_delta) != float_names:
        missing = sorted(float_names - set(summed_weighted_delta))
        extra = sorted(set(summed_weighted_delta) - float_names)
        raise ValueError(f"aggregate: missing tensors {missing}, unexpected tensors {extra}")
    out: dict[str, torch.Tensor] = {}
    for name, base in base_state.items():
        if name not in float_names:
            out[name] = base.detach().clone()
            continue
        summed = summed_weighted_delta[name].detach().cpu()
        if summed.shape != base.shape:
            raise ValueError(f"{name}: aggregate shape {tuple(summed.shape)} vs {base.shape}")
        mean = summed.to(torch.float64) / float(total_samples)
        out[name] = (base.detach().cpu().to(torch.float64) + mean).to(torch.float32)
    log.debug("applied the mean update of %d samples to %d tensors", total_samples, len(out))
    return out


def fedavg(
    base_state: Mapping[str, torch.Tensor],
    updates: Iterable[tuple[Mapping[str, torch.Tensor], int]],
) -> dict[str, torch.Tensor]:
    """Plaintext FedAvg: the model the encrypted path yields, without encryption's noise.

    ``updates`` are (delta_i, n_i) pairs from :func:`model_delta`. Same arithmetic as the swarm:
    :func:`weighted_sum`, then :func:`apply_mean_update` with sum n_i.
    """
    pairs = list(updates)
    summed = weighted_sum(pairs)
    return apply_mean_update(base_state, summed, sum(n for _, n in pairs))
