"""Tabular CSV tasks: a hospital's own CSV file, read and encoded as the task file says.

A ``kind = "csv"`` task file declares the label, the feature columns and how each is encoded;
every hospital reads *its own* file with it (docs/own-data.md)::

    [data]
    label = "num"                   # the label column
    positive = ["1", "2", "3", "4"] # label texts of the positive class: a binary task
    negative = ["0"]                # optional: without it, every other label text is negative
    # classes = ["a", "b", "c"]     # instead of positive: a multiclass task, in this order
    test_fraction = 0.25            # each site's share of test rows (stratified, seeded)
    missing = ["", "?", "NA"]       # texts meaning "not measured" in every column (the default)
    site_column = "dataset"         # optional: a column that must hold one value in a site's file

    [[data.features]]
    column = "chol"
    type = "numeric"                # numeric | binary | categorical
    range = [150.0, 350.0]          # fixed reference range: (x - centre) / half-width
    missing = ["0"]                 # extra texts (for numeric: values) meaning missing here
    [[data.features]]
    column = "sex"
    type = "binary"
    positive = "Male"               # encoded +1; negative -1
    negative = "Female"
    [[data.features]]
    column = "cp"
    type = "categorical"            # one-hot over the fixed vocabulary
    categories = ["typical angina", "atypical angina", "non-anginal", "asymptomatic"]

    [model]
    architecture = "logreg"         # logreg | mlp
    hidden = 16                     # mlp only

Why the encoding is fixed by the file and never fitted to the data: every site must produce the
same columns on the same scale, or one model cannot fit them all. So the layout is the features
in the file's order (a numeric or binary feature one column, a categorical one a column per
category), then one 0/1 "missing" indicator per feature, whether or not any site misses it.
Numeric scales come from the file: a reference ``range`` or a fixed ``mean``/``std``. Scales
*fitted* on the data would have to be computed through the swarm (federated statistics, not
supported yet); fitting them on one site's rows would give each site its own scale, which is
exactly what must not happen. The only thing fitted is what never leaves a site: a missing value
is imputed with the site's own *train* mean of the encoded column (0 where the site never
observed the column), so nothing leaks from its test split. This is the encoding of the
built-in heart task (swarm.training.heart_data), which ``examples/heart/task.toml`` reproduces
exactly.

Reading a site's file: UTF-8 (a byte-order mark is allowed), a header row, cells stripped of
surrounding spaces. A row whose label is missing is left out (with a note); any other cell that
does not fit its feature is a problem naming the column, the value and the lines. The binary
label: a text in ``positive`` is 1; with ``negative`` given, a text in it is 0 and any other
text a problem; without it, every other non-missing text is 0, and ``swarm task check`` lists
the texts it read as negative so that a typo shows. A multiclass label not in ``classes`` is a
problem. A label that is a number matches a label text of the same value ("1.0" is "1").

The split is stratified by class and seeded by (task seed, site label): the binary one is
heart_data.split_indices itself, so a site's split depends on its label ("Cleveland" and
"cleveland" split differently).

What this module does not do: compute scales from the sites' data through the swarm
(federated statistics). A numeric feature needs a fixed range or mean/std in the file.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from swarm.errors import SiteDataError, TaskFileError
from swarm.training.heart_data import split_indices, stratified_split
from swarm.training.loop import evaluate_classifier, train_classifier
from swarm.training.models import MLP, LogisticRegression, build_seeded
from swarm.training.task import Metrics, SiteData, TrainConfig

if TYPE_CHECKING:
    from swarm.training.taskfile import DataReport, TaskFile

log = logging.getLogger(__name__)

#: texts that mean "not measured" in every column unless the task file says otherwise
DEFAULT_MISSING: tuple[str, ...] = ("", "?", "NA")
ARCHITECTURES: tuple[str, ...] = ("logreg", "mlp")
FEATURE_TYPES: tuple[str, ...] = ("numeric", "binary", "categorical")
_DATA_KEYS = (
    "label",
    "positive",
    "negative",
    "classes",
    "test_fraction",
    "missing",
    "site_column",
    "features",
)
_FEATURE_KEYS: dict[str, tuple[str, ...]] = {
    "numeric": ("column", "type", "range", "mean", "std", "missing"),
    "binary": ("column", "type", "positive", "negative", "missing"),
    "categorical": ("column", "type", "categories", "missing"),
}
_MODEL_KEYS = ("architecture", "hidden")
#: distinct problems listed before the rest are only counted (a broken export repeats itself)
MAX_PROBLEMS = 20
#: a class with fewer rows than this gets a note: its test split holds a handful at most
FEW_ROWS = 10
#: a class below this share of the rows gets a note (class imbalance)
IMBALANCE = 0.2


# --- the schema ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericFeature:
    """A number, encoded (x - centre) / scale; ``missing_values`` are numbers meaning missing
    (``missing = ["0"]`` matches "0", "0.0" and "00")."""

    column: str
    centre: float
    scale: float
    missing: frozenset[str]
    missing_values: frozenset[float]
    #: the range the file gives, or mean -/+ 3 std: for the "median outside the scale" note
    low: float
    high: float

    @property
    def names(self) -> tuple[str, ...]:
        return (self.column,)


@dataclass(frozen=True)
class BinaryFeature:
    """A yes/no column: ``positive`` encoded +1, ``negative`` -1."""

    column: str
    positive: str
    negative: str
    missing: frozenset[str]

    @property
    def names(self) -> tuple[str, ...]:
        return (f"{self.column}={self.positive}",)


@dataclass(frozen=True)
class CategoricalFeature:
    """One of a fixed vocabulary: one-hot, a column per category (all zero when missing)."""

    column: str
    categories: tuple[str, ...]
    missing: frozenset[str]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{self.column}={value}" for value in self.categories)


Feature = NumericFeature | BinaryFeature | CategoricalFeature


@dataclass(frozen=True)
class CsvSchema:
    """The ``[data]`` and ``[model]`` tables of a csv task file, validated."""

    label: str
    #: binary task: the label texts of the positive class (empty for a multiclass task)
    positive: tuple[str, ...]
    #: binary task: the label texts of the negative class (empty: every other text)
    negative: tuple[str, ...]
    #: multiclass task: the classes, in the order of the model's outputs (empty when binary)
    classes: tuple[str, ...]
    test_fraction: float
    missing: frozenset[str]
    site_column: str | None
    features: tuple[Feature, ...]
    architecture: str = "logreg"
    hidden: int = 16

    @property
    def binary(self) -> bool:
        return not self.classes

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the label values 0, 1, ...: ("negative", "positive") for a binary task."""
        return ("negative", "positive") if self.binary else self.classes

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The encoded layout: each feature's columns in file order, then the indicators."""
        names = [name for feature in self.features for name in feature.names]
        names.extend(f"{feature.column}:missing" for feature in self.features)
        return tuple(names)

    @property
    def columns(self) -> tuple[str, ...]:
        """The file columns this task reads."""
        site = (self.site_column,) if self.site_column else ()
        return (self.label, *(f.column for f in self.features), *site)


