"""Reading one site's signals: a ``.npz`` file or a folder of CSV signals with ``labels.csv``.

Two layouts, so that a hospital can export whichever is easier from its ECG system:

- ``site.npz`` with ``signals``, float array of shape (rows, length), and ``labels``, text array
  of shape (rows,) holding class names (``numpy.savez(path, signals=..., labels=...)``);
- a folder with ``labels.csv`` (header ``file,label``; one row per signal) and, for each row,
  the CSV file it names: the signal's samples, comma- or line-separated.

Every problem is a :class:`~swarm.errors.SiteDataError` of one line naming the file (and row).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from swarm.errors import SiteDataError


@dataclass(frozen=True)
class Signals:
    """One site's signals (float32, (rows, length)) and class indices (int64, (rows,))."""

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]


def read_site(path: Path, length: int, classes: Sequence[str]) -> Signals:
    """The signals at ``path`` (an .npz file or a folder, module docstring), checked against
    the task: every signal ``length`` samples, every label one of ``classes``."""
    if not path.exists():
        raise SiteDataError(f"{path}: no such file or folder")
    if path.is_dir():
        x, labels = _read_folder(path, length)
    elif path.suffix == ".npz":
        x, labels = _read_npz(path, length)
    else:
        raise SiteDataError(f"{path}: expected an .npz file or a folder with labels.csv")
    index = {name: i for i, name in enumerate(classes)}
    y = np.empty(len(labels), dtype=np.int64)
    for row, label in enumerate(labels):
        if label not in index:
            raise SiteDataError(
                f"{path}: row {row + 1} has label {label!r}, not one of the task's classes "
                f"{', '.join(classes)}"
            )
        y[row] = index[label]
    if len(y) == 0:
        raise SiteDataError(f"{path}: no signals")
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise SiteDataError(f"{path}: row {row + 1} has a missing or infinite sample")
    return Signals(x=x, y=y)


def _read_npz(path: Path, length: int) -> tuple[npt.NDArray[np.float32], list[str]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = sorted({"signals", "labels"} - set(archive.files))
            if missing:
                raise SiteDataError(
                    f"{path}: has no array {', '.join(missing)} (needs signals and labels)"
                )
            signals, labels = archive["signals"], archive["labels"]
    except SiteDataError:
        raise
    except (OSError, ValueError) as exc:  # not a zip, or an object array (pickles: refused)
        raise SiteDataError(f"{path}: cannot read it as .npz ({exc})".splitlines()[0]) from None
    if signals.ndim != 2 or signals.shape[1] != length:
        raise SiteDataError(
            f"{path}: signals has shape {list(signals.shape)}, the task needs (rows, {length})"
        )
    if not np.issubdtype(signals.dtype, np.number):
        raise SiteDataError(f"{path}: signals holds {signals.dtype}, not numbers")
    if labels.shape != (signals.shape[0],):
        raise SiteDataError(
            f"{path}: labels has shape {list(labels.shape)} for {signals.shape[0]} signals"
        )
    return signals.astype(np.float32), [str(v) for v in labels.tolist()]


def _read_folder(folder: Path, length: int) -> tuple[npt.NDArray[np.float32], list[str]]:
    index = folder / "labels.csv"
    if not index.is_file():
        raise SiteDataError(f"{folder}: has no labels.csv (header file,label)")
    with index.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"file", "label"} <= set(reader.fieldnames):
            raise SiteDataError(f"{index}: needs the header file,label")
        rows = list(reader)
    signals = np.empty((len(rows), length), dtype=np.float32)
    labels: list[str] = []
    for row, entry in enumerate(rows):
        name, label = (entry.get("file") or "").strip(), (entry.get("label") or "").strip()
        where = f"{index}: row {row + 1}"
        if not name or not label:
            raise SiteDataError(f"{where} needs a file and a label")
        signal_path = folder / name
        try:
            text = signal_path.read_text(encoding="utf-8")
        except OSError:
            raise SiteDataError(f"{where}: cannot read {signal_path}") from None
        try:
            values = [float(v) for v in text.replace("\n", ",").split(",") if v.strip()]
        except ValueError:
            raise SiteDataError(f"{signal_path}: holds something that is not a number") from None
        if len(values) != length:
            raise SiteDataError(f"{signal_path}: {len(values)} samples, the task needs {length}")
        signals[row] = values
        labels.append(label)
    return signals, labels


def standardize(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each signal scaled to mean 0 and standard deviation 1, on its own.

    Per signal rather than with statistics fitted over a site: nothing is learned from the
    data, so no train/test leak and no site-specific scale the swarm would have to agree on
    (a recorder's gain differs from one hospital to the next)."""
    mean = x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, keepdims=True)
    return ((x - mean) / np.maximum(std, 1e-6)).astype(np.float32)


def split(
    y: npt.NDArray[np.int64], seed: int, site: str, test_fraction: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Train and test row indices, stratified by class, drawn from (seed, site): the same at
    every run, different at each site."""
    digest = hashlib.sha256(f"{seed}:{site}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    train: list[int] = []
    test: list[int] = []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        n_test = round(len(rows) * test_fraction) if len(rows) > 1 else 0
        test.extend(rows[:n_test].tolist())
        train.extend(rows[n_test:].tolist())
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(test), dtype=np.int64)
