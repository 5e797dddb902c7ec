"""The heart disease task end to end at one site: loading, determinism, training, evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from swarm.training.checkpoint import model_hash
from swarm.training.heart import HeartDiseaseTask
from swarm.training.heart_data import FEATURE_NAMES, SITES
from swarm.training.task import TrainConfig

FAST = TrainConfig(epochs=1, batch_size=32, lr=0.05)


@pytest.fixture(scope="module")
def task() -> HeartDiseaseTask:
    return HeartDiseaseTask()


def test_load_site_splits_one_hospital(task: HeartDiseaseTask) -> None:
    """A site gets only its own rows (Cleveland: 303 = 227 train + 76 test), in the fixed
    feature layout, labels 0/1 float32."""
    data = task.load_site("Cleveland", seed=0)
    assert data.site == "Cleveland"
    assert (data.train_samples, data.test_samples) == (227, 76)
    assert data.feature_names == FEATURE_NAMES
    assert data.x_train.shape == (227, len(FEATURE_NAMES))
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.float32
    assert set(data.y_train.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="unknown site"):
        task.load_site("Mayo", seed=0)


def test_every_site_loads_with_the_same_layout(task: HeartDiseaseTask) -> None:
    """All four hospitals produce the same feature columns, so one model fits all."""
    widths = {task.load_site(site, seed=0).x_train.shape[1] for site in SITES}
    assert widths == {len(FEATURE_NAMES)}


def test_validation_split_stays_inside_train_rows(task: HeartDiseaseTask) -> None:
    """Tuning mode splits the train rows again; the test rows are not among them."""
    full = task.load_site("Hungary", seed=1)
    tuning = task.load_site("Hungary", seed=1, validation=True)
    assert tuning.train_samples + tuning.test_samples == full.train_samples


def test_build_model_is_deterministic(task: HeartDiseaseTask) -> None:
    """Same seed, same initial bytes (every peer starts from the same model); another seed
    differs; building does not disturb the global RNG."""
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    a = task.build_model(0)
    assert torch.equal(torch.rand(1), expected_draw)
    assert model_hash(a.state_dict()) == model_hash(task.build_model(0).state_dict())
    assert model_hash(a.state_dict()) != model_hash(task.build_model(1).state_dict())


def test_training_is_bit_deterministic(task: HeartDiseaseTask) -> None:
    """Same model, data and config -> bit-identical weights; another seed -> other weights."""
    data = task.load_site("VA Long Beach", seed=0)
    hashes = []
    for seed in (5, 5, 6):
        model = task.build_model(0)
        task.train(model, data, TrainConfig(epochs=2, lr=0.05, seed=seed))
        hashes.append(model_hash(model.state_dict()))
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


def test_train_returns_train_rows_and_ignores_test_rows(task: HeartDiseaseTask) -> None:
    """n_i is the site's train row count; the test split does not influence training."""
    data = task.load_site("Switzerland", seed=0)
    model = task.build_model(0)
    assert task.train(model, data, FAST) == data.train_samples == 92
    scrambled = type(data)(
        data.site, data.x_train, data.y_train, -data.x_test, 1 - data.y_test, data.feature_names
    )
    other = task.build_model(0)
    task.train(other, scrambled, FAST)
    assert model_hash(model.state_dict()) == model_hash(other.state_dict())


def test_evaluate_reports_test_metrics(task: HeartDiseaseTask) -> None:
    """Training improves the test loss over the initial model, and the metrics are on the test
    split: samples = test rows, accuracy and AUC in [0, 1]."""
    data = task.load_site("Cleveland", seed=0)
    model = task.build_model(0)
    before = task.evaluate(model, data)
    task.train(model, data, TrainConfig(epochs=10, lr=0.05))
    after = task.evaluate(model, data)
    assert after.samples == data.test_samples
    assert 0.0 <= after.accuracy <= 1.0 and 0.0 <= after.auc <= 1.0
    assert after.loss < before.loss
    assert not math.isnan(after.auc)
