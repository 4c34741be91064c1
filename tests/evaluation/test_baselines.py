"""Every baseline runs and beats chance on synthetic data (train and test drawn from one world)."""
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lanp.evaluation.baselines import c2fpl_labels, ends_distance, isolation_forest, lbr_spr
from lanp.data.synth import make_synthetic


@pytest.fixture(scope="module")
def data():
    train = make_synthetic(num_videos=40, dim=24, min_length=20, max_length=60, seed=10, world_seed=4)
    test = make_synthetic(num_videos=20, dim=24, min_length=20, max_length=60, seed=11, world_seed=4)
    assert test.snippet_labels.any() and train.snippet_labels.any()
    return train, test


def test_ends_distance(data):
    _, test = data
    s = ends_distance(test.features, test.offsets)
    assert s.shape == (test.features.shape[0],)
    assert roc_auc_score(test.snippet_labels, s) > 0.6
    # by hand: one video [a, b, c], the ends' mean is (a + c) / 2
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(ends_distance(x, np.array([0, 3]), normalize=False), [0.0, math.sqrt(2), 0.0])


def test_isolation_forest(data):
    train, test = data
    tr, te = isolation_forest(train.features, test.features, seed=0)
    assert tr.shape == (train.features.shape[0],) and te.shape == (test.features.shape[0],)
    assert roc_auc_score(test.snippet_labels, te) > 0.6
    np.testing.assert_array_equal(te, isolation_forest(train.features, test.features, seed=0)[1])


def test_lbr_spr_self_paced(data):
    train, test = data
    scores, pseudo, train_scores = lbr_spr(train.features, test.features, epochs=6, drop_fraction=0.2, seed=0)
    n = train.features.shape[0]
    assert pseudo.sum() == math.floor(0.2 * n)                 # the refinement dropped 20 % at the end
    assert roc_auc_score(test.snippet_labels, scores) > 0.6
    assert train.snippet_labels[pseudo == 1].mean() > train.snippet_labels.mean()   # dropped = more abnormal


def test_c2fpl_pseudo_labels(data):
    train, _ = data
    pseudo, abnormal = c2fpl_labels(train.features, train.offsets, window_fraction=0.15, seed=0)
    lengths = np.diff(train.offsets)
    for v in range(len(lengths)):
        p = pseudo[train.offsets[v]:train.offsets[v + 1]]
        if abnormal[v]:       # one contiguous window of ceil(0.15 L) snippets
            idx = np.flatnonzero(p)
            assert idx.size == math.ceil(0.15 * lengths[v]) and np.all(np.diff(idx) == 1)
        else:
            assert not p.any()
    assert 0 < abnormal.sum() < len(lengths)
    precision = train.snippet_labels[pseudo == 1].mean()
    assert precision > 2 * train.snippet_labels.mean()           # far better than random snippets
