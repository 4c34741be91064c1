"""CUDA C kernels (kernels/cuda/*.cu) on the CPU: nvcc builds each file into a host shared library whose
extern "C" twins run the same __host__ __device__ bodies over the whole grid; results are compared
with the float64 dense reference (tests/reference.py). Also compile-checks every .cu for sm_90 with
warnings as errors. Skips only when nvcc is missing."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from cuda_build import (CONTRACTING, CU_FILES, DEFINES, NO_BAD_ROW, NVCC, build_host_library, host_fused, host_similarity,
                        host_solve, nvcc_run)
from lanp.kernels import GraphParams, SolverParams, similarity as cpu_similarity
from lanp.kernels.cuda import plan as cuda_plan
from reference import normalized_similarity, propagate_reference, relative_error

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH or at /usr/local/bin/nvcc")

TOL = {np.float32: 1e-4, np.float64: 1e-6}
LENGTH_SETS = [(1,), (2,), (1, 2, 5), (7, 3, 12, 1, 9), (40, 9, 33)]
DISTANCES = ("sqeuclidean", "rms", "cosine")


@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    return build_host_library(cuda_build_file("lanp"), tmp_path_factory.mktemp("cuda_host"))


def cuda_build_file(stem):
    return next(f for f in CU_FILES if f.stem == stem)


def ragged(rng, lengths, D, dtype, clustered=True):
    """Features with a temporal drift (so neighbouring snippets are similar) plus noise."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    parts = []
    for L in lengths:
        base = rng.normal(size=D)
        drift = np.cumsum(rng.normal(scale=0.3, size=(L, D)), axis=0) if clustered else 0.0
        parts.append(base + drift + rng.normal(scale=0.2, size=(L, D)))
    return np.concatenate(parts).astype(dtype), offsets


def graph_kwargs(g: GraphParams):
    return dict(distance=g.distance, sigma=g.sigma, normalize=g.normalize, window=g.window,
                temporal_scale=g.temporal_scale, terms=g.terms)


def dense_of(values, offsets, graph_offsets, window, v):
    a, b = int(offsets[v]), int(offsets[v + 1])
    L = b - a
    if window is None:
        g0 = int(graph_offsets[v])
        return values[g0:g0 + L * L].reshape(L, L)
    out = np.zeros((L, L))
    for i in range(L):
        for c in range(2 * window + 1):
            j = i + c - window
            if 0 <= j < L:
                out[i, j] = values[a + i, c]
    return out


def test_every_cu_compiles_for_sm90_without_warnings():
    assert CU_FILES, "no .cu files found in kernels/cuda/"
    for cu in CU_FILES:
        proc = nvcc_run(["-cubin", "-arch=sm_90", *DEFINES, "-Werror", "all-warnings", "-o", "/dev/null", str(cu)])
        assert proc.returncode == 0, f"{cu.name}:\n{proc.stderr}"


def test_the_cuda_c_takes_its_codes_from_the_python_table():
    """Without lanp.kernels.codes' -D defines the CUDA C refuses to compile: it declares no code
    of its own, so the backends cannot drift apart."""
    for cu in CU_FILES:
        proc = nvcc_run(["-cubin", "-arch=sm_90", "-o", "/dev/null", str(cu)])
        assert proc.returncode != 0 and "lanp.kernels.codes" in proc.stderr, proc.stderr


