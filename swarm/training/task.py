"""The task interface: what the swarm needs from a model and a hospital's data.

A task bundles a model architecture, how one site loads its own data, how it trains locally and
how it evaluates. The peer's round loop is written once against :class:`Task`; a new model or
data set is a new task, nothing else changes. One round at a participant::

    task = get_task("heart-disease-uci/mlp")
    data = task.load_site("Hungary", seed=split_seed)        # this hospital's rows only
    model = task.build_model(seed=0)                        # same weights at every peer
    model.load_state_dict(base_state)                       # the round's base model
    n_i = task.train(model, data, config.for_round(round_id, data.site))
    delta = model_delta(model.state_dict(), base_state)     # swarm.merge: encrypt n_i * delta
    ...
    new_state = apply_mean_update(base_state, decrypted_sum, total_samples)
    metrics = task.evaluate(model_with(new_state), data)    # on this site's test split

Tasks must be deterministic: the same seed and inputs give bit-identical weights, so runs and
tests are reproducible (the aggregate itself is bit-identical at every honest peer anyway, see
swarm.merge.fedavg).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import torch
from torch import nn

#: local optimizers (swarm.training.loop)
OPTIMIZERS = ("sgd", "adamw")
#: where local training runs; "auto" is cuda when torch sees a GPU, else cpu
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one site's local training in one round.

    ``optimizer`` is "sgd" (heavy-ball momentum, L2 weight decay) or "adamw" (Adam with
    decoupled weight decay, ``beta1``/``beta2``/``eps``); ``momentum`` is SGD's, the betas and
    eps AdamW's, each ignored by the other. ``fedprox_mu`` > 0 adds FedProx's proximal term
    mu/2 * ||w - w_global||^2 to the local loss (swarm.training.loop). ``seed`` drives shuffling
    (and any other randomness of training): derive a fresh one per round and site with
    :meth:`for_round`. ``device`` is where training runs: "cpu" (bit-reproducible), "cuda" or
    "auto" (cuda when torch sees a GPU); the weights come back to the CPU as float32 either way.
    """

    epochs: int = 4
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    fedprox_mu: float = 0.0
    seed: int = 0
    optimizer: str = "sgd"
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if not (self.lr > 0 and self.momentum >= 0 and self.weight_decay >= 0):
            raise ValueError("lr must be positive; momentum and weight_decay non-negative")
        if self.fedprox_mu < 0:
            raise ValueError("fedprox_mu must be non-negative")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}"
            )
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), not {getattr(self, name)!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be positive, not {self.eps!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        # The proximal term alone is a quadratic of curvature mu; heavy-ball SGD on it diverges
        # unless lr * mu < 2 * (1 + momentum). Refuse a config that cannot converge. (AdamW's
        # steps are bounded by lr whatever the curvature: no such limit.)
        if self.optimizer == "sgd" and self.lr * self.fedprox_mu >= 2 * (1 + self.momentum):
            raise ValueError(
                f"lr * fedprox_mu = {self.lr * self.fedprox_mu:g} makes local training diverge "
                f"(needs < {2 * (1 + self.momentum):g}); lower lr or fedprox_mu"
            )

    def for_round(self, round_id: int, site: str) -> TrainConfig:
        """This config with a seed derived from (seed, round, site).

        Without it every round would shuffle a site's rows in the same order. The derivation is
        a stable hash, so a restarted peer retrains a round exactly as before.
        """
        digest = hashlib.sha256(f"{self.seed}:{round_id}:{site}".encode()).digest()
        return replace(self, seed=int.from_bytes(digest[:8], "little") >> 1)


@dataclass(frozen=True)
class Metrics:
    """A model's quality on one test set.

    ``auc`` is the ROC AUC (binary) or the macro one-vs-rest AUC (multiclass); NaN when it is
    undefined: a binary set holding one class only, a multiclass set missing a class.
    """

    accuracy: float
    auc: float
    loss: float
    samples: int


@dataclass(frozen=True, eq=False)
class SiteData:
    """One hospital's data, already encoded into the task's feature layout.

    ``x_*`` hold the model's inputs, one row per example (float32 features of shape
    (rows, features), or images of shape (rows, channels, height, width)). ``y_*`` are the
    labels, of shape (rows,): float32 0/1 for a binary task (the model outputs (batch,)
    logits), int64 class indices 0..K-1 for a multiclass task (the model outputs (batch, K)
    logits); ``classes`` names the K classes in index order (empty for a binary task).
    Holding the test split next to the train split is a convenience for evaluation: training
    never reads it.
    """

    site: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    feature_names: tuple[str, ...]
    classes: tuple[str, ...] = ()

    @property
    def train_samples(self) -> int:
        return int(self.y_train.shape[0])

    @property
    def test_samples(self) -> int:
        return int(self.y_test.shape[0])


@runtime_checkable
class Task(Protocol):
    """What a model plus a data source must provide to be trained by the swarm."""

    @property
    def name(self) -> str:
        """Registry name, e.g. "heart-disease-uci/mlp"."""
        ...

    @property
    def sites(self) -> tuple[str, ...]:
        """The sites (hospitals) that have data for this task."""
        ...

    @property
    def default_config(self) -> TrainConfig:
        """The local training config of one round the task was tuned with (docs/benchmarks.md)."""
        ...

    @property
    def default_rounds(self) -> int:
        """The number of FedAvg rounds ``default_config`` was tuned for."""
        ...

    def build_model(self, seed: int) -> nn.Module:
        """The model with deterministic initial weights: the same seed gives the same bytes."""
        ...

    def load_site(self, site: str, seed: int) -> SiteData:
        """This hospital's data only, split into train and test by ``seed``."""
        ...

    def train(
        self,
        model: nn.Module,
        data: SiteData,
        config: TrainConfig,
        global_model: Mapping[str, torch.Tensor] | None = None,
    ) -> int:
        """Train ``model`` in place on ``data``'s train split; returns the samples used (n_i).

        With ``config.fedprox_mu`` > 0 the proximal term pulls toward ``global_model`` (the
        round's base weights; default: the model's weights when training starts).
        """
        ...

    def evaluate(self, model: nn.Module, data: SiteData) -> Metrics:
        """The model's metrics on ``data``'s test split."""
        ...
