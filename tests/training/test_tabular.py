"""CSV task files (swarm.training.tabular): the heart study as a file, data the project never saw,
and every way a schema or a site's CSV can be wrong."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from swarm.errors import SiteDataError, TaskFileError
from swarm.training.heart import HeartDiseaseTask
from swarm.training.heart_data import FEATURE_NAMES
from swarm.training.tabular import CsvTask, check_csv, open_csv_task
from swarm.training.task import Task, TrainConfig
from swarm.training.taskfile import TaskFile, open_task

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "heart"
#: the built-in task's site labels and the example's file of each
HEART_FILES = {
    "Cleveland": "cleveland.csv",
    "Hungary": "hungary.csv",
    "Switzerland": "switzerland.csv",
    "VA Long Beach": "va-long-beach.csv",
}


@pytest.fixture(scope="module")
def heart_spec() -> TaskFile:
    return TaskFile.load(EXAMPLE / "task.toml")


@pytest.fixture(scope="module")
def builtin() -> HeartDiseaseTask:
    return HeartDiseaseTask(model="logreg")


# --- the heart study as a task file ----------------------------------------------------------


@pytest.mark.parametrize("site", list(HEART_FILES))
@pytest.mark.parametrize("seed", [0, 7])
def test_heart_task_file_reproduces_the_builtin_task(
    heart_spec: TaskFile, builtin: HeartDiseaseTask, site: str, seed: int
) -> None:
    """Fault: the csv reader, the encoding (reference ranges, zero-is-missing, imputation with
    the train mean, indicators) or the split differs from heart_data's, so the heart task file
    trains something else than the built-in task. Features, labels and splits equal bit for
    bit, with the tuning path's validation split too."""
    task = open_task(heart_spec, EXAMPLE / "data" / HEART_FILES[site], site)
    for validation in (False, True):
        mine = task.load_site(site, seed, validation=validation)  # type: ignore[call-arg]
        theirs = builtin.load_site(site, seed, validation=validation)
        assert mine.site == site
        assert mine.feature_names == FEATURE_NAMES
        for name in ("x_train", "y_train", "x_test", "y_test"):
            assert torch.equal(getattr(mine, name), getattr(theirs, name)), name
        assert mine.y_train.dtype == torch.float32


@pytest.mark.parametrize("seed", [0, 5])
def test_heart_task_file_builds_the_builtin_initial_model(
    heart_spec: TaskFile, builtin: HeartDiseaseTask, tmp_path: Path, seed: int
) -> None:
    """Fault: the file's model differs from the built-in one (layer names, width, seeding),
    so a consortium that moves to the task file starts from other weights. Logistic
    regression, and the MLP when the file says architecture = "mlp"."""
    task = open_task(heart_spec, None)
    mine, theirs = task.build_model(seed).state_dict(), builtin.build_model(seed).state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    text = (EXAMPLE / "task.toml").read_text(encoding="utf-8")
    mlp_file = tmp_path / "mlp.toml"
    mlp_file.write_text(
        text.replace('architecture = "logreg"', 'architecture = "mlp"\nhidden = 16')
    )
    mlp = open_task(TaskFile.load(mlp_file), None).build_model(seed).state_dict()
    reference = HeartDiseaseTask(model="mlp").build_model(seed).state_dict()
    assert list(mlp) == list(reference)
    assert all(torch.equal(mlp[k], reference[k]) for k in mlp)


def test_heart_example_files_hold_one_hospital_each() -> None:
    """Fault: the example's per-hospital files leak another hospital's rows or lose some (id
    304 must be Hungary's): 303 + 294 + 123 + 200 rows, the bundled file's columns."""
    counts = {"Cleveland": 303, "Hungary": 294, "Switzerland": 123, "VA Long Beach": 200}
    for site, name in HEART_FILES.items():
        with (EXAMPLE / "data" / name).open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == counts[site]
        assert {row["dataset"] for row in rows} == {site}
        assert ("304" in {row["id"] for row in rows}) == (site == "Hungary")


