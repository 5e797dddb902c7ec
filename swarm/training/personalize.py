"""Personalization: a hospital's own copy of the swarm model, fine-tuned on its own rows only.

The swarm model is what every hospital agreed on; a hospital whose patients differ from the
others' (Switzerland: 93 % disease prevalence) may do better on its own patients with a copy
that took a few more local epochs. That copy is the *personal* model: trained from the swarm
model on this site's train split, it never leaves the hospital and never enters a round.

Two guards keep the copy from being worse than the model it started from, both measured on
validation splits in benchmarks/accuracy_bench.py (docs/benchmarks.md, ``accuracy-personal``):

- FedProx anchored at the swarm model (mu/2 * ||w - w_swarm||^2, the task's own ``fedprox_mu``
  unless given): the copy moves toward the site's data but cannot wander off on a few rows;
- ``select`` (the default): a validation split carved from the site's *train* rows decides
  whether the fine-tuned copy beats the swarm model on validation loss; if not, the personal
  model is the swarm model itself. On the heart task's validation splits every one of the 12
  best settings of the grid used it (it turns a loss at a site into a tie). The test split is
  never read here.

Pure torch and deterministic: the same state, data and seed give bit-identical weights.
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


@dataclass(frozen=True)
class FineTuneResult:
    """The personal model and how it came about (for the peer's log and the benchmark)."""

    state: StateDict
    #: "fine-tuned", or "swarm" when validation preferred the swarm model (or epochs is 0)
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
) -> FineTuneResult:
    """Fine-tune a copy of the swarm model ``state`` on ``data``'s train split.

    ``config`` is the site's local training config (default ``task.default_config``): its
    batch size, optimizer, weight decay and device are kept; ``epochs``, ``lr`` (default: the
    config's) and ``fedprox_mu`` (default: the config's; the anchor is ``state``) are the
    personalization's own. ``seed`` drives shuffling (the model's initial weights are ``state``).
    ``epochs`` 0 returns a copy of ``state``. ``state`` itself is never modified.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be at least 0, not {epochs}")
    copy = {name: tensor.detach().clone() for name, tensor in state.items()}
    if epochs == 0:
        return FineTuneResult(state=copy, chosen="swarm")
    base = config if config is not None else task.default_config
    tuned = dataclasses.replace(
        base,
        epochs=epochs,
        lr=base.lr if lr is None else lr,
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
    """The personal model's state: :func:`personalize` without the account of how."""
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
    ).state
