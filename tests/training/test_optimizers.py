"""Local optimizers: our AdamW is torch.optim.AdamW to the bit; TrainConfig refuses bad values."""

from __future__ import annotations

import pytest
import torch

from swarm.training.loop import AdamW, make_optimizer, train_classifier
from swarm.training.task import TrainConfig


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_adamw_matches_torch_optim_bit_for_bit(weight_decay: float) -> None:
    """Fault: a reordered or fused operation in our AdamW (bias correction folded differently,
    decay applied to the gradient instead of the weights) drifts from torch.optim.AdamW in the
    last bits. Same batches, eight steps: the weights must be equal, bit for bit, to
    torch.optim.AdamW's single-tensor (CPU default) variant."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 5, generator=gen), torch.randint(0, 3, (32,), generator=gen)
    ours, theirs = _mlp(), _mlp()
    theirs.load_state_dict(ours.state_dict())
    kwargs = {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": weight_decay}
    adamw = AdamW(list(ours.parameters()), **kwargs)  # type: ignore[arg-type]
    reference = torch.optim.AdamW(theirs.parameters(), foreach=False, **kwargs)  # type: ignore[arg-type]
    for step in range(8):
        batch = slice(4 * step, 4 * step + 4)
        for model, optimizer in ((ours, adamw), (theirs, reference)):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    for name, value in ours.state_dict().items():
        assert torch.equal(value, theirs.state_dict()[name]), name


def test_the_config_picks_the_optimizer_and_its_hyperparameters() -> None:
    """Fault: optimizer = "adamw" in a task file silently training with SGD (or the betas not
    reaching AdamW)."""
    params = list(torch.nn.Linear(2, 1).parameters())
    adamw = make_optimizer(params, TrainConfig(optimizer="adamw", lr=0.002, beta1=0.5, eps=1e-7))
    assert isinstance(adamw, AdamW)
    assert (adamw.lr, adamw.beta1, adamw.beta2, adamw.eps) == (0.002, 0.5, 0.999, 1e-7)
    assert not isinstance(make_optimizer(params, TrainConfig()), AdamW)


def test_adamw_training_is_deterministic_and_learns() -> None:
    """Fault: nondeterministic local training with AdamW (the aggregate of a restarted peer
    would differ). Twice the same bits; and the loss goes down."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(120, 5, generator=gen)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).to(torch.float32)
    config = TrainConfig(optimizer="adamw", lr=0.05, epochs=5, weight_decay=0.01, seed=4)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.Flatten(0))
        train_classifier(model, x, y, config)
        runs.append(model.state_dict())
    for name, value in runs[0].items():
        assert torch.equal(value, runs[1][name])
    model = torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.Flatten(0))
    model.load_state_dict(runs[0])
    with torch.no_grad():
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    assert float(loss) < 0.5 < float(torch.log(torch.tensor(2.0)))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"optimizer": "adam"}, "optimizer"),
        ({"beta1": 1.0}, "beta1"),
        ({"beta2": -0.1}, "beta2"),
        ({"eps": 0.0}, "eps"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_a_bad_config_value_is_refused_naming_the_field(
    changes: dict[str, object], field: str
) -> None:
    """Fault: a typo in [training] (optimizer "adam", a beta of 1) accepted and found out rounds
    later as a crash or a diverging model."""
    with pytest.raises(ValueError, match=field):
        TrainConfig(**changes)  # type: ignore[arg-type]


def test_the_sgd_divergence_limit_does_not_apply_to_adamw() -> None:
    """lr * mu beyond heavy-ball SGD's stability limit is refused for SGD only: AdamW's steps
    are bounded by lr."""
    with pytest.raises(ValueError, match="diverge"):
        TrainConfig(lr=1.0, fedprox_mu=10.0)
    assert TrainConfig(optimizer="adamw", lr=1.0, fedprox_mu=10.0).fedprox_mu == 10.0
