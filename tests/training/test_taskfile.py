"""Task files: parsed once, validated with one-line errors, hashed into the ledger's task id."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from swarm.errors import SiteDataError, TaskFileError
from swarm.training.taskfile import TaskFile, consortium_task, fingerprint, open_task

REPO = Path(__file__).resolve().parents[2]

BASE = """
# a consortium's task
[task]
name = "toy-study"
kind = "csv"
seed = 3
rounds = 5

[model]
architecture = "logreg"

[training]
optimizer = "sgd"
epochs = 2
lr = 0.05

[data]
label = "outcome"
positive = ["yes"]

[[data.features]]
column = "age"
type = "numeric"
range = [20.0, 90.0]
"""


def write(tmp_path: Path, text: str, name: str = "task.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_task_file_parses_into_its_values(tmp_path: Path) -> None:
    spec = TaskFile.load(write(tmp_path, BASE))
    assert (spec.name, spec.kind, spec.seed, spec.rounds) == ("toy-study", "csv", 3, 5)
    assert spec.training.epochs == 2 and spec.training.lr == 0.05 and spec.training.seed == 3
    assert spec.server.kind == "fedavg" and spec.personalization.epochs == 0
    assert spec.resolve("w.pt") == tmp_path / "w.pt"


def test_the_task_id_ignores_formatting_and_follows_every_value(tmp_path: Path) -> None:
    """Comments, key order and whitespace do not change the id; any value that changes what is
    trained does (a peer with another learning rate is told so by the id)."""
    reordered = BASE.replace("# a consortium's task\n", "").replace(
        'optimizer = "sgd"\nepochs = 2', 'epochs   =   2  # two passes\noptimizer = "sgd"'
    )
    a = TaskFile.load(write(tmp_path, BASE, "a.toml"))
    b = TaskFile.load(write(tmp_path, reordered, "b.toml"))
    c = TaskFile.load(write(tmp_path, BASE.replace("lr = 0.05", "lr = 0.06"), "c.toml"))
    assert a.task_id == b.task_id
    assert a.task_id != c.task_id
    assert len(a.task_id) == 32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t + "[task\n", "not valid TOML"),
        (lambda t: t.replace("[task]", "[tsak]"), "unknown table(s) tsak"),
        (lambda t: t.replace('kind = "csv"', 'kind = "xls"'), "kind must be one of"),
        (lambda t: t.replace('name = "toy-study"', 'name = "Toy Study"'), "[task] name"),
        (lambda t: t.replace("seed = 3", "seed = -1"), "[task] seed must be"),
        (lambda t: t.replace("rounds = 5", "rounds = 0"), "[task] rounds must be"),
        (lambda t: t.replace("epochs = 2", "epochz = 2"), "[training] has unknown key(s) epochz"),
        (lambda t: t.replace("epochs = 2", 'epochs = "two"'), "[training] epochs must be int"),
        (lambda t: t.replace("lr = 0.05", "lr = -1.0"), "[training]"),
        (lambda t: t + "[server]\noptimizer = 'fedsgd'\n", "[server]"),
        (lambda t: t + "[personalization]\nepochs = -1\n", "[personalization] epochs"),
        (lambda t: t + "[personalization]\nrate = 1\n", "[personalization] has unknown key"),
        (lambda t: t.replace("rounds = 5", "rounds = 5\nwhen = 2026-01-01"), "task.when must be"),
        (lambda t: t.replace('kind = "csv"', 'kind = "plugin"'), "needs a [plugin] table"),
    ],
)
def test_a_bad_task_file_is_one_clear_line(
    tmp_path: Path, change: Callable[[str], str], message: str
) -> None:
    """A typo or a wrong value in the consortium's task file (a config typo): TaskFileError,
    one line, naming the file and the key."""
    with pytest.raises(TaskFileError) as info:
        TaskFile.load(write(tmp_path, change(BASE)))
    text = str(info.value)
    assert "\n" not in text and text.startswith("task.toml: ")
    assert message in text


def test_a_missing_task_file_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="no such task file"):
        TaskFile.load(tmp_path / "nope.toml")


def test_the_heart_study_is_one_task_file_whose_fingerprint_is_stable() -> None:
    """The bundled study as a task file: id and initial-model hash are what every peer and the
    deployment compute, twice alike."""
    spec = TaskFile.load(REPO / "examples" / "heart" / "task.toml")
    one, two = fingerprint(spec), fingerprint(spec)
    assert one == two and one.task_id == spec.task_id
    assert one.param_count == 36  # logistic regression over the 35 encoded features


def test_a_task_opened_without_data_builds_its_model_but_loads_no_site() -> None:
    spec = TaskFile.load(REPO / "examples" / "heart" / "task.toml")
    task = open_task(spec, None, "Cleveland")
    assert task.name == spec.name and task.sites == ("Cleveland",)
    with pytest.raises(SiteDataError):
        task.load_site("Cleveland", seed=spec.seed)


def test_a_peer_resolves_a_task_file_or_a_built_in_task() -> None:
    heart = REPO / "examples" / "heart"
    resolved = consortium_task(
        task_file=heart / "task.toml",
        data=heart / "data" / "hungary.csv",
        site="Hungary",
        name="ignored",
        seed=9,
    )
    assert resolved.spec is not None and resolved.seed == resolved.spec.seed
    assert resolved.task_id == resolved.spec.task_id
    assert resolved.task.load_site("Hungary", seed=resolved.seed).train_samples > 100
    builtin = consortium_task(
        task_file=None, data=None, site="Hungary", name="heart-disease-uci/logreg", seed=0
    )
    assert builtin.spec is None and builtin.server_optimizer.kind == "fedavg"
