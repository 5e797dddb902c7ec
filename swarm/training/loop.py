"""Local training and evaluation of a classifier (binary or multiclass), with optional FedProx.

FedProx (Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith: "Federated Optimization in Heterogeneous
Networks", MLSys 2020, arXiv:1812.06127) adds a proximal term to each site's local objective,

    min_w  F_i(w) + mu / 2 * ||w - w_global||^2,

which keeps a site's local epochs from drifting far from the round's base model when the sites'
data differ (as these hospitals' do: 36 % to 93 % disease prevalence). ``mu = 0`` is plain FedAvg
local training. The aggregation itself is unchanged (swarm.merge.fedavg).

The task is binary when the labels are floating point (0/1, the model outputs (batch,) logits,
loss ``BCEWithLogits``) and multiclass when they are integer class indices (the model outputs
(batch, K) logits, loss cross-entropy). The local optimizer is :class:`SGD` or :class:`AdamW`
(``TrainConfig.optimizer``), both written here op for op like their ``torch.optim`` twins.

Determinism: shuffling uses a ``torch.Generator`` seeded from the config, and training runs
under a forked, seeded global RNG (for any stochastic layer a task's model may have), so the
same model, data and config give bit-identical weights in the same process setup. Training
runs on one intra-op thread: for models this small threading costs more than it brings, and a
fixed thread count keeps float reductions in one order whatever the machine's core count.
That holds on the CPU (``TrainConfig.device`` "cpu"); on a GPU (cuda) the model and each batch
are moved to the device and back, and kernels may reduce in any order: fast, not bit-exact.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from swarm.errors import ConfigError
from swarm.training.metrics import accuracy, macro_roc_auc, multiclass_accuracy, roc_auc
from swarm.training.task import Metrics, TrainConfig

log = logging.getLogger(__name__)

#: intra-op threads while training or evaluating (module docstring)
TRAIN_THREADS = 1
#: rows per forward pass when evaluating (a test split of thousands of images would not fit
#: through a convolutional network in one batch)
EVAL_BATCH_SIZE = 256


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


class AdamW:
    """Adam with decoupled weight decay, the update of ``torch.optim.AdamW`` with its defaults
    on the CPU (single-tensor, non-amsgrad, not maximizing, not capturable), op for op, so
    results are bit-identical to it (why not torch.optim's own: see :class:`SGD`).

    Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019
    (arXiv:1711.05101); Kingma and Ba, "Adam", ICLR 2015 (arXiv:1412.6980). At step t:

        w = w * (1 - lr * weight_decay)
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        w = w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    def __init__(
        self,
        params: list[nn.Parameter],
        *,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
    ) -> None:
        self.params = params
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.steps = [0] * len(params)
        self.exp_avgs: list[torch.Tensor | None] = [None] * len(params)
        self.exp_avg_sqs: list[torch.Tensor | None] = [None] * len(params)

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for index, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            exp_avg, exp_avg_sq = self.exp_avgs[index], self.exp_avg_sqs[index]
            if exp_avg is None or exp_avg_sq is None:
                exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)
                exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)
                self.exp_avgs[index], self.exp_avg_sqs[index] = exp_avg, exp_avg_sq
            self.steps[index] += 1
            # torch counts steps in a float32 tensor and reads it back as a Python float
            step = float(self.steps[index])
            if self.weight_decay != 0:
                param.mul_(1 - self.lr * self.weight_decay)
            exp_avg.lerp_(grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            bias_correction1 = 1 - self.beta1**step
            bias_correction2 = 1 - self.beta2**step
            step_size = self.lr / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            param.addcdiv_(exp_avg, denom, value=-step_size)


Optimizer = SGD | AdamW


def make_optimizer(params: list[nn.Parameter], config: TrainConfig) -> Optimizer:
    """The local optimizer ``config.optimizer`` names, with its hyperparameters."""
    if config.optimizer == "adamw":
        return AdamW(
            params,
            lr=config.lr,
            betas=(config.beta1, config.beta2),
            eps=config.eps,
            weight_decay=config.weight_decay,
        )
    return SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def resolve_device(name: str | torch.device) -> torch.device:
    """``TrainConfig.device`` as a torch device: "auto" is cuda when torch sees a GPU.

    ConfigError (one line) for "cuda" on a machine where torch sees none: a peer configured
    for a GPU should say so at once, not train on the CPU a hundred times slower."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f'device = "{name}", but torch sees no CUDA GPU here (torch {torch.__version__}); '
            'use "auto" or "cpu"'
        )
    return torch.device(name)


def is_binary(y: torch.Tensor) -> bool:
    """Float labels are a binary task's 0/1; integer labels are class indices (module doc)."""
    return y.is_floating_point()


def _loss(logits: torch.Tensor, y: torch.Tensor, binary: bool) -> torch.Tensor:
    if binary:
        if logits.shape != y.shape:
            raise ValueError(
                f"binary task: the model gives logits of shape {list(logits.shape)} for labels "
                f"of shape {list(y.shape)} (expected one logit per row, shape (batch,))"
            )
        return nn.functional.binary_cross_entropy_with_logits(logits, y)
    if logits.dim() != 2 or logits.shape[0] != y.shape[0]:
        raise ValueError(
            f"multiclass task: the model gives logits of shape {list(logits.shape)} for "
            f"{y.shape[0]} labels (expected (batch, classes))"
        )
    return nn.functional.cross_entropy(logits, y)


def proximal_term(model: nn.Module, anchor: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """||w - w_anchor||^2 over the model's parameters (the anchor's tensors are constants)."""
    total: torch.Tensor | None = None
    for name, param in model.named_parameters():
        if total is None:
            total = torch.zeros((), dtype=torch.float32, device=param.device)
        total = total + (param - anchor[name]).pow(2).sum()
    return total if total is not None else torch.zeros((), dtype=torch.float32)


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    global_model: Mapping[str, torch.Tensor] | None = None,
) -> int:
    """Train ``model`` (logit output) in place on (x, y); returns the rows used.

    Binary when ``y`` is floating point, multiclass when it holds class indices (module
    docstring). Mini-batches of ``config.batch_size`` rows in a fresh seeded order each epoch;
    loss averaged over the batch plus, when ``config.fedprox_mu`` > 0, mu/2 * ||w - w_global||^2
    with ``global_model`` (default: the weights at the start); ``config.optimizer`` steps.
    On ``config.device`` cuda the model is moved there for training and back to the CPU after.
    """
    rows = int(y.shape[0])
    if rows == 0:
        raise ValueError("no training rows")
    if x.shape[0] != rows:
        raise ValueError(f"{x.shape[0]} feature rows for {rows} labels")
    binary = is_binary(y)
    device = resolve_device(config.device)
    on_cpu = device.type == "cpu"
    anchor: dict[str, torch.Tensor] | None = None
    if config.fedprox_mu > 0:
        source = global_model if global_model is not None else dict(model.named_parameters())
        anchor = {
            name: source[name].detach().clone().to(torch.float32)
            for name, _ in model.named_parameters()
        }
        if not on_cpu:
            anchor = {name: value.to(device) for name, value in anchor.items()}
    order_rng = torch.Generator().manual_seed(config.seed)
    rng_devices: list[int] = []
    if not on_cpu:
        model.to(device)
        if device.type == "cuda":
            rng_devices = [
                device.index if device.index is not None else torch.cuda.current_device()
            ]
    optimizer = make_optimizer(list(model.parameters()), config)
    model.train()
    try:
        with _threads(TRAIN_THREADS), torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(config.seed)
            has_batch_norm = any(
                isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
            )
            for _ in range(config.epochs):
                order = torch.randperm(rows, generator=order_rng)
                for start in range(0, rows, config.batch_size):
                    batch = order[start : start + config.batch_size]
                    if batch.numel() == 1 and has_batch_norm and rows > 1:
                        # BatchNorm cannot normalize one row (what drop_last avoids); the row
                        # is in another batch next epoch, in a fresh order
                        continue
                    xb, yb = x[batch], y[batch]
                    if not on_cpu:
                        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                    optimizer.zero_grad()
                    loss = _loss(model(xb), yb, binary)
                    if anchor is not None:
                        loss = loss + 0.5 * config.fedprox_mu * proximal_term(model, anchor)
                    loss.backward()
                    optimizer.step()
    finally:
        if not on_cpu:
            model.to("cpu")
    model.eval()
    log.debug(
        "trained %d rows x %d epochs (%s, lr %g, mu %g, seed %d, %s)",
        rows,
        config.epochs,
        config.optimizer,
        config.lr,
        config.fedprox_mu,
        config.seed,
        device,
    )
    return rows


def predict_logits(
    model: nn.Module,
    x: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = EVAL_BATCH_SIZE,
) -> torch.Tensor:
    """The model's logits for ``x`` on the CPU, without gradients, in eval mode, computed
    ``batch_size`` rows at a time (on ``device``; the model is back on the CPU after)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    target = resolve_device(device)
    on_cpu = target.type == "cpu"
    model.eval()
    if not on_cpu:
        model.to(target)
    try:
        with _threads(TRAIN_THREADS), torch.no_grad():
            rows = int(x.shape[0])
            if rows <= batch_size and on_cpu:
                return model(x).detach()
            parts = [
                model(x[start : start + batch_size].to(target)).detach().cpu()
                for start in range(0, rows, batch_size)
            ]
            return torch.cat(parts) if parts else model(x).detach().cpu()
    finally:
        if not on_cpu:
            model.to("cpu")


def evaluate_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = EVAL_BATCH_SIZE,
) -> Metrics:
    """Accuracy, ROC AUC and mean loss of ``model`` on (x, y).

    Binary (float ``y``): accuracy at probability 0.5, ROC AUC, BCE. Multiclass (class-index
    ``y``): accuracy of the top class, macro one-vs-rest AUC (swarm.training.metrics), cross
    entropy. Evaluated ``batch_size`` rows at a time.
    """
    rows = int(y.shape[0])
    if rows == 0:
        return Metrics(accuracy=math.nan, auc=math.nan, loss=math.nan, samples=0)
    logits = predict_logits(model, x, device=device, batch_size=batch_size)
    binary = is_binary(y)
    loss = float(_loss(logits, y, binary))
    scores = logits.numpy()
    labels = y.numpy()
    if binary:
        return Metrics(
            accuracy=accuracy(scores, labels), auc=roc_auc(scores, labels), loss=loss, samples=rows
        )
    return Metrics(
        accuracy=multiclass_accuracy(scores, labels),
        auc=macro_roc_auc(scores, labels),
        loss=loss,
        samples=rows,
    )


#: the names the heart task, the benchmarks and the DP path have always used
train_binary = train_classifier
evaluate_binary = evaluate_classifier
