"""DP-SGD local training (Opacus) and the privacy account (RDP accountant)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from swarm.errors import SwarmError
from swarm.training import (
    DpConfig,
    Mechanism,
    PrivacyAccount,
    PrivacyAccountError,
    PrivateStep,
    noise_for_budget,
    sampling_plan,
    train_private,
)
from swarm.training.heart import HeartDiseaseTask
from swarm.training.loop import proximal_term
from swarm.training.models import LogisticRegression, build_seeded
from swarm.training.task import SiteData, TrainConfig

DELTA = 1e-5
DP = DpConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=DELTA)
OPACUS_ATTRS = ("grad_sample", "_forward_counter", "_current_grad_sample", "summed_grad")


@pytest.fixture(scope="module")
def task() -> HeartDiseaseTask:
    return HeartDiseaseTask(model="mlp")


@pytest.fixture(scope="module")
def site(task: HeartDiseaseTask) -> SiteData:
    return task.load_site("Switzerland", seed=0)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _max_change(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _subset(data: SiteData, rows: int) -> SiteData:
    return replace(data, x_train=data.x_train[:rows], y_train=data.y_train[:rows])


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        (0.0, 1.0, DELTA),
        (-1.0, 1.0, DELTA),
        (math.nan, 1.0, DELTA),
        (1.0, 0.0, DELTA),
        (1.0, math.inf, DELTA),
        (1.0, 1.0, 0.0),
        (1.0, 1.0, 1.0),
    ],
)
def test_dp_config_is_validated(values: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError):
        DpConfig(*values)


def test_sampling_plan() -> None:
    """q = batch / rows, epochs * ceil(rows / batch) steps; a batch larger than the data is q=1."""
    assert sampling_plan(92, TrainConfig(epochs=2, batch_size=32)) == (32 / 92, 6)
    assert sampling_plan(320, TrainConfig(epochs=1, batch_size=32)) == (0.1, 10)
    assert sampling_plan(10, TrainConfig(epochs=3, batch_size=32)) == (1.0, 3)
    with pytest.raises(ValueError):
        sampling_plan(0, TrainConfig())


# --- training --------------------------------------------------------------------------------


def test_dp_training_updates_the_callers_model_in_place(
    task: HeartDiseaseTask, site: SiteData
) -> None:
    """The caller's module is trained (same object, class and state_dict keys, no Opacus
    `_module.` prefix), the counts are the plan's, and no hook or attribute is left behind."""
    model = task.build_model(0)
    keys = list(model.state_dict())
    before = _state(model)
    config = TrainConfig(epochs=2, lr=0.03, seed=5)
    step = train_private(model, site, config, DP, noise_seed=1)
    assert step == PrivateStep(
        samples=site.train_samples,
        sample_rate=32 / site.train_samples,
        steps=2 * math.ceil(site.train_samples / 32),
        noise_multiplier=1.0,
    )
    assert (step.sample_rate, step.steps) == sampling_plan(site.train_samples, config)
    assert type(model) is type(task.build_model(0))
    assert list(model.state_dict()) == keys
    assert _max_change(_state(model), before) > 1e-3
    assert not model.training
    for param in model.parameters():
        assert param.grad is None
        assert not any(hasattr(param, attr) for attr in OPACUS_ATTRS)
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks
    # and it still trains normally afterwards (no stale per-sample hooks)
    task.train(model, site, config)


def test_dp_training_is_deterministic_for_a_fixed_noise_seed(
    task: HeartDiseaseTask, site: SiteData
) -> None:
    config = TrainConfig(epochs=1, lr=0.03, seed=7)
    runs = []
    for noise_seed in (11, 11, 12, None, None):
        model = task.build_model(0)
        train_private(model, site, config, DP, noise_seed=noise_seed)
        runs.append(_state(model))
    assert _max_change(runs[0], runs[1]) == 0.0
    assert _max_change(runs[0], runs[2]) > 0.0  # other noise
    assert _max_change(runs[3], runs[4]) > 0.0  # fresh OS entropy each time


def test_secure_mode_noise(task: HeartDiseaseTask, site: SiteData) -> None:
    """Opacus's secure_mode (noise as a sum of Gaussians) trains, reproducibly for a seed."""
    config = TrainConfig(epochs=1, lr=0.03, seed=7)
    runs = []
    for secure in (True, True, False):
        model = task.build_model(0)
        train_private(model, site, config, DP, noise_seed=5, secure_mode=secure)
        runs.append(_state(model))
    assert _max_change(runs[0], runs[1]) == 0.0
    assert _max_change(runs[0], runs[2]) > 0.0
    assert all(torch.isfinite(v).all() for v in runs[0].values())


