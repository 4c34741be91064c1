"""CPU kernels against the independent float64 dense reference, plus hand-worked cases."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lanp.kernels as K
from lanp.kernels import ConvergenceWarning, InputError
from reference import normalized_similarity, propagate_packed_reference, relative_error
from shared import smooth_features  # noqa: E402

TOLERANCE = {np.float32: 1e-4, np.float64: 1e-7}


def graph_kwargs(distance, normalize, dim):
    """sigma that keeps the graph well connected for each distance (sqeuclidean on raw features
    gets a sigma on the scale of the feature distances)."""
    sigma = 0.1 if normalize or distance != "sqeuclidean" else 0.5 * math.sqrt(dim)
    if distance == "rms" and not normalize:
        sigma = 0.5
    return dict(distance=distance, normalize=normalize, sigma=sigma)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=6),
       dim=st.sampled_from([1, 3, 16, 130]),
       distance=st.sampled_from(K.DISTANCES),
       normalize=st.booleans(),
       window=st.sampled_from([None, 1, 2, 7]),
       dtype=st.sampled_from([np.float32, np.float64]),
       temporal_scale=st.sampled_from([None, 2.0]),
       seed=st.integers(0, 2 ** 31))
def test_propagate_matches_dense_reference(lengths, dim, distance, normalize, window, dtype,
                                           temporal_scale, seed):
    rng = np.random.default_rng(seed)
    x, offsets = smooth_features(rng, lengths, dim, dtype)
    g = graph_kwargs(distance, normalize, dim)
    ref = propagate_packed_reference(x, offsets, window=window, temporal_scale=temporal_scale, **g)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r = K.propagate(x, offsets, window=window, temporal_scale=temporal_scale, tol=1e-10,
                        dtype=dtype, **g)
    assert r.z.dtype == dtype
    assert not np.isnan(r.z).any()
    for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        assert relative_error(r.z[a:b], ref[a:b]) <= TOLERANCE[dtype], f"video {v}"
    assert np.all(r.residual <= 1e-6) and np.all(r.converged)
    assert np.all(r.iterations >= 1) and np.all(r.iterations <= 1000)


@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("distance", K.DISTANCES)
def test_similarity_graph_matches_reference(distance, window):
    rng = np.random.default_rng(7)
    x, offsets = smooth_features(rng, [1, 2, 9, 17], 24, np.float64)
    g = graph_kwargs(distance, True, 24)
    graph = K.similarity(x, offsets, window=window, **g)
    assert not np.isnan(graph.values).any(), "unwritten graph entries"
    for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        ref = normalized_similarity(x[a:b], window=window, **g)
        got = graph.dense(v)
        assert np.allclose(got, got.T, rtol=0, atol=1e-15)
        assert np.abs(got - ref).max() <= 1e-12 * max(1.0, np.abs(ref).max()), f"video {v}"


@pytest.mark.parametrize("window", [None, 4])
def test_solve_on_graph_equals_fused_propagate(window):
    rng = np.random.default_rng(3)
    x, offsets = smooth_features(rng, [5, 30, 12], 8, np.float64)
    graph = K.similarity(x, offsets, window=window)
    unfused = K.solve(graph, tol=1e-12)
    fused = K.propagate(x, offsets, window=window, tol=1e-12)
    assert relative_error(unfused.z, fused.z) <= 1e-12
    assert np.array_equal(unfused.iterations, fused.iterations)


def test_hand_worked_three_snippets():
    """x = (0, 1, 0) in 1-D, 2 sigma^2 = 1, s = L = 3: W = [[0,a,b],[a,0,a],[b,a,0]] with
    a = e^-1 e^-1/3, b = e^0 e^-2/3. By symmetry z = (p, q, p) with
    p = (a+b) / (a + b - alpha b - alpha^2 a) and q = 2 alpha S01 p, S01 = a / sqrt(2a(a+b))."""
    alpha = 0.9
    a, b = math.exp(-4 / 3), math.exp(-2 / 3)
    p = (a + b) / (a + b - alpha * b - alpha ** 2 * a)
    q = 2 * alpha * a / math.sqrt(2 * a * (a + b)) * p
    x = np.array([[0.0], [1.0], [0.0]])
    r = K.propagate(x, np.array([0, 3]), alpha=alpha, sigma=math.sqrt(0.5), normalize=False,
                    dtype=np.float64, tol=1e-14)
    np.testing.assert_allclose(r.z, [p, q, p], rtol=1e-12)
    graph = K.similarity(x, np.array([0, 3]), sigma=math.sqrt(0.5), normalize=False)
    np.testing.assert_allclose(graph.dense(0)[0], [0, a / math.sqrt(2 * a * (a + b)), b / (a + b)], rtol=1e-12)


def test_one_and_two_snippet_videos():
    """L = 1: S = 0 so z = y = 1. L = 2: S = [[0,1],[1,0]] so z = 1/(1-alpha) at both."""
    x = np.array([[1.0, 2.0], [0.5, 0.1], [0.3, 0.9]], dtype=np.float32)
    r = K.propagate(x, np.array([0, 1, 3]), alpha=0.99)
    np.testing.assert_allclose(r.z, [1.0, 100.0, 100.0], rtol=1e-5)
    assert np.all(r.converged)


def test_seed_list_and_underflowing_raw_features():
    """Raw 2048-d features with sigma = 0.1 underflow every W_ij; the log domain keeps S exact."""
    rng = np.random.default_rng(11)
    x, offsets = smooth_features(rng, [20, 33], 2048, np.float64)
    x *= 3.0
    ref = propagate_packed_reference(x, offsets, normalize=False, seeds=(0, 1, -2, -1))
    r = K.propagate(x, offsets, normalize=False, seeds=(0, 1, -2, -1), dtype=np.float64, tol=1e-12)
    assert np.isfinite(r.z).all()
    assert relative_error(r.z, ref) <= 1e-8


def test_float32_error_reported_against_float64():
    rng = np.random.default_rng(5)
    x, offsets = smooth_features(rng, [32] * 20, 256, np.float32)
    z32 = K.propagate(x, offsets).z
    z64 = K.propagate(x.astype(np.float64), offsets, tol=1e-12).z
    assert relative_error(z32, z64) <= 1e-4


def test_convergence_warning_and_honest_counts():
    rng = np.random.default_rng(2)
    x, offsets = smooth_features(rng, [60, 3], 8)
    with pytest.warns(ConvergenceWarning, match=r"video long \(#0\)"):
        r = K.propagate(x, offsets, maxiter=1, video_ids=["long", "short"])
    assert r.iterations[0] == 1 and not r.converged[0]
    assert r.residual[0] > 1e-6


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=1.0), "alpha=1.0 is invalid"),
    (dict(alpha=0.0), "open interval"),
    (dict(sigma=0.0), "sigma=0.0 is invalid"),
    (dict(sigma=-1.0), "sigma"),
    (dict(window=0), "window=0 is invalid"),
    (dict(distance="l1"), "choose one of sqeuclidean, rms, cosine"),
    (dict(dtype="float16"), "dtype"),
    (dict(backend="tpu"), "backend='tpu' is invalid"),
    (dict(temporal_scale=0.0), "temporal_scale"),
    (dict(maxiter=0), "maxiter"),
    (dict(seeds=()), "seeds"),
])
def test_bad_parameters(kwargs, match):
    x = np.ones((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=match):
        K.propagate(x, np.array([0, 4]), **kwargs)


def test_bad_inputs_name_the_video_and_snippet():
    x = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32)
    ids = ["a", "b", "c"]
    off = np.array([0, 2, 5, 9])
    bad = x.copy(); bad[6, 1] = np.nan
    with pytest.raises(InputError, match=r"video c \(#2\), snippet 1"):
        K.propagate(bad, off, video_ids=ids)
    bad = x.copy(); bad[3] = np.inf
    with pytest.raises(InputError, match=r"video b \(#1\), snippet 1 .*NaN or Inf"):
        K.propagate(bad, off, video_ids=ids)
    bad = x.copy(); bad[4] = 0
    with pytest.raises(InputError, match=r"video b \(#1\), snippet 2 .*all-zero"):
        K.propagate(bad, off, video_ids=ids)
    K.propagate(bad, off, video_ids=ids, normalize=False)        # zero rows are fine without cosine
    with pytest.raises(InputError, match=r"video b \(#1\) is empty"):
        K.propagate(x, np.array([0, 2, 2, 9]), video_ids=ids)
    with pytest.raises(InputError, match="not non-decreasing"):
        K.propagate(x, np.array([0, 5, 2, 9]))
    with pytest.raises(InputError, match=r"offsets\[-1\] = 8"):
        K.propagate(x, np.array([0, 2, 5, 8]))
    with pytest.raises(InputError, match=r"seeds=\[0, 1, -2, -1\] are out of range for video a .*L = 1"):
        K.propagate(x, np.array([0, 1, 5, 9]), seeds=(0, 1, -2, -1), video_ids=ids)


def test_dense_graph_too_large_is_refused(monkeypatch):
    import lanp.kernels.memory as M
    monkeypatch.setattr(M, "available_memory_bytes", lambda: 2 * 8 * 100 * 100 - 2)
    x = np.random.default_rng(0).normal(size=(110, 2)).astype(np.float32)
    with pytest.raises(InputError, match=r"video long \(#1\) has L = 100 .*GB.*--window"):
        K.propagate(x, np.array([0, 10, 110]), video_ids=["short", "long"])
    K.propagate(x, np.array([0, 10, 110]), window=5)               # the band fits


def test_outputs_are_poisoned_before_the_kernel(monkeypatch):
    """A kernel that writes nothing leaves NaN / -1 behind, never plausible zeros."""
    import lanp.kernels.cpu.packed as C
    for kernel in ("propagate_packed", "similarity_packed", "solve_packed"):
        monkeypatch.setattr(C, kernel, lambda *args: None)
    with pytest.raises(RuntimeError, match="wrote no result for video #0"):
        K.propagate(np.ones((3, 2), np.float32), np.array([0, 3]))
    with pytest.raises(RuntimeError, match="wrote no result"):
        K.similarity(np.ones((3, 2)), np.array([0, 3]), normalize=False)
    graph = K.Graph(np.zeros(9), np.array([0, 3]), np.array([0, 9]), None)
    with pytest.raises(RuntimeError, match="wrote no result"):
        K.solve(graph)


def test_backend_auto_falls_back_to_cpu_and_names():
    assert K.propagate(np.ones((2, 2), np.float32) + np.eye(2, dtype=np.float32),
                       np.array([0, 2]), backend="auto").backend in K.backend_names()
    assert "cpu" in K.backend_names()


@pytest.mark.parametrize("scale", [1.0, 40.0])
@pytest.mark.parametrize("window", [None, 3])
def test_normalisation_exact_for_small_and_huge_log_affinity_spreads(scale, window):
    """Raw features at sigma 0.1: scale 40 spreads lse over thousands (the two-exp fallback),
    scale 1 keeps it small (the one-exp factorised path); both must equal the reference."""
    rng = np.random.default_rng(9)
    x, offsets = smooth_features(rng, [12, 25], 16, np.float64)
    x *= scale
    graph = K.similarity(x, offsets, normalize=False, window=window)
    for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        ref = normalized_similarity(x[a:b], normalize=False, window=window)
        assert np.abs(graph.dense(v) - ref).max() <= 1e-9 * np.abs(ref).max(), f"video {v}"


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_schedule_runs_every_video_once_and_balances(threads):
    from lanp.kernels.cpu.schedule import schedule
    lengths = np.array([5000, 30, 30, 30, 2000, 1, 7, 3000, 30, 30] * 3)
    order, bounds = schedule(lengths, 0, 64, threads)
    assert sorted(order.tolist()) == list(range(lengths.size))
    assert bounds[0] == 0 and bounds[-1] == lengths.size and np.all(np.diff(bounds) >= 0)
    cost = lengths.astype(float) ** 2
    loads = [cost[order[bounds[t]:bounds[t + 1]]].sum() for t in range(threads)]
    assert max(loads) <= max(cost.max(), 1.34 * cost.sum() / threads)     # LPT's 4/3 bound


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_band_takes_the_compact_cg_path_and_matches(dtype):
    """L (2k+1) above BAND_COMPACT_ENTRIES: CG runs on a compact copy of the upper half-band."""
    from lanp.kernels.cpu.packed import BAND_COMPACT_ENTRIES
    rng = np.random.default_rng(21)
    L = BAND_COMPACT_ENTRIES // 101 + 50
    x, offsets = smooth_features(rng, [L, 40], 8, dtype)
    r = K.propagate(x, offsets, window=50, tol=1e-10)
    ref = propagate_packed_reference(x, offsets, window=50)
    assert relative_error(r.z, ref) <= TOLERANCE[dtype]
    graph_solve = K.solve(K.similarity(x, offsets, window=50), tol=1e-10)    # full-band layout
    assert relative_error(graph_solve.z, ref) <= TOLERANCE[dtype]


@pytest.mark.parametrize("spread", [5.0, 690.0, 710.0])
def test_dense_shifted_normalisation_and_its_fallback(spread):
    """The one-shift dense path (one exp per pair) against the log-domain formula, with an
    isolated snippet; past SHIFT_SPREAD_LIMIT it must refuse (S untouched) and the row-wise
    path must give the same graph."""
    from scipy.special import logsumexp
    from lanp.kernels.cpu import normalise
    rng = np.random.default_rng(int(spread))          # seeded: a failure repeats
    L = 9
    a = -rng.uniform(0.0, spread, (L, L))
    a[0, 1] = 0.0
    a[2, 3] = -spread                       # the spread is attained exactly
    a = np.triu(a, 1)
    a = a + a.T
    a[4, :] = a[:, 4] = -np.inf             # snippet 4 is isolated
    np.fill_diagonal(a, -np.inf)
    lse = logsumexp(a, axis=1)
    with np.errstate(invalid="ignore"):
        exact = np.where(np.isfinite(a), np.exp(a - (lse[:, None] + lse[None, :]) / 2), 0.0)
    S = np.triu(a, 1)
    S[np.tril_indices(L)] = 123.0           # poison: the path must not read or keep it
    before = S.copy()
    done = normalise.normalise_dense_shifted(S, np.empty(L))
    assert done == (spread <= normalise.SHIFT_SPREAD_LIMIT)
    if not done:
        assert np.array_equal(S, before)
        S = a.copy()
        normalise.normalise_log_affinity(S, 0, np.empty(L))
    assert np.array_equal(S, S.T) or not done
    assert np.abs(S - exact).max() <= 1e-13 * np.abs(exact).max()
    assert np.all(S[4] == 0.0) and np.all(S[:, 4] == 0.0)


def test_auto_skips_the_gpu_probe_without_a_cuda_driver(monkeypatch):
    """No driver library: 'auto' is the CPU and no GPU backend is even asked (its import costs
    ~0.5 s); with a driver, the GPU backends are probed in order as before."""
    from lanp.kernels import backends
    asked = []

    class Probe:
        def __init__(self, name):
            self.name = name

        def available(self):
            asked.append(self.name)
            return False, "probe"

    monkeypatch.setattr(backends, "_AUTO_ORDER", ["gpu-a", "gpu-b"])
    monkeypatch.setattr(backends, "_REGISTRY", {**backends._REGISTRY, "gpu-a": Probe("gpu-a"),
                                                "gpu-b": Probe("gpu-b")})
    monkeypatch.setattr(backends, "_DRIVER_PRESENT", False)
    assert backends.get("auto").name == "cpu" and asked == []
    monkeypatch.setattr(backends, "_DRIVER_PRESENT", True)
    assert backends.get("auto").name == "cpu" and asked == ["gpu-a", "gpu-b"]
    monkeypatch.setattr(backends, "_DRIVER_PRESENT", None)
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    assert backends.cuda_driver_present()


@pytest.mark.parametrize("window", [None, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bad_inputs_on_the_vector_and_band_paths(rng, window, dtype):
    """The same reports when the bad value sits in the explicit-vector part of the Gram tiles
    (D = 40: vector body plus masked tail) and on the banded unit-row path."""
    x = rng.normal(size=(12, 40)).astype(dtype)
    ids = ["a", "b", "c"]
    off = np.array([0, 2, 6, 12])
    bad = x.copy(); bad[8, 33] = np.nan
    with pytest.raises(InputError, match=r"video c \(#2\), snippet 2"):
        K.propagate(bad, off, video_ids=ids, window=window, dtype=dtype)
    bad = x.copy(); bad[3, 5] = -np.inf
    with pytest.raises(InputError, match=r"video b \(#1\), snippet 1 .*NaN or Inf"):
        K.propagate(bad, off, video_ids=ids, window=window, dtype=dtype)
    bad = x.copy(); bad[4] = 0
    with pytest.raises(InputError, match=r"video b \(#1\), snippet 2 .*all-zero"):
        K.propagate(bad, off, video_ids=ids, window=window, dtype=dtype)


def test_krylov_span_helpers_hand_checked():
    from lanp.kernels.cpu import cg
    spans = np.zeros((4, 2), dtype=np.int64)
    m = cg.nonzero_runs(np.array([0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 0.0, 3.0]), spans)
    assert m == 3 and spans[:m].tolist() == [[1, 3], [5, 6], [7, 8]]
    m = cg.widen_spans(spans, m, 1, 8)         # [0,4) [4,7) [6,8): touching and overlapping
    assert m == 1 and spans[:m].tolist() == [[0, 8]]
    spans[:2] = [[2, 3], [9, 10]]
    m = cg.widen_spans(spans, 2, 2, 12)        # [0,5) and [7,12): a gap of two rows stays
    assert m == 2 and spans[:m].tolist() == [[0, 5], [7, 12]]
    assert cg.widen_spans(spans, 2, 0, 12) == 1 and spans[0].tolist() == [0, 12]   # dense


def full_length_cg(A, y, tol, maxiter):
    """Textbook CG on every row (float64), the algorithm lanp's CG runs, for comparison."""
    z = np.zeros_like(y)
    r = y.copy()
    p = y.copy()
    rr = yy = y @ y
    it = 0
    while it < maxiter and rr > tol * tol * yy:
        q = A @ p
        step = rr / (p @ q)
        z += step * p
        r -= step * q
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
        it += 1
    return z, it


