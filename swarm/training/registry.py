"""Tasks by name: the built-in ones, and any a deployment registers.

A consortium agrees on a task name (it is part of the swarm's configuration); every peer builds
the same model from it with :func:`get_task`.
"""

from __future__ import annotations

from collections.abc import Callable

from swarm.errors import ConfigError
from swarm.training.heart import HeartDiseaseTask
from swarm.training.heart_data import Scaling
from swarm.training.task import Task

_FACTORIES: dict[str, Callable[[], Task]] = {
    "heart-disease-uci/mlp": lambda: HeartDiseaseTask(model="mlp"),
    "heart-disease-uci/logreg": lambda: HeartDiseaseTask(model="logreg"),
    "heart-disease-uci/mlp+site-scaled": lambda: HeartDiseaseTask(
        model="mlp", scaling=Scaling.SITE
    ),
}

#: the task a swarm trains when its configuration names none (the best on validation splits)
DEFAULT_TASK = "heart-disease-uci/logreg"


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Make ``factory()`` available as ``get_task(name)``; a name can be registered once."""
    if name in _FACTORIES:
        raise ValueError(f"task {name!r} is already registered")
    _FACTORIES[name] = factory


def task_names() -> tuple[str, ...]:
    """The registered task names, sorted."""
    return tuple(sorted(_FACTORIES))


def get_task(name: str) -> Task:
    """The task registered as ``name``; ConfigError (a ValueError) naming the known tasks
    otherwise: a task name comes from a config file or an option."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown task {name!r}; known tasks: {', '.join(task_names())}"
        ) from None
    task = factory()
    if task.name != name:
        raise ValueError(f"task registered as {name!r} calls itself {task.name!r}")
    return task
