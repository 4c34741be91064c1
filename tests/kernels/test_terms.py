"""``terms``: the graph with one factor only (W = Wf or W = Wt, the paper's Table 3 ablations),
on every backend, against the float64 dense reference; hand-checked tiny cases; bad values."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from lanp.kernels import GraphParams, InputError, propagate, similarity, solve
from reference import normalized_similarity, propagate_reference, relative_error
from shared import BACKENDS as GPU_BACKENDS, ragged

BACKENDS = ["cpu", *GPU_BACKENDS]
TOL = {"float32": 1e-4, "float64": 1e-9}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("terms", ["feature", "temporal"])
def test_one_term_graphs_match_reference(rng, backend, dtype, terms):
    """Fresh random features, every distance, normalised or raw, dense and banded; S and z."""
    x, offsets = ragged(rng, [1, 2, 7, 40, 150], 12, dtype)
    for distance, normalize, window in itertools.product(("sqeuclidean", "rms", "cosine"), (True, False),
                                                         (None, 3)):
        kw = dict(sigma=0.4, distance=distance, normalize=normalize, window=window)
        g = similarity(x, offsets, terms=terms, backend=backend, **kw)
        r = propagate(x, offsets, terms=terms, tol=1e-11, maxiter=5000, backend=backend, **kw)
        assert r.converged.all()
        for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
            xv = x[a:b].astype(np.float64)
            ref = normalized_similarity(xv, terms=terms, **kw)
            got = g.dense(v)
            err = relative_error(got, ref) if np.linalg.norm(ref) else float(np.abs(got).max())
            assert err <= TOL[dtype], (kw, v)
            zref = propagate_reference(xv, terms=terms, **kw)
            assert relative_error(r.z[a:b], zref) <= TOL[dtype], (kw, v)


def test_temporal_only_by_hand():
    """L = 3, s = 3: W = [[0, a, b], [a, 0, a], [b, a, 0]] with a = e^(-1/3), b = e^(-2/3) whatever
    the features; degrees d0 = d2 = a + b, d1 = 2a."""
    x = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, -2.0]])
    a, b = np.exp(-1 / 3), np.exp(-2 / 3)
    d = np.array([a + b, 2 * a, a + b])
    W = np.array([[0, a, b], [a, 0, a], [b, a, 0]])
    want = W / np.sqrt(np.outer(d, d))
    for distance in ("sqeuclidean", "rms", "cosine"):
        got = similarity(x, np.array([0, 3]), terms="temporal", distance=distance, backend="cpu").dense(0)
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)


def test_feature_only_by_hand():
    """Unit rows x0 = x2 = e1, x1 = e2, sigma^2 = 1/2: d2(0,1) = d2(1,2) = 2, d2(0,2) = 0, so
    W = [[0, e^-2, 1], [e^-2, 0, e^-2], [1, e^-2, 0]] (no decay with |i - j|)."""
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    c = np.exp(-2.0)
    W = np.array([[0, c, 1], [c, 0, c], [1, c, 0]])
    d = W.sum(1)
    got = similarity(x, np.array([0, 3]), terms="feature", sigma=np.sqrt(0.5), backend="cpu").dense(0)
    np.testing.assert_allclose(got, W / np.sqrt(np.outer(d, d)), rtol=1e-14, atol=0)


def test_both_is_the_default_graph(rng):
    x, offsets = ragged(rng, [5, 30], 6, "float64")
    r0 = propagate(x, offsets, backend="cpu")
    r1 = propagate(x, offsets, terms="both", backend="cpu")
    assert np.array_equal(r0.z, r1.z)
    assert solve(similarity(x, offsets, terms="temporal", backend="cpu")).converged.all()


def test_bad_terms_and_bad_input_still_checked():
    with pytest.raises(ValueError, match="terms='time' is invalid: choose one of both, feature, temporal"):
        GraphParams(terms="time")
    x = np.ones((4, 3))
    x[2, 1] = np.nan
    with pytest.raises(InputError, match=r"video #0, snippet 2"):
        propagate(x, np.array([0, 4]), terms="temporal", backend="cpu")