def band_problem(rng, seeds, L=400, k=6):
    """A fresh random smooth band graph (float64) as the CPU CG's band rows, its dense S and y."""
    x, _ = smooth_features(rng, [L], 12, np.float64)
    dense = normalized_similarity(x, window=k)
    band = np.zeros((L, 2 * k + 1))
    for i in range(L):
        for j in range(max(0, i - k), min(L, i + k + 1)):
            band[i, j - i + k] = dense[i, j]
    y = np.zeros(L)
    for s in seeds:
        y[s] = 1.0
    return band, dense, y


SPAN_SEEDS = [(0, -1), (0, 150, -1), (40,)]


@pytest.mark.parametrize("seeds", SPAN_SEEDS)
@pytest.mark.parametrize("maxiter", [3, 60])
def test_cg_on_krylov_spans_equals_full_length_cg(rng, seeds, maxiter):
    """CG restricted to the rows its Krylov vectors can reach gives the full-length CG's
    iterates. With a tolerance no run reaches, both take exactly ``maxiter`` iterations, so the
    iterates are compared: z to float64 rounding, and exactly 0 beyond iterations x k rows of
    every seed (where a full-length CG has exact zeros too)."""
    from lanp.kernels.cpu import cg
    L, k, alpha = 400, 6, 0.99
    band, dense, y = band_problem(rng, seeds, L, k)
    z = np.full(L, np.nan)                              # poisoned: every entry must be written
    it, residual, converged = cg.conjugate_gradient(band, k, y, alpha, 1e-30, maxiter, z)
    A = np.eye(L) - alpha * dense
    z_full, it_full = full_length_cg(A, y, 1e-30, maxiter)
    assert it == it_full == maxiter and not converged
    assert np.linalg.norm(z - z_full) <= 1e-12 * np.linalg.norm(z_full)
    # the true residual, recomputed; both carry the rounding of y - A z (~1e-13 here)
    assert residual == pytest.approx(np.linalg.norm(y - A @ z) / np.linalg.norm(y), rel=1e-9, abs=1e-12)
    reach = np.zeros(L, dtype=bool)
    for s in seeds:
        s = s % L
        reach[max(0, s - (it - 1) * k):s + (it - 1) * k + 1] = True
    assert np.all(z[~reach] == 0.0) and np.all(z_full[~reach] == 0.0)
    if maxiter == 3:
        assert (~reach).sum() > 0                       # the early stop leaves rows untouched


