"""The task: what swarm needs from this plugin (the swarm.training.task.Task protocol).

A task file names the factory (``[plugin] factory = "swarm_example_task.task:make_task"``, or the
``ecg-rhythm`` entry point once the package is installed); every hospital's peer calls it with
the file's ``[plugin] options``, its own data path and its site's name, and trains what it
returns. The options are in the task file, hence in the task id: every hospital builds the same
network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from swarm.errors import SiteDataError
from swarm.training.loop import evaluate_classifier, train_classifier
from swarm.training.models import build_seeded
from swarm.training.task import Metrics, SiteData, TrainConfig
from swarm_example_task.data import read_site, split, standardize
from swarm_example_task.model import RhythmCNN
from swarm_example_task.synthetic import CLASSES, LENGTH

#: the name a task file using this plugin must have in ``[task] name``
TASK_NAME = "ecg-rhythm"
#: the plugin's own defaults; the consortium's task file ([training]) is what peers train with
DEFAULT_CONFIG = TrainConfig(optimizer="adamw", epochs=2, batch_size=32, lr=0.03, weight_decay=1e-4)
DEFAULT_ROUNDS = 20


@dataclass(frozen=True)
class Options:
    """The ``[plugin] options`` this task reads; anything else in the table is refused."""

    #: samples per signal (5 s at 50 Hz)
    length: int = LENGTH
    #: the rhythm classes, in the order of the model's outputs
    classes: tuple[str, ...] = CLASSES
    #: convolution channels
    channels: int = 8
    #: convolution width in samples (odd, so that "same" padding centres it)
    kernel: int = 7
    #: each site's share of test signals
    test_fraction: float = 0.25

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Options:
        """Options from the task file's table; ValueError (one line, naming the key)."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
        values = dict(table)
        if "classes" in values:
            classes = values["classes"]
            if not isinstance(classes, Sequence) or isinstance(classes, str):
                raise ValueError("option classes must be a list of names")
            values["classes"] = tuple(str(c) for c in classes)
        options = cls(**values)
        for name in ("length", "channels", "kernel"):
            value = getattr(options, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"option {name} must be a whole number of at least 1")
        if options.kernel % 2 == 0 or options.kernel > options.length:
            raise ValueError("option kernel must be odd and at most length")
        if len(options.classes) < 2 or len(set(options.classes)) != len(options.classes):
            raise ValueError("option classes must name at least two distinct classes")
        fraction = options.test_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise ValueError("option test_fraction must be a number")
        if not 0 < fraction < 1:
            raise ValueError("option test_fraction must be between 0 and 1")
        return options


@dataclass(frozen=True)
class EcgRhythmTask:
    """Heart rhythm (one class per rhythm) from one lead, bound to one hospital's data."""

    options: Options
    data: Path | None
    site: str
    name: str = TASK_NAME
    default_config: TrainConfig = DEFAULT_CONFIG
    default_rounds: int = DEFAULT_ROUNDS
    sites: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", (self.site,))

    def build_model(self, seed: int) -> nn.Module:
        o = self.options
        return build_seeded(lambda: RhythmCNN(len(o.classes), o.channels, o.kernel), seed)

    def load_site(self, site: str, seed: int) -> SiteData:
        """This hospital's signals, standardized one by one, split by ``seed`` (SiteDataError,
        one line naming the file, for anything that does not fit the task)."""
        if self.data is None:
            raise SiteDataError(f"task {self.name}: no data configured for site {site!r}")
        if site != self.site:
            raise SiteDataError(f"task {self.name} is bound to site {self.site!r}, not {site!r}")
        signals = read_site(self.data, self.options.length, self.options.classes)
        if len(set(signals.y.tolist())) < 2:
            raise SiteDataError(f"{self.data}: holds one class only")
        x = torch.from_numpy(standardize(signals.x))
        y = torch.from_numpy(signals.y)
        train, test = split(signals.y, seed, site, self.options.test_fraction)
        return SiteData(
            site=site,
            x_train=x[train],
            y_train=y[train],
            x_test=x[test],
            y_test=y[test],
            feature_names=tuple(f"t{i}" for i in range(self.options.length)),
            classes=self.options.classes,
        )

    def train(
        self,
        model: nn.Module,
        data: SiteData,
        config: TrainConfig,
        global_model: Mapping[str, torch.Tensor] | None = None,
    ) -> int:
        return train_classifier(model, data.x_train, data.y_train, config, global_model)

    def evaluate(self, model: nn.Module, data: SiteData) -> Metrics:
        return evaluate_classifier(model, data.x_test, data.y_test)


def make_task(options: Mapping[str, Any], data: Path | None, site: str) -> EcgRhythmTask:
    """The plugin's factory (swarm.training.plugins): the task for ``site``'s ``data``."""
    return EcgRhythmTask(options=Options.from_table(options), data=data, site=site)
