"""Task files: the consortium's task declared in one TOML file whose hash is the ledger's task id.

A consortium agrees on a task file (docs/own-data.md); every hospital runs its peer with the same
file and its *own* data. The file says what the model is, how a site's data is read and encoded,
how each site trains locally and how the swarm's optimizer applies the aggregate::

    [task]
    name = "heart-disease-uci"     # what people call it
    kind = "csv"                   # csv | image-folder | plugin
    seed = 0                       # seed of the initial model (and of each site's split)
    rounds = 40                    # rounds the training config was tuned for

    [model]  [data]  [plugin]      # what the kind needs (swarm.training.tabular / images / plugins)
    [training]                     # local training: optimizer, epochs, lr, ... (TrainConfig)
    [server]                       # server optimizer: fedavg | fedavgm | fedadam | fedyogi
    [personalization]              # local fine-tuning of a personal copy (epochs, lr)

Why the id is a hash of the *parsed* file: every value that changes what is trained (a column's
range, the learning rate, the architecture, the initial weights' hash) is in the id, so two peers
that agree on the id train the same thing, while comments and formatting do not change it. The
canonical form is the parsed document as JSON with sorted keys and no whitespace, tagged
``swarm/v1/task-file`` (swarm.hashing). The initial-model hash on the ledger is that of the model
the file builds with its seed, with the server optimizer's initial state
(:func:`fingerprint`); every peer recomputes both at start and refuses a mismatch.

What is *not* in the file: any hospital's data or path to it. Each peer's config points at its
own data (``[task] data``), and :func:`open_task` binds the task to it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarm.errors import SiteDataError, TaskFileError
from swarm.hashing import Tag, tagged_hash
from swarm.training.task import TrainConfig

if TYPE_CHECKING:
    from swarm.merge.server import ServerOptimizer
    from swarm.training.task import Task
    from swarm.training.task_id import TaskFingerprint

#: the kinds of task a file can declare, and the module that reads each
KINDS: tuple[str, ...] = ("csv", "image-folder", "plugin")
TABLES: tuple[str, ...] = (
    "task",
    "model",
    "data",
    "plugin",
    "training",
    "server",
    "personalization",
)
_TASK_KEYS = ("name", "kind", "seed", "rounds", "description")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._/+-]{0,79}$")
#: TrainConfig fields a task file may set ([training]); seed comes from [task], the device is
#: each hospital's own choice (its peer config)
_NOT_IN_FILE = frozenset({"seed", "device"})


@dataclass(frozen=True)
class Personalization:
    """Local fine-tuning of a personal copy of the swarm's model (swarm.training.personalize).

    ``epochs`` 0 turns it off; ``lr`` None uses the task's local learning rate; ``fedprox_mu``
    None the task's proximal weight (toward the swarm's model); ``select`` keeps the swarm's
    model instead when fine-tuning does not help on a validation split of the site's train
    rows."""

    epochs: int = 0
    lr: float | None = None
    fedprox_mu: float | None = None
    select: bool = True
    #: "mixture": swarm_weight x the swarm's model + the rest x the hospital's own model (APFL
    #: style); "finetune": the swarm's model fine-tuned locally
    method: str = "mixture"
    #: the swarm model's weight in a mixture, 0 to 1 (None: swarm.training.personalize's default)
    swarm_weight: float | None = None


@dataclass(frozen=True)
class DataReport:
    """What ``swarm task check`` found in one site's data. ``problems`` non-empty: unusable."""

    site: str
    rows: int
    label_counts: dict[str, int]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class TaskFile:
    """A parsed, validated task file (module docstring). Build with :meth:`load`."""

    path: Path
    name: str
    kind: str
    seed: int
    rounds: int
    description: str
    model: Mapping[str, Any]
    data: Mapping[str, Any]
    plugin: Mapping[str, Any]
    training: TrainConfig
    server: ServerOptimizer
    personalization: Personalization
    document: Mapping[str, Any] = field(repr=False)

    @classmethod
    def load(cls, path: Path) -> TaskFile:
        """Read and validate ``path``; TaskFileError (one line naming the file and the key)."""
        path = Path(path).expanduser().resolve()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TaskFileError(f"{path}: no such task file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TaskFileError(f"{path}: cannot read the task file ({exc})") from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: Path) -> TaskFile:
        where = path.name
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TaskFileError(f"{where}: not valid TOML ({exc})") from None
        unknown = sorted(set(doc) - set(TABLES))
        if unknown:
            raise TaskFileError(
                f"{where}: unknown table(s) {', '.join(unknown)}; known: {', '.join(TABLES)}"
            )
        for name, value in doc.items():
            if not isinstance(value, dict):
                raise TaskFileError(f"{where}: [{name}] must be a table")
        _check_json_values(doc, where)
        task = doc.get("task")
        if task is None:
            raise TaskFileError(f"{where}: needs a [task] table (name, kind)")
        _only(task, _TASK_KEYS, where, "task")
        name = task.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise TaskFileError(
                f"{where}: [task] name must be lower-case letters, digits and . _ / + -, "
                f"not {name!r}"
            )
        kind = task.get("kind")
        if kind not in KINDS:
            raise TaskFileError(
                f"{where}: [task] kind must be one of {', '.join(KINDS)}, not {kind!r}"
            )
        seed = _int(task, "seed", 0, where, "task", minimum=0)
        rounds = _int(task, "rounds", 20, where, "task", minimum=1)
        description = task.get("description", "")
        if not isinstance(description, str):
            raise TaskFileError(f"{where}: [task] description must be text")
        if kind == "plugin" and "plugin" not in doc:
            raise TaskFileError(f"{where}: kind 'plugin' needs a [plugin] table (factory)")
        return cls(
            path=path,
            name=name,
            kind=kind,
            seed=seed,
            rounds=rounds,
            description=description,
            model=dict(doc.get("model", {})),
            data=dict(doc.get("data", {})),
            plugin=dict(doc.get("plugin", {})),
            training=_training(doc.get("training", {}), seed, where),
            server=_server(doc.get("server", {}), where),
            personalization=_personalization(doc.get("personalization", {}), where),
            document=doc,
        )

    def resolve(self, relative: str) -> Path:
        """A path the file names, relative to the file's folder (absolute paths stay)."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.path.parent / p).resolve()

    def canonical_bytes(self) -> bytes:
        """The parsed document as sorted, compact, ASCII JSON: what the task id hashes."""
        return json.dumps(
            self.document, sort_keys=True, separators=(",", ":"), ensure_ascii=True
        ).encode("ascii")

    @property
    def task_id(self) -> bytes:
        """The ledger's ``taskId`` of this task: tagged hash ``swarm/v1/task-file``."""
        return tagged_hash(Tag.TASK_FILE, self.canonical_bytes())


def default_site(data: Path) -> str:
    """The label a site gets when its config names none: its data file's or folder's name."""
    return Path(data).stem or str(data)


def open_task(spec: TaskFile, data: Path | None, site: str | None = None) -> Task:
    """The task of ``spec`` bound to one hospital's ``data`` (None: model only, e.g. for
    ``swarm task info``; loading its site then raises SiteDataError). TaskFileError when the
    file's kind-specific tables are wrong (or its plugin does not import)."""
    label = site or (default_site(data) if data is not None else "site")
    if spec.kind == "csv":
        from swarm.training.tabular import open_csv_task

        return open_csv_task(spec, data, label)
    if spec.kind == "image-folder":
        from swarm.training.images import open_image_task

        return open_image_task(spec, data, label)
    from swarm.training.plugins import open_plugin_task

    return open_plugin_task(spec, data, label)


def check_site(spec: TaskFile, data: Path, site: str | None = None) -> DataReport:
    """What is wrong with one site's data for this task, without training anything."""
    label = site or default_site(data)
    if spec.kind == "csv":
        from swarm.training.tabular import check_csv

        return check_csv(spec, data, label)
    if spec.kind == "image-folder":
        from swarm.training.images import check_images

        return check_images(spec, data)
    task = open_task(spec, data, label)
    try:
        site_data = task.load_site(label, seed=spec.seed)
    except SiteDataError as exc:
        return DataReport(site=label, rows=0, label_counts={}, problems=[str(exc)])
    names = site_data.classes

    def class_name(value: float) -> str:
        index = int(value)
        return names[index] if 0 <= index < len(names) else str(index)

    labels = [class_name(v) for v in site_data.y_train.tolist() + site_data.y_test.tolist()]
    counts = {value: labels.count(value) for value in sorted(set(labels))}
    problems = [] if len(counts) > 1 else ["the site's data holds one class only"]
    return DataReport(
        site=label,
        rows=site_data.train_samples + site_data.test_samples,
        label_counts=counts,
        problems=problems,
        notes=[f"{site_data.train_samples} train / {site_data.test_samples} test rows"],
    )


def fingerprint(spec: TaskFile) -> TaskFingerprint:
    """Task id, initial-model hash and parameter count of a task file: what ``swarm admin
    deploy`` records and every peer checks. Builds the model (no data needed)."""
    from swarm.merge.server import swarm_state
    from swarm.training.checkpoint import model_hash
    from swarm.training.task_id import TaskFingerprint

    state = open_task(spec, None).build_model(spec.seed).state_dict()
    full = swarm_state(state, spec.server.initial_state(state))
    return TaskFingerprint(
        name=spec.name,
        seed=spec.seed,
        task_id=spec.task_id,
        initial_model_hash=model_hash(full),
        param_count=sum(int(t.numel()) for t in state.values() if t.is_floating_point()),
    )


@dataclass(frozen=True)
class ConsortiumTask:
    """The task a peer trains, however its config names it: the bound task, the task id the
    ledger must record, the seed of its initial model and (for a task file) the file."""

    task: Task
    task_id: bytes
    seed: int
    spec: TaskFile | None
    #: how to name it in a message: "task file /x/task.toml" or "task 'heart-disease-uci/mlp'"
    described: str

    @property
    def server_optimizer(self) -> ServerOptimizer:
        from swarm.merge.server import ServerOptimizer

        return self.spec.server if self.spec is not None else ServerOptimizer()

    def initial_state(self) -> dict[str, Any]:
        """The swarm state of round 0: the model built with the seed and the server optimizer's
        initial state (what the ledger's initial-model hash covers)."""
        from swarm.merge.server import swarm_state

        state = self.task.build_model(self.seed).state_dict()
        return swarm_state(state, self.server_optimizer.initial_state(state))


def consortium_task(
    *,
    task_file: Path | None,
    data: Path | None,
    site: str,
    name: str,
    seed: int,
) -> ConsortiumTask:
    """Resolve a peer's ``[task]``: a task file bound to the hospital's data, or a built-in task
    by name and seed. ConfigError subclasses, one line, for anything that does not resolve."""
    if task_file is not None:
        spec = TaskFile.load(task_file)
        return ConsortiumTask(
            task=open_task(spec, data, site),
            task_id=spec.task_id,
            seed=spec.seed,
            spec=spec,
            described=f"task file {spec.path}",
        )
    from swarm.errors import ConfigError
    from swarm.training.registry import get_task
    from swarm.training.task_id import task_id

    task = get_task(name)
    if site not in task.sites:
        raise ConfigError(
            f"config: [task] site {site!r} is not one of the task's sites: {', '.join(task.sites)}"
        )
    return ConsortiumTask(
        task=task,
        task_id=task_id(name, seed),
        seed=seed,
        spec=None,
        described=f"task {name!r} (seed {seed})",
    )


# --- validation helpers ----------------------------------------------------------------------


def _check_json_values(value: Any, where: str, key: str = "") -> None:
    """Dates and times have no canonical JSON form (and no use in a task): refuse them, and
    non-finite floats, which JSON cannot hold."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_json_values(v, where, f"{key}.{k}" if key else k)
    elif isinstance(value, list):
        for item in value:
            _check_json_values(item, where, key)
    elif isinstance(value, float) and not math.isfinite(value):
        raise TaskFileError(f"{where}: {key} must be a finite number, not {value}")
    elif not isinstance(value, str | int | float | bool):
        raise TaskFileError(f"{where}: {key} must be text, a number, true/false or a list")


def _only(table: Mapping[str, Any], allowed: tuple[str, ...], where: str, name: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise TaskFileError(
            f"{where}: [{name}] has unknown key(s) {', '.join(unknown)}; known: "
            + ", ".join(allowed)
        )


def _int(
    table: Mapping[str, Any], key: str, default: int, where: str, name: str, *, minimum: int
) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TaskFileError(
            f"{where}: [{name}] {key} must be a whole number of at least {minimum}, not {value!r}"
        )
    return value


def _training(table: Mapping[str, Any], seed: int, where: str) -> TrainConfig:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name not in _NOT_IN_FILE}
    _only(table, tuple(fields), where, "training")
    values: dict[str, Any] = {}
    for key, value in table.items():
        default = fields[key].default
        if isinstance(default, bool) or not isinstance(default, int | float | str):
            raise TaskFileError(f"{where}: [training] {key} cannot be set in a task file")
        if isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            raise TaskFileError(
                f"{where}: [training] {key} must be {type(default).__name__}, not {value!r}"
            )
        values[key] = type(default)(value)
    try:
        return TrainConfig(seed=seed, **values)
    except ValueError as exc:
        raise TaskFileError(f"{where}: [training]: {exc}") from None


def _server(table: Mapping[str, Any], where: str) -> ServerOptimizer:
    from swarm.merge.server import ServerOptimizer

    try:
        return ServerOptimizer.from_table(table)
    except ValueError as exc:
        raise TaskFileError(f"{where}: [server]: {exc}") from None


def _personalization(table: Mapping[str, Any], where: str) -> Personalization:
    _only(
        table,
        ("epochs", "lr", "fedprox_mu", "select", "method", "swarm_weight"),
        where,
        "personalization",
    )
    epochs = _int(table, "epochs", 0, where, "personalization", minimum=0)
    lr = table.get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float) or lr <= 0):
        raise TaskFileError(f"{where}: [personalization] lr must be a number above 0, not {lr!r}")
    mu = table.get("fedprox_mu")
    if mu is not None and (isinstance(mu, bool) or not isinstance(mu, int | float) or mu < 0):
        raise TaskFileError(
            f"{where}: [personalization] fedprox_mu must be a number of at least 0, not {mu!r}"
        )
    select = table.get("select", True)
    if not isinstance(select, bool):
        raise TaskFileError(f"{where}: [personalization] select must be true or false")
    method = table.get("method", "mixture")
    if method not in ("mixture", "finetune"):
        raise TaskFileError(
            f"{where}: [personalization] method must be mixture or finetune, not {method!r}"
        )
    weight = table.get("swarm_weight")
    if weight is not None and (
        isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1
    ):
        raise TaskFileError(
            f"{where}: [personalization] swarm_weight must be a number from 0 to 1, not {weight!r}"
        )
    return Personalization(
        epochs=epochs,
        lr=None if lr is None else float(lr),
        fedprox_mu=None if mu is None else float(mu),
        select=select,
        method=method,
        swarm_weight=None if weight is None else float(weight),
    )


__all__ = [
    "KINDS",
    "ConsortiumTask",
    "DataReport",
    "Personalization",
    "TaskFile",
    "check_site",
    "consortium_task",
    "default_site",
    "fingerprint",
    "open_task",
]