def test_host_library_builds_for_every_cu(tmp_path):
    for cu in CU_FILES:
        build_host_library(cu, tmp_path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", LENGTH_SETS)
def test_similarity_matches_reference(rng, lib, dtype, lengths):
    for distance, normalize, window, ts in itertools.product(DISTANCES, (True, False), (None, 1, 3),
                                                             (None, 2.5)):
        D = int(rng.integers(3, 20))
        x, offsets = ragged(rng, lengths, D, dtype)
        g = GraphParams(sigma=float(rng.choice([0.1, 0.7])), distance=distance,
                        normalize=normalize, window=window, temporal_scale=ts)
        values, goff, bad = host_similarity(lib, x, offsets, g, rows_per_item=4)
        assert np.all(bad == NO_BAD_ROW)
        assert not np.isnan(values).any(), "unwritten output entries"
        for v in range(len(lengths)):
            ref = normalized_similarity(x[offsets[v]:offsets[v + 1]].astype(np.float64), **graph_kwargs(g))
            got = dense_of(values, offsets, goff, window, v)
            if np.linalg.norm(ref) == 0:
                assert np.all(got == 0)
                continue
            err = relative_error(got, ref)
            assert err <= TOL[dtype], (g, v, err)
            assert np.array_equal(got, got.T), "S must be exactly symmetric"


@pytest.mark.parametrize("window", [None, 2])
def test_similarity_layout_equals_cpu_backend(lib, window):
    rng = np.random.default_rng(5)
    x, offsets = ragged(rng, (6, 1, 11, 3), 7, np.float64)
    g = GraphParams(window=window, normalize=True)
    values, goff, _ = host_similarity(lib, x, offsets, g)
    cpu = cpu_similarity(x, offsets, window=window, backend="cpu")
    assert values.shape == cpu.values.shape
    if window is None:
        np.testing.assert_array_equal(goff, cpu.graph_offsets)
    np.testing.assert_allclose(values, cpu.values, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("rows_per_item", [1, 2, 5, None])
def test_banded_row_chunks_with_halo(lib, rows_per_item):
    """Long banded videos split into row chunks give the same S as one chunk."""
    rng = np.random.default_rng(rows_per_item or 0)
    x, offsets = ragged(rng, (23, 4, 17), 6, np.float64)
    g = GraphParams(window=3, sigma=0.5, normalize=False)
    values, _, _ = host_similarity(lib, x, offsets, g, rows_per_item=rows_per_item)
    whole, _, _ = host_similarity(lib, x, offsets, g, rows_per_item=10**6)
    np.testing.assert_array_equal(values, whole)
    plan = cuda_plan.similarity_plan(np.diff(offsets), 3, rows_per_item)
    assert plan.items[:, 0].tolist().count(0) == -(-23 // (rows_per_item or 10**6))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", LENGTH_SETS)
def test_fused_propagation_matches_reference(lib, dtype, lengths):
    rng = np.random.default_rng(7 + len(lengths) + (dtype == np.float64))
    solver = SolverParams(alpha=0.99, tol=1e-10 if dtype == np.float64 else 1e-6, maxiter=2000)
    for distance, normalize, window in itertools.product(DISTANCES, (True, False), (None, 2)):
        x, offsets = ragged(rng, lengths, int(rng.integers(3, 12)), dtype)
        g = GraphParams(sigma=0.3, distance=distance, normalize=normalize, window=window)
        z, it, res, conv, bad = host_fused(lib, x, offsets, g, solver)
        assert np.all(bad == NO_BAD_ROW)
        assert conv.all() and np.all(it >= 0) and np.all(res <= 10 * solver.tol)
        for v in range(len(lengths)):
            a, b = offsets[v], offsets[v + 1]
            ref = propagate_reference(x[a:b].astype(np.float64), alpha=0.99, **graph_kwargs(g))
            assert relative_error(z[a:b], ref) <= TOL[dtype], (g, v)


@pytest.mark.parametrize("window", [None, 1, 4])
def test_two_step_similarity_then_solve(lib, window):
    rng = np.random.default_rng(11)
    x, offsets = ragged(rng, (30, 1, 2, 14), 9, np.float32)
    g = GraphParams(window=window, sigma=0.2)
    solver = SolverParams(tol=1e-10, maxiter=3000)
    values, goff, _ = host_similarity(lib, x, offsets, g, rows_per_item=8)
    z, it, res, conv = host_solve(lib, values, offsets, goff, g.band, solver)
    assert conv.all() and np.all(res < 1e-9)
    ref = np.concatenate([propagate_reference(x[a:b].astype(np.float64), **graph_kwargs(g))
                          for a, b in zip(offsets[:-1], offsets[1:])])
    assert relative_error(z, ref) <= 1e-4
    zf, itf, _, _, _ = host_fused(lib, x, offsets, g, solver)
    assert relative_error(zf, z) <= 1e-9


def test_tiny_hand_checked_cases(lib):
    """L = 1: S = [0], z = 1. L = 2: S = [[0, 1], [1, 0]], z = 1 / (1 - alpha) for both snippets."""
    x = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 1.0]])
    offsets = np.array([0, 1, 3])
    for window in (None, 1, 5):
        g = GraphParams(window=window)
        values, goff, _ = host_similarity(lib, x, offsets, g)
        np.testing.assert_array_equal(dense_of(values, offsets, goff, window, 0), [[0.0]])
        np.testing.assert_allclose(dense_of(values, offsets, goff, window, 1), [[0, 1], [1, 0]], rtol=1e-15)
        z, it, res, conv, _ = host_fused(lib, x, offsets, g, SolverParams(alpha=0.5, tol=1e-12))
        np.testing.assert_allclose(z, [1.0, 2.0, 2.0], rtol=1e-12)
        assert it[0] == 1 and conv.all() and np.all(res < 1e-12)


