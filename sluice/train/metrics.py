"""Exact evaluation metrics in numpy (no torch, no scikit-learn), used per epoch by ``fit``.

Example::

    auc(np.array([0, 1, 1, 0]), np.array([0.1, 0.8, 0.4, 0.4]))   # 0.875
    accuracy(np.array([2, 0]), np.array([[0.1, 0.2, 0.7], [0.9, 0.05, 0.05]]))  # 1.0
    rmse(np.array([1.0, 2.0]), np.array([1.0, 4.0]))            # 1.414...
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "auc", "rmse", "task_metrics"]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, exactly, with ties counted as half (= sklearn's roc_auc_score).

    Rank-based (Mann-Whitney U): tied scores share their average rank. O(n log n), memory O(n).
    Labels are 0/1 (anything > 0.5 counts as positive). NaN when only one class is present,
    since AUC is undefined there.
    """
    y = np.asarray(labels).reshape(-1) > 0.5
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # 1-based average rank of each distinct value: last rank of its group minus half the ties.
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = float(avg_rank[inverse][y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Share of rows whose highest score is the label (class ids; scores [N, C] logits or probs)."""
    y = np.asarray(labels).reshape(-1)
    if y.size == 0:
        return float("nan")
    return float((np.asarray(scores).argmax(axis=1) == y).mean())


def rmse(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Root mean squared error."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if y.size == 0:
        return float("nan")
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def task_metrics(task: str, labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """The headline metric of a task from raw logits: auc, accuracy or rmse."""
    if task == "binary":
        return {"auc": auc(labels, logits)}  # AUC is rank-based: logits rank like probabilities
    if task == "multiclass":
        return {"accuracy": accuracy(labels, logits)}
    if task == "regression":
        return {"rmse": rmse(labels, logits)}
    raise ValueError(f"unknown task {task!r}")
