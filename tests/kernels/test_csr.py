"""solve_csr (CPU backend) against a dense float64 solve on fresh seeded random symmetric sparse W,
against lanp.kernels.propagate on the in-video graph written as CSR (one video, a band, and a
block-diagonal batch), hand-checked tiny cases, thread-count independence, the checks of W and the
ConvergenceWarning."""
from __future__ import annotations

import warnings

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from lanp.kernels import ConvergenceWarning, CsrSolution, InputError, propagate, solve_csr
from lanp.kernels.cpu import csr as cpu_csr
from reference import log_affinity_matrix, relative_error
from shared import dense_solution, to_csr, random_symmetric  # noqa: E402


@pytest.mark.parametrize("trial", range(10))
def test_matches_dense_float64_solve(rng, trial):
    N = int(rng.integers(1, 80))
    W = random_symmetric(rng, N, float(rng.uniform(0.02, 0.5)))
    y = rng.normal(size=N) if trial % 2 else (rng.random(N) < 0.1).astype(float)
    alpha = float(rng.choice([0.5, 0.9, 0.99]))
    r = solve_csr(*to_csr(W), y, alpha=alpha, tol=1e-12, maxiter=5000, backend="cpu")
    assert isinstance(r, CsrSolution) and r.backend == "cpu" and r.z.dtype == np.float64
    if not y.any():
        assert np.all(r.z == 0) and r.iterations == 0 and r.residual == 0.0 and r.converged
        return
    ref, S = dense_solution(W, y, alpha)
    assert r.converged and relative_error(r.z, ref) < 1e-10
    true = np.linalg.norm(y - (r.z - alpha * S @ r.z)) / np.linalg.norm(y)
    # both residuals are recomputed at rounding level (~1e-13 here): they agree to rounding, not to 1e-15
    scale = np.linalg.norm(r.z) * (1 + alpha) / np.linalg.norm(y)
    assert r.residual == pytest.approx(true, rel=1e-3, abs=64 * np.finfo(float).eps * scale) and r.residual < 1e-11


@pytest.mark.parametrize("terms", ["both", "feature", "temporal"])
@pytest.mark.parametrize("window", [None, 5])
def test_in_video_graph_as_csr_equals_propagate(rng, terms, window):
    """The strong cross-check: lanp's own in-video W of one video, written out densely and solved
    as CSR, gives propagate's z."""
    L, D = int(rng.integers(8, 70)), int(rng.integers(2, 30))
    x = (rng.normal(size=D) + np.cumsum(rng.normal(scale=0.3, size=(L, D)), axis=0)).astype(np.float64)
    sigma = float(rng.choice([0.5, 1.0]))
    seeds = [0, -1] if rng.random() < 0.5 else [int(rng.integers(0, L))]
    W = np.exp(log_affinity_matrix(x, sigma=sigma, window=window, terms=terms))
    W = (W + W.T) / 2
    y = np.zeros(L)
    y[seeds] = 1.0
    got = solve_csr(*to_csr(W), y, alpha=0.99, tol=1e-13, maxiter=5000, backend="cpu")
    ref = propagate(x, np.array([0, L]), sigma=sigma, window=window, terms=terms, seeds=seeds, dtype=np.float64,
                    tol=1e-13, maxiter=5000, backend="cpu")
    assert relative_error(got.z, ref.z) < 1e-10, (L, D, sigma)


def test_block_diagonal_batch_equals_propagate(rng):
    lengths = rng.integers(1, 30, size=5)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    x = rng.normal(size=(int(offsets[-1]), 6))
    blocks, ys = [], []
    for a, b in zip(offsets[:-1], offsets[1:]):
        W = np.exp(log_affinity_matrix(x[a:b], sigma=1.0, window=4))
        blocks.append((W + W.T) / 2)
        y = np.zeros(b - a)
        y[[0, -1]] = 1.0
        ys.append(y)
    W = sp.block_diag(blocks, format="csr")
    got = solve_csr(*to_csr(W), np.concatenate(ys), tol=1e-13, maxiter=5000, backend="cpu")
    ref = propagate(x, offsets, sigma=1.0, window=4, dtype=np.float64, tol=1e-13, maxiter=5000, backend="cpu")
    assert relative_error(got.z, ref.z) < 1e-10


