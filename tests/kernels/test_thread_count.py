"""Results do not depend on how many threads numba uses: every CPU kernel computes a video (or a
row) on one thread in a fixed order, so 1 thread and all threads give the same bits."""
from __future__ import annotations

import contextlib

import numba
import numpy as np
import pytest

from lanp.kernels import propagate, similarity, solve
from lanp.kernels.official import propagate_official, weight_distance
from lanp.method.labels import loss_weights
from shared import smooth_features

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread here")


@contextlib.contextmanager
def threads(n):
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def on_one_and_all_threads(fn):
    with threads(1):
        one = fn()
    with threads(numba.config.NUMBA_NUM_THREADS):
        every = fn()
    return one, every


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [None, 5])
@pytest.mark.parametrize("normalize", [True, False])
def test_propagation_is_the_same_on_one_thread(dtype, window, normalize, rng):
    x, offsets = smooth_features(rng, rng.integers(1, 90, size=23), 40, dtype)
    kw = dict(window=window, normalize=normalize, sigma=0.1 if normalize else 3.0, backend="cpu")
    one, every = on_one_and_all_threads(lambda: propagate(x, offsets, **kw))
    assert np.array_equal(one.z, every.z) and np.array_equal(one.iterations, every.iterations)
    assert np.array_equal(one.residual, every.residual)
    g1, g2 = on_one_and_all_threads(lambda: similarity(x, offsets, **kw))
    assert np.array_equal(g1.values, g2.values, equal_nan=True)
    s1, s2 = on_one_and_all_threads(lambda: solve(g1, backend="cpu"))
    assert np.array_equal(s1.z, s2.z)


def test_weights_and_presets_are_the_same_on_one_thread(rng):
    x, offsets = smooth_features(rng, rng.integers(1, 120, size=17), 24, np.float32)
    x = np.abs(x) + 0.1
    means = np.abs(rng.normal(size=(7, 24))) + 0.1
    labels = (rng.random(x.shape[0]) < 0.3).astype(np.float64)
    w1, w2 = on_one_and_all_threads(lambda: loss_weights(x, labels, means))
    assert np.array_equal(w1, w2)
    for kind in ("cosine", "rms"):
        d1, d2 = on_one_and_all_threads(lambda: weight_distance(x, means, kind))
        assert np.array_equal(d1, d2)
    for variant in ("rms", "cosine"):
        r1, r2 = on_one_and_all_threads(lambda: propagate_official(x, offsets, variant=variant))
        assert np.array_equal(r1.z, r2.z) and np.array_equal(r1.iterations, r2.iterations)
