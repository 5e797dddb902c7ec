"""Personalization: a hospital's own model, built from the swarm's model and its own rows only.

The swarm model is what every hospital agreed on; a hospital whose patients differ from the
others' (Switzerland: 93 % disease prevalence) may do better on its own patients with a model
of its own. That model is the *personal* model: it never leaves the hospital and never enters
a round. Two methods (``method``), both measured on validation splits in
benchmarks/accuracy_bench.py (docs/benchmarks.md, ``accuracy-personal``):

- ``"mixture"`` (the default): the hospital trains its own model on its own train rows alone,
  from the swarm's initial model (``epochs`` at ``lr``, no FedProx: what it would have had
  without the swarm), and keeps ``swarm_weight * w_swarm + (1 - swarm_weight) * w_own``. For a
  linear model (the heart task's logistic regression) that is exactly the mixture of the two
  models' logits, the interpolation of APFL (Deng et al. 2020, "Adaptive Personalized
  Federated Learning") with a fixed weight chosen by the consortium on validation splits. On
  the heart task's validation splits only this mixture (small swarm weights) matched or beat
  every hospital alone on accuracy: the hospital's own model carries its prior (Switzerland's
  "disease" for nearly everyone), which a fine-tuned swarm model does not fully take on.
- ``"finetune"``: a copy of the swarm model takes ``epochs`` more local epochs, with FedProx
  anchored at the swarm model (mu/2 * ||w - w_swarm||^2, the task's own ``fedprox_mu`` unless
  given), and ``select`` (the default) lets a validation split carved from the site's *train*
  rows decide between the copy and the swarm model on validation loss.

The test split is never read here. Pure torch and deterministic: the same state, data and seeds
give bit-identical weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from swarm.training.task import SiteData, Task, TrainConfig

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

#: share of the site's train rows held out when ``select`` asks for a validation split
VALIDATION_FRACTION = 0.25
#: the personalization methods (module docstring)
METHODS = ("mixture", "finetune")
DEFAULT_METHOD = "mixture"
#: the swarm model's weight in the mixture, chosen on the heart task's validation splits
#: (docs/benchmarks.md, ``accuracy-personal``): 0 is the hospital alone, 1 the swarm model
DEFAULT_SWARM_WEIGHT = 0.1


@dataclass(frozen=True)
class FineTuneResult:
    """The personal model and how it came about (for the peer's log and the benchmark)."""

    state: StateDict
    #: "mixture"; "fine-tuned", or "swarm" when validation preferred the swarm model (or
    #: epochs is 0)
    chosen: str
    #: validation loss of the swarm model and of the fine-tuned copy (NaN without select)
    swarm_val_loss: float = math.nan
    personal_val_loss: float = math.nan


def carve_validation(data: SiteData, seed: int, fraction: float = VALIDATION_FRACTION) -> SiteData:
    """The site's train rows split again, stratified by label: inner train rows in the train
    slot, validation rows in the test slot (so ``task.evaluate`` scores validation).

    Each class gives ``round(fraction * count)`` rows to validation, at least one when it has
    two or more rows, so a rare class is present on both sides. The test split is dropped: a
    choice made on this data never sees a test row. Deterministic in (seed, site).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    labels = data.y_train.numpy()
    digest = hashlib.sha256(f"personal-validation:{seed}:{data.site}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    held: list[np.ndarray] = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        count = round(fraction * members.size)
        if members.size >= 2:
            count = min(max(count, 1), members.size - 1)
        held.append(rng.permutation(members)[:count])
    val = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.intp)
    train = np.setdiff1d(np.arange(labels.size), val)
    if train.size == 0 or val.size == 0:
        raise ValueError(f"site {data.site}: {labels.size} train rows are too few to validate on")
    train_idx, val_idx = torch.from_numpy(train), torch.from_numpy(val)
    return dataclasses.replace(
        data,
        x_train=data.x_train[train_idx],
        y_train=data.y_train[train_idx],
        x_test=data.x_train[val_idx],
        y_test=data.y_train[val_idx],
    )


def _train_copy(
    task: Task, state: Mapping[str, torch.Tensor], data: SiteData, config: TrainConfig, seed: int
) -> StateDict:
    model = task.build_model(seed)
    model.load_state_dict(state)
    anchor = {name: tensor.detach().clone() for name, tensor in state.items()}
    task.train(model, data, config, anchor)
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _val_loss(task: Task, state: Mapping[str, torch.Tensor], data: SiteData, seed: int) -> float:
    model = task.build_model(seed)
    model.load_state_dict(state)
    return task.evaluate(model, data).loss


def train_own_model(
    task: Task, data: SiteData, config: TrainConfig, *, epochs: int, seed: int, model_seed: int
) -> StateDict:
    """The hospital's own model: the swarm's initial model (``task.build_model(model_seed)``)
    trained on ``data``'s train rows alone, ``epochs`` epochs of ``config`` without FedProx."""
    model = task.build_model(model_seed)
    task.train(model, data, dataclasses.replace(config, epochs=epochs, fedprox_mu=0.0, seed=seed))
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def interpolate(
    swarm: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], swarm_weight: float
) -> StateDict:
    """``swarm_weight * swarm + (1 - swarm_weight) * own``, tensor by tensor, computed in
    float64 and rounded once to each tensor's dtype (deterministic). Tensors that are not
    floating point (a batch-norm counter) are the swarm model's."""
    if not 0.0 <= swarm_weight <= 1.0:
        raise ValueError(f"swarm_weight must be in [0, 1], not {swarm_weight}")
    if set(swarm) != set(own):
        raise ValueError("the swarm model and the hospital's own model have different tensors")
    out: StateDict = {}
    for name, tensor in swarm.items():
        if tensor.is_floating_point():
            mixed = swarm_weight * tensor.double() + (1.0 - swarm_weight) * own[name].double()
            out[name] = mixed.to(tensor.dtype)
        else:
            out[name] = tensor.detach().clone()
    return out