def test_task_is_bound_to_one_site(heart_spec: TaskFile) -> None:
    """Fault: the opened task does not carry the file's name, config and rounds, claims other
    sites, or reads another site's data when asked for it, or loads without data."""
    task = open_task(heart_spec, EXAMPLE / "data" / "hungary.csv", "Hungary")
    assert isinstance(task, Task)
    assert task.name == "heart-disease-uci"
    assert task.sites == ("Hungary",)
    assert task.default_config == heart_spec.training
    assert task.default_rounds == 40
    with pytest.raises(SiteDataError, match="bound to site 'Hungary'"):
        task.load_site("Cleveland", seed=0)
    unbound = open_task(heart_spec, None)
    with pytest.raises(SiteDataError, match="no data configured"):
        unbound.load_site(unbound.sites[0], seed=0)
    default = open_task(heart_spec, EXAMPLE / "data" / "va-long-beach.csv")
    assert default.sites == ("va-long-beach",)


def test_check_reports_the_heart_sites(heart_spec: TaskFile) -> None:
    """Fault: check_csv misses what a hospital should know before joining: Switzerland never
    measures chol, has 8 healthy patients of 123 (imbalance)."""
    report = check_csv(heart_spec, EXAMPLE / "data" / "switzerland.csv", "Switzerland")
    assert report.site == "Switzerland"
    assert report.rows == 123
    assert report.label_counts == {"negative": 8, "positive": 115}
    assert report.problems == []
    notes = "\n".join(report.notes)
    assert "column chol missing in 100 % of rows (123 of 123)" in notes
    assert "only 8 negative rows" in notes
    assert "class imbalance: negative is 7 % of the rows" in notes
    assert "92 train / 31 test rows" in notes
    assert "columns the task does not read: id" in notes


# --- a CSV the project never saw -------------------------------------------------------------

UNSEEN_DATA = """
[data]
label = "outcome"
positive = ["event"]
negative = ["none"]
missing = ["", "NA"]

[[data.features]]
column = "bmi"
type = "numeric"
range = [18.0, 40.0]

[[data.features]]
column = "systolic"
type = "numeric"
mean = 130.0
std = 20.0
missing = ["0"]

[[data.features]]
column = "smoker"
type = "binary"
positive = "yes"
negative = "no"

[[data.features]]
column = "region"
type = "categorical"
categories = ["north", "south", "east"]
"""

FAST = TrainConfig(epochs=30, batch_size=16, lr=0.1, momentum=0.9)


def _task_file(
    folder: Path, data: str = UNSEEN_DATA, model: str = 'architecture = "logreg"'
) -> TaskFile:
    path = folder / "task.toml"
    path.write_text(
        f'[task]\nname = "outcome-study"\nkind = "csv"\nseed = 3\nrounds = 12\n\n'
        f"[model]\n{model}\n{data}",
        encoding="utf-8",
    )
    return TaskFile.load(path)