def test_one_step_matches_dp_sgd_by_hand() -> None:
    """Whole-batch step (q = 1): w - lr * (sum_i clip(g_i, C) + N(0, (sigma C)^2)) / B, with the
    noise drawn from the same seeded generator in parameter order."""
    gen = torch.Generator().manual_seed(0)
    rows, features = 8, 5
    x, y = torch.randn(rows, features, generator=gen), torch.rand(rows, generator=gen).round()
    data = SiteData("s", x, y, x, y, tuple(f"f{i}" for i in range(features)))
    model = build_seeded(lambda: LogisticRegression(features), 0)
    start = _state(model)
    dp = DpConfig(noise_multiplier=0.7, max_grad_norm=0.5, delta=DELTA)
    config = TrainConfig(epochs=1, batch_size=rows, lr=0.1, momentum=0.0, seed=3)
    step = train_private(model, data, config, dp, noise_seed=42)
    assert (step.sample_rate, step.steps) == (1.0, 1)

    reference = LogisticRegression(features)
    reference.load_state_dict(start)
    params = list(reference.parameters())
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
    total = [torch.zeros_like(p) for p in params]
    for i in range(rows):
        grads = torch.autograd.grad(loss_fn(reference(x[i : i + 1]), y[i : i + 1]), params)
        norm = torch.sqrt(sum((g**2).sum() for g in grads))
        factor = min(1.0, dp.max_grad_norm / (float(norm) + 1e-6))
        total = [t + factor * g for t, g in zip(total, grads, strict=True)]
    noise_rng = torch.Generator().manual_seed(42)
    std = dp.noise_multiplier * dp.max_grad_norm
    expected = {}
    for (name, p), t in zip(reference.named_parameters(), total, strict=True):
        noise = torch.normal(0.0, std, size=p.shape, generator=noise_rng)
        expected[name] = p.detach() - config.lr * (t + noise) / rows
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-6)


def test_clipping_bounds_each_rows_influence(task: HeartDiseaseTask, site: SiteData) -> None:
    """With a tiny clip norm (and noise), weights move at most lr * C * rows / B per step,
    while plain training moves them far."""
    config = TrainConfig(epochs=1, lr=0.05, momentum=0.0, seed=2)
    clip = 1e-4
    model = task.build_model(0)
    before = _state(model)
    step = train_private(model, site, config, DpConfig(1e-3, clip, DELTA), noise_seed=3)
    # per step: ||sum of clipped|| <= batch * C, batch <= rows; noise is 1e-7 per coordinate
    bound = step.steps * config.lr * (site.train_samples * clip + 1e-5) / 32
    assert _max_change(_state(model), before) <= bound
    plain = task.build_model(0)
    task.train(plain, site, config)
    assert _max_change(_state(plain), before) > 100 * bound


def test_empty_poisson_batches_are_noise_only_steps(task: HeartDiseaseTask, site: SiteData) -> None:
    """q = 1/40: most batches are empty; each such step still adds noise (and is accounted)."""
    data = _subset(site, 40)
    config = TrainConfig(epochs=1, batch_size=1, lr=0.01, momentum=0.0, seed=1)
    model = task.build_model(0)
    before = _state(model)
    step = train_private(model, data, config, DP, noise_seed=4)
    assert (step.samples, step.sample_rate, step.steps) == (40, 1 / 40, 40)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert _max_change(_state(model), before) > 0.0


def test_fedprox_under_dp_pulls_toward_the_global_model(
    task: HeartDiseaseTask, site: SiteData
) -> None:
    """Same sampling and noise, larger mu: closer to the global weights."""
    global_state = _state(task.build_model(0))
    distances = []
    for mu in (0.0, 1.0, 10.0):
        model = task.build_model(0)
        config = TrainConfig(epochs=3, lr=0.05, fedprox_mu=mu, seed=1)
        train_private(model, site, config, DP, global_state, noise_seed=9)
        distances.append(float(proximal_term(model, global_state).detach().sqrt()))
    assert distances[0] > distances[1] > distances[2]


def test_training_refuses_empty_data(task: HeartDiseaseTask, site: SiteData) -> None:
    with pytest.raises(ValueError):
        train_private(task.build_model(0), _subset(site, 0), TrainConfig(), DP)


def test_importing_the_module_does_not_import_opacus() -> None:
    code = "import sys, swarm.training.privacy; assert 'opacus' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# --- accounting ------------------------------------------------------------------------------

ROUND = Mechanism(noise_multiplier=1.1, sample_rate=0.2, steps=10)


def test_empty_account_has_spent_nothing() -> None:
    assert PrivacyAccount().epsilon(DELTA) == 0.0


