"""Plugin tasks (swarm.training.plugins) and the example plugin (examples/plugin-task).

The example is loaded the way a consortium's task file names it during development
(``[plugin] path``: nothing installed); each way a task file's ``[plugin]`` table can be wrong
must give one line, as a TaskFileError, never a traceback.
"""

from __future__ import annotations

import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from swarm.errors import SiteDataError, TaskFileError
from swarm.training.task import Task
from swarm.training.taskfile import TaskFile, check_site, open_task

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin-task"
EXAMPLE_TASK = EXAMPLE / "task.toml"


@pytest.fixture(autouse=True)
def _import_state() -> Iterator[None]:
    """A plugin's ``path`` goes on sys.path for the whole process (as in a peer): undo it and
    forget the modules the test imported, so one test's plugin cannot answer for another's."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith(("plug_", "swarm_example_task")):
            del sys.modules[name]


def make_sites(out: Path, **kwargs: Any) -> list[Path]:
    """The example's synthetic hospitals (examples/plugin-task/make_data.py)."""
    sys.path.insert(0, str(EXAMPLE))
    from swarm_example_task.synthetic import make_sites as write_sites

    return list(write_sites(out, **kwargs))


def write_task(
    folder: Path,
    plugin: str,
    *,
    name: str = "ecg-rhythm",
    extra: str = "",
) -> Path:
    """A task file of kind plugin in ``folder`` with the given ``[plugin]`` body."""
    path = folder / "task.toml"
    path.write_text(
        f'[task]\nname = "{name}"\nkind = "plugin"\n\n[plugin]\n'
        + textwrap.dedent(plugin).strip()
        + "\n"
        + textwrap.dedent(extra)
    )
    return path


def example_plugin(**keys: str) -> str:
    """A ``[plugin]`` body naming the example from anywhere (absolute ``path``)."""
    lines = {"factory": '"swarm_example_task.task:make_task"', "path": f'"{EXAMPLE.as_posix()}"'}
    lines.update(keys)
    return "\n".join(f"{k} = {v}" for k, v in lines.items() if v)


def task_file_error(path: Path, data: Path | None = None) -> str:
    """The TaskFileError opening ``path`` gives; asserted to be one line."""
    with pytest.raises(TaskFileError) as caught:
        open_task(TaskFile.load(path), data, "north")
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message, message
    return message


def site_data_error(task: Task, site: str = "north") -> str:
    with pytest.raises(SiteDataError) as caught:
        task.load_site(site, seed=0)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# --- the example, through its task file -----------------------------------------------------


def test_example_task_file_builds_trains_and_evaluates(tmp_path: Path) -> None:
    """Fault: the example's task file (path = ".", nothing installed) does not give a working
    task: wrong name or site, a model that differs between two builds with one seed, data that
    does not load, training that does not learn."""
    north, _ = make_sites(tmp_path, sites=2, rows=160)
    spec = TaskFile.load(EXAMPLE_TASK)
    assert spec.plugin["path"] == "."
    task = open_task(spec, north, "north")
    assert isinstance(task, Task)
    assert task.name == spec.name == "ecg-rhythm"
    assert task.sites == ("north",)

    first, again = task.build_model(spec.seed), task.build_model(spec.seed)
    other = task.build_model(spec.seed + 1)
    for key, value in first.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, again.state_dict()[key])
    assert any(not torch.equal(v, other.state_dict()[k]) for k, v in first.state_dict().items())

    data = task.load_site("north", seed=spec.seed)
    assert data.train_samples + data.test_samples == 160
    assert data.test_samples == pytest.approx(40, abs=2)
    assert data.classes == ("normal", "bradycardia", "tachycardia")
    assert data.y_train.dtype == torch.int64 and tuple(data.x_train.shape[1:]) == (250,)

    before = task.evaluate(first, data)
    for round_id in range(9):
        assert task.train(first, data, spec.training.for_round(round_id, "north")) == (
            data.train_samples
        )
        task.train(again, data, spec.training.for_round(round_id, "north"))
    after = task.evaluate(first, data)
    assert after.samples == data.test_samples
    assert after.loss < before.loss
    assert after.accuracy >= 0.75 and after.auc >= 0.95, after
    for key, value in first.state_dict().items():  # CPU training is bit-reproducible
        assert torch.equal(value, again.state_dict()[key])


def test_example_task_without_data_builds_the_model_only() -> None:
    """Fault: `swarm task info` (no data) needs the data, or load_site without data does not
    say that no data is configured."""
    task = open_task(TaskFile.load(EXAMPLE_TASK), None)
    assert sum(p.numel() for p in task.build_model(0).parameters()) == 547
    assert "no data configured" in site_data_error(task, task.sites[0])


