"""Local training and evaluation of a binary classifier, deterministic, with optional FedProx.

FedProx (Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith: "Federated Optimization in Heterogeneous
Networks", MLSys 2020, arXiv:1812.06127) adds a proximal term to each site's local objective,

    min_w  F_i(w) + mu / 2 * ||w - w_global||^2,

which keeps a site's local epochs from drifting far from the round's base model when the sites'
data differ (as these hospitals' do: 36 % to 93 % disease prevalence). ``mu = 0`` is plain FedAvg
local training. The aggregation itself is unchanged (swarm.merge.fedavg).

Determinism: shuffling uses a ``torch.Generator`` seeded from the config, and training runs
under a forked, seeded global RNG (for any stochastic layer a task's model may have), so the
same model, data and config give bit-identical weights in the same process setup. Training
runs on one intra-op thread: for models this small threading costs more than it brings, and a
fixed thread count keeps float reductions in one order whatever the machine's core count.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from swarm.training.metrics import accuracy, roc_auc
from swarm.training.task import Metrics, TrainConfig

log = logging.getLogger(__name__)

#: intra-op threads while training or evaluating (module docstring)
TRAIN_THREADS = 1


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    if previous == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class SGD:
    """SGD with heavy-ball momentum and L2 weight decay, the update of ``torch.optim.SGD``
    (dampening 0, no Nesterov), op for op, so results are bit-identical to it.

    Why not ``torch.optim.SGD`` itself: constructing any torch optimizer imports
    ``torch._dynamo`` (several seconds of CPU on this class of machine), once per process, so
    every peer would pay it in its first round. These few lines cost nothing to import.

        g = grad + weight_decay * w;  b = g (first step) or momentum * b + g;  w = w - lr * b
    """

    def __init__(
        self, params: list[nn.Parameter], *, lr: float, momentum: float, weight_decay: float
    ) -> None:
        self.params = params
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.buffers: list[torch.Tensor | None] = [None] * len(params)

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for index, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            if self.weight_decay != 0:
                grad = grad.add(param, alpha=self.weight_decay)
            if self.momentum != 0:
                buffer = self.buffers[index]
                if buffer is None:
                    buffer = torch.clone(grad).detach()
                    self.buffers[index] = buffer
                else:
                    buffer.mul_(self.momentum).add_(grad)
                grad = buffer
            param.add_(grad, alpha=-self.lr)


def proximal_term(model: nn.Module, anchor: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """||w - w_anchor||^2 over the model's parameters (the anchor's tensors are constants)."""
    total = torch.zeros((), dtype=torch.float32)
    for name, param in model.named_parameters():
        total = total + (param - anchor[name]).pow(2).sum()
    return total


def train_binary(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    global_model: Mapping[str, torch.Tensor] | None = None,
) -> int:
    """Train ``model`` (logit output) in place with :class:`SGD` on (x, y); returns the rows used.

    Mini-batches of ``config.batch_size`` rows in a fresh seeded order each epoch; loss
    ``BCEWithLogits`` (mean over the batch) plus, when ``config.fedprox_mu`` > 0,
    mu/2 * ||w - w_global||^2 with ``global_model`` (default: the weights at the start).
    """
    rows = int(y.shape[0])
    if rows == 0:
        raise ValueError("no training rows")
    if x.shape[0] != rows:
        raise ValueError(f"{x.shape[0]} feature rows for {rows} labels")
    anchor: dict[str, torch.Tensor] | None = None
    if config.fedprox_mu > 0:
        source = global_model if global_model is not None else dict(model.named_parameters())
        anchor = {
            name: source[name].detach().clone().to(torch.float32)
            for name, _ in model.named_parameters()
        }
    optimizer = SGD(
        list(model.parameters()),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    loss_fn = nn.BCEWithLogitsLoss()
    order_rng = torch.Generator().manual_seed(config.seed)
    model.train()
    with _threads(TRAIN_THREADS), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        for _ in range(config.epochs):
            order = torch.randperm(rows, generator=order_rng)
            for start in range(0, rows, config.batch_size):
                batch = order[start : start + config.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(x[batch]), y[batch])
                if anchor is not None:
                    loss = loss + 0.5 * config.fedprox_mu * proximal_term(model, anchor)
                loss.backward()
                optimizer.step()
    model.eval()
    log.debug(
        "trained %d rows x %d epochs (lr %g, mu %g, seed %d)",
        rows,
        config.epochs,
        config.lr,
        config.fedprox_mu,
        config.seed,
    )
    return rows


def predict_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's logits for ``x``, without gradients, in eval mode."""
    model.eval()
    with _threads(TRAIN_THREADS), torch.no_grad():
        return model(x).detach()


def evaluate_binary(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Metrics:
    """Accuracy (probability > 0.5), ROC AUC and mean BCE loss of ``model`` on (x, y)."""
    rows = int(y.shape[0])
    if rows == 0:
        return Metrics(accuracy=math.nan, auc=math.nan, loss=math.nan, samples=0)
    logits = predict_logits(model, x)
    loss = float(nn.functional.binary_cross_entropy_with_logits(logits, y))
    scores = logits.numpy()
    labels = y.numpy()
    return Metrics(
        accuracy=accuracy(scores, labels), auc=roc_auc(scores, labels), loss=loss, samples=rows
    )