def _unseen_rows(count: int = 240, seed: int = 11) -> list[dict[str, str]]:
    """Synthetic patients: the event depends on bmi, smoking and region (a learnable signal);
    some cells missing, one row without a label."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, str]] = []
    regions = ("north", "south", "east")
    for i in range(count):
        bmi = float(rng.normal(28.0, 5.0))
        smoker = bool(rng.random() < 0.4)
        region = regions[int(rng.integers(3))]
        systolic = float(rng.normal(130.0, 18.0))
        logit = 0.5 * (bmi - 28.0) + 2.0 * smoker + (1.0 if region == "east" else -0.5)
        event = rng.random() < 1.0 / (1.0 + math.exp(-logit))
        rows.append(
            {
                "patient": f"P{i:04d}",
                "bmi": "NA" if i % 17 == 0 else f"{bmi:.1f}",
                "smoker": "yes" if smoker else "no",
                "region": "" if i % 23 == 0 else region,
                "systolic": "0" if i % 13 == 0 else f"{systolic:.0f}",
                "outcome": "event" if event else "none",
                "notes": "free text, with a comma",
            }
        )
    rows[5]["outcome"] = ""
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_unseen_csv_trains_and_evaluates(tmp_path: Path) -> None:
    """Fault: a task made from columns the project never saw (other names, mean/std scaling,
    NA markers, a quoted free-text column, a row without a label) does not load, train and
    evaluate, or training is not deterministic."""
    spec = _task_file(tmp_path)
    data = _write_csv(tmp_path / "st-olaf.csv", _unseen_rows())
    task = open_task(spec, data)
    assert isinstance(task, CsvTask)
    assert task.sites == ("st-olaf",)
    site = task.load_site("st-olaf", seed=spec.seed)
    assert site.train_samples + site.test_samples == 239  # one row had no label
    assert site.feature_names == (
        "bmi",
        "systolic",
        "smoker=yes",
        "region=north",
        "region=south",
        "region=east",
        "bmi:missing",
        "systolic:missing",
        "smoker:missing",
        "region:missing",
    )
    weights = []
    for _ in range(2):
        model = task.build_model(spec.seed)
        assert task.train(model, site, FAST) == site.train_samples
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    metrics = task.evaluate(model, site)
    assert metrics.samples == site.test_samples
    assert metrics.accuracy > 0.7 and metrics.auc > 0.75


def test_missing_values_get_the_train_mean_and_an_indicator(tmp_path: Path) -> None:
    """Fault: a missing cell is imputed with something else than the site's own train mean of
    the encoded column (or with a test-split statistic), a never-measured column is not 0, or
    a "0" marker given for a numeric column misses "0.0"."""
    rows = _unseen_rows(80)
    for i, row in enumerate(rows):
        row["systolic"] = "0.0" if i % 3 == 0 else row["systolic"].replace("0", "1")
        row["smoker"] = ""  # never measured at this site
    spec = _task_file(tmp_path)
    task = open_task(spec, _write_csv(tmp_path / "site.csv", rows))
    site = task.load_site(task.sites[0], seed=0)
    names = site.feature_names
    value, flag = names.index("systolic"), names.index("systolic:missing")
    observed = site.x_train[site.x_train[:, flag] == 0, value].double()
    fill = float(observed.mean())
    for x in (site.x_train, site.x_test):
        missing = x[:, flag] == 1
        assert missing.any()
        assert torch.allclose(x[missing, value].double(), torch.tensor(fill, dtype=torch.float64))
    smoker = names.index("smoker=yes")
    assert torch.all(site.x_train[:, smoker] == 0)
    assert torch.all(site.x_train[:, names.index("smoker:missing")] == 1)
    region = [names.index(f"region={r}") for r in ("north", "south", "east")]
    gone = site.x_train[:, names.index("region:missing")] == 1
    assert torch.all(site.x_train[gone][:, region] == 0)
    assert torch.all(site.x_train[~gone][:, region].sum(dim=1) == 1)


def test_multiclass_task_trains_with_class_indices(tmp_path: Path) -> None:
    """Fault: a classes = [...] task gives float labels, a one-logit model, or no class names;
    or a label outside the classes is silently accepted."""
    rows = _unseen_rows(150)
    for row in rows:
        bmi = float(row["bmi"]) if row["bmi"] != "NA" else 28.0
        row["outcome"] = "low" if bmi < 25 else "mid" if bmi < 31 else "high"
    data = UNSEEN_DATA.replace(
        'positive = ["event"]\nnegative = ["none"]', 'classes = ["low", "mid", "high"]'
    )
    spec = _task_file(tmp_path, data, 'architecture = "mlp"\nhidden = 8')
    task = open_task(spec, _write_csv(tmp_path / "site.csv", rows))
    site = task.load_site(task.sites[0], seed=1)
    assert site.y_train.dtype == torch.int64
    assert site.classes == ("low", "mid", "high")
    assert set(site.y_train.tolist()) == {0, 1, 2}
    model = task.build_model(0)
    assert model(site.x_test).shape == (site.test_samples, 3)
    task.train(model, site, FAST)
    metrics = task.evaluate(model, site)
    assert metrics.accuracy > 0.6 and not math.isnan(metrics.auc)
    rows[9]["outcome"] = "severe"
    _write_csv(tmp_path / "site.csv", rows)
    with pytest.raises(SiteDataError, match=r"label outcome: 'severe' is not one of the classes"):
        task.load_site(task.sites[0], seed=1)


# --- a malformed task file -------------------------------------------------------------------


SCHEMA_CASES: list[tuple[str, str, str, str]] = [
    # (what, replace this, with this, expected message after "task.toml: ")
    (
        "feature type",
        'column = "smoker"\ntype = "binary"',
        'column = "smoker"\ntype = "float"',
        "[data.features] 3 (smoker): type must be numeric, binary or categorical, not 'float'",
    ),
    ("no label", 'label = "outcome"\n', "", "[data] label must be the label column's name"),
    (
        "no class",
        'positive = ["event"]\nnegative = ["none"]\n',
        "",
        "[data] needs positive = [label texts] (binary task) or classes",
    ),
    (
        "both kinds of label",
        'positive = ["event"]',
        'positive = ["event"]\nclasses = ["a", "b"]',
        "[data] gives classes (multiclass) and positive/negative (binary); keep one",
    ),
    (
        "one class",
        'positive = ["event"]\nnegative = ["none"]',
        'classes = ["a"]',
        "[data] classes needs at least 2 classes",
    ),
    (
        "positive is negative",
        'negative = ["none"]',
        'negative = ["none", "event"]',
        "[data] 'event' is both positive and negative",
    ),
    (
        "test fraction",
        'label = "outcome"',
        'label = "outcome"\ntest_fraction = 1.5',
        "[data] test_fraction must be a number between 0 and 1, not 1.5",
    ),
    (
        "unknown data key",
        'label = "outcome"',
        'label = "outcome"\nlable = "x"',
        "[data]: unknown key(s) lable",
    ),
    (
        "unknown feature key",
        "range = [18.0, 40.0]",
        "rnage = [18.0, 40.0]",
        "[data.features] 1 (bmi): unknown key(s) rnage",
    ),
    (
        "no scale",
        "mean = 130.0\nstd = 20.0\n",
        "",
        "[data.features] 2 (systolic): give range = [low, high] or mean and std",
    ),
    (
        "range and mean",
        "range = [18.0, 40.0]",
        "range = [18.0, 40.0]\nmean = 28.0\nstd = 5.0",
        "[data.features] 1 (bmi): give range = [low, high] or mean and std",
    ),
    (
        "reversed range",
        "range = [18.0, 40.0]",
        "range = [40.0, 18.0]",
        "[data.features] 1 (bmi): range must be [low, high] with low < high, not [40.0, 18.0]",
    ),
    (
        "zero std",
        "std = 20.0",
        "std = 0.0",
        "[data.features] 2 (systolic): std must be a number above 0, not 0.0",
    ),
    (
        "binary same texts",
        'negative = "no"',
        'negative = "yes"',
        "[data.features] 3 (smoker): positive and negative are both 'yes'",
    ),
    (
        "duplicate category",
        'categories = ["north", "south", "east"]',
        'categories = ["north", "south", "north"]',
        "[data.features] 4 (region): categories lists 'north' more than once",
    ),
    (
        "category is a missing marker",
        'categories = ["north", "south", "east"]',
        'categories = ["north", "south", "NA"]',
        "[data.features] 4 (region): categories: 'NA' is also a missing-value marker",
    ),
    (
        "column twice",
        'column = "systolic"',
        'column = "bmi"',
        "[data.features] 2 (bmi): column is declared twice",
    ),
    (
        "label as feature",
        'column = "region"',
        'column = "outcome"',
        "[data.features] 4 (outcome): the label cannot be a feature",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "message"), [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES]
)
def test_malformed_schema_is_one_line_naming_the_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    """Fault: a wrong [data] table (unknown type or key, no label or class, a scale missing or
    fitted, a vocabulary that repeats itself or clashes with a missing marker) is accepted, or
    rejected with a traceback or a message that does not name the table, feature and key."""
    assert old in UNSEEN_DATA
    spec = _task_file(tmp_path, UNSEEN_DATA.replace(old, new, 1))
    with pytest.raises(TaskFileError) as caught:
        open_task(spec, None)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"task.toml: {message}"), text


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ('architecture = "cnn"', "[model] architecture must be logreg or mlp, not 'cnn'"),
        ('architecture = "logreg"\nhidden = 8', '[model] hidden applies to architecture = "mlp"'),
        ('architecture = "mlp"\nhidden = 0', "[model] hidden must be a whole number of at least 1"),
        ('architecture = "mlp"\nlayers = 2', "[model]: unknown key(s) layers"),
    ],
)
def test_malformed_model_table(tmp_path: Path, model: str, message: str) -> None:
    """Fault: a [model] table with an unknown architecture, a width for a model that has none,
    or a typo is accepted."""
    spec = _task_file(tmp_path, model=model)
    with pytest.raises(TaskFileError) as caught:
        open_task(spec, None)
    assert str(caught.value).startswith(f"task.toml: {message}"), str(caught.value)


def test_empty_feature_list(tmp_path: Path) -> None:
    """Fault: a task without features (a forgotten [[data.features]]) builds a 0-input model."""
    data = UNSEEN_DATA.split("[[data.features]]")[0]
    with pytest.raises(TaskFileError, match=r"needs at least one \[\[data.features\]\] table"):
        open_task(_task_file(tmp_path, data), None)


# --- a site's CSV that does not fit ----------------------------------------------------------


def _rows_with(change: Callable[[list[dict[str, str]]], None]) -> list[dict[str, str]]:
    rows = _unseen_rows(60)
    change(rows)
    return rows


def _set(index: int, column: str, value: str) -> Callable[[list[dict[str, str]]], None]:
    def change(rows: list[dict[str, str]]) -> None:
        rows[index][column] = value

    return change


def _set_all(
    column: str, value: str, count: int | None = None
) -> Callable[[list[dict[str, str]]], None]:
    def change(rows: list[dict[str, str]]) -> None:
        for row in rows[:count]:
            row[column] = value

    return change


CSV_CASES: list[tuple[str, Callable[[list[dict[str, str]]], None], str]] = [
    # (what, change to the rows, expected message after "<path>: "); data row i is line i + 2
    ("not a number", _set(3, "bmi", "twenty"), "column bmi: 'twenty' is not a number (line 5)"),
    ("not finite", _set(3, "bmi", "nan"), "column bmi: 'nan' is not a finite number (line 5)"),
    (
        "unknown category",
        _set(7, "region", "West"),
        "column region: 'West' is not one of its categories (north, south, east) (line 9)",
    ),
    (
        "binary value",
        _set(8, "smoker", "sometimes"),
        "column smoker: 'sometimes' is neither 'yes' nor 'no' (line 10)",
    ),
    (
        "unknown label",
        _set(2, "outcome", "Event"),
        "label outcome: 'Event' is neither positive (event) nor negative (none) (line 4)",
    ),
    (
        "repeated bad value",
        _set_all("bmi", "?", 8),
        "column bmi: '?' is not a number (lines 2, 3, 4, 5, 6 and 2 more)",
    ),
    (
        "one class",
        _set_all("outcome", "none"),
        "all 60 rows are negative: a site needs at least two classes to train on",
    ),
    (
        "no rows",
        _set_all("outcome", ""),
        "no rows with a label",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES]
)
def test_malformed_csv_is_one_line_naming_the_place(
    tmp_path: Path, change: Callable[[list[dict[str, str]]], None], message: str
) -> None:
    """Fault: a cell that does not fit its feature (not a number, not finite, an unknown
    category, binary value or label) or a file without two classes trains anyway, or fails
    with a traceback or a message without the file, column, value and line. check_csv lists
    the same problem."""
    spec = _task_file(tmp_path)
    path = _write_csv(tmp_path / "site.csv", _rows_with(change))
    with pytest.raises(SiteDataError) as caught:
        open_task(spec, path).load_site("site", seed=0)
    assert "\n" not in str(caught.value)
    assert str(caught.value) == f"{path}: {message}"
    report = check_csv(spec, path)
    assert report.problems == [message]


def test_file_level_problems(tmp_path: Path) -> None:
    """Fault: a missing file, a folder, a missing column, an empty or non-UTF-8 file, a ragged
    row, or a file holding two sites' rows gives a traceback or a vague message."""
    spec = _task_file(tmp_path)
    rows = _unseen_rows(40)

    def fails(path: Path, message: str) -> None:
        with pytest.raises(SiteDataError) as caught:
            open_task(spec, path).load_site(path.stem, seed=0)
        assert str(caught.value) == f"{path}: {message}"
        assert check_csv(spec, path).problems[0] == message

    fails(tmp_path / "absent.csv", "no such file")
    fails(tmp_path, "is a folder; a csv task reads one CSV file")
    header = [c for c in rows[0] if c != "region"]
    no_region = [{k: v for k, v in row.items() if k != "region"} for row in rows]
    fails(
        _write_csv(tmp_path / "cols.csv", no_region, header),
        "missing column region; the file has patient, bmi, smoker, systolic, outcome, notes",
    )
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    fails(tmp_path / "empty.csv", "the file is empty (no header row)")
    (tmp_path / "latin.csv").write_bytes("bmi,région\n".encode("latin-1"))
    fails(tmp_path / "latin.csv", "line 1: not UTF-8 text (byte 6); save the file as UTF-8 CSV")
    ragged = _write_csv(tmp_path / "ragged.csv", rows)
    lines = ragged.read_text(encoding="utf-8").splitlines()
    lines[4] = "P9,31.0,yes"
    ragged.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fails(ragged, "line 5: the row does not have the header's 7 fields")

    two_sites = UNSEEN_DATA.replace(
        'missing = ["", "NA"]', 'missing = ["", "NA"]\nsite_column = "site"'
    )
    spec = _task_file(tmp_path, two_sites)
    for i, row in enumerate(rows):
        row["site"] = "Mayo" if i < 30 else "Olmsted"
    fails(
        _write_csv(tmp_path / "pooled.csv", rows),
        "column site (site_column) holds 2 values (Mayo: 29, Olmsted: 10): a site's file holds "
        "its own rows only",
    )