def test_check_site_reports_the_examples_rows_and_classes(tmp_path: Path) -> None:
    """Fault: `swarm task check` on a plugin's data miscounts rows or labels, or flags good
    data (the per-class counts are those the generator wrote)."""
    (north,) = make_sites(tmp_path, sites=1, rows=120)
    with np.load(north) as archive:
        names = archive["labels"].tolist()
    report = check_site(TaskFile.load(EXAMPLE_TASK), north)
    assert report.ok, report.problems
    assert report.site == "north" and report.rows == 120
    classes = ("normal", "bradycardia", "tachycardia")
    assert report.label_counts == {c: names.count(c) for c in classes if names.count(c)}


def test_csv_folder_layout_reads_the_same_signals_as_npz(tmp_path: Path) -> None:
    """Fault: the folder layout (labels.csv + one CSV per signal) reads other signals, labels or
    split than the .npz layout of the same data."""
    (npz,) = make_sites(tmp_path / "npz", sites=1, rows=40)
    (folder,) = make_sites(tmp_path / "csv", sites=1, rows=40, layout="csv")
    assert folder.is_dir() and (folder / "labels.csv").is_file()
    spec = TaskFile.load(EXAMPLE_TASK)
    a = open_task(spec, npz, "north").load_site("north", 0)
    b = open_task(spec, folder, "north").load_site("north", 0)
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.y_test, b.y_test)
    assert torch.allclose(a.x_train, b.x_train, atol=1e-3)


def test_a_plugin_task_trains_with_the_task_files_settings(tmp_path: Path) -> None:
    """Fault: a plugin task trains with the plugin's own defaults, not the task file's
    [training] and rounds, although the task id covers the file's (an admin's change of lr
    would change the id and nothing else)."""
    path = write_task(
        tmp_path,
        example_plugin(),
        extra='[training]\noptimizer = "sgd"\nlr = 0.005\nepochs = 3\n',
    )
    path.write_text(path.read_text().replace("kind = ", "rounds = 7\nkind = "))
    spec = TaskFile.load(path)
    task = open_task(spec, None, "north")
    assert task.default_config == spec.training
    assert task.default_rounds == spec.rounds == 7


# --- a site's data that does not fit: SiteDataError, one line naming the file ------------------


def _open_example(data: Path) -> Task:
    return open_task(TaskFile.load(EXAMPLE_TASK), data, "north")


def test_missing_data_is_named(tmp_path: Path) -> None:
    """Fault: the configured data path does not exist."""
    message = site_data_error(_open_example(tmp_path / "nowhere.npz"))
    assert "nowhere.npz" in message and "no such file" in message


def test_signals_of_the_wrong_length_are_named(tmp_path: Path) -> None:
    """Fault: an .npz whose signals are not the task's length (250 samples)."""
    path = tmp_path / "north.npz"
    np.savez(path, signals=np.zeros((4, 100), np.float32), labels=np.array(["normal"] * 4))
    message = site_data_error(_open_example(path))
    assert str(path) in message and "250" in message


def test_an_unknown_label_names_its_row(tmp_path: Path) -> None:
    """Fault: a label that is not one of the task's classes."""
    path = tmp_path / "north.npz"
    labels = np.array(["normal", "bradycardia", "afib", "normal"])
    np.savez(path, signals=np.zeros((4, 250), np.float32), labels=labels)
    message = site_data_error(_open_example(path))
    assert "row 3" in message and "'afib'" in message


def test_one_class_only_is_refused(tmp_path: Path) -> None:
    """Fault: a site whose signals all have one label (nothing to learn; check_site flags it)."""
    path = tmp_path / "north.npz"
    np.savez(path, signals=np.ones((6, 250), np.float32), labels=np.array(["normal"] * 6))
    assert "one class only" in site_data_error(_open_example(path))
    report = check_site(TaskFile.load(EXAMPLE_TASK), path)
    assert not report.ok and "one class only" in report.problems[0]


def test_a_folder_without_labels_csv_is_named(tmp_path: Path) -> None:
    """Fault: the folder layout without its labels.csv."""
    (tmp_path / "north").mkdir()
    assert "labels.csv" in site_data_error(_open_example(tmp_path / "north"))


def test_a_non_numeric_signal_file_is_named(tmp_path: Path) -> None:
    """Fault: a signal CSV holding text."""
    (folder,) = make_sites(tmp_path, sites=1, rows=4, layout="csv")
    (folder / "signal-0002.csv").write_text("0.1\nlead II\n")
    assert "signal-0002.csv" in site_data_error(_open_example(folder))


