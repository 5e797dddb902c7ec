"""Local training internals: FedProx's pull toward the global model."""

from __future__ import annotations

import torch

from swarm.training.heart import HeartDiseaseTask
from swarm.training.loop import SGD, proximal_term, train_binary
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