def test_check_reports_notes_without_failing(tmp_path: Path) -> None:
    """Fault: rows without a label, unread columns, a column in other units or the texts read
    as negative are errors (or go unreported) instead of notes; the report's counts are off."""
    rows = _unseen_rows(100)
    for row in rows:
        if row["bmi"] != "NA":
            row["bmi"] = f"{float(row['bmi']) / 100:.3f}"  # metres, not kg/m^2 -- a wrong export
    data = UNSEEN_DATA.replace('negative = ["none"]\n', "")
    spec = _task_file(tmp_path, data)
    path = _write_csv(tmp_path / "site.csv", rows)
    report = check_csv(spec, path, site="Olmsted")
    assert report.site == "Olmsted"
    assert report.problems == []
    assert report.rows == 99
    assert sum(report.label_counts.values()) == 99
    notes = "\n".join(report.notes)
    assert "1 row without a label left out (line 7)" in notes
    assert "columns the task does not read: patient, notes" in notes
    assert "column bmi: median 0.278 lies outside its scale [18, 40] (other units?)" in notes
    assert f"label texts read as negative: 'none' ({report.label_counts['negative']})" in notes
    assert "column systolic missing in 8 % of rows (8 of 99)" in notes
    assert "split with seed 3 for site 'Olmsted'" in notes


