"""The task id and initial-model hash a consortium records (swarm.training.task_id)."""

from __future__ import annotations

import hashlib

import pytest

from swarm.errors import ConfigError, TaskMismatchError
from swarm.training import get_task
from swarm.training.checkpoint import model_hash
from swarm.training.task_id import check_task_id, task_fingerprint, task_id

TASK = "heart-disease-uci/logreg"


def test_task_id_is_a_tagged_hash_of_name_and_seed() -> None:
    """Task id (fault: an id that another hash of the same bytes could equal, or that ignores
    the seed): the swarm/v1/task tagged hash of name || 0x00 || decimal seed."""
    tag = hashlib.sha256(b"swarm/v1/task").digest()
    expected = hashlib.sha256(tag + tag + TASK.encode() + b"\0" + b"0").digest()
    assert task_id(TASK) == expected
    assert task_id(TASK, 1) != task_id(TASK, 0)
    assert task_id(TASK) != hashlib.sha256(TASK.encode()).digest()  # not the old untagged id


def test_fingerprint_is_the_true_initial_model() -> None:
    fp = task_fingerprint(TASK, 3)
    state = get_task(TASK).build_model(3).state_dict()
    assert fp.initial_model_hash == model_hash(state)
    assert fp.task_id == task_id(TASK, 3)
    assert fp.param_count == sum(t.numel() for t in state.values()) > 0


def test_unknown_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown task"):
        task_fingerprint("nope")


def test_check_task_id_names_both_ids_and_who_acts() -> None:
    check_task_id(task_id(TASK), TASK, 0)
    other = task_id("heart-disease-uci/mlp")
    with pytest.raises(TaskMismatchError) as exc:
        check_task_id(other, TASK, 0)
    text = str(exc.value)
    assert "0x" + other.hex() in text and "0x" + task_id(TASK).hex() in text
    assert "operator" in text and "\n" not in text