def test_a_pickled_npz_is_refused(tmp_path: Path) -> None:
    """Fault: an .npz holding Python objects (loading it would run pickled code): refused."""
    path = tmp_path / "north.npz"
    labels = np.array(["normal", None], dtype=object)
    np.savez(path, signals=np.zeros((2, 250), np.float32), labels=labels)
    assert str(path) in site_data_error(_open_example(path))


def test_the_task_is_bound_to_its_site(tmp_path: Path) -> None:
    """Fault: a task bound to north's data answers for another site's name."""
    (north,) = make_sites(tmp_path, sites=1, rows=20)
    assert "bound to site 'north'" in site_data_error(_open_example(north), "south")


# --- [plugin] tables that do not work: TaskFileError, one line --------------------------------


def test_a_module_that_does_not_exist(tmp_path: Path) -> None:
    """Fault: factory names a module that is not importable."""
    path = write_task(tmp_path, 'factory = "plug_nowhere:make_task"\npath = "."')
    message = task_file_error(path)
    assert "'plug_nowhere' does not import" in message and "ModuleNotFoundError" in message


def test_a_module_that_fails_while_importing(tmp_path: Path) -> None:
    """Fault: the plugin module raises at import (a syntax error here)."""
    (tmp_path / "plug_broken.py").write_text("def make_task(:\n")
    path = write_task(tmp_path, 'factory = "plug_broken:make_task"\npath = "."')
    message = task_file_error(path)
    assert "'plug_broken' does not import" in message and "SyntaxError" in message


def test_a_missing_attribute(tmp_path: Path) -> None:
    """Fault: the module imports but has no such factory."""
    path = write_task(tmp_path, example_plugin(factory='"swarm_example_task.task:make_tsk"'))
    assert "has no 'make_tsk'" in task_file_error(path)


def test_a_factory_that_is_not_module_colon_callable(tmp_path: Path) -> None:
    """Fault: factory written as a dotted path without the colon."""
    path = write_task(tmp_path, example_plugin(factory='"swarm_example_task.task.make_task"'))
    assert "module:callable" in task_file_error(path)


def test_an_attribute_that_is_not_callable(tmp_path: Path) -> None:
    """Fault: factory names a constant, not a function."""
    path = write_task(tmp_path, example_plugin(factory='"swarm_example_task.task:TASK_NAME"'))
    assert "is not callable" in task_file_error(path)


def test_a_factory_that_raises(tmp_path: Path) -> None:
    """Fault: the factory raises (the example refuses an option it does not know): one line
    with the exception's type and message, not the plugin's traceback."""
    path = write_task(tmp_path, example_plugin(), extra="[plugin.options]\nwidth = 3\n")
    message = task_file_error(path)
    assert "factory failed: ValueError: unknown option(s) width" in message


def test_a_factory_whose_error_spans_lines(tmp_path: Path) -> None:
    """Fault: the factory raises with a multi-line message: only its first line is kept."""
    (tmp_path / "plug_multiline.py").write_text(
        "def make_task(options, data, site):\n"
        "    raise RuntimeError('first line\\nsecond line\\nthird line')\n"
    )
    path = write_task(tmp_path, 'factory = "plug_multiline:make_task"\npath = "."')
    message = task_file_error(path)
    assert message.endswith("factory failed: RuntimeError: first line")


def test_a_factory_that_returns_no_task(tmp_path: Path) -> None:
    """Fault: the factory returns something without the Task protocol's members."""
    (tmp_path / "plug_not_a_task.py").write_text(
        "def make_task(options, data, site):\n    return {'name': 'ecg-rhythm'}\n"
    )
    path = write_task(tmp_path, 'factory = "plug_not_a_task:make_task"\npath = "."')
    message = task_file_error(path)
    assert "returned dict, which does not implement the Task protocol" in message


def test_a_task_with_another_name(tmp_path: Path) -> None:
    """Fault: the task file's [task] name is not the name of the task the plugin builds."""
    path = write_task(tmp_path, example_plugin(), name="ecg-rhythm-v2")
    message = task_file_error(path)
    assert "returned task 'ecg-rhythm'" in message and "'ecg-rhythm-v2'" in message


def test_an_unknown_plugin_key(tmp_path: Path) -> None:
    """Fault: a misspelt key in [plugin] (here `option` for `options`)."""
    path = write_task(tmp_path, example_plugin(option="{ channels = 4 }"))
    assert "unknown key(s) option" in task_file_error(path)


def test_options_that_are_not_a_table(tmp_path: Path) -> None:
    """Fault: [plugin] options is a value, not a table."""
    path = write_task(tmp_path, example_plugin(options='"channels=4"'))
    assert "options must be a table" in task_file_error(path)


