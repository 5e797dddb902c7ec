"""Personalization (swarm.training.personalize) on the real heart task's rows.

Faults exercised: a personal copy that modifies the swarm model it started from, that is not
reproducible (a restarted peer would keep another model), that reads the test split (a choice
made on test rows), that wanders off on a few rows (FedProx ignored), or that is kept although
validation prefers the swarm model (select ignored); a validation split that leaks rows into
both sides or loses a rare class; a mixture that is not the weighted mixture of the swarm
model and the hospital's own (weights swapped, the own model trained from elsewhere than the
swarm's initial model, or with the swarm's FedProx pull), or that accepts a weight outside
[0, 1] or an unknown method.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from swarm.training.checkpoint import model_hash
from swarm.training.heart import HeartDiseaseTask
from swarm.training.loop import predict_logits
from swarm.training.personalize import (
    DEFAULT_METHOD,
    DEFAULT_SWARM_WEIGHT,
    carve_validation,
    fine_tune,
    interpolate,
    personalize,
    train_own_model,
)
from swarm.training.task import SiteData

TASK = HeartDiseaseTask()


def swarm_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A stand-in for the swarm's model: trained a little on another hospital's rows."""
    model = TASK.build_model(seed)
    other = TASK.load_site("Cleveland", seed)
    TASK.train(model, other, dataclasses.replace(TASK.default_config, epochs=3, seed=seed))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def site(name: str = "Switzerland") -> SiteData:
    return TASK.load_site(name, 0)


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return float(sum((a[k] - b[k]).pow(2).sum() for k in a)) ** 0.5


def train_loss(state: dict[str, torch.Tensor], data: SiteData) -> float:
    model = TASK.build_model(0)
    model.load_state_dict(state)
    as_test = dataclasses.replace(data, x_test=data.x_train, y_test=data.y_train)
    return TASK.evaluate(model, as_test).loss


def test_the_copy_learns_the_sites_rows_and_leaves_the_swarm_model_alone() -> None:
    state = swarm_state()
    before = model_hash(state)
    data = site("VA Long Beach")
    personal = fine_tune(TASK, state, data, epochs=5, lr=0.03, fedprox_mu=0.0, seed=1, select=False)
    assert model_hash(state) == before
    assert model_hash(personal) != before
    assert train_loss(personal, data) < train_loss(state, data)


def test_the_same_inputs_give_the_same_bytes_and_another_seed_another_order() -> None:
    """A restarted peer rebuilds the same personal model from the same swarm model."""
    state, data = swarm_state(), site()
    one = fine_tune(TASK, state, data, epochs=3, seed=7, select=False)
    two = fine_tune(TASK, state, data, epochs=3, seed=7, select=False)
    other = fine_tune(TASK, state, data, epochs=3, seed=8, select=False)
    assert model_hash(one) == model_hash(two)
    assert model_hash(other) != model_hash(one)


def test_zero_epochs_is_the_swarm_model_as_a_copy() -> None:
    state = swarm_state()
    result = personalize(TASK, state, site(), epochs=0, seed=0)
    assert result.chosen == "swarm" and model_hash(result.state) == model_hash(state)
    next(iter(result.state.values())).add_(1.0)  # the copy is the caller's to change
    assert model_hash(state) == model_hash(swarm_state())
    with pytest.raises(ValueError, match="epochs"):
        personalize(TASK, state, site(), epochs=-1, seed=0)


def test_the_test_split_is_never_read() -> None:
    """Test rows replaced by NaN: the personal model is bit-identical, with or without the
    validation choice (which must carve its rows from the train split)."""
    state, data = swarm_state(), site("Hungary")
    poisoned = dataclasses.replace(
        data, x_test=torch.full_like(data.x_test, float("nan")), y_test=data.y_test * float("nan")
    )
    for select in (False, True):
        clean = fine_tune(TASK, state, data, epochs=3, seed=2, select=select)
        dirty = fine_tune(TASK, state, poisoned, epochs=3, seed=2, select=select)
        assert model_hash(clean) == model_hash(dirty)


def test_fedprox_keeps_the_copy_near_the_swarm_model() -> None:
    state, data = swarm_state(), site("VA Long Beach")
    free = fine_tune(TASK, state, data, epochs=10, lr=0.05, fedprox_mu=0.0, seed=3, select=False)
    held = fine_tune(TASK, state, data, epochs=10, lr=0.05, fedprox_mu=10.0, seed=3, select=False)
    assert distance(held, state) < 0.5 * distance(free, state)


def test_validation_keeps_the_swarm_model_when_fine_tuning_makes_it_worse() -> None:
    """A learning rate that wrecks the copy: validation loss says so, the personal model is the
    swarm model itself. A sane one on an untrained start: the fine-tuned copy is kept."""
    state, data = swarm_state(), site("Cleveland")
    wrecked = personalize(
        TASK, state, data, epochs=5, lr=50.0, fedprox_mu=0.0, seed=4, method="finetune"
    )
    assert wrecked.chosen == "swarm" and model_hash(wrecked.state) == model_hash(state)
    assert not wrecked.personal_val_loss < wrecked.swarm_val_loss
    untrained = {k: v.clone() for k, v in TASK.build_model(5).state_dict().items()}
    helped = personalize(TASK, untrained, data, epochs=5, lr=0.05, seed=4, method="finetune")
    assert helped.chosen == "fine-tuned" and helped.personal_val_loss < helped.swarm_val_loss


