"""Local training internals: FedProx's pull toward the global model, multiclass tasks,
evaluation in batches, the device."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from swarm.errors import ConfigError
from swarm.training.heart import HeartDiseaseTask
from swarm.training.loop import (
    SGD,
    evaluate_classifier,
    proximal_term,
    resolve_device,
    train_binary,
    train_classifier,
)
from swarm.training.metrics import macro_roc_auc, multiclass_accuracy
from swarm.training.task import TrainConfig


def _distance(model: torch.nn.Module, anchor: dict[str, torch.Tensor]) -> float:
    return float(proximal_term(model, anchor).detach().sqrt())


def test_proximal_term_by_hand() -> None:
    """||w - w_g||^2 over all parameters: weight (3-1)^2 + (4-4)^2, bias (0-(-1))^2 -> 5."""
    layer = torch.nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4.0]]))
        layer.bias.copy_(torch.tensor([0.0]))
    anchor = {"weight": torch.tensor([[1.0, 4.0]]), "bias": torch.tensor([-1.0])}
    assert float(proximal_term(layer, anchor).detach()) == 5.0


def test_fedprox_pulls_toward_the_global_model() -> None:
    """With the same data and seed, a larger mu ends closer to the global weights: mu = 0
    (FedAvg) > mu = 1 > mu = 10."""
    task = HeartDiseaseTask()
    data = task.load_site("Hungary", seed=0)
    global_state = {k: v.clone() for k, v in task.build_model(0).state_dict().items()}
    distances = []
    for mu in (0.0, 1.0, 10.0):
        model = task.build_model(0)
        config = TrainConfig(epochs=3, lr=0.05, fedprox_mu=mu, seed=1)
        task.train(model, data, config, global_model=global_state)
        distances.append(_distance(model, global_state))
    assert distances[0] > distances[1] > distances[2]


def test_fedprox_defaults_to_the_starting_weights() -> None:
    """Without global_model, the anchor is the model's weights when training starts (the base
    model in a round), so passing them explicitly changes nothing."""
    task = HeartDiseaseTask()
    data = task.load_site("Cleveland", seed=0)
    config = TrainConfig(epochs=1, lr=0.05, fedprox_mu=1.0)
    implicit, explicit = task.build_model(0), task.build_model(0)
    start = {k: v.clone() for k, v in explicit.state_dict().items()}
    train_binary(implicit, data.x_train, data.y_train, config)
    train_binary(explicit, data.x_train, data.y_train, config, global_model=start)
    for name, value in implicit.state_dict().items():
        assert torch.equal(value, explicit.state_dict()[name])


def test_sgd_matches_torch_optim_bit_for_bit() -> None:
    """Our SGD (momentum, weight decay) takes exactly torch.optim.SGD's steps: same weights,
    bit for bit, after several steps on the same batches."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 5, generator=gen), torch.rand(16, generator=gen).round()
    ours, theirs = torch.nn.Linear(5, 1), torch.nn.Linear(5, 1)
    theirs.load_state_dict(ours.state_dict())
    sgd = SGD(list(ours.parameters()), lr=0.1, momentum=0.9, weight_decay=1e-3)
    reference = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for step in range(4):
        batch = slice(4 * step, 4 * step + 4)
        for model, optimizer in ((ours, sgd), (theirs, reference)):
            optimizer.zero_grad()
            loss_fn(model(x[batch]).squeeze(-1), y[batch]).backward()
            optimizer.step()
    for name, value in ours.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[name])


def _three_classes(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(rows) % 3
    centers = torch.tensor([[2.0, 0.0], [-1.0, 2.0], [-1.0, -2.0]])
    return centers[y] + 0.5 * torch.randn(rows, 2, generator=gen), y


def test_a_multiclass_task_trains_with_cross_entropy_and_evaluates_per_class() -> None:
    """Fault: integer labels fed to the binary loss (or (batch, K) logits squeezed). Three
    separable clusters, int64 labels, (batch, 3) logits: the model learns them, deterministically,
    and is scored by top-class accuracy and macro one-vs-rest AUC."""
    x, y = _three_classes(150, 0)
    config = TrainConfig(epochs=5, lr=0.1, seed=2)
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 3)
        assert train_classifier(model, x, y, config) == 150
        states.append(model.state_dict())
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name])
    x_test, y_test = _three_classes(60, 1)
    metrics = evaluate_classifier(model, x_test, y_test)
    assert metrics.samples == 60 and metrics.accuracy > 0.95 and metrics.auc > 0.99
    assert 0 < metrics.loss < 0.3