def test_composition_is_monotone_and_subadditive() -> None:
    account = PrivacyAccount()
    account.record(ROUND)
    one = account.epsilon(DELTA)
    other = Mechanism(noise_multiplier=0.9, sample_rate=0.3, steps=6)
    account.record(other)
    both = account.epsilon(DELTA)
    alone = (account.round_epsilon(ROUND, DELTA), account.round_epsilon(other, DELTA))
    assert alone[0] == pytest.approx(one)
    assert both > max(alone)
    assert both < sum(alone)  # RDP composes tighter than adding epsilons
    assert PrivacyAccount([ROUND, other]).epsilon(DELTA) == both


def test_projected_equals_epsilon_after_recording() -> None:
    account = PrivacyAccount([ROUND])
    step = PrivateStep(samples=100, sample_rate=0.32, steps=4, noise_multiplier=1.5)
    projected = account.projected(1.5, 0.32, 4, DELTA)
    account.record(step)
    assert account.epsilon(DELTA) == projected
    assert account.history[-1] == step.mechanism
    assert account.round_epsilon(step, DELTA) < projected


def test_smaller_delta_costs_more_epsilon() -> None:
    account = PrivacyAccount([ROUND])
    assert account.epsilon(1e-7) > account.epsilon(1e-5)


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 3.0, 8.0])
def test_noise_for_budget_hits_the_target(epsilon: float) -> None:
    sigma = noise_for_budget(epsilon, DELTA, sample_rate=0.15, steps=120)
    reached = PrivacyAccount([Mechanism(sigma, 0.15, 120)]).epsilon(DELTA)
    assert reached <= epsilon
    assert reached == pytest.approx(epsilon, rel=0.01)


def test_higher_noise_means_lower_epsilon() -> None:
    epsilons = [
        PrivacyAccount([Mechanism(sigma, 0.1, 100)]).epsilon(DELTA)
        for sigma in (0.6, 1.0, 2.0, 5.0)
    ]
    assert epsilons == sorted(epsilons, reverse=True)
    assert len(set(epsilons)) == 4


def test_mechanism_is_validated() -> None:
    for values in ((0.0, 0.1, 1), (1.0, 0.0, 1), (1.0, 1.5, 1), (1.0, 0.1, 0), (1.0, 0.1, 1.5)):
        with pytest.raises(ValueError):
            Mechanism(*values)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PrivacyAccount().epsilon(0.0)
    with pytest.raises(ValueError):
        noise_for_budget(0.0, DELTA, 0.1, 10)


# --- persistence -----------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "dp" / "account.json"
    account = PrivacyAccount([ROUND, Mechanism(0.8, 1 / 3, 7)])
    account.save(path)
    loaded = PrivacyAccount.load(path)
    assert loaded == account
    assert loaded.epsilon(DELTA) == account.epsilon(DELTA)
    account.record(ROUND)
    account.save(path)  # replaces the file
    assert PrivacyAccount.load(path) == account
    assert [p.name for p in path.parent.iterdir()] == ["account.json"]  # no temp file left


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PrivacyAccountError, match="does not exist"):
        PrivacyAccount.load(tmp_path / "nope.json")
    assert PrivacyAccount.load(tmp_path / "nope.json", missing_ok=True) == PrivacyAccount()


GOOD_ENTRY = {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 3}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[]",
        json.dumps({"version": 2, "accountant": "rdp", "history": []}).encode(),
        json.dumps({"version": 1, "accountant": "prv", "history": []}).encode(),
        json.dumps({"version": 1, "accountant": "rdp", "history": {}}).encode(),
        json.dumps({"version": 1, "accountant": "rdp", "history": [[1.0, 0.1, 3]]}).encode(),
        json.dumps(
            {"version": 1, "accountant": "rdp", "history": [{**GOOD_ENTRY, "steps": 0}]}
        ).encode(),
        json.dumps(
            {"version": 1, "accountant": "rdp", "history": [{**GOOD_ENTRY, "steps": 2.5}]}
        ).encode(),
        json.dumps(
            {"version": 1, "accountant": "rdp", "history": [{**GOOD_ENTRY, "sample_rate": "x"}]}
        ).encode(),
        b'{"version": 1, "accountant": "rdp", "history": [{"noise_multiplier": NaN, '
        b'"sample_rate": 0.1, "steps": 3}]}',
        json.dumps(
            {"version": 1, "accountant": "rdp", "history": [{"noise_multiplier": 1.0}]}
        ).encode(),
    ],
)
def test_corrupt_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "account.json"
    path.write_bytes(content)
    with pytest.raises(PrivacyAccountError) as caught:
        PrivacyAccount.load(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert isinstance(caught.value, SwarmError) and isinstance(caught.value, ValueError)
