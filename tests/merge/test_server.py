"""Server optimizers (swarm.merge.server): FedAvg, FedAvgM, FedAdam, FedYogi on hand-computable
states, bit-identical at every key holder, and the swarm state that carries their state."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from swarm.merge import apply_mean_update, weighted_sum
from swarm.merge.server import ServerOptimizer, mean_delta, split_swarm_state, swarm_state
from swarm.training.checkpoint import model_bytes, model_hash

BASE = {"w": torch.tensor([1.0, -2.0]), "steps": torch.tensor(3)}


def _d(*values: float) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor(values, dtype=torch.float64)}


def _random_base(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "layer.weight": torch.randn(5, 7, generator=gen),
        "layer.bias": torch.randn(7, generator=gen),
        "norm.running_mean": torch.randn(7, generator=gen),
        "norm.num_batches_tracked": torch.tensor(12),
    }


def test_fedavg_is_apply_mean_update_byte_for_byte() -> None:
    """Fault: the server-optimizer path changing the model of every existing consortium (another
    division, a second rounding). fedavg with lr 1 gives apply_mean_update's bytes and hash, and
    its swarm state is the model itself."""
    base = _random_base(0)
    gen = torch.Generator().manual_seed(1)
    deltas = [
        (
            {
                k: 0.01 * torch.randn(v.shape, generator=gen)
                for k, v in base.items()
                if k[-1] != "d"
            },
            n,
        )
        for n in (17, 40, 860)
    ]
    summed = weighted_sum(deltas)
    optimizer = ServerOptimizer()
    assert optimizer.initial_state(base) == {}
    model, server = optimizer.step(base, {}, mean_delta(summed, 917))
    expected = apply_mean_update(base, summed, 917)
    assert model_bytes(model) == model_bytes(expected) and server == {}
    assert list(model) == list(base) and model["norm.num_batches_tracked"].dtype == torch.int64
    assert model_hash(swarm_state(model, server)) == model_hash(expected)


def test_fedavgm_by_hand() -> None:
    """m = momentum * m + d, w = w + lr * m; momentum 0.5, lr 0.5, d = (0.5, -0.25) twice:
    m = (0.5, -0.25) then (0.75, -0.375); w = (1.25, -2.125) then (1.625, -2.3125)."""
    optimizer = ServerOptimizer("fedavgm", lr=0.5, momentum=0.5)
    server = optimizer.initial_state(BASE)
    assert list(server) == ["momentum/w"] and server["momentum/w"].tolist() == [0.0, 0.0]
    model, server = optimizer.step(BASE, server, _d(0.5, -0.25))
    assert model["w"].tolist() == [1.25, -2.125] and server["momentum/w"].tolist() == [0.5, -0.25]
    model, server = optimizer.step(model, server, _d(0.5, -0.25))
    assert model["w"].tolist() == [1.625, -2.3125]
    assert server["momentum/w"].tolist() == [0.75, -0.375]
    assert int(model["steps"]) == 3 and server["momentum/w"].dtype == torch.float32


def test_fedadam_by_hand() -> None:
    """tau 0.5 (v0 = 0.25), beta1 = beta2 = 0.5, lr 1, d = (1, -1): m = 0.5 * d = (0.5, -0.5),
    v = 0.5 * 0.25 + 0.5 * 1 = 0.625, w += 0.5 / (sqrt(0.625) + 0.5) = 0.3874259..."""
    optimizer = ServerOptimizer("fedadam", lr=1.0, beta1=0.5, beta2=0.5, tau=0.5)
    server = optimizer.initial_state(BASE)
    assert server["m/w"].tolist() == [0.0, 0.0] and server["v/w"].tolist() == [0.25, 0.25]
    model, server = optimizer.step(BASE, server, _d(1.0, -1.0))
    step = 0.5 / (math.sqrt(0.625) + 0.5)
    assert model["w"].tolist() == pytest.approx([1.0 + step, -2.0 - step], rel=1e-7)
    assert server["m/w"].tolist() == [0.5, -0.5] and server["v/w"].tolist() == [0.625, 0.625]


def test_fedyogi_by_hand_moves_v_by_the_sign() -> None:
    """Yogi's v = v - (1 - beta2) d^2 sign(v - d^2): from v0 = 0.25 with d^2 = 1 (v below d^2)
    v grows to 0.75 (Adam: 0.625); then with d^2 = 0.25 (v above) it shrinks to 0.625 (Adam:
    0.5). Weights: w += lr * m / (sqrt(v) + tau)."""
    optimizer = ServerOptimizer("fedyogi", lr=1.0, beta1=0.5, beta2=0.5, tau=0.5)
    model, server = optimizer.step(BASE, optimizer.initial_state(BASE), _d(1.0, -1.0))
    assert server["v/w"].tolist() == [0.75, 0.75]
    first = 0.5 / (math.sqrt(0.75) + 0.5)
    assert model["w"].tolist() == pytest.approx([1.0 + first, -2.0 - first], rel=1e-7)
    model, server = optimizer.step(model, server, _d(0.5, -0.5))
    assert server["v/w"].tolist() == [0.625, 0.625] and server["m/w"].tolist() == [0.5, -0.5]
    second = 0.5 / (math.sqrt(0.625) + 0.5)
    assert model["w"].tolist() == pytest.approx(
        [1.0 + first + second, -2.0 - first - second], rel=1e-6
    )


_STEPS = """
import sys, torch
from swarm.merge.server import ServerOptimizer, swarm_state
from swarm.training.checkpoint import model_hash

