"""Binary classification metrics, in numpy: accuracy at a threshold and ROC AUC.

The AUC is the rank (Mann-Whitney U) formula: the probability that a random positive scores above
a random negative, ties counting one half,

    AUC = (R_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)

where R_pos is the sum of the positives' ranks among all scores (1-based, tied scores sharing
their average rank). It needs no threshold and no curve integration, and it is exact.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def average_ranks(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """1-based ranks of ``values``; tied values get the mean of the ranks they span."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    # A stable sort keeps the result independent of the sort algorithm's tie order.
    order = np.argsort(array, kind="stable")
    ranks = np.empty(array.size, dtype=np.float64)
    ordered = array[order]
    start = 0
    while start < array.size:
        stop = start + 1
        while stop < array.size and ordered[stop] == ordered[start]:
            stop += 1
        # positions start..stop-1 (0-based) are ranks start+1..stop: their mean
        ranks[order[start:stop]] = (start + 1 + stop) / 2.0
        start = stop
    return ranks


def roc_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (0/1 or bool).

    Returns NaN when the labels hold a single class: the AUC is undefined there, and a number
    would be a lie (callers average with ``nanmean`` or report it as missing).
    """
    score_array = np.asarray(scores, dtype=np.float64).reshape(-1)
    label_array = np.asarray(labels).reshape(-1).astype(bool)
    if score_array.shape != label_array.shape:
        raise ValueError(f"{score_array.size} scores for {label_array.size} labels")
    n_pos = int(label_array.sum())
    n_neg = int(label_array.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = float(average_ranks(score_array)[label_array].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def accuracy(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float = 0.0) -> float:
    """Share of predictions ``score > threshold`` that match ``labels``.

    Scores are logits by default (threshold 0, i.e. probability 0.5). NaN for no samples.
    """
    score_array = np.asarray(scores, dtype=np.float64).reshape(-1)
    label_array = np.asarray(labels).reshape(-1).astype(bool)
    if score_array.shape != label_array.shape:
        raise ValueError(f"{score_array.size} scores for {label_array.size} labels")
    if score_array.size == 0:
        return math.nan
    return float(np.mean((score_array > threshold) == label_array))