def test_open_csv_task_directly(tmp_path: Path) -> None:
    """Fault: the kind's entry point differs from what open_task dispatches to."""
    spec = _task_file(tmp_path)
    path = _write_csv(tmp_path / "site.csv", _unseen_rows(40))
    direct = open_csv_task(spec, path, "site")
    assert direct == open_task(spec, path, "site")


def test_spreadsheet_exports_read_alike(tmp_path: Path) -> None:
    """Fault: a file saved by a spreadsheet (byte-order mark, CRLF line ends, padded cells, a
    trailing blank line) encodes differently from the plain file, or a semicolon-separated
    export gives a confusing "missing columns" message."""
    spec = _task_file(tmp_path)
    rows = _unseen_rows(80)
    plain = _write_csv(tmp_path / "plain.csv", rows)
    excel = tmp_path / "excel.csv"
    with excel.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(f" {name} " for name in rows[0])
        writer.writerows([f" {value} " for value in row.values()] for row in rows)
        handle.write("\r\n")
    assert excel.read_bytes().startswith(b"\xef\xbb\xbf")
    a = open_task(spec, plain, "site").load_site("site", seed=0)
    b = open_task(spec, excel, "site").load_site("site", seed=0)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    semicolons = tmp_path / "semicolons.csv"
    text = plain.read_text(encoding="utf-8")
    semicolons.write_text(text.replace(",", ";"), encoding="utf-8")
    with pytest.raises(SiteDataError, match="one cell holding ';': save the file with commas"):
        open_task(spec, semicolons, "site").load_site("site", seed=0)


