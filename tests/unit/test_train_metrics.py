"""Exact AUC (rank-based, ties as half) agrees with scikit-learn; accuracy and rmse."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sluice.train import accuracy, auc, rmse


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 5000))
    labels = (rng.random(n) < rng.uniform(0.05, 0.95)).astype(np.float32)
    scores = np.round(rng.random(n) + 0.3 * labels, 1)  # rounding makes many ties
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_edge_cases():
    assert auc(np.array([0, 1, 1, 0]), np.array([0.1, 0.8, 0.4, 0.4])) == pytest.approx(0.875)
    assert auc(np.array([0, 1, 0, 1]), np.full(4, 0.3)) == 0.5  # all tied
    assert auc(np.array([0, 0, 1, 1]), np.array([1.0, 2.0, 3.0, 4.0])) == 1.0
    assert math.isnan(auc(np.ones(3), np.arange(3.0)))  # one class: undefined
    with pytest.raises(ValueError):
        auc(np.ones(3), np.arange(4.0))


def test_accuracy_and_rmse():
    assert accuracy(np.array([2, 0, 1]), np.array([[0, 0, 1], [1, 0, 0], [1, 0, 0.5]])) == pytest.approx(2 / 3)
    assert rmse(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == pytest.approx(math.sqrt(2))
