"""AUC by the rank formula and accuracy, against examples worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from swarm.training.metrics import accuracy, average_ranks, roc_auc


def test_auc_hand_example() -> None:
    """Four scores, no ties: of the 4 (positive, negative) pairs, 3 are ordered right -> 0.75."""
    # positives 0.35, 0.8; negatives 0.1, 0.4: 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75


def test_auc_counts_ties_as_half() -> None:
    """A positive and a negative with the same score count 1/2: (0.5 + 1 + 1 + 1) / 4."""
    assert roc_auc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == 0.875


def test_auc_matches_pairwise_count() -> None:
    """The rank formula equals the brute-force pair count on random scores with ties."""
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 40).astype(float)
    labels = rng.integers(0, 2, 40)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(scores, labels) == pytest.approx(pairs / (pos.size * neg.size), abs=1e-12)


def test_auc_perfect_inverted_and_single_class() -> None:
    """Perfect order gives 1, reversed 0; one class only gives NaN (undefined, not a number)."""
    assert roc_auc([1, 2, 3], [0, 1, 1]) == 1.0
    assert roc_auc([3, 2, 1], [0, 1, 1]) == 0.0
    assert math.isnan(roc_auc([0.2, 0.7], [1, 1]))


def test_average_ranks_share_ties() -> None:
    """Tied values get the mean of the ranks they span (1-based)."""
    assert average_ranks([10, 20, 10, 30]).tolist() == [1.5, 3.0, 1.5, 4.0]


def test_accuracy_thresholds_logits_at_zero() -> None:
    """Logit > 0 means "disease"; a logit of exactly 0 counts as healthy."""
    assert accuracy([-1.0, 0.0, 2.0, 3.0], [0, 1, 1, 0]) == 0.5
    assert accuracy([0.2, 0.7], [0, 1], threshold=0.5) == 1.0
    with pytest.raises(ValueError):
        accuracy([1.0], [0, 1])