def test_the_validation_split_is_stratified_disjoint_and_from_train_rows_only() -> None:
    data = site("Switzerland")  # 6 healthy patients of 92 train rows
    carved = carve_validation(data, seed=0)
    assert carved.train_samples + carved.test_samples == data.train_samples
    rows = torch.cat([carved.x_train, carved.x_test])
    assert torch.equal(rows.sort(dim=0).values, data.x_train.sort(dim=0).values)
    for labels in (carved.y_train, carved.y_test):
        assert set(labels.tolist()) == {0.0, 1.0}  # the rare class on both sides
    assert torch.equal(carve_validation(data, seed=0).x_test, carved.x_test)
    assert not torch.equal(carve_validation(data, seed=1).x_test, carved.x_test)


def test_too_few_rows_to_validate_on_is_one_line() -> None:
    data = site()
    tiny = dataclasses.replace(data, x_train=data.x_train[:1], y_train=data.y_train[:1])
    with pytest.raises(ValueError, match="too few to validate"):
        carve_validation(tiny, seed=0)


def test_a_multiclass_sites_validation_split_keeps_every_class_on_both_sides() -> None:
    """Class-index labels (a multiclass task): stratified per class as for binary labels."""
    labels = torch.tensor([0] * 10 + [1] * 4 + [2] * 2, dtype=torch.int64)
    x = torch.arange(16, dtype=torch.float32).reshape(16, 1)
    data = SiteData("north", x, labels, x[:0], labels[:0], ("x",))
    carved = carve_validation(data, seed=3)
    assert sorted(carved.y_test.tolist()) == [0, 0, 1, 2]  # round(0.25 * n) (2.5 -> 2), >= 1
    assert set(carved.y_train.tolist()) == {0, 1, 2}
    assert carved.y_train.dtype == torch.int64


def logits_of(state: dict[str, torch.Tensor], data: SiteData) -> torch.Tensor:
    model = TASK.build_model(0)
    model.load_state_dict(state)
    return predict_logits(model, data.x_test)


def test_the_default_mixture_is_the_swarm_and_own_models_logits_mixed() -> None:
    """Logistic regression is linear: mixing the weights mixes the two models' logits, the
    default weight of the swarm's and the rest of a model trained on the site's rows alone from
    the swarm's initial model, without FedProx."""
    state, data = swarm_state(), site("Switzerland")
    before = model_hash(state)
    result = personalize(TASK, state, data, epochs=4, lr=0.03, seed=5, model_seed=0)
    assert DEFAULT_METHOD == "mixture" and result.chosen == "mixture"
    assert model_hash(state) == before
    config = dataclasses.replace(TASK.default_config, lr=0.03)
    own = train_own_model(TASK, data, config, epochs=4, seed=5, model_seed=0)
    w = DEFAULT_SWARM_WEIGHT
    mixed = w * logits_of(state, data) + (1 - w) * logits_of(own, data)
    assert torch.allclose(logits_of(result.state, data), mixed, atol=1e-5)
    again = personalize(TASK, state, data, epochs=4, lr=0.03, seed=5, model_seed=0)
    assert model_hash(again.state) == model_hash(result.state)


def test_the_mixtures_ends_are_the_swarm_model_and_the_hospitals_own() -> None:
    state, data = swarm_state(), site("Hungary")
    config = dataclasses.replace(TASK.default_config, lr=0.01)
    own = train_own_model(TASK, data, config, epochs=3, seed=6, model_seed=0)
    start = {k: v.detach().clone() for k, v in TASK.build_model(0).state_dict().items()}
    assert model_hash(own) != model_hash(start)
    for weight, expected in ((1.0, state), (0.0, own)):
        result = personalize(
            TASK, state, data, epochs=3, lr=0.01, seed=6, model_seed=0, swarm_weight=weight
        )
        assert model_hash(result.state) == model_hash(expected)
    assert model_hash(interpolate(state, own, 1.0)) == model_hash(state)


def test_the_mixture_never_reads_the_test_split() -> None:
    state, data = swarm_state(), site("VA Long Beach")
    poisoned = dataclasses.replace(
        data, x_test=torch.full_like(data.x_test, float("nan")), y_test=data.y_test * float("nan")
    )
    clean = personalize(TASK, state, data, epochs=2, seed=7).state
    dirty = personalize(TASK, state, poisoned, epochs=2, seed=7).state
    assert model_hash(clean) == model_hash(dirty)


def test_a_bad_method_or_weight_is_one_line() -> None:
    state, data = swarm_state(), site()
    with pytest.raises(ValueError, match="method must be one of mixture, finetune"):
        personalize(TASK, state, data, epochs=1, seed=0, method="average")
    for weight in (-0.1, 1.5):
        with pytest.raises(ValueError, match="swarm_weight must be in"):
            personalize(TASK, state, data, epochs=1, seed=0, swarm_weight=weight)
    with pytest.raises(ValueError, match="different tensors"):
        interpolate(state, {}, 0.5)
