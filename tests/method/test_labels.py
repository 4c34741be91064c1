"""Pseudo-label and loss-weight rules on hand-made cases."""
import math

import numpy as np
import pytest

from lanp.method import labels as L


def test_video_scores_are_population_std_per_video():
    z = np.array([1.0, 3.0, 5.0, 5.0, 2.0])
    offsets = np.array([0, 2, 4, 5])
    np.testing.assert_allclose(L.video_std(z, offsets), [1.0, 0.0, 0.0])


def test_split_keeps_the_lowest_scores_normal_with_stable_ties():
    scores = np.array([0.5, 0.1, 0.5, 0.9, 0.1])
    np.testing.assert_array_equal(L.split_videos(scores, 2), [True, False, True, True, False])
    # tie at 0.5 between videos 0 and 2: the earlier one is normal
    np.testing.assert_array_equal(L.split_videos(scores, 3), [False, False, True, True, False])


def test_pseudo_labels_floor_of_ratio_lowest_z_in_abnormal_videos_only():
    # video 0 (abnormal, L=5): floor(0.4*5) = 2 lowest z -> positions 1 and 3 (z 0.1 and 0.2)
    # video 1 (normal, L=3): all 0; video 2 (abnormal, L=4): floor(1.6) = 1 -> tie 0.0 at 0 and 2 -> 0
    z = np.array([0.9, 0.1, 0.5, 0.2, 0.8, 0.0, 0.0, 0.0, 0.0, 0.7, 0.0, 0.3])
    offsets = np.array([0, 5, 8, 12])
    got = L.pseudo_labels(z, offsets, np.array([True, False, True]), 0.4)
    np.testing.assert_array_equal(got, [0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0])
    assert got.dtype == np.uint8
    assert L.pseudo_labels(z, offsets, np.array([True, True, True]), 0.0).sum() == 0


def test_n_normal_resolution_and_errors():
    assert L.resolve_n_normal(10) == 5
    assert L.resolve_n_normal(10, normal_fraction=0.27) == 2
    assert L.resolve_n_normal(3, normal_fraction=0.1) == 1
    assert L.resolve_n_normal(10, n_normal=10) == 10
    with pytest.raises(ValueError, match=r"n_normal=11 is invalid: .*\[1, 10\]"):
        L.resolve_n_normal(10, n_normal=11)
    with pytest.raises(ValueError, match="normal_fraction"):
        L.resolve_n_normal(10, normal_fraction=0.0)


def test_confident_normal_videos_are_the_lowest_scoring_normal_ones():
    scores = np.array([0.3, 0.1, 0.2, 0.05, 0.4, 0.9])
    abnormal = np.array([False, False, False, True, False, True])
    # N_nor = 4 -> max(1, floor(0.5 * 4)) = 2 videos: 1 (0.1) then 2 (0.2); video 3 is abnormal
    np.testing.assert_array_equal(L.confident_normal_videos(scores, abnormal, 0.5), [1, 2])
    np.testing.assert_array_equal(L.confident_normal_videos(scores, abnormal, 0.1), [1])


def test_loss_weights_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    normal_list = np.array([[3.0, 0.0], [-1.0, 0.0]])
    # d = min over the list of 1 - cos: [0, 1, 1 - 1/sqrt(2)]
    d = np.array([0.0, 1.0, 1.0 - 1.0 / math.sqrt(2.0)])
    y = np.array([0, 1, 1], dtype=np.uint8)
    np.testing.assert_allclose(L.loss_weights(x, y, normal_list), np.exp(-np.abs(d - y)), rtol=1e-12)
    y = np.array([1, 0, 0], dtype=np.uint8)
    np.testing.assert_allclose(L.loss_weights(x, y, normal_list), np.exp(-np.abs(d - y)), rtol=1e-12)


def test_loss_weights_match_a_dense_cosine_and_do_not_depend_on_chunking():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(103, 37))
    y = (rng.random(103) < 0.3).astype(np.uint8)
    M = rng.normal(size=(7, 37))
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (M / np.linalg.norm(M, axis=1, keepdims=True)).T
    want = np.exp(-np.abs((1.0 - cos.max(axis=1)) - y))
    np.testing.assert_allclose(L.loss_weights(x, y, M), want, rtol=1e-13)
    x32 = x.astype(np.float32)
    whole = L.loss_weights(x32, y, M)
    np.testing.assert_allclose(whole, want, rtol=1e-5)
    parts = np.concatenate([L.loss_weights(x32[a:b], y[a:b], M) for a, b in [(0, 5), (5, 6), (6, 103)]])
    np.testing.assert_array_equal(parts, whole)