def test_hand_checked_path_and_isolated_rows():
    # path 0 - 1 - 2 with unit weights, alpha 1/2: S = [[0, h, 0], [h, 0, h], [0, h, 0]], h = 1/sqrt(2)
    indptr, indices, data = np.array([0, 1, 3, 4, 4]), np.array([1, 0, 2, 1]), np.ones(4)
    r = solve_csr(indptr, indices, data, np.array([1.0, 0.0, 1.0, 5.0]), alpha=0.5, tol=1e-14, backend="cpu")
    # (I - S/2) z = y: z0 = z2 = 4/3, z1 = (h/2)(z0 + z2) = 2 sqrt(2)/3; row 3 isolated: z3 = y3
    np.testing.assert_allclose(r.z, [4 / 3, 2 * np.sqrt(2) / 3, 4 / 3, 5.0], rtol=1e-14)
    assert r.converged and r.iterations <= 4
    empty = solve_csr(np.zeros(4, np.int64), np.zeros(0, np.int64), np.zeros(0), np.array([1.0, -2.0, 0.0]),
                      backend="cpu")
    np.testing.assert_array_equal(empty.z, [1.0, -2.0, 0.0])
    assert empty.iterations == 1 and empty.residual == 0.0


def test_explicit_zeros_and_zero_diagonal_entries_are_allowed():
    # an explicit 0 at (0, 2) with no mirror, and an explicit diagonal 0
    indptr, indices, data = np.array([0, 3, 4, 4]), np.array([0, 1, 2, 0]), np.array([0.0, 2.0, 0.0, 2.0])
    r = solve_csr(indptr, indices, data, np.array([1.0, 0.0, 1.0]), alpha=0.5, backend="cpu")
    ref, _ = dense_solution(np.array([[0, 2, 0], [2, 0, 0], [0, 0, 0]], float), np.array([1.0, 0.0, 1.0]), 0.5)
    np.testing.assert_allclose(r.z, ref, rtol=1e-6)