def parse_schema(spec: TaskFile) -> CsvSchema:
    """Validate the task file's ``[data]`` and ``[model]`` tables; TaskFileError (one line
    naming the file, the table and the key) for anything wrong."""
    where = spec.path.name
    data = spec.data
    _only(data, _DATA_KEYS, f"{where}: [data]")
    label = _text(data.get("label"), f"{where}: [data] label", "the label column's name")
    missing = frozenset(
        _texts(
            data.get("missing", list(DEFAULT_MISSING)), f"{where}: [data] missing", allow_empty=True
        )
    )
    if "classes" in data:
        if "positive" in data or "negative" in data:
            raise TaskFileError(
                f"{where}: [data] gives classes (multiclass) and positive/negative (binary); "
                "keep one"
            )
        classes = _labels(data["classes"], f"{where}: [data] classes")
        if len(classes) < 2:
            raise TaskFileError(f"{where}: [data] classes needs at least 2 classes")
        positive: tuple[str, ...] = ()
        negative: tuple[str, ...] = ()
        _not_missing(classes, missing, f"{where}: [data] classes")
    elif "positive" in data:
        classes = ()
        positive = _labels(data["positive"], f"{where}: [data] positive")
        negative = _labels(data.get("negative", []), f"{where}: [data] negative", allow_empty=True)
        both = sorted(set(positive) & set(negative))
        if both:
            raise TaskFileError(
                f"{where}: [data] {', '.join(map(repr, both))} is both positive and negative"
            )
        _not_missing(positive + negative, missing, f"{where}: [data] positive/negative")
    else:
        raise TaskFileError(
            f"{where}: [data] needs positive = [label texts] (binary task) or classes = "
            "[label texts] (multiclass task)"
        )
    test_fraction = data.get("test_fraction", 0.25)
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, int | float)
        or not 0.0 < test_fraction < 1.0
    ):
        raise TaskFileError(
            f"{where}: [data] test_fraction must be a number between 0 and 1, not {test_fraction!r}"
        )
    site_column = data.get("site_column")
    if site_column is not None:
        site_column = _text(site_column, f"{where}: [data] site_column", "a column name")
    raw_features = data.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise TaskFileError(
            f"{where}: [data] needs at least one [[data.features]] table (column, type)"
        )
    features: list[Feature] = []
    seen: set[str] = set()
    for number, table in enumerate(raw_features, start=1):
        feature = _feature(table, f"{where}: [data.features] {number}", missing)
        if feature.column in seen:
            raise TaskFileError(
                f"{where}: [data.features] {number} ({feature.column}): column is declared twice"
            )
        if feature.column == label:
            raise TaskFileError(
                f"{where}: [data.features] {number} ({feature.column}): the label "
                "cannot be a feature"
            )
        if feature.column == site_column:
            raise TaskFileError(
                f"{where}: [data.features] {number} ({feature.column}): the site_column "
                "cannot be a feature"
            )
        seen.add(feature.column)
        features.append(feature)
    if site_column == label:
        raise TaskFileError(f"{where}: [data] site_column cannot be the label column")
    architecture, hidden = _model(spec.model, f"{where}: [model]")
    return CsvSchema(
        label=label,
        positive=positive,
        negative=negative,
        classes=classes,
        test_fraction=float(test_fraction),
        missing=missing,
        site_column=site_column,
        features=tuple(features),
        architecture=architecture,
        hidden=hidden,
    )


