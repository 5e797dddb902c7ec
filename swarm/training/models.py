"""The models of the built-in tasks: small binary classifiers on tabular features.

Both output one logit per row (shape ``(batch,)``), trained with ``BCEWithLogitsLoss``; the
probability of disease is ``sigmoid(logit)``. Every parameter is a float32 tensor and there are
no buffers, so the whole state_dict travels in an update (swarm.crypto's layout) and FedAvg of
the state_dict is FedAvg of the model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class MLP(nn.Module):
    """features -> Linear -> ReLU -> Linear -> logit.

    One hidden layer is enough for a few hundred rows of 13 clinical columns; more depth only
    overfits the smaller hospitals. No dropout or batch norm: nothing stochastic at evaluation and
    no running statistics that FedAvg would have to average.
    """

    def __init__(self, in_features: int, hidden: int = 16) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)  # (batch, in) -> (batch, hidden)
        self.out = nn.Linear(hidden, 1)  # (batch, hidden) -> (batch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x))).squeeze(-1)  # (batch,)


class LogisticRegression(nn.Module):
    """features -> Linear -> logit: the classical baseline for this data."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)  # (batch, in) -> (batch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)  # (batch,)


def build_seeded(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``factory()`` with its initial weights drawn from ``seed``: same seed, same bytes.

    Runs under a forked RNG so that building a model neither depends on nor disturbs the
    caller's global torch random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()