def test_same_bits_on_one_thread_as_on_all():
    """Dot products are summed per fixed block of rows, then over the blocks in order."""
    rng = np.random.default_rng(3)
    N = 3 * cpu_csr.BLOCK + 17
    i = np.arange(N - 1)
    w = rng.random(N - 1)
    W = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([i, i + 1]), np.concatenate([i + 1, i]))),
                      shape=(N, N))
    args = to_csr(W)
    y = np.zeros(N)
    y[[0, N // 2, N - 1]] = 1.0
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = solve_csr(*args, y, tol=1e-10, backend="cpu")
    finally:
        numba.set_num_threads(threads)
    every = solve_csr(*args, y, tol=1e-10, backend="cpu")
    np.testing.assert_array_equal(one.z, every.z)
    assert one.iterations == every.iterations and one.residual == every.residual


def test_convergence_warning_and_warn_false():
    rng = np.random.default_rng(4)
    W = random_symmetric(rng, 40, 0.3)
    args = to_csr(W)
    y = rng.normal(size=40)
    with pytest.warns(ConvergenceWarning, match=r"graph: CG did not reach tol=1e-12 within maxiter=1 on the 40-row"):
        r = solve_csr(*args, y, tol=1e-12, maxiter=1, backend="cpu")
    assert not r.converged and r.iterations == 1 and r.residual > 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solve_csr(*args, y, tol=1e-12, maxiter=1, warn=False, backend="cpu")


def _path3():
    return np.array([0, 1, 3, 4]), np.array([1, 0, 2, 1]), np.array([1.0, 1.0, 2.0, 2.0])


@pytest.mark.parametrize("edit, match", [
    (lambda p, i, d: (p, np.array([1, 2, 0, 1]), d), r"W\[1, 0\] = 2.0 \(entry 2\): its column is not above the previous one of row 1"),
    (lambda p, i, d: (p, np.array([1, 0, 0, 1]), d), r"W\[1, 0\] .* not above the previous one"),
    (lambda p, i, d: (p, np.array([1, 0, 3, 1]), d), r"W\[1, 3\] = 2.0 \(entry 2\): its column is outside \[0, 3\)"),
    (lambda p, i, d: (p, np.array([1, -1, 2, 1]), d), r"W\[1, -1\] .* outside"),
    (lambda p, i, d: (p, i, np.array([1.0, 1.0, -2.0, -2.0])), r"W\[1, 2\] = -2.0 \(entry 2\): W must be finite and >= 0"),
    (lambda p, i, d: (p, i, np.array([1.0, np.nan, 2.0, 2.0])), r"W\[1, 0\] = nan .* finite"),
    (lambda p, i, d: (p, i, np.array([np.inf, np.inf, 2.0, 2.0])), r"W\[0, 1\] = inf"),
    (lambda p, i, d: (p, np.array([0, 0, 2, 1]), np.array([3.0, 1.0, 2.0, 2.0])), r"W\[0, 0\] = 3.0 .* zero diagonal"),
    (lambda p, i, d: (p, i, np.array([1.0, 1.0, 2.0, 2.5])), r"W\[1, 2\] = 2.0 \(entry 2\): but W\[2, 1\] = 2.5: W must be symmetric"),
    (lambda p, i, d: (np.array([0, 1, 3, 3]), i[:3], d[:3]), r"W\[1, 2\] = 2.0 \(entry 2\): but W\[2, 1\] = 0.0 \(absent\)"),
    (lambda p, i, d: (np.array([0, 2, 1, 4]), i, d), r"indptr decreases at row 1 \(2 -> 1\)"),
    (lambda p, i, d: (np.array([1, 1, 3, 4]), i, d), r"indptr must run from 0 to nnz = len\(indices\) = 4"),
    (lambda p, i, d: (p, i, d[:3]), r"len\(data\) must equal it \(got 3\)"),
    (lambda p, i, d: (p, i.astype(float), d), r"indices must be 1-D integers"),
    (lambda p, i, d: (p.astype(float), i, d), r"indptr must be \(N\+1,\) integers"),
])
def test_bad_graphs_name_the_entry(edit, match):
    indptr, indices, data = edit(*_path3())
    with pytest.raises(InputError, match=match):
        solve_csr(indptr, indices, data, np.ones(3), backend="cpu")


def test_structure_is_reported_before_symmetry():
    # row 0 is asymmetric at entry 0, row 1 unsorted at entry 2: the structural error comes first
    with pytest.raises(InputError, match="not above the previous one"):
        solve_csr(np.array([0, 1, 3, 4]), np.array([1, 2, 0, 1]), np.array([1.0, 2.0, 2.0, 2.0]), np.ones(3),
                  backend="cpu")


@pytest.mark.parametrize("y, match", [(np.ones(4), r"y has 4 entries for a graph of N = 3"),
                                      (np.array([1.0, np.nan, 0.0]), r"y\[1\] = nan is not finite"),
                                      (np.ones((3, 1)), "y must be 1-D floats")])
def test_bad_y(y, match):
    with pytest.raises(InputError, match=match):
        solve_csr(*_path3()[:2], np.ones(4), y, backend="cpu")


@pytest.mark.parametrize("kwargs, match", [(dict(alpha=1.0), "alpha=1.0 is invalid"),
                                           (dict(tol=0.0), "tol=0.0 is invalid"),
                                           (dict(maxiter=0), "maxiter=0 is invalid"),
                                           (dict(backend="tpu"), "backend='tpu' is invalid")])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        solve_csr(*_path3()[:2], np.ones(4), np.ones(3), **kwargs)


def test_joint_csr_is_band_plus_symmetrised_edges(rng):
    """cpu.csr.joint_csr (the benchmark's and the method layer's graph builder) against a dense
    build: B (the band, read through its upper half) + (E + E^T) / 2, exactly symmetric, canonical."""
    from lanp.kernels import similarity
    from lanp.kernels.cpu.csr import joint_csr
    lengths = rng.integers(1, 15, size=int(rng.integers(1, 6)))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    N = int(offsets[-1])
    x = rng.normal(size=(N, 5))
    window = int(rng.integers(1, 4))
    g = similarity(x, offsets, window=window, sigma=1.0, backend="cpu")
    M = int(rng.integers(0, 3 * N))
    src, dst, w = rng.integers(0, N, M), rng.integers(0, N, M), rng.random(M)
    indptr, indices, data = joint_csr(g.values, offsets, window, src, dst, w)
    W = sp.csr_matrix((data, indices, indptr), shape=(N, N))
    assert W.has_canonical_format
    B = sp.block_diag([g.dense(v) for v in range(len(lengths))]).toarray()
    E = np.zeros((N, N))
    np.add.at(E, (src[src != dst], dst[src != dst]), w[src != dst])
    np.testing.assert_allclose(W.toarray(), B + (E + E.T) / 2, rtol=1e-15, atol=0)
    assert (W != W.T).nnz == 0
    r = solve_csr(indptr, indices, data, np.ones(N), tol=1e-12, backend="cpu")
    ref, _ = dense_solution(W.toarray(), np.ones(N), 0.99)
    assert relative_error(r.z, ref) < 1e-9
    ptr, col, val = joint_csr(None, offsets, 0, src, dst, w)            # edges only
    np.testing.assert_allclose(sp.csr_matrix((val, col, ptr), shape=(N, N)).toarray(), (E + E.T) / 2, rtol=1e-15)


def test_joint_csr_refuses_edges_outside_and_a_wrong_band():
    from lanp.kernels.cpu.csr import joint_csr
    offsets = np.array([0, 3, 5])
    with pytest.raises(InputError, match=r"edge 1 \(2 -> 5\) leaves the N = 5 rows"):
        joint_csr(None, offsets, 0, np.array([0, 2]), np.array([1, 5]), np.ones(2))
    with pytest.raises(InputError, match=r"band must be \(N, 2 window \+ 1\) = \(5, 5\)"):
        joint_csr(np.zeros((5, 3)), offsets, 2, np.array([0]), np.array([1]), np.ones(1))