def personalize(
    task: Task,
    state: Mapping[str, torch.Tensor],
    data: SiteData,
    *,
    epochs: int,
    seed: int,
    lr: float | None = None,
    fedprox_mu: float | None = None,
    select: bool = True,
    config: TrainConfig | None = None,
    method: str = DEFAULT_METHOD,
    swarm_weight: float | None = None,
    model_seed: int | None = None,
    own: Mapping[str, torch.Tensor] | None = None,
) -> FineTuneResult:
    """The personal model built from the swarm model ``state`` and ``data``'s train split.

    ``config`` is the site's local training config (default ``task.default_config``): its
    batch size, optimizer, weight decay and device are kept; ``epochs`` and ``lr`` (default:
    the config's) are the personalization's own. ``seed`` drives shuffling.

    ``method="mixture"``: the hospital's own model (:func:`train_own_model`, from
    ``task.build_model(model_seed)``, the swarm's initial model; default ``seed``) mixed with
    the swarm model, ``swarm_weight`` (default :data:`DEFAULT_SWARM_WEIGHT`) on the swarm's
    side. ``fedprox_mu`` and ``select`` are fine-tuning's and not used. ``own`` is that own
    model when the caller already has it (it does not depend on ``state``: a peer trains it
    once, not after every round); otherwise it is trained here.

    ``method="finetune"``: a copy of ``state`` trained ``epochs`` more epochs with FedProx
    ``fedprox_mu`` (default: the config's; the anchor is ``state``), kept if ``select`` is off
    or a validation split of the train rows prefers it to the swarm model.

    ``epochs`` 0 returns a copy of ``state``. ``state`` itself is never modified.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be at least 0, not {epochs}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    weight = DEFAULT_SWARM_WEIGHT if swarm_weight is None else swarm_weight
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"swarm_weight must be in [0, 1], not {weight}")
    copy = {name: tensor.detach().clone() for name, tensor in state.items()}
    if epochs == 0:
        return FineTuneResult(state=copy, chosen="swarm")
    base = config if config is not None else task.default_config
    lr = base.lr if lr is None else lr
    if method == "mixture":
        if own is None:
            own = train_own_model(
                task,
                data,
                dataclasses.replace(base, lr=lr),
                epochs=epochs,
                seed=seed,
                model_seed=seed if model_seed is None else model_seed,
            )
        return FineTuneResult(interpolate(copy, own, weight), chosen="mixture")
    tuned = dataclasses.replace(
        base,
        epochs=epochs,
        lr=lr,
        fedprox_mu=base.fedprox_mu if fedprox_mu is None else fedprox_mu,
        seed=seed,
    )
    if not select:
        return FineTuneResult(_train_copy(task, copy, data, tuned, seed), chosen="fine-tuned")
    held_out = carve_validation(data, seed)
    swarm_loss = _val_loss(task, copy, held_out, seed)
    trial_loss = _val_loss(task, _train_copy(task, copy, held_out, tuned, seed), held_out, seed)
    log.debug(
        "site %s: validation loss swarm %.4f, fine-tuned %.4f", data.site, swarm_loss, trial_loss
    )
    if not trial_loss < swarm_loss:
        return FineTuneResult(copy, "swarm", swarm_loss, trial_loss)
    # Fine-tuning helps here: the personal model gets every train row, not just the inner ones.
    final = _train_copy(task, copy, data, tuned, seed)
    return FineTuneResult(final, "fine-tuned", swarm_loss, trial_loss)


def fine_tune(
    task: Task,
    state: Mapping[str, torch.Tensor],
    data: SiteData,
    *,
    epochs: int,
    seed: int,
    lr: float | None = None,
    fedprox_mu: float | None = None,
    select: bool = True,
    config: TrainConfig | None = None,
) -> StateDict:
    """The fine-tuned personal model's state (``method="finetune"``): :func:`personalize`
    without the account of how."""
    return personalize(
        task,
        state,
        data,
        epochs=epochs,
        seed=seed,
        lr=lr,
        fedprox_mu=fedprox_mu,
        select=select,
        config=config,
        method="finetune",
    ).state