@pytest.mark.parametrize("seeds", SPAN_SEEDS)
def test_cg_on_krylov_spans_converges_like_full_length_cg(rng, seeds):
    """To tol = 1e-8 the span-restricted CG converges with the full-length CG. The stopping
    tests compare recursive residuals summed in different orders, so they may stop one iteration
    apart; both solutions are then within cond(A) tol <= 199e-8 of the exact one."""
    from lanp.kernels.cpu import cg
    L, k, alpha = 400, 6, 0.99
    band, dense, y = band_problem(rng, seeds, L, k)
    z = np.full(L, np.nan)
    it, residual, converged = cg.conjugate_gradient(band, k, y, alpha, 1e-8, 1000, z)
    A = np.eye(L) - alpha * dense
    z_full, it_full = full_length_cg(A, y, 1e-8, 1000)
    assert converged and abs(it - it_full) <= 1, (it, it_full)
    assert residual <= 1e-8 * 1.01
    exact = np.linalg.solve(A, y)
    assert np.linalg.norm(z - exact) <= 199e-8 * np.linalg.norm(exact)
    assert np.linalg.norm(z - z_full) <= 2 * 199e-8 * np.linalg.norm(exact)


def test_memory_check_budgets_every_thread_at_once():
    """The CPU backend builds one graph per thread at a time: with a fake budget that the largest
    graph fits but the two largest together do not, one thread passes and two are refused."""
    from lanp.kernels.memory import check_graph_memory, graph_bytes
    lengths = np.array([100, 90, 20, 10])
    need = graph_bytes(lengths, None)                        # 80,000 and 64,800 bytes for the two largest
    budget = int(need[0] + need[1]) - 1
    check_graph_memory(lengths, None, None, "f", budget=budget, threads=1)
    with pytest.raises(InputError, match="2 largest graphs, built at once by 2 threads"):
        check_graph_memory(lengths, None, None, "f", budget=budget, threads=2)
    check_graph_memory(lengths, None, None, "f", budget=int(need[0] + need[1]), threads=2)
    with pytest.raises(InputError, match="can be spent on one video"):
        check_graph_memory(lengths, None, None, "f", budget=int(need[0]) - 1, threads=1)
    check_graph_memory(lengths[:1], None, None, "f", budget=int(need[0]), threads=16)   # fewer videos than threads


def test_a_row_whose_norm_underflows_is_not_called_all_zero():
    from lanp.kernels import propagate
    x = np.ones((6, 4), dtype=np.float32)
    x[4] = 1e-30                                             # 1e-60 is 0 in float32, not in float64
    with pytest.raises(InputError, match=r"snippet 1 .*squared norm underflows to 0 in float32.*1e-30.*--dtype float64"):
        propagate(x, np.array([0, 3, 6]), backend="cpu")
    propagate(x, np.array([0, 3, 6]), backend="cpu", dtype="float64")          # fine in float64
    x[4] = 0.0
    with pytest.raises(InputError, match="an all-zero feature vector"):
        propagate(x, np.array([0, 3, 6]), backend="cpu")