def test_bad_rows_are_reported_per_video(lib):
    x = np.random.default_rng(0).normal(size=(9, 4))
    x[5] = 0.0                       # video 1 (rows 3..8), snippet 2: zero vector
    x[8, 1] = np.nan                 # video 1, snippet 5: NaN (later, so the zero row is first)
    x[1, 0] = np.inf                 # video 0, snippet 1
    offsets = np.array([0, 3, 9])
    for window in (None, 2):
        _, _, bad = host_similarity(lib, x, offsets, GraphParams(window=window), rows_per_item=2)
        assert bad.tolist() == [4 * 1 + 1, 4 * 2 + 2]
        bad = host_fused(lib, x, offsets, GraphParams(window=window), SolverParams())[4]
        assert bad.tolist() == [4 * 1 + 1, 4 * 2 + 2]
    # without normalisation a zero row is fine for the Euclidean distances
    _, _, bad = host_similarity(lib, np.where(np.isfinite(x), x, 1.0), offsets, GraphParams(normalize=False))
    assert bad.tolist() == [NO_BAD_ROW, NO_BAD_ROW]


def test_nonconvergence_is_reported(lib):
    rng = np.random.default_rng(3)
    x, offsets = ragged(rng, (20, 15), 5, np.float64)
    z, it, res, conv, _ = host_fused(lib, x, offsets, GraphParams(), SolverParams(maxiter=1, tol=1e-12))
    assert not conv.any() and np.all(it == 1) and np.all(res > 1e-12)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("window", [None, 2])
def test_repeated_snippets_have_exact_zero_distance(lib, distance, window):
    """Raw float32 features with large norms and repeated snippets: direct differences keep
    d2 = 0 exactly, so a_ij is the temporal term alone (the norm expansion lost 1e-3 here)."""
    rng = np.random.default_rng(2)
    base = (100.0 + rng.normal(size=(4, 32))).astype(np.float32)
    x = base[[0, 0, 1, 1, 1, 2, 3, 3]]
    offsets = np.array([0, 8])
    g = GraphParams(distance=distance, normalize=False, window=window, sigma=0.5)
    values, goff, _ = host_similarity(lib, x, offsets, g)
    ref = normalized_similarity(x.astype(np.float64), **graph_kwargs(g))
    assert relative_error(dense_of(values, offsets, goff, window, 0), ref) <= 1e-6


