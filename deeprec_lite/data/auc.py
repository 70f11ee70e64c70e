"""ROC AUC from labels, and the Bayes (best achievable) AUC from true probabilities.

Both are exact, vectorized (sort + cumulative sums), ties counted as one half.
"""
from __future__ import annotations

import numpy as np


def _grouped_auc(scores: np.ndarray, pos: np.ndarray, neg: np.ndarray,
                 self_pairs: np.ndarray) -> float:
    """AUC over weighted (positive i, negative j) pairs, i != j, ordered by score.

    ``pos[i]``/``neg[i]``: weight of row i as a positive / negative;
    ``self_pairs[i] = pos[i] * neg[i]`` is removed (a row is not paired with itself).
    """
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    boundaries = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate([[0], boundaries])
    pos_g = np.add.reduceat(pos[order], starts)
    neg_g = np.add.reduceat(neg[order], starts)
    self_g = np.add.reduceat(self_pairs[order], starts)
    neg_below = np.cumsum(neg_g) - neg_g
    numerator = np.sum(pos_g * neg_below) + 0.5 * np.sum(pos_g * neg_g - self_g)
    denominator = pos.sum() * neg.sum() - self_pairs.sum()
    if denominator <= 0:
        raise ValueError("AUC is undefined: need both positive and negative weight")
    return float(numerator / denominator)


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (0/1), ties count 1/2."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {s.shape}")
    if y.size == 0:
        raise ValueError("roc_auc: labels and scores are empty")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise ValueError(f"roc_auc: scores must be finite, got {s[bad[0]]} at index {bad[0]}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    return _grouped_auc(s, y, 1.0 - y, np.zeros_like(y))


def bayes_auc(probabilities) -> float:
    """Expected AUC of ranking rows by their true click probabilities.

    When each label is drawn as Bernoulli(p_i), no model can rank better than p
    itself; this is the AUC that ranking attains in expectation over the label
    draws: the share of (positive, negative) pairs of distinct rows ordered
    correctly, each pair weighted by ``p_i * (1 - p_j)``.
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if p.size < 2:
        raise ValueError(f"need at least 2 probabilities, got {p.size}")
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("probabilities must lie in [0, 1]")
    return _grouped_auc(p, p, 1.0 - p, p * (1.0 - p))