def _feature(table: Any, where: str, everywhere: frozenset[str]) -> Feature:
    """One [[data.features]] table; ``everywhere`` are the [data] missing markers."""
    if not isinstance(table, dict):
        raise TaskFileError(f"{where}: must be a table (column, type, ...)")
    column = _text(table.get("column"), f"{where}: column", "the column's name")
    where = f"{where} ({column})"
    kind = table.get("type")
    if kind not in FEATURE_TYPES:
        raise TaskFileError(f"{where}: type must be numeric, binary or categorical, not {kind!r}")
    _only(table, _FEATURE_KEYS[kind], where)
    raw_missing = table.get("missing", [])
    if kind == "numeric":
        if not isinstance(raw_missing, list):
            raise TaskFileError(f"{where}: missing must be a list of texts or numbers")
        texts: list[str] = []
        values: list[float] = []
        for item in raw_missing:
            if isinstance(item, str):
                texts.append(item.strip())
                number = _number_or_none(item)
                if number is not None:
                    values.append(number)
            elif isinstance(item, int | float) and not isinstance(item, bool):
                values.append(float(item))
            else:
                raise TaskFileError(f"{where}: missing must be a list of texts or numbers")
        centre, scale, low, high = _numeric_scale(table, where)
        return NumericFeature(
            column=column,
            centre=centre,
            scale=scale,
            missing=frozenset(texts),
            missing_values=frozenset(values),
            low=low,
            high=high,
        )
    missing = frozenset(_texts(raw_missing, f"{where}: missing", allow_empty=True))
    if kind == "binary":
        positive = _text(table.get("positive"), f"{where}: positive", "the text meaning yes")
        negative = _text(table.get("negative"), f"{where}: negative", "the text meaning no")
        if positive == negative:
            raise TaskFileError(f"{where}: positive and negative are both {positive!r}")
        _not_missing((positive, negative), missing | everywhere, f"{where}: positive/negative")
        return BinaryFeature(column=column, positive=positive, negative=negative, missing=missing)
    categories = _texts(table.get("categories"), f"{where}: categories")
    duplicates = sorted(value for value, n in Counter(categories).items() if n > 1)
    if duplicates:
        raise TaskFileError(
            f"{where}: categories lists {', '.join(map(repr, duplicates))} more than once"
        )
    _not_missing(categories, missing | everywhere, f"{where}: categories")
    return CategoricalFeature(column=column, categories=categories, missing=missing)