@pytest.fixture(scope="session")
def contracting_lib(tmp_path_factory):
    """lanp.cu built for the host with FMA contraction everywhere the compiler may (as on the
    device, where nvcc and NVRTC contract by default)."""
    if "fma" not in open("/proc/cpuinfo").read():
        pytest.skip("this CPU has no FMA instructions")
    return build_host_library(cuda_build_file("lanp"), tmp_path_factory.mktemp("cuda_fma"),
                              extra=CONTRACTING, name="lanp_fma")


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_symmetry_and_exact_zeros_survive_fma_contraction(contracting_lib, distance, normalize, dtype):
    """The distance differences use products rounded on their own (lanp_mul_rn: __dmul_rn on
    the device), so even where t_i x_i - t_j x_j could become one FMA, S is symmetric bit for bit
    and a repeated snippet is at distance exactly 0. rms with a small sigma shows any residue:
    sqrt(d2 / D) / (2 sigma^2) turns a d2 of 1e-16 into a relative change of S of about 1e-6."""
    seed = 11 + DISTANCES.index(distance) + 3 * int(normalize) + 6 * (dtype == np.float32)
    rng = np.random.default_rng(seed)
    base = (3.0 + rng.normal(size=(6, 40))).astype(dtype)
    rows = [0, 1, 1, 2, 3, 3, 3, 4, 5, 0]
    x = np.ascontiguousarray(base[rows])
    offsets = np.array([0, x.shape[0]])
    g = GraphParams(distance=distance, normalize=normalize, sigma=0.05 if normalize else 2.0)
    values, goff, bad = host_similarity(contracting_lib, x, offsets, g)
    L = x.shape[0]
    S = values[:L * L].reshape(L, L)
    assert np.all(bad == NO_BAD_ROW)
    assert np.array_equal(S, S.T), f"seed {seed}: max |S - S^T| = {np.abs(S - S.T).max():.3g}"
    ref = normalized_similarity(x.astype(np.float64), **graph_kwargs(g))
    same = [(i, j) for i in range(L) for j in range(L) if i != j and rows[i] == rows[j]]
    for i, j in same:                       # d2 = 0 exactly: S_ij to the float64 reference
        assert abs(S[i, j] - ref[i, j]) <= 1e-9 * ref[i, j], (seed, i, j, S[i, j], ref[i, j])


def banded_cg_pair(rng, lib, tol, maxiter):
    """The CUDA host CG and the CPU CG on one fresh random ragged band problem (300 and 17 rows)."""
    from lanp.kernels import solve as cpu_solve
    x, offsets = ragged(rng, (300, 17), 6, np.float64)
    g = GraphParams(window=3, sigma=0.3)
    values, goff, _ = host_similarity(lib, x, offsets, g, rows_per_item=64)
    cuda = host_solve(lib, values, offsets, goff, g.band, SolverParams(tol=tol, maxiter=maxiter))
    cpu = cpu_solve(cpu_similarity(x, offsets, window=3, sigma=0.3, backend="cpu"), tol=tol,
                    maxiter=maxiter, backend="cpu", warn=False)
    return cuda, cpu


@pytest.mark.parametrize("maxiter", [4, 12])
def test_cg_follows_the_cpu_iterates_and_keeps_zeros_beyond_reach(rng, lib, maxiter):
    """The CUDA CG works only within (j + 1) k rows of a seed in iteration j, like the CPU kernel.
    With a tolerance no run reaches, both stop after exactly ``maxiter`` iterations, so the
    iterates themselves are compared: z to float64 rounding, and exact zeros beyond the Krylov
    reach after 4 iterations. (The 17-row video would reach 1e-30 near 30 iterations.)"""
    (z, it, res, conv), cpu = banded_cg_pair(rng, lib, tol=1e-30, maxiter=maxiter)
    assert np.all(it == maxiter) and np.all(cpu.iterations == maxiter) and not conv.any()
    assert relative_error(z, cpu.z) <= 1e-10
    # true residuals agree to rounding: ||y - A z|| / ||y|| with ||z|| ~ 30 carries ~1e-13
    assert np.allclose(res, cpu.residual, rtol=1e-9, atol=1e-12)
    if maxiter == 4:
        reach = (maxiter - 1) * 3
        assert np.all(z[reach + 1:300 - 1 - reach] == 0.0) and np.any(z[:reach + 1] != 0.0)