def test_default_missing_markers_and_numeric_missing_values(tmp_path: Path) -> None:
    """Fault: without a [data] missing list, "?" and "NA" are not missing (UCI's own files use
    "?"); a numeric missing marker given as a number (missing = [0]) is not honoured."""
    data = UNSEEN_DATA.replace('missing = ["", "NA"]\n', "").replace(
        'missing = ["0"]', "missing = [0]"
    )
    rows = _unseen_rows(60)
    rows[10]["bmi"] = "?"
    rows[12]["systolic"] = "0.00"
    spec = _task_file(tmp_path, data)
    path = _write_csv(tmp_path / "s.csv", rows)
    notes = "\n".join(check_csv(spec, path).notes)
    assert "column bmi missing in 8 % of rows (5 of 59)" in notes  # 4 "NA" + 1 "?"
    assert "column systolic missing in 10 % of rows (6 of 59)" in notes  # 5 "0" + "0.00"
    site = open_task(spec, path).load_site("s", seed=0)
    assert site.train_samples + site.test_samples == 59


def test_first_problem_raised_and_the_rest_counted(tmp_path: Path) -> None:
    """Fault: a file with several problems raises a multi-line error, or hides that there are
    more; check_csv lists them all."""
    rows = _unseen_rows(60)
    rows[3]["bmi"] = "x"
    rows[4]["region"] = "West"
    rows[6]["smoker"] = "Y"
    spec = _task_file(tmp_path)
    path = _write_csv(tmp_path / "site.csv", rows)
    with pytest.raises(SiteDataError) as caught:
        open_task(spec, path).load_site("site", seed=0)
    assert str(caught.value) == (
        f"{path}: column bmi: 'x' is not a number (line 5) (and 2 more: swarm task check "
        "lists them)"
    )
    assert len(check_csv(spec, path).problems) == 3