def _numeric_scale(table: Mapping[str, Any], where: str) -> tuple[float, float, float, float]:
    """(centre, scale, low, high) from ``range`` or ``mean``/``std``: fixed by the file."""
    has_range = "range" in table
    has_moments = "mean" in table or "std" in table
    if has_range == has_moments:
        raise TaskFileError(
            f"{where}: give range = [low, high] or mean and std (fixed values: a scale is "
            "never fitted on a site's data)"
        )
    if has_range:
        bounds = table["range"]
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(_is_number(b) for b in bounds)
            or not bounds[0] < bounds[1]
        ):
            raise TaskFileError(
                f"{where}: range must be [low, high] with low < high, not {bounds!r}"
            )
        low, high = float(bounds[0]), float(bounds[1])
        # heart_data.fit_encoder's arithmetic, so the heart task file encodes bit for bit alike
        return (low + high) / 2.0, (high - low) / 2.0, low, high
    mean: Any = table.get("mean")
    std: Any = table.get("std")
    if not _is_number(mean):
        raise TaskFileError(f"{where}: mean must be a number, not {mean!r}")
    if not _is_number(std) or not std > 0:
        raise TaskFileError(f"{where}: std must be a number above 0, not {std!r}")
    # the "values outside the scale" note allows 3 standard deviations either side
    return float(mean), float(std), float(mean) - 3 * float(std), float(mean) + 3 * float(std)


def _model(table: Mapping[str, Any], where: str) -> tuple[str, int]:
    _only(table, _MODEL_KEYS, where)
    architecture = table.get("architecture", "logreg")
    if architecture not in ARCHITECTURES:
        raise TaskFileError(f"{where} architecture must be logreg or mlp, not {architecture!r}")
    if "hidden" in table and architecture != "mlp":
        raise TaskFileError(f'{where} hidden applies to architecture = "mlp" only')
    hidden = table.get("hidden", 16)
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise TaskFileError(f"{where} hidden must be a whole number of at least 1, not {hidden!r}")
    return architecture, hidden


def _only(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise TaskFileError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(allowed)}"
        )


