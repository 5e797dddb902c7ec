"""Server optimizers: how the sites' mean update moves the shared model (FedAvg, FedAvgM,
FedAdam, FedYogi).

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan: "Adaptive Federated
Optimization", ICLR 2021 (arXiv:2003.00295), Algorithm 2. The round's mean update

    d = (sum_i n_i * delta_i) / (sum_i n_i)        (delta_i = w_i - w, what each site sends)

is a pseudo-gradient (the paper's Delta_t, pointing downhill: we ADD it). A server optimizer
turns it into the step, with state that persists between rounds:

    fedavg   w = w + lr * d                               (McMahan et al. 2017; lr 1: plain FedAvg)
    fedavgm  m = momentum * m + d;  w = w + lr * m         (Hsu, Qi, Brown 2019, arXiv:1909.06335)
    fedadam  m = beta1 * m + (1 - beta1) * d
             v = beta2 * v + (1 - beta2) * d^2
             w = w + lr * m / (sqrt(v) + tau)
    fedyogi  as fedadam, with v = v - (1 - beta2) * d^2 * sign(v - d^2)

with m_0 = 0 and v_0 = tau^2 (the paper's initialisation); no bias correction (the paper has
none). ``tau`` is the adaptivity: the smallest denominator, so a parameter whose updates are
tiny moves by at most about lr * |m| / tau.

Every key holder must derive the same bytes from the same decrypted sum (the model hash is
acknowledged on the ledger), so the arithmetic is elementwise IEEE float64 (+, -, *, /, sqrt,
sign: each correctly rounded, no reduction, no fused multiply-add, no thread-dependent order),
and each result, the new weights and each new state tensor, is rounded once to float32. With
``fedavg`` and lr 1 the result is byte for byte :func:`swarm.merge.apply_mean_update`'s.

The optimizer's state travels with the model: the state the swarm hashes, checkpoints and hands
to a member catching up is the *swarm state* (:func:`swarm_state`), the model's tensors plus each
state tensor under ``"@server/<slot>/<tensor>"``. Updates never include it: sites train and send
deltas of the model only.

Which tensors take a step: the floating ones, as in swarm.merge.fedavg (integer buffers are
copied from the base). Running statistics, the tensors named ``running_mean`` / ``running_var``
(BatchNorm's), are not optimized quantities: they take the plain mean, w = w + d, and have no
optimizer state. An adaptive step on them would be meaningless, and could push a variance below
zero (NaN in every later forward pass). The rule reads only names, so every member, and the
initial hash the ledger records, agree on it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

log = logging.getLogger(__name__)

#: the server optimizers, by the name a task file's [server] optimizer gives
KINDS = ("fedavg", "fedavgm", "fedadam", "fedyogi")
#: the state tensors each keeps per model tensor (the <slot> of "@server/<slot>/<tensor>")
SLOTS: dict[str, tuple[str, ...]] = {
    "fedavg": (),
    "fedavgm": ("momentum",),
    "fedadam": ("m", "v"),
    "fedyogi": ("m", "v"),
}
#: the prefix of server-state tensors in a swarm state
SERVER_PREFIX = "@server/"
#: the last name component of running statistics: averaged, never optimized (module docstring)
STATISTICS = ("running_mean", "running_var")

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ServerOptimizer:
    """A server optimizer and its hyperparameters (module docstring); ``kind`` is the task
    file's ``[server] optimizer``. ``momentum`` is FedAvgM's, ``beta1``/``beta2``/``tau``
    FedAdam's and FedYogi's, each ignored by the others. The defaults are the paper's
    (beta2 0.99, tau 1e-3); lr 1.0 suits fedavg and fedavgm, adaptive ones want ~0.01-0.1."""

    kind: str = "fedavg"
    lr: float = 1.0
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"optimizer must be one of {', '.join(KINDS)}, not {self.kind!r}")
        for name in ("lr", "momentum", "beta1", "beta2", "tau"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, not {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, not {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, not {self.lr!r}")
        if not self.tau > 0:
            raise ValueError(f"tau must be positive, not {self.tau!r}")
        for name in ("momentum", "beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), not {getattr(self, name)!r}")

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ServerOptimizer:
        """From a task file's [server] table (``optimizer`` = the kind, then the
        hyperparameters); ValueError naming the key for an unknown key or a bad value."""
        known = {f.name for f in fields(cls)} - {"kind"}
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key == "optimizer":
                if not isinstance(value, str):
                    raise ValueError(f"optimizer must be a string, not {value!r}")
                values["kind"] = value
            elif key in known:
                values[key] = value
            else:
                raise ValueError(
                    f"unknown key {key!r} (known: optimizer, {', '.join(sorted(known))})"
                )
        return cls(**values)

    def to_table(self) -> dict[str, Any]:
        """The [server] table this optimizer reads back from (:meth:`from_table`)."""
        return {"optimizer": self.kind, **{f.name: getattr(self, f.name) for f in fields(self)[1:]}}

    @property
    def slots(self) -> tuple[str, ...]:
        """The state tensors kept per model tensor (empty for fedavg: it has no state)."""
        return SLOTS[self.kind]

    def initial_state(self, model_state: Mapping[str, torch.Tensor]) -> StateDict:
        """The state before the first round, keyed ``"<slot>/<tensor>"`` (float32, the model
        tensor's shape) for every optimized tensor: m = 0, v = tau^2. Empty for fedavg."""
        out: StateDict = {}
        names = _optimized_names(model_state)
        for slot in self.slots:
            fill = self.tau * self.tau if slot == "v" else 0.0  # one correctly rounded product
            for name in names:
                shape = model_state[name].shape
                out[f"{slot}/{name}"] = torch.full(shape, fill, dtype=torch.float64).to(
                    torch.float32
                )
        return out

    def step(
        self,
        model_state: Mapping[str, torch.Tensor],
        server_state: Mapping[str, torch.Tensor],
        mean_delta: Mapping[str, torch.Tensor],
    ) -> tuple[StateDict, StateDict]:
        """The next model and the next optimizer state from the round's mean update.

        ``mean_delta`` (float64 preferably: it is used as given, not rounded first) holds exactly
        the model's floating tensors; ``server_state`` exactly :meth:`initial_state`'s keys.
        Returns new tensors (model in its key order, float tensors float32, the others copied);
        the inputs are not modified. ValueError naming the tensor for a missing, unexpected or
        misshapen one.
        """
        names = _float_names(model_state)
        optimized = _optimized_names(model_state)
        optimized_set = set(optimized)
        _check_keys(set(mean_delta), set(names), "mean update")
        _check_keys(set(server_state), set(self.state_keys(optimized)), "server state")
        for name in names:
            shape = tuple(model_state[name].shape)
            if tuple(mean_delta[name].shape) != shape:
                raise ValueError(
                    f"mean update: tensor {name} is {list(mean_delta[name].shape)}, the model's "
                    f"is {list(shape)}"
                )
            for slot in self.slots if name in optimized_set else ():
                key = f"{slot}/{name}"
                if tuple(server_state[key].shape) != shape:
                    raise ValueError(
                        f"server state: tensor {key} is {list(server_state[key].shape)}, the "
                        f"model's is {list(shape)}"
                    )
        new_model: StateDict = {}
        new_state_of: dict[str, torch.Tensor] = {}
        for name, base in model_state.items():
            if not base.is_floating_point():
                new_model[name] = base.detach().clone()
                continue
            w = _f64(base)
            d = _f64(mean_delta[name])
            if is_statistic(name):
                new_model[name] = (w + d).to(torch.float32)  # averaged (module docstring)
                continue
            state = {slot: _f64(server_state[f"{slot}/{name}"]) for slot in self.slots}
            step, new_state = self._step(d, state)
            new_model[name] = (w + step).to(torch.float32)
            for slot, value in new_state.items():
                new_state_of[f"{slot}/{name}"] = value.to(torch.float32)
        new_server = {key: new_state_of[key] for key in self.state_keys(optimized)}
        log.debug("%s step on %d tensors", self.kind, len(optimized))
        return new_model, new_server

    def state_keys(self, names: list[str]) -> list[str]:
        """The server state's keys for a model with floating tensors ``names``, in order."""
        return [f"{slot}/{name}" for slot in self.slots for name in names]

    def _step(
        self, d: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the weights' increment, the new state) in float64: plain elementwise ops only
        (an ``alpha=`` add or ``addcmul`` may fuse a multiply-add on some CPUs, not others)."""
        if self.kind == "fedavg":
            return (d if self.lr == 1.0 else d * self.lr), {}
        if self.kind == "fedavgm":
            m = state["momentum"] * self.momentum + d
            return m * self.lr, {"momentum": m}
        m = state["m"] * self.beta1 + d * (1.0 - self.beta1)
        square = d * d
        if self.kind == "fedadam":
            v = state["v"] * self.beta2 + square * (1.0 - self.beta2)
        else:  # fedyogi
            v = state["v"] - square * (1.0 - self.beta2) * torch.sign(state["v"] - square)
        return m * self.lr / (torch.sqrt(v) + self.tau), {"m": m, "v": v}


def mean_delta(
    summed_weighted_delta: Mapping[str, torch.Tensor], total_samples: int
) -> dict[str, torch.Tensor]:
    """``sum_i n_i * delta_i / sum_i n_i`` in float64, tensor by tensor: the pseudo-gradient
    :meth:`ServerOptimizer.step` takes (the same division as swarm.merge.apply_mean_update)."""
    if isinstance(total_samples, bool) or not isinstance(total_samples, int) or total_samples <= 0:
        raise ValueError(f"sample count must be a positive int, got {total_samples!r}")
    return {
        name: value.detach().cpu().to(torch.float64) / float(total_samples)
        for name, value in summed_weighted_delta.items()
    }


def swarm_state(
    model_state: Mapping[str, torch.Tensor], server_state: Mapping[str, torch.Tensor]
) -> StateDict:
    """The state the swarm hashes and checkpoints: the model's tensors, then each server-state
    tensor under ``"@server/<slot>/<tensor>"``. With fedavg (no state) it is the model itself,
    so its hash is the model's."""
    for name in model_state:
        if name.startswith(SERVER_PREFIX):
            raise ValueError(f"model tensor {name!r} clashes with the server-state prefix")
    return {**model_state, **{SERVER_PREFIX + key: value for key, value in server_state.items()}}


def split_swarm_state(full: Mapping[str, torch.Tensor]) -> tuple[StateDict, StateDict]:
    """(model state, server state) from a swarm state; the inverse of :func:`swarm_state`."""
    model: StateDict = {}
    server: StateDict = {}
    for name, value in full.items():
        if name.startswith(SERVER_PREFIX):
            server[name.removeprefix(SERVER_PREFIX)] = value
        else:
            model[name] = value
    return model, server


def is_statistic(name: str) -> bool:
    """Whether tensor ``name`` is a running statistic (averaged, not optimized)."""
    return name.rsplit(".", 1)[-1] in STATISTICS


def _float_names(model_state: Mapping[str, torch.Tensor]) -> list[str]:
    return [name for name, value in model_state.items() if value.is_floating_point()]


def _optimized_names(model_state: Mapping[str, torch.Tensor]) -> list[str]:
    return [name for name in _float_names(model_state) if not is_statistic(name)]


def _f64(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().cpu().to(torch.float64)


def _check_keys(given: set[str], expected: set[str], what: str) -> None:
    if given != expected:
        missing = sorted(expected - given)
        extra = sorted(given - expected)
        first = f"unexpected tensor {extra[0]!r}" if extra else f"missing tensor {missing[0]!r}"
        raise ValueError(f"{what}: {first} (missing {missing}, unexpected {extra})")


__all__ = [
    "KINDS",
    "SERVER_PREFIX",
    "SLOTS",
    "STATISTICS",
    "ServerOptimizer",
    "is_statistic",
    "mean_delta",
    "split_swarm_state",
    "swarm_state",
]