def test_cg_converges_where_the_cpu_converges(rng, lib):
    """To tol = 1e-10 both CGs converge on every video, and the solutions differ by at most
    cond(A) tol per side (cond <= (1 + alpha) / (1 - alpha) = 199).

    Their stopping iterations may differ by more than one: CG's residual is not monotone, and near
    tol it can hover for several iterations (seed 1351865617, 300 rows: 2.1e-10, 3.5e-10, 1.2e-10,
    1.0e-10, 1.7e-10 at iterations 120-124, then 3.6e-11), while the rounding of the two kernels'
    differently ordered sums has grown to the size of tol there (z differs by 4e-11 relative at
    iteration 124, 5e-14 at 100). So which iterate first dips below tol is rounding's choice: the
    CPU stopped at 122 (9.97e-11), the CUDA CG at 125 (1.23e-10 at 122). Over 29,600 seeds (59,200
    videos, 2026-12-01 on this 2-core machine) 99% stop together and the largest gap was 6 iterations
    of ~125; at the earlier stop the later CG's residual was at most 2.7 tol. The invariant: the
    later one is on that plateau (below 10 tol where the other stopped) and at most 10 % of the
    iterations (at least 2) behind; a real slowdown (a lost term, a wrong step) breaks both."""
    tol = 1e-10
    state = rng.bit_generator.state
    (z, it, res, conv), cpu = banded_cg_pair(rng, lib, tol=tol, maxiter=2000)
    assert conv.all() and cpu.converged.all()
    assert relative_error(z, cpu.z) <= 2 * 199 * tol
    assert np.all(res < 1e-9) and np.all(cpu.residual < 1e-9)
    later = np.maximum(it, cpu.iterations)
    assert np.all(np.abs(it - cpu.iterations) <= np.maximum(2, 0.1 * later)), (it, cpu.iterations)
    first = np.minimum(it, cpu.iterations)
    for v in np.flatnonzero(it != cpu.iterations):          # the later CG where the earlier stopped
        rng.bit_generator.state = state                     # the same problem again
        (_, _, res_first, _), cpu_first = banded_cg_pair(rng, lib, tol=1e-30, maxiter=int(first[v]))
        behind = res_first[v] if it[v] > cpu.iterations[v] else cpu_first.residual[v]
        assert behind < 10 * tol, (v, it, cpu.iterations, behind)


@pytest.mark.parametrize("window", [None, 2])
def test_per_video_seeds_match_reference(rng, lib, window):
    """One seed list per video (fresh random positions, some from the end) through the fused
    kernel and through similarity + solve, against the float64 dense reference. With a band, CG
    works only within reach of the video's own seeds, so a seed in the middle checks the reach
    rule on per-video positions."""
    lengths = (1, 3, 25, 60, 8)
    x, offsets = ragged(rng, lengths, 7, np.float64)
    seeds = [[0], [-1, 1], [12], [int(rng.integers(0, 60)), -int(rng.integers(1, 61))], [4, 5, -1]]
    g = GraphParams(sigma=0.3, window=window)
    solver = SolverParams(tol=1e-12, maxiter=3000)
    ref = np.concatenate([propagate_reference(x[a:b], seeds=seeds[v], **graph_kwargs(g))
                          for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:]))])
    z, it, res, conv, bad = host_fused(lib, x, offsets, g, solver, seeds=seeds)
    assert np.all(bad == NO_BAD_ROW) and conv.all() and relative_error(z, ref) <= 1e-9
    values, goff, _ = host_similarity(lib, x, offsets, g)
    z, it, res, conv = host_solve(lib, values, offsets, goff, g.band, solver, seeds=seeds)
    assert conv.all() and relative_error(z, ref) <= 1e-9


@pytest.mark.parametrize("terms", ["feature", "temporal"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_term_graphs_match_reference(rng, lib, terms, dtype):
    """W = Wf alone (s = infinity) or Wt alone (1 / (2 sigma^2) = 0) through the same kernels:
    similarity (banded row chunks) and fused propagation, every distance, fresh random input."""
    x, offsets = ragged(rng, (1, 4, 30, 9), 6, dtype)
    solver = SolverParams(tol=1e-12, maxiter=3000)
    for distance, normalize, window in itertools.product(DISTANCES, (True, False), (None, 2)):
        g = GraphParams(sigma=0.3, distance=distance, normalize=normalize, window=window, terms=terms)
        values, goff, bad = host_similarity(lib, x, offsets, g, rows_per_item=8)
        z, it, res, conv, _ = host_fused(lib, x, offsets, g, solver)
        assert np.all(bad == NO_BAD_ROW) and conv.all()
        for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
            xv = x[a:b].astype(np.float64)
            ref = normalized_similarity(xv, **graph_kwargs(g))
            got = dense_of(values, offsets, goff, window, v)
            err = relative_error(got, ref) if np.linalg.norm(ref) else float(np.abs(got).max())
            assert err <= TOL[dtype], (g, v)
            assert relative_error(z[a:b], propagate_reference(xv, **graph_kwargs(g))) <= TOL[dtype], (g, v)
