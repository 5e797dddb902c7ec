"""The task interface: configs, the registry, and the built-in task meeting the protocol."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm.training.registry import DEFAULT_TASK, get_task, register_task, task_names
from swarm.training.task import Task, TrainConfig


def test_builtin_tasks_are_registered_and_named() -> None:
    """Each registered name gives a task that calls itself by that name and meets Task."""
    assert DEFAULT_TASK in task_names()
    for name in task_names():
        task = get_task(name)
        assert isinstance(task, Task)
        assert task.name == name
        assert task.sites == ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")


def test_unknown_task_names_the_known_ones() -> None:
    """A typo in the configured task name fails with the list of valid names."""
    with pytest.raises(ValueError, match="heart-disease-uci/mlp"):
        get_task("heart-disease/mlp")


def test_register_task_refuses_a_taken_name() -> None:
    """Names are registered once, so two peers cannot mean different models by one name."""
    with pytest.raises(ValueError, match="already registered"):
        register_task(DEFAULT_TASK, lambda: get_task(DEFAULT_TASK))


def test_train_config_validates() -> None:
    """Nonsense hyperparameters are refused when the config is built."""
    bad_configs = (
        {"epochs": 0},
        {"lr": 0.0},
        {"fedprox_mu": -1.0},
        {"batch_size": 0},
        {"lr": 0.1, "momentum": 0.0, "fedprox_mu": 20.0},  # lr * mu = 2: the prox step diverges
    )
    for bad in bad_configs:
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_for_round_derives_stable_distinct_seeds() -> None:
    """Each (round, site) gets its own shuffling seed, the same in every process, and nothing
    else in the config changes."""
    config = TrainConfig(seed=7)
    a = config.for_round(3, "Hungary")
    assert a == config.for_round(3, "Hungary")
    assert a.seed != config.for_round(4, "Hungary").seed
    assert a.seed != config.for_round(3, "Cleveland").seed
    assert replace(a, seed=7) == config
    assert 0 <= a.seed < 2**63


def test_task_name_covers_what_changes_the_model() -> None:
    """Two heart tasks that would train different models never share a name."""
    from swarm.training.heart import HeartDiseaseTask
    from swarm.training.heart_data import Scaling

    names = {
        HeartDiseaseTask(model="logreg").name,
        HeartDiseaseTask(model="mlp").name,
        HeartDiseaseTask(model="mlp", hidden=32).name,
        HeartDiseaseTask(model="mlp", scaling=Scaling.SITE).name,
        HeartDiseaseTask(model="logreg", test_fraction=0.2).name,
    }
    assert len(names) == 5
    assert "heart-disease-uci/mlp-h32" in names
