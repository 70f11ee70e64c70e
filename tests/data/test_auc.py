import itertools

import numpy as np
import pytest

from deeprec_lite.data.auc import bayes_auc, roc_auc


def _brute_auc(y, s):
    pos = [si for yi, si in zip(y, s) if yi == 1]
    neg = [si for yi, si in zip(y, s) if yi == 0]
    total = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return total / (len(pos) * len(neg))


def _brute_bayes(p):
    num = den = 0.0
    for i, j in itertools.permutations(range(len(p)), 2):
        w = p[i] * (1 - p[j])
        den += w
        num += w * ((p[i] > p[j]) + 0.5 * (p[i] == p[j]))
    return num / den


def test_roc_auc_matches_pair_count_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)   # many ties
    assert roc_auc(y, s) == pytest.approx(_brute_auc(y, s), abs=1e-12)


def test_bayes_auc_matches_pair_sum_and_label_draws():
    rng = np.random.default_rng(1)
    p = np.round(rng.beta(1, 3, 120), 2)
    assert bayes_auc(p) == pytest.approx(_brute_bayes(p), abs=1e-12)
    # Averaged over label draws, the AUC of ranking by p approaches the Bayes AUC.
    big = rng.beta(1, 3, 200_000)
    y = rng.random(big.size) < big
    assert roc_auc(y, big) == pytest.approx(bayes_auc(big), abs=0.005)


def test_auc_errors():
    with pytest.raises(ValueError, match="0 or 1"):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="undefined"):
        roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        roc_auc([], [])
    with pytest.raises(ValueError, match="differ in length"):
        roc_auc([0, 1], [0.1])
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match=r"scores must be finite, got .* at index 1"):
            roc_auc([0, 1, 1], [0.1, bad, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bayes_auc([0.5, 1.5])