def test_macro_auc_by_hand_and_nan_when_a_class_is_missing() -> None:
    """Macro one-vs-rest AUC on three rows worked out by hand; NaN (not a number computed on
    the classes present) when a test split lacks a class."""
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4]]))
    # one row per class; class 0's probabilities 0.7 / 0.2 / 0.3 rank the positive first: AUC 1;
    # class 1's 0.2 / 0.5 / 0.3: 1; class 2's 0.1 / 0.3 / 0.4: 1
    assert macro_roc_auc(logits, [0, 1, 2]) == pytest.approx(1.0)
    # labels 2, 1, 0: class 0 (positive row 2, p 0.3) beats 0.2, loses to 0.7 -> 0.5;
    # class 1 (row 1, p 0.5) beats both -> 1; class 2 (row 0, p 0.1) beats none -> 0
    assert macro_roc_auc(logits, [2, 1, 0]) == pytest.approx(0.5)
    assert math.isnan(macro_roc_auc(logits, [0, 1, 1]))
    assert multiclass_accuracy(logits, [0, 1, 0]) == pytest.approx(2 / 3)


def test_evaluation_in_batches_gives_the_metrics_of_one_pass() -> None:
    """Fault: a test split of thousands of images pushed through the network in one batch (out of
    memory), or batching that drops or repeats rows. Batches of 7 rows give the one-pass metrics."""
    task = HeartDiseaseTask()
    data = task.load_site("Cleveland", seed=0)
    model = task.build_model(0)
    whole = evaluate_classifier(model, data.x_test, data.y_test)
    batched = evaluate_classifier(model, data.x_test, data.y_test, batch_size=7)
    assert batched.samples == whole.samples and batched.accuracy == whole.accuracy
    assert batched.auc == pytest.approx(whole.auc) and batched.loss == pytest.approx(whole.loss)


def test_binary_logits_of_the_wrong_shape_are_refused_with_the_shapes() -> None:
    """Fault: a plugin model returning (batch, 1) logits for binary labels (broadcast into a
    wrong loss or an obscure torch error). One line with both shapes."""
    x, y = torch.randn(8, 3), torch.ones(8)
    with pytest.raises(ValueError, match=r"shape \[4, 1\].*\(batch,\)"):
        train_classifier(torch.nn.Linear(3, 1), x, y, TrainConfig(batch_size=4))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_config_error() -> None:
    """device = "cuda" on a machine without one: one line at once, not a silent CPU run."""
    config = TrainConfig(device="cuda")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train_classifier(torch.nn.Linear(2, 3), *_three_classes(9, 0), config)
    assert resolve_device("auto").type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_returns_cpu_float32_weights_close_to_the_cpu_run() -> None:
    """On a GPU: the model goes to the device and comes back to the CPU as float32, with FedProx
    on, and the weights match the CPU run up to float rounding (kernels may reduce in another
    order); evaluation on the GPU gives the CPU metrics."""
    x, y = _three_classes(300, 0)
    results = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        start = {k: v.clone() for k, v in model.state_dict().items()}
        config = TrainConfig(epochs=2, lr=0.05, fedprox_mu=0.5, device=device, seed=1)
        train_classifier(model, x, y, config, global_model=start)
        state = model.state_dict()
        assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in state.values())
        results[device] = (state, evaluate_classifier(model, x, y, device=device))
    for name, value in results["cpu"][0].items():
        assert torch.allclose(value, results["cuda"][0][name], atol=1e-4), name
    assert results["cuda"][1].accuracy == pytest.approx(results["cpu"][1].accuracy, abs=0.01)


def test_a_last_batch_of_one_row_does_not_crash_batch_norm() -> None:
    """Fault: a site whose row count leaves one row in the last mini-batch; BatchNorm cannot
    normalize a single row (ResNet's last feature map is 1x1 at 16 px), so that batch is skipped
    rather than the round failing."""
    from swarm.training.vision import resnet18

    model = resnet18(2, 3, seed=0)
    x = torch.randn(9, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0])
    assert train_classifier(model, x, y, TrainConfig(batch_size=8, epochs=1)) == 9
    assert all(torch.isfinite(p).all() for p in model.parameters())