def _text(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TaskFileError(f"{where} must be {what} (text), not {value!r}")
    return value.strip()


def _texts(value: Any, where: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not (value or allow_empty)
        or not all(isinstance(v, str) for v in value)
    ):
        what = "a list of texts" if allow_empty else "a non-empty list of texts"
        raise TaskFileError(f"{where} must be {what}, not {value!r}")
    return tuple(v.strip() for v in value)


def _labels(value: Any, where: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    """Label texts; whole numbers are taken as their text (``positive = [1]`` means "1")."""
    if isinstance(value, list):
        value = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    labels = _texts(value, where, allow_empty=allow_empty)
    duplicates = sorted(v for v, n in Counter(labels).items() if n > 1)
    if duplicates:
        raise TaskFileError(f"{where} lists {', '.join(map(repr, duplicates))} more than once")
    return labels


def _not_missing(values: Sequence[str], missing: frozenset[str], where: str) -> None:
    clash = [v for v in values if v in missing]
    if clash:
        raise TaskFileError(
            f"{where}: {', '.join(map(repr, clash))} is also a missing-value marker"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# --- reading a site's file -------------------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """A site's rows with a label, parsed: one array per feature.

    Numeric and binary features are float64 with NaN for missing (binary: 1.0 yes, 0.0 no);
    categorical ones int64 category indices with -1 for missing. ``labels`` are float32 0/1
    (binary task) or int64 class indices (multiclass).
    """

    lines: npt.NDArray[np.int64]
    labels: npt.NDArray[Any]
    values: dict[str, npt.NDArray[Any]]

    def __len__(self) -> int:
        return int(self.lines.size)

    def take(self, rows: npt.NDArray[np.intp]) -> _Rows:
        return _Rows(
            lines=self.lines[rows],
            labels=self.labels[rows],
            values={k: v[rows] for k, v in self.values.items()},
        )


@dataclass
class _Findings:
    """Problems (the data cannot be used) and notes, collected while reading.

    Cell problems are grouped by (column, kind, value) so a broken export that repeats one bad
    value in 500 rows gives one line, not 500."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cells: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def cell(self, message: str, line: int) -> None:
        self.cells[message].append(line)

    def close(self) -> None:
        """Turn the grouped cell problems into lines, at most MAX_PROBLEMS of them."""
        groups = list(self.cells.items())
        for message, lines in groups[:MAX_PROBLEMS]:
            self.problems.append(f"{message} ({_lines(lines)})")
        if len(groups) > MAX_PROBLEMS:
            rest = sum(len(lines) for _, lines in groups[MAX_PROBLEMS:])
            self.problems.append(
                f"... and {len(groups) - MAX_PROBLEMS} more kinds of bad cell ({rest} cells)"
            )
        self.cells.clear()


def _lines(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:5])
    more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
    return f"line {shown}" if len(lines) == 1 else f"lines {shown}{more}"


def _read(schema: CsvSchema, path: Path, findings: _Findings) -> _Rows | None:
    """Parse ``path`` against ``schema``; None when a problem stops reading altogether (file,
    header); otherwise the rows, with any cell problems in ``findings``."""
    text = _load_text(path, findings)
    if text is None:
        return None
    # newline="": the csv module sees the file's own line ends (quoted cells may hold some)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = _header(schema, reader, findings)
        if header is None:
            return None
        return _records(schema, reader, *header, findings)
    except csv.Error as exc:
        findings.problems.append(f"line {reader.line_num}: not CSV ({exc})")
        return None


def _load_text(path: Path, findings: _Findings) -> str | None:
    if not path.exists():
        findings.problems.append("no such file")
        return None
    if path.is_dir():
        findings.problems.append("is a folder; a csv task reads one CSV file")
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        findings.problems.append(f"cannot read the file ({exc.strerror or exc})")
        return None
    try:
        return raw.decode("utf-8-sig")  # a spreadsheet's byte-order mark is fine
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        findings.problems.append(
            f"line {line}: not UTF-8 text (byte {column}); save the file as UTF-8 CSV"
        )
        return None


def _header(
    schema: CsvSchema, reader: Iterator[list[str]], findings: _Findings
) -> tuple[dict[str, int], int] | None:
    """(the position of each column name, the number of fields) of the header row; None (with
    the problem) when a column the task reads is absent or named twice."""
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        findings.problems.append("the file is empty (no header row)")
        return None
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        if name in index and name in schema.columns:
            findings.problems.append(f"the header names column {name} twice")
            return None
        index.setdefault(name, position)
    absent = [c for c in schema.columns if c not in index and c != schema.site_column]
    if absent and len(header) == 1 and ";" in header[0]:
        findings.problems.append(
            "the header is one cell holding ';': save the file with commas between cells"
        )
        return None
    if absent:
        findings.problems.append(
            f"missing column{'s' if len(absent) > 1 else ''} {', '.join(absent)}; the file has "
            f"{', '.join(header) if any(header) else 'no named columns'}"
        )
        return None
    if schema.site_column and schema.site_column not in index:
        findings.notes.append(
            f"no column {schema.site_column} (site_column): cannot check that the file holds "
            "one site's rows"
        )
    unused = [c for c in header if c and c not in schema.columns]
    if unused:
        findings.notes.append(f"columns the task does not read: {', '.join(unused)}")
    return index, len(header)


def _records(
    schema: CsvSchema, reader: Any, index: Mapping[str, int], width: int, findings: _Findings
) -> _Rows:
    """The data rows after the header (``reader``: a csv.reader, for its ``line_num``), parsed;
    rows with a problem are left out, the problems and notes go to ``findings``."""
    parsers = [(feature, index[feature.column]) for feature in schema.features]
    values: dict[str, list[float]] = {f.column: [] for f in schema.features}
    labels: list[float] = []
    lines: list[int] = []
    label_at = index[schema.label]
    site_at = index.get(schema.site_column) if schema.site_column else None
    site_values: Counter[str] = Counter()
    negatives: Counter[str] = Counter()
    missing_counts: Counter[str] = Counter()
    no_label: list[int] = []
    ragged: list[int] = []
    # a label text that is a number also matches as a number: an export that writes "1.0"
    # (pandas does, for a column with gaps) still means the task's "1"
    known = frozenset((*schema.positive, *schema.negative, *schema.classes))
    aliases = {n: t for t in known if (n := _number_or_none(t)) is not None}
    for record in reader:
        line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue  # a blank line (a trailing newline, a spreadsheet's empty row)
        if len(record) != width:
            ragged.append(line)
            continue
        cells = [cell.strip() for cell in record]
        if cells[label_at] in schema.missing:
            no_label.append(line)
            continue
        text = cells[label_at]
        if text not in known and aliases:
            number = _number_or_none(text)
            text = aliases.get(number, text) if number is not None else text
        label = _label(schema, text)
        if isinstance(label, str):
            findings.cell(label, line)
            continue
        parsed = [(f, _parse_cell(f, cells[at], schema.missing)) for f, at in parsers]
        bad = [(f, problem) for f, problem in parsed if isinstance(problem, str)]
        for feature, problem in bad:
            findings.cell(f"column {feature.column}: {problem}", line)
        if bad:
            continue
        for feature, value in [(f, v) for f, v in parsed if not isinstance(v, str)]:
            if math.isnan(value) or (isinstance(feature, CategoricalFeature) and value < 0):
                missing_counts[feature.column] += 1
            values[feature.column].append(value)
        if label == 0.0 and schema.binary:
            negatives[text] += 1
        if site_at is not None and cells[site_at] not in schema.missing:
            site_values[cells[site_at]] += 1
        labels.append(label)
        lines.append(line)
    if ragged:
        findings.problems.append(
            f"{_lines(ragged)}: {'the row does' if len(ragged) == 1 else 'the rows do'} not "
            f"have the header's {width} fields"
        )
    findings.close()
    if no_label:
        findings.notes.append(
            f"{len(no_label)} row{'s' if len(no_label) > 1 else ''} without a label left out "
            f"({_lines(no_label)})"
        )
    if len(site_values) > 1:
        shown = ", ".join(f"{v}: {n}" for v, n in site_values.most_common(5))
        findings.problems.append(
            f"column {schema.site_column} (site_column) holds {len(site_values)} values "
            f"({shown}): a site's file holds its own rows only"
        )
    elif site_values:
        findings.notes.append(f"{schema.site_column} (site_column): {next(iter(site_values))}")
    if schema.binary and not schema.negative and negatives:
        shown = ", ".join(f"{v!r} ({n})" for v, n in negatives.most_common(10))
        findings.notes.append(f"label texts read as negative: {shown}")
    _missing_notes(schema, missing_counts, len(labels), findings)
    return _Rows(
        lines=np.asarray(lines, dtype=np.int64),
        labels=np.asarray(labels, dtype=np.float32 if schema.binary else np.int64),
        values={
            f.column: np.asarray(
                values[f.column],
                dtype=np.int64 if isinstance(f, CategoricalFeature) else np.float64,
            )
            for f in schema.features
        },
    )


def _label(schema: CsvSchema, text: str) -> float | str:
    """The label's value (binary 0/1, or the class index), or the problem."""
    if schema.binary:
        if text in schema.positive:
            return 1.0
        if not schema.negative or text in schema.negative:
            return 0.0
        return (
            f"label {schema.label}: {text!r} is neither positive ({', '.join(schema.positive)}) "
            f"nor negative ({', '.join(schema.negative)})"
        )
    if text in schema.classes:
        return float(schema.classes.index(text))
    return f"label {schema.label}: {text!r} is not one of the classes ({', '.join(schema.classes)})"


def _missing_notes(
    schema: CsvSchema, counts: Mapping[str, int], rows: int, findings: _Findings
) -> None:
    for feature in schema.features:
        count = counts.get(feature.column, 0)
        if rows and count:
            share = f"{100.0 * count / rows:.0f}" if count * 100 >= rows else "<1"
            tail = " (the model sees its missing indicator only)" if count == rows else ""
            findings.notes.append(
                f"column {feature.column} missing in {share} % of rows ({count} of {rows}){tail}"
            )


def _parse_cell(feature: Feature, text: str, missing: frozenset[str]) -> float | str:
    """The cell's raw value (NaN, or -1 for a categorical, when missing), or the problem."""
    if text in missing or text in feature.missing:
        return -1 if isinstance(feature, CategoricalFeature) else math.nan
    if isinstance(feature, NumericFeature):
        try:
            value = float(text)
        except ValueError:
            return f"{text!r} is not a number"
        if not math.isfinite(value):
            return f"{text!r} is not a finite number"
        return math.nan if value in feature.missing_values else value
    if isinstance(feature, BinaryFeature):
        if text == feature.positive:
            return 1.0
        if text == feature.negative:
            return 0.0
        return f"{text!r} is neither {feature.positive!r} nor {feature.negative!r}"
    try:
        return feature.categories.index(text)
    except ValueError:
        return f"{text!r} is not one of its categories ({', '.join(feature.categories)})"


# --- split and encoding ----------------------------------------------------------------------


def _split(
    labels: npt.NDArray[Any], classes: int, seed: int, site: str, test_fraction: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Stratified (train, test) indices, sorted. Binary: heart_data.split_indices itself (so
    the heart task file splits as the built-in task); multiclass: the same rule per class."""
    if classes == 2 and labels.dtype == np.float32:
        return split_indices(labels, seed, site, test_fraction)
    return stratified_split(labels, f"csv-split:{seed}:{site}", test_fraction)


def _fill(schema: CsvSchema, train: _Rows) -> dict[str, float]:
    """Each numeric/binary feature's encoded train mean (0 if never observed): the value a
    missing entry gets. Fitted on the site's *train* rows only (heart_data.fit_encoder)."""
    fill: dict[str, float] = {}
    for feature in schema.features:
        raw = train.values[feature.column]
        if isinstance(feature, NumericFeature):
            observed = raw[~np.isnan(raw)]
            fill[feature.column] = (
                float((observed.mean() - feature.centre) / feature.scale) if observed.size else 0.0
            )
        elif isinstance(feature, BinaryFeature):
            observed = raw[~np.isnan(raw)]
            fill[feature.column] = float((2 * observed - 1).mean()) if observed.size else 0.0
    return fill


def _encode(schema: CsvSchema, rows: _Rows, fill: Mapping[str, float]) -> npt.NDArray[np.float32]:
    """``rows`` in the task's feature layout: shape (rows, len(feature_names)), float32."""
    width = sum(len(f.names) for f in schema.features)
    out = np.zeros((len(rows), width + len(schema.features)), dtype=np.float64)
    at = 0
    for number, feature in enumerate(schema.features):
        raw = rows.values[feature.column]
        indicator = width + number
        if isinstance(feature, NumericFeature):
            missing = np.isnan(raw)
            encoded = (raw - feature.centre) / feature.scale
            out[:, at] = np.where(missing, fill[feature.column], encoded)
        elif isinstance(feature, BinaryFeature):
            missing = np.isnan(raw)
            out[:, at] = np.where(missing, fill[feature.column], 2 * raw - 1)
        else:
            missing = raw < 0
            for offset in range(len(feature.categories)):
                out[:, at + offset] = raw == offset
        out[:, indicator] = missing
        at += len(feature.names)
    return out.astype(np.float32)


# --- the models of a multiclass task ---------------------------------------------------------


class SoftmaxRegression(nn.Module):
    """features -> Linear -> one logit per class (multinomial logistic regression)."""

    def __init__(self, in_features: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, classes)  # (batch, in) -> (batch, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # (batch, classes)


class MulticlassMLP(nn.Module):
    """features -> Linear -> ReLU -> Linear -> one logit per class (models.MLP, k outputs)."""

    def __init__(self, in_features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)  # (batch, in) -> (batch, hidden)
        self.out = nn.Linear(hidden, classes)  # (batch, hidden) -> (batch, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))  # (batch, classes)


# --- the task --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvTask:
    """A csv task file bound to one site's CSV file (``data`` None: the model only)."""

    name: str
    site: str
    data: Path | None
    schema: CsvSchema
    default_config: TrainConfig
    default_rounds: int

    @property
    def sites(self) -> tuple[str, ...]:
        return (self.site,)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.schema.feature_names

    def build_model(self, seed: int) -> nn.Module:
        width = len(self.schema.feature_names)
        classes = len(self.schema.classes)
        hidden = self.schema.hidden
        if self.schema.binary:
            if self.schema.architecture == "mlp":
                return build_seeded(lambda: MLP(width, hidden), seed)
            return build_seeded(lambda: LogisticRegression(width), seed)
        if self.schema.architecture == "mlp":
            return build_seeded(lambda: MulticlassMLP(width, hidden, classes), seed)
        return build_seeded(lambda: SoftmaxRegression(width, classes), seed)

    def load_site(self, site: str, seed: int, *, validation: bool = False) -> SiteData:
        """The bound file's rows, split by (seed, site) and encoded with a train-only fill.

        SiteDataError (one line, with the file's path) when the file does not fit the task.
        ``validation=True`` is for tuning, as HeartDiseaseTask.load_site: the test split is
        left out and the train split split again into train and validation.
        """
        if site != self.site:
            raise SiteDataError(f"this task is bound to site {self.site!r}'s data, not {site!r}")
        if self.data is None:
            raise SiteDataError(f"no data configured for site {site!r}")
        findings = _Findings()
        rows = _read(self.schema, self.data, findings)
        _check_rows(self.schema, rows, findings)
        if findings.problems or rows is None:
            more = len(findings.problems) - 1
            tail = f" (and {more} more: swarm task check lists them)" if more > 0 else ""
            raise SiteDataError(f"{self.data}: {findings.problems[0]}{tail}")
        classes = len(self.schema.class_names)
        train_idx, test_idx = _split(rows.labels, classes, seed, site, self.schema.test_fraction)
        train, test = rows.take(train_idx), rows.take(test_idx)
        if validation:
            inner_train, inner_val = _split(
                train.labels, classes, seed, f"{site}/validation", self.schema.test_fraction
            )
            train, test = train.take(inner_train), train.take(inner_val)
        if len(train) == 0 or len(test) == 0:
            raise SiteDataError(
                f"{self.data}: {len(rows)} rows are too few to split into train and test"
            )
        fill = _fill(self.schema, train)  # train rows only: nothing leaks from the test split
        log.debug(
            "site %s: %d train / %d test rows from %s", site, len(train), len(test), self.data
        )
        return SiteData(
            site=site,
            x_train=torch.from_numpy(_encode(self.schema, train, fill)),
            y_train=torch.from_numpy(train.labels.copy()),
            x_test=torch.from_numpy(_encode(self.schema, test, fill)),
            y_test=torch.from_numpy(test.labels.copy()),
            feature_names=self.schema.feature_names,
            classes=self.schema.classes,
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


def _check_rows(schema: CsvSchema, rows: _Rows | None, findings: _Findings) -> None:
    """Problems of the rows as a whole: none, one class only."""
    if rows is None or findings.problems:
        return
    if len(rows) == 0:
        findings.problems.append("no rows with a label")
        return
    present = np.unique(rows.labels)
    if present.size < 2:
        name = schema.class_names[int(present[0])]
        findings.problems.append(
            f"all {len(rows)} rows are {name}: a site needs at least two classes to train on"
        )


def open_csv_task(spec: TaskFile, data: Path | None, site: str) -> CsvTask:
    """The csv task of ``spec`` bound to one site's CSV file; TaskFileError for a bad
    ``[data]``/``[model]`` table. The file is read by ``load_site`` (SiteDataError there)."""
    schema = parse_schema(spec)
    return CsvTask(
        name=spec.name,
        site=site,
        data=None if data is None else Path(data),
        schema=schema,
        default_config=spec.training,
        default_rounds=spec.rounds,
    )


def check_csv(spec: TaskFile, data: Path, site: str | None = None) -> DataReport:
    """What ``swarm task check`` says about one site's CSV file: rows, label counts, problems
    (the data cannot be used) and notes, without training anything. TaskFileError for a bad
    task file (that is not the site's problem)."""
    from swarm.training.taskfile import DataReport, default_site

    schema = parse_schema(spec)
    path = Path(data)
    label = site or default_site(path)
    findings = _Findings()
    rows = _read(schema, path, findings)
    _check_rows(schema, rows, findings)
    counts: dict[str, int] = {}
    if rows is not None:
        for number, name in enumerate(schema.class_names):
            counts[name] = int(np.count_nonzero(rows.labels == number))
    if rows is not None and not findings.problems:
        _class_notes(schema, counts, findings)
        train, test = _split(
            rows.labels, len(schema.class_names), spec.seed, label, schema.test_fraction
        )
        if train.size == 0 or test.size == 0:
            findings.problems.append(f"{len(rows)} rows are too few to split into train and test")
        else:
            findings.notes.append(
                f"split with seed {spec.seed} for site {label!r}: {train.size} train / "
                f"{test.size} test rows"
            )
        _scale_notes(schema, rows, findings)
    return DataReport(
        site=label,
        rows=0 if rows is None else len(rows),
        label_counts=counts,
        problems=findings.problems,
        notes=findings.notes,
    )


def _class_notes(schema: CsvSchema, counts: Mapping[str, int], findings: _Findings) -> None:
    total = sum(counts.values())
    for name, count in counts.items():
        if count == 0:
            findings.notes.append(f"no rows of class {name}")
        elif count < FEW_ROWS:
            findings.notes.append(f"only {count} {name} row{'s' if count > 1 else ''}")
        if 0 < count < IMBALANCE * total:
            findings.notes.append(
                f"class imbalance: {name} is {100.0 * count / total:.0f} % of the rows"
            )


def _scale_notes(schema: CsvSchema, rows: _Rows, findings: _Findings) -> None:
    """A numeric column whose median lies outside its fixed scale is likely in other units
    (cholesterol in mmol/l against a range in mg/dl): the model would see it far off-scale."""
    for feature in schema.features:
        if not isinstance(feature, NumericFeature):
            continue
        raw = rows.values[feature.column]
        observed = raw[~np.isnan(raw)]
        if observed.size == 0:
            continue
        median = float(np.median(observed))
        if not feature.low <= median <= feature.high:
            findings.notes.append(
                f"column {feature.column}: median {median:g} lies outside its scale "
                f"[{feature.low:g}, {feature.high:g}] (other units?)"
            )


__all__ = [
    "BinaryFeature",
    "CategoricalFeature",
    "CsvSchema",
    "CsvTask",
    "NumericFeature",
    "check_csv",
    "open_csv_task",
    "parse_schema",
]
