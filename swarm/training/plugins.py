"""Plugin tasks: a consortium's own Python code implementing the :class:`~swarm.training.task.Task`
protocol, named by a task file.

::

    [task]
    kind = "plugin"
    [plugin]
    factory = "swarm_example_task:make_task"  # module:callable; or
    # entry_point = "ecg"                       # an installed package's `swarm.tasks` entry point
    distribution = "swarm-example-task"         # optional: the installed package providing it
    version = "0.1.0"                           # optional: the exact version every hospital runs
    path = "src"                                # optional, for development: a folder (relative
                                                # to the task file) put on sys.path first
    options = { hidden = 32 }                   # passed to the factory

The factory is called as ``factory(options, data, site)`` with the hospital's data path (None
when only the model is needed) and must return a Task whose ``name`` is the task file's. The
plugin's *code* is not in the task id (only its name, distribution and version are): pin
``distribution`` and ``version`` so that a hospital running other code is refused at start-up.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from swarm.errors import TaskFileError
from swarm.training.task import Metrics, SiteData, Task, TrainConfig

if TYPE_CHECKING:
    from swarm.training.taskfile import TaskFile

#: the entry-point group installed plugin packages register their task factories in
ENTRY_POINT_GROUP = "swarm.tasks"
_KEYS = ("factory", "entry_point", "distribution", "version", "path", "options")


def open_plugin_task(spec: TaskFile, data: Path | None, site: str) -> Task:
    """Import the plugin the task file names and build its task for this site (module doc).
    TaskFileError, one line, when it does not import, is not callable or returns no Task."""
    where = f"{spec.path.name}: [plugin]"
    table = spec.plugin
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise TaskFileError(f"{where} has unknown key(s) {', '.join(unknown)}; known: {_KEYS}")
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise TaskFileError(f"{where} options must be a table")
    if "path" in table:
        folder = spec.resolve(str(table["path"]))
        if not folder.is_dir():
            raise TaskFileError(f"{where} path {folder} is not a folder")
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    _check_distribution(table, where)
    factory = _factory(table, where)
    try:
        task = factory(dict(options), data, site)
    except TaskFileError:
        raise
    except Exception as exc:  # the plugin's own failure, whatever it is: one line, not a trace
        raise TaskFileError(
            f"{where} factory failed: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from exc
    if not isinstance(task, Task):
        raise TaskFileError(
            f"{where} factory returned {type(task).__name__}, which does not implement the Task "
            "protocol (name, sites, default_config, default_rounds, build_model, load_site, "
            "train, evaluate: docs/own-data.md)"
        )
    if task.name != spec.name:
        raise TaskFileError(
            f"{where} factory returned task {task.name!r}, but the task file names {spec.name!r}"
        )
    return _FileSettings(task, spec.training, spec.rounds)


class _FileSettings:
    """The plugin's task, trained with the task file's [training] and rounds: they are in the
    task id, so they, not the plugin's own defaults, are what every hospital runs."""

    def __init__(self, task: Task, config: TrainConfig, rounds: int) -> None:
        self._task = task
        self._config = config
        self._rounds = rounds

    @property
    def name(self) -> str:
        return self._task.name

    @property
    def sites(self) -> tuple[str, ...]:
        return self._task.sites

    @property
    def default_config(self) -> TrainConfig:
        return self._config

    @property
    def default_rounds(self) -> int:
        return self._rounds

    def build_model(self, seed: int) -> nn.Module:
        return self._task.build_model(seed)

    def load_site(self, site: str, seed: int) -> SiteData:
        return self._task.load_site(site, seed)

    def train(
        self,
        model: nn.Module,
        data: SiteData,
        config: TrainConfig,
        global_model: Mapping[str, torch.Tensor] | None = None,
    ) -> int:
        return self._task.train(model, data, config, global_model)

    def evaluate(self, model: nn.Module, data: SiteData) -> Metrics:
        return self._task.evaluate(model, data)


def _check_distribution(table: dict[str, Any] | Any, where: str) -> None:
    name = table.get("distribution")
    if name is None:
        if "version" in table:
            raise TaskFileError(f"{where} version needs distribution (the package's name)")
        return
    try:
        installed = importlib.metadata.version(str(name))
    except importlib.metadata.PackageNotFoundError:
        raise TaskFileError(
            f"{where} distribution {name!r} is not installed (pip install it; ask the "
            "consortium which version)"
        ) from None
    wanted = table.get("version")
    if wanted is not None and installed != str(wanted):
        raise TaskFileError(f"{where} the task needs {name} {wanted}, but {installed} is installed")


def _factory(table: dict[str, Any] | Any, where: str) -> Callable[..., Any]:
    has_factory, has_entry = "factory" in table, "entry_point" in table
    if has_factory == has_entry:
        raise TaskFileError(f"{where} needs exactly one of factory or entry_point")
    if has_entry:
        name = str(table["entry_point"])
        found = [
            ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name
        ]
        if not found:
            raise TaskFileError(
                f"{where} no installed package provides entry point {name!r} in group "
                f"{ENTRY_POINT_GROUP!r}"
            )
        try:
            obj = found[0].load()
        except Exception as exc:
            raise TaskFileError(
                f"{where} entry point {name!r} does not import: {type(exc).__name__}: {exc}"
            ) from exc
    else:
        target = str(table["factory"])
        module_name, sep, attr = target.partition(":")
        if not sep or not module_name or not attr:
            raise TaskFileError(f"{where} factory must be 'module:callable', not {target!r}")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise TaskFileError(
                f"{where} factory module {module_name!r} does not import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        obj = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise TaskFileError(f"{where} module {module_name!r} has no {attr!r}") from None
    if not callable(obj):
        raise TaskFileError(f"{where} {obj!r} is not callable")
    return obj


__all__ = ["ENTRY_POINT_GROUP", "open_plugin_task"]
