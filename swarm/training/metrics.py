"""Classification metrics, in numpy: accuracy and ROC AUC, binary and multiclass.

The AUC is the rank (Mann-Whitney U) formula: the probability that a random positive scores above
a random negative, ties counting one half,

    AUC = (R_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)

where R_pos is the sum of the positives' ranks among all scores (1-based, tied scores sharing
their average rank). It needs no threshold and no curve integration, and it is exact.

Multiclass AUC is the macro one-vs-rest average (as scikit-learn's ``roc_auc_score(...,
multi_class="ovr", average="macro")``): for each class k, the binary AUC of the predicted
probability of k with "label == k" as the positive class, then the plain mean over classes.
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


def softmax(logits: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Row-wise softmax of (rows, classes) logits, in float64 (max-shifted: no overflow)."""
    array = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(array - array.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float64)


def _check_multiclass(
    logits: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    score_array = np.asarray(logits, dtype=np.float64)
    label_array = np.asarray(labels).reshape(-1).astype(np.int64)
    if score_array.ndim != 2 or score_array.shape[0] != label_array.size:
        raise ValueError(
            f"scores of shape {list(score_array.shape)} for {label_array.size} labels "
            "(expected (rows, classes))"
        )
    classes = score_array.shape[1]
    if label_array.size and (label_array.min() < 0 or label_array.max() >= classes):
        raise ValueError(f"labels must be class indices 0..{classes - 1}")
    return score_array, label_array


def multiclass_accuracy(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Share of rows whose highest-scoring class is the label (ties: the lowest index, as
    ``argmax``). NaN for no samples."""
    score_array, label_array = _check_multiclass(logits, labels)
    if label_array.size == 0:
        return math.nan
    return float(np.mean(np.argmax(score_array, axis=1) == label_array))


def macro_roc_auc(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Macro one-vs-rest ROC AUC of (rows, classes) ``logits`` for class-index ``labels``.

    Each class's AUC ranks the softmax probabilities of that class (module docstring). NaN when
    a class is absent from ``labels`` (its one-vs-rest AUC is undefined, and a mean over the
    classes that happen to be present would not be comparable between test sets).
    """
    score_array, label_array = _check_multiclass(logits, labels)
    classes = score_array.shape[1]
    if classes < 2 or np.unique(label_array).size < classes:
        return math.nan
    probabilities = softmax(score_array)
    per_class = [roc_auc(probabilities[:, k], label_array == k) for k in range(classes)]
    return float(np.mean(per_class))