def test_check_on_a_bad_task_file_is_a_task_file_error(tmp_path: Path) -> None:
    """Fault: a broken task file is reported as the site's data problem (the hospital would
    look for a fault in its CSV)."""
    spec = _task_file(tmp_path, UNSEEN_DATA.replace('type = "binary"', 'type = "bool"'))
    path = _write_csv(tmp_path / "site.csv", _unseen_rows(40))
    with pytest.raises(TaskFileError, match=r"\[data.features\] 3 \(smoker\): type must be"):
        check_csv(spec, path)


def test_numeric_label_texts_match_by_value(tmp_path: Path) -> None:
    """Fault: an export that writes the label 1 as "1.0" (pandas, for a column with gaps) reads
    every patient as negative when the task says positive = ["1"]."""
    data = UNSEEN_DATA.replace('positive = ["event"]\nnegative = ["none"]', "positive = [1]")
    rows = _unseen_rows(60)
    for row in rows:
        row["outcome"] = {"event": "1.0", "none": "0", "": ""}[row["outcome"]]
    spec = _task_file(tmp_path, data)
    report = check_csv(spec, _write_csv(tmp_path / "site.csv", rows))
    positives = sum(row["outcome"] == "1.0" for row in rows)
    assert report.label_counts == {"negative": 59 - positives, "positive": positives}
    assert f"label texts read as negative: '0' ({59 - positives})" in report.notes


def test_too_few_rows_to_split(tmp_path: Path) -> None:
    """Fault: a site with one row per class gets an empty test split (or train split) and fails
    later in evaluation with NaNs instead of saying why up front."""
    rows = _unseen_rows(10)[:2]
    rows[0]["outcome"], rows[1]["outcome"] = "event", "none"
    spec = _task_file(tmp_path)
    path = _write_csv(tmp_path / "tiny.csv", rows)
    with pytest.raises(SiteDataError, match="2 rows are too few to split into train and test"):
        open_task(spec, path).load_site("tiny", seed=0)
    assert check_csv(spec, path).problems == ["2 rows are too few to split into train and test"]