def steps(kind):
    gen = torch.Generator().manual_seed(5)
    base = {"a": torch.randn(300, 301, generator=gen), "b": torch.randn(301, generator=gen)}
    optimizer = ServerOptimizer(kind, lr=0.03)
    model, server = base, optimizer.initial_state(base)
    for _ in range(3):
        d = {k: 1e-3 * torch.randn(v.shape, generator=gen, dtype=torch.float64)
             for k, v in base.items()}
        model, server = optimizer.step(model, server, d)
    return model_hash(swarm_state(model, server)).hex()
"""


def test_every_key_holder_computes_the_same_bytes() -> None:
    """Fault: an optimizer step that depends on the process (thread count, a fused
    multiply-add on one path): key holders would acknowledge different hashes and the round
    would never finalize. Three steps of each optimizer, here (torch's threads) and in another
    process on one thread, twice here: the same swarm-state hashes."""
    namespace: dict[str, object] = {}
    exec(_STEPS, namespace)
    steps = namespace["steps"]
    kinds = ["fedavgm", "fedadam", "fedyogi"]
    here = [steps(kind) for kind in kinds]  # type: ignore[operator]
    assert here == [steps(kind) for kind in kinds]  # type: ignore[operator]
    script = _STEPS + "torch.set_num_threads(1)\nprint(*(steps(k) for k in sys.argv[1:]))"
    there = subprocess.run(
        [sys.executable, "-c", script, *kinds], capture_output=True, text=True, check=True
    ).stdout.split()
    assert there == here and len(set(here)) == 3


def test_fedadam_converges_on_a_quadratic() -> None:
    """Each round the sites step toward w* = (3, -1, 0.5) (d = 0.1 * (w* - w), a local gradient
    step of 0.5 * ||w - w*||^2); FedAdam with lr 0.05 gets there from 0."""
    target = torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64)
    optimizer = ServerOptimizer("fedadam", lr=0.05)
    model = {"w": torch.zeros(3)}
    server = optimizer.initial_state(model)
    for _ in range(400):
        d = {"w": 0.1 * (target - model["w"].to(torch.float64))}
        model, server = optimizer.step(model, server, d)
    assert float((model["w"].to(torch.float64) - target).abs().max()) < 0.05


def test_buffers_are_averaged_or_copied_and_inputs_are_left_alone() -> None:
    """Fault: FedAdam's adaptive step applied to BatchNorm's running statistics (a variance
    pushed below zero is NaN in every later forward pass) or to its integer step counter. The
    counter is copied from the base, the running mean takes the plain mean (w + d) and has no
    optimizer state, the weights take the adaptive step; the inputs are not modified in place."""
    optimizer = ServerOptimizer("fedadam", lr=0.1)
    base = _random_base(2)
    server = optimizer.initial_state(base)
    assert sorted(server) == ["m/layer.bias", "m/layer.weight", "v/layer.bias", "v/layer.weight"]
    before = model_bytes(swarm_state(base, server))
    delta = {k: torch.ones(v.shape, dtype=torch.float64) for k, v in base.items() if k[-1] != "d"}
    model, new_server = optimizer.step(base, server, delta)
    assert model_bytes(swarm_state(base, server)) == before
    assert torch.equal(model["norm.num_batches_tracked"], base["norm.num_batches_tracked"])
    expected_mean = (base["norm.running_mean"].to(torch.float64) + 1.0).to(torch.float32)
    assert torch.equal(model["norm.running_mean"], expected_mean)
    # adaptive: m = 0.1 * 1, v = 0.99 * 1e-6 + 0.01 * 1 -> w += 0.1 * m / (sqrt(v) + 1e-3)
    step = model["layer.bias"].to(torch.float64) - base["layer.bias"].to(torch.float64)
    expected = 0.1 * 0.1 / (math.sqrt(0.99e-6 + 0.01) + 1e-3)
    assert torch.allclose(step, torch.full((7,), expected, dtype=torch.float64), atol=1e-6)
    assert list(new_server) == list(server)


def test_a_state_that_does_not_fit_is_refused_naming_the_tensor() -> None:
    """Fault: a server state from another model (or a delta missing a tensor) silently skipped.
    Missing, unexpected and misshapen tensors are named."""
    optimizer = ServerOptimizer("fedavgm")
    server = optimizer.initial_state(BASE)
    with pytest.raises(ValueError, match="missing tensor 'momentum/w'"):
        optimizer.step(BASE, {}, _d(1.0, 1.0))
    with pytest.raises(ValueError, match="unexpected tensor 'm/w'"):
        optimizer.step(BASE, {**server, "m/w": torch.zeros(2)}, _d(1.0, 1.0))
    with pytest.raises(ValueError, match="mean update: missing tensor 'w'"):
        optimizer.step(BASE, server, {})
    with pytest.raises(ValueError, match="tensor momentum/w is \\[3\\]"):
        optimizer.step(BASE, {"momentum/w": torch.zeros(3)}, _d(1.0, 1.0))


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"optimizer": "fedsgd"}, "optimizer"),
        ({"optimizer": 3}, "optimizer"),
        ({"optimizer": "fedadam", "betta1": 0.9}, "betta1"),
        ({"lr": 0}, "lr"),
        ({"lr": True}, "lr"),
        ({"lr": "0.1"}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"beta2": -0.5}, "beta2"),
        ({"tau": 0.0}, "tau"),
        ({"tau": float("nan")}, "tau"),
    ],
)
def test_a_bad_server_table_is_refused_naming_the_key(table: dict[str, object], named: str) -> None:
    """Fault: a typo in the task file's [server] (an unknown optimizer, a misspelt key, a beta of
    1) accepted, and every key holder stepping with defaults nobody chose."""
    with pytest.raises(ValueError, match=named):
        ServerOptimizer.from_table(table)


def test_the_server_table_reads_back() -> None:
    """from_table(to_table()) is the same optimizer; defaults are the paper's."""
    optimizer = ServerOptimizer.from_table({"optimizer": "fedyogi", "lr": 0.01, "tau": 1e-4})
    assert optimizer == ServerOptimizer("fedyogi", lr=0.01, tau=1e-4)
    assert ServerOptimizer.from_table(optimizer.to_table()) == optimizer
    assert ServerOptimizer.from_table({}) == ServerOptimizer("fedavg", 1.0, 0.9, 0.9, 0.99, 1e-3)


def test_the_swarm_state_splits_back_and_refuses_a_clashing_name() -> None:
    """swarm_state puts the server state under "@server/"; split_swarm_state gives both back."""
    optimizer = ServerOptimizer("fedadam")
    server = optimizer.initial_state(BASE)
    full = swarm_state(BASE, server)
    assert sorted(full) == ["@server/m/w", "@server/v/w", "steps", "w"]
    model, back = split_swarm_state(full)
    assert list(model) == ["w", "steps"] and list(back) == ["m/w", "v/w"]
    assert model_bytes(swarm_state(model, back)) == model_bytes(full)
    with pytest.raises(ValueError, match="@server/x"):
        swarm_state({"@server/x": torch.zeros(1)}, {})