def test_both_factory_and_entry_point(tmp_path: Path) -> None:
    """Fault: [plugin] names a factory and an entry point: which one runs would be a guess."""
    path = write_task(tmp_path, example_plugin(entry_point='"ecg-rhythm"'))
    assert "exactly one of factory or entry_point" in task_file_error(path)


def test_neither_factory_nor_entry_point(tmp_path: Path) -> None:
    """Fault: [plugin] names no code to run."""
    path = write_task(tmp_path, example_plugin(factory=""))
    assert "exactly one of factory or entry_point" in task_file_error(path)


def test_a_path_that_is_not_a_folder(tmp_path: Path) -> None:
    """Fault: [plugin] path names no folder (relative to the task file)."""
    path = write_task(tmp_path, 'factory = "plug_x:make_task"\npath = "src"')
    assert f"path {tmp_path / 'src'} is not a folder" in task_file_error(path)


def test_a_distribution_that_is_not_installed(tmp_path: Path) -> None:
    """Fault: the task file pins a package this hospital has not installed."""
    path = write_task(
        tmp_path, example_plugin(distribution='"swarm-no-such-plugin"', version='"1.0"')
    )
    assert "distribution 'swarm-no-such-plugin' is not installed" in task_file_error(path)


def test_a_wrong_version(tmp_path: Path) -> None:
    """Fault: the pinned package is installed at another version (torch stands in for it)."""
    installed = __import__("importlib.metadata").metadata.version("torch")
    path = write_task(tmp_path, example_plugin(distribution='"torch"', version='"0.0.1"'))
    assert f"needs torch 0.0.1, but {installed} is installed" in task_file_error(path)


def test_a_version_without_its_distribution(tmp_path: Path) -> None:
    """Fault: version pinned without saying of which package."""
    path = write_task(tmp_path, example_plugin(version='"0.1.0"'))
    assert "version needs distribution" in task_file_error(path)


def test_an_entry_point_nobody_provides(tmp_path: Path) -> None:
    """Fault: entry_point names a plugin no installed package registers."""
    path = write_task(tmp_path, 'entry_point = "plug-nobody-provides-this"')
    message = task_file_error(path)
    assert "no installed package provides entry point 'plug-nobody-provides-this'" in message
    assert "'swarm.tasks'" in message


# --- the example installed: its entry point and pinned version ---------------------------------


def _install_metadata(site_packages: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """What `pip install examples/plugin-task` registers, written from its pyproject.toml:
    the distribution's metadata and its `swarm.tasks` entry points (the code itself comes from
    the example's folder). Returns (distribution, version)."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    info = site_packages / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    entries = project["entry-points"]["swarm.tasks"]
    (info / "entry_points.txt").write_text(
        "[swarm.tasks]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
    )
    monkeypatch.syspath_prepend(str(site_packages))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return name, version


def test_the_examples_entry_point_and_pinned_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: the example's pyproject.toml does not register `ecg-rhythm` in `swarm.tasks`, or
    a task file naming it by entry point, distribution and exact version does not open."""
    name, version = _install_metadata(tmp_path / "site-packages", monkeypatch)
    (north,) = make_sites(tmp_path / "data", sites=1, rows=40)
    path = write_task(
        tmp_path,
        f'entry_point = "ecg-rhythm"\ndistribution = "{name}"\nversion = "{version}"\n'
        "options = { channels = 4 }",
    )
    task = open_task(TaskFile.load(path), north, "north")
    assert task.name == "ecg-rhythm"
    assert sum(p.numel() for p in task.build_model(0).parameters()) < 547  # options applied
    assert task.load_site("north", 0).train_samples == 30
    pinned = write_task(
        tmp_path, f'entry_point = "ecg-rhythm"\ndistribution = "{name}"\nversion = "9.9.9"'
    )
    assert f"needs {name} 9.9.9, but {version} is installed" in task_file_error(pinned)


def test_an_entry_point_whose_module_does_not_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: an installed package registers the entry point, but its target module is gone
    (a broken or half-upgraded install)."""
    info = tmp_path / "site-packages" / "plug_broken_dist-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plug-broken-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[swarm.tasks]\nplug-broken = plug_missing_module:make_task\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site-packages"))
    message = task_file_error(write_task(tmp_path, 'entry_point = "plug-broken"'))
    assert "entry point 'plug-broken' does not import: ModuleNotFoundError" in message


def test_the_task_file_pins_a_different_id_per_option(tmp_path: Path) -> None:
    """Fault: a plugin option (part of what is trained) does not change the task id."""
    ids = set()
    for channels in (4, 8):
        folder = tmp_path / f"c{channels}"
        folder.mkdir()
        path = write_task(folder, example_plugin(options=f"{{ channels = {channels} }}"))
        ids.add(TaskFile.load(path).task_id)
    assert len(ids) == 2
