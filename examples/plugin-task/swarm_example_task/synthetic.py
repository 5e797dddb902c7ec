"""Synthetic ECG-like signals for trying the example out: no patient data needed.

A signal is 5 s of one lead at 50 Hz: a narrow spike (the QRS complex) and a broader, smaller
bump (the T wave) at every beat, on a slowly wandering baseline, with noise. The class is the
rhythm, i.e. the heart rate: bradycardia below 60 beats per minute, normal 60 to 100,
tachycardia above 100. Sites differ as hospitals do: in how common each rhythm is, in their
recorders' noise and gain.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: beats per minute drawn for each class (a margin between classes keeps the labels clean)
RATES: dict[str, tuple[float, float]] = {
    "bradycardia": (35.0, 55.0),
    "normal": (62.0, 98.0),
    "tachycardia": (105.0, 160.0),
}
CLASSES: tuple[str, ...] = ("normal", "bradycardia", "tachycardia")
HZ = 50
LENGTH = 250


def make_signals(
    rows: int,
    rng: np.random.Generator,
    *,
    prior: Sequence[float] = (0.5, 0.25, 0.25),
    noise: float = 0.08,
    gain: float = 1.0,
    length: int = LENGTH,
    classes: Sequence[str] = CLASSES,
) -> tuple[npt.NDArray[np.float32], list[str]]:
    """``rows`` signals of ``length`` samples and their class names, classes drawn with
    ``prior`` (one probability per class)."""
    p = np.asarray(prior, dtype=np.float64)
    labels = [str(c) for c in rng.choice(list(classes), size=rows, p=p / p.sum())]
    t = np.arange(length, dtype=np.float64)
    x = np.empty((rows, length), dtype=np.float32)
    for i, label in enumerate(labels):
        low, high = RATES[label]
        period = HZ * 60.0 / rng.uniform(low, high)  # samples between beats
        beats = np.arange(rng.uniform(0, period), length + period, period)
        wave = np.zeros(length)
        for b in beats:
            wave += np.exp(-0.5 * ((t - b) / 1.2) ** 2)  # QRS: narrow spike
            wave += 0.3 * np.exp(-0.5 * ((t - b - 12) / 4.0) ** 2)  # T wave, 0.24 s later
        wander = 0.2 * np.sin(2 * np.pi * t / rng.uniform(150, 400) + rng.uniform(0, 2 * np.pi))
        x[i] = gain * (wave + wander) + rng.normal(0.0, noise, length)
    return x, labels


def write_npz(path: Path, x: npt.NDArray[np.float32], labels: Sequence[str]) -> None:
    """One site as ``path`` (.npz with ``signals`` and ``labels``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, signals=x, labels=np.array(labels, dtype=str))


def write_folder(folder: Path, x: npt.NDArray[np.float32], labels: Sequence[str]) -> None:
    """One site as a folder: ``labels.csv`` and one ``signal-NNNN.csv`` per signal."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["file,label"]
    for i, (signal, label) in enumerate(zip(x, labels, strict=True)):
        name = f"signal-{i:04d}.csv"
        (folder / name).write_text("\n".join(f"{v:.5f}" for v in signal) + "\n")
        lines.append(f"{name},{label}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")


#: the demo's hospitals: how common each class is (normal, brady, tachy), noise, gain
SITES: dict[str, tuple[tuple[float, float, float], float, float]] = {
    "north": ((0.6, 0.2, 0.2), 0.05, 1.0),
    "south": ((0.3, 0.5, 0.2), 0.10, 0.6),
    "east": ((0.3, 0.2, 0.5), 0.15, 1.5),
    "west": ((0.5, 0.1, 0.4), 0.08, 0.8),
}


def make_sites(
    out: Path, *, sites: int = 3, rows: int = 160, seed: int = 0, layout: str = "npz"
) -> list[Path]:
    """Write ``sites`` synthetic hospitals under ``out`` (``north.npz``, ... or folders) and
    return their paths."""
    if not 1 <= sites <= len(SITES):
        raise ValueError(f"sites must be 1 to {len(SITES)}, not {sites}")
    if layout not in ("npz", "csv"):
        raise ValueError(f"layout must be npz or csv, not {layout!r}")
    paths = []
    for k, (name, (prior, noise, gain)) in enumerate(list(SITES.items())[:sites]):
        rng = np.random.default_rng([seed, k])
        x, labels = make_signals(rows, rng, prior=prior, noise=noise, gain=gain)
        if layout == "npz":
            path = out / f"{name}.npz"
            write_npz(path, x, labels)
        else:
            path = out / name
            write_folder(path, x, labels)
        paths.append(path)
    return paths
