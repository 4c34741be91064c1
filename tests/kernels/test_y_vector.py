"""The y-vector entry point of the kernels: solve(graph, y=...) and propagate(features, offsets, y=...)
solve (I - alpha S) z = y per video for a given packed right-hand side y (N,).

Checked against a float64 dense reference (numpy.linalg on the dense S of ``similarity``, and on
tests/reference.py's independent S) on fresh random inputs (the ``rng`` fixture), a hand-worked
case, linearity in y, y = the seed indicator against the seed path (bit for bit on the CPU), videos
whose y is all zero, poisoned outputs, and every refusal. Three sections: the CPU backend (and the
GPU backends on a device, ``gpu`` marker, through the same tests); lanp.cu's y kernels through the
cupy backend's own code on their nvcc-built host twins (tests/fake_cupy.py, taught lanp_solve_y
here); numba.cuda under the CUDA simulator (one subprocess, a fresh seed).
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lanp.kernels as K
from lanp.kernels import ConvergenceWarning, InputError
from lanp.kernels.arrays import to_numpy
from cuda_build import DEFINES, KERNEL_DIR, NVCC, build_host_library, nvcc_run
from cuda_build import ptr as host_ptr
from lanp.kernels.cuda import plan as cuda_plan
from reference import normalized_similarity, relative_error
from shared import BACKENDS, DEVICES, smooth_features

ALL = ["cpu", *BACKENDS]


def random_y(rng, offsets, zero_videos=()):
    """Mixed-sign y with some exact zeros; the videos ``zero_videos`` all zero."""
    N = int(offsets[-1])
    y = rng.normal(size=N) * (rng.random(N) < 0.6)
    for v in zero_videos:
        y[offsets[v]:offsets[v + 1]] = 0.0
    return y


def dense_reference(S_of, offsets, y, alpha):
    """z = (I - alpha S_v)^-1 y_v per video, float64 numpy.linalg.solve on the dense S."""
    z = np.zeros(int(offsets[-1]))
    for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        S = S_of(v)
        z[a:b] = np.linalg.solve(np.eye(b - a) - alpha * S, y[a:b])
    return z


def per_video_errors(z, ref, offsets, y):
    """Relative error per video (absolute where the reference is 0: y_v = 0)."""
    out = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        scale = np.linalg.norm(ref[a:b])
        out.append(float(np.linalg.norm(np.asarray(z[a:b], np.float64) - ref[a:b]) / (scale or 1.0)))
    return np.array(out)


def host(a):
    """A host copy of a result array (GPU backends may return device arrays)."""
    return to_numpy(a)


# -- against the float64 dense reference ---------------------------------------------------------

@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("y_dtype", [np.float32, np.float64])
def test_solve_matches_the_dense_float64_solve(rng, backend, window, y_dtype):
    lengths = rng.integers(1, 60, size=int(rng.integers(2, 8)))
    x, offsets = smooth_features(rng, lengths, int(rng.integers(2, 12)), np.float64)
    alpha = float(rng.uniform(0.5, 0.99))
    y = random_y(rng, offsets, zero_videos=[int(rng.integers(len(lengths)))]).astype(y_dtype)
    g = K.similarity(x, offsets, window=window, sigma=0.5, backend="cpu")
    r = K.solve(g, y=y, alpha=alpha, tol=1e-12, backend=backend)
    ref = dense_reference(g.dense, offsets, y.astype(np.float64), alpha)
    errors = per_video_errors(host(r.z), ref, offsets, y)
    assert errors.max() <= 1e-10, errors
    assert r.converged.all() and np.isfinite(r.residual).all() and r.residual.max() <= 1e-11
    A = [np.eye(b - a) - alpha * g.dense(v) for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:]))]
    for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        yv = y[a:b].astype(np.float64)
        if not yv.any():
            continue
        true = np.linalg.norm(yv - A[v] @ np.asarray(host(r.z)[a:b], np.float64)) / np.linalg.norm(yv)
        assert abs(r.residual[v] - true) <= 1e-12 + 1e-6 * true, v      # the residual is ||y_v||-relative


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("window", [None, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_propagate_matches_the_independent_float64_reference(rng, backend, window, dtype):
    """S from tests/reference.py (no lanp code), float64 features there; float32 features give
    float32 dot products in the kernel, so a looser bound."""
    lengths = rng.integers(1, 50, size=int(rng.integers(2, 7)))
    x, offsets = smooth_features(rng, lengths, int(rng.integers(2, 10)), dtype)
    alpha = float(rng.uniform(0.5, 0.99))
    y = random_y(rng, offsets)
    graph = dict(sigma=0.5, window=window)
    tol = 1e-12 if dtype == np.float64 else 1e-7
    r = K.propagate(x, offsets, y=y, alpha=alpha, tol=tol, backend=backend, **graph)
    assert host(r.z).dtype == dtype
    ref = dense_reference(lambda v: normalized_similarity(x[offsets[v]:offsets[v + 1]].astype(np.float64), **graph),
                          offsets, y, alpha)
    errors = per_video_errors(host(r.z), ref, offsets, y)
    assert errors.max() <= (1e-10 if dtype == np.float64 else 1e-4), errors


def test_hand_worked_case():
    """L = 1: S = [0], z = y. L = 2: S = [[0, 1], [1, 0]] whatever the features, so with
    alpha = 1/2, (I - alpha S) z = (1, -2) gives z = (y1 + y2/2, y2 + y1/2) / (3/4) = (0, -2).
    L = 3 with y = 0: z = 0 after 0 iterations, residual 0, converged."""
    x = np.array([[1.0, 2.0], [0.5, 0.1], [0.3, 0.9], [1, 0], [0, 1], [1, 1]])
    offsets = np.array([0, 1, 3, 6])
    y = np.array([3.0, 1.0, -2.0, 0.0, 0.0, 0.0])
    for r in (K.propagate(x, offsets, y=y, alpha=0.5, tol=1e-14, backend="cpu"),
              K.solve(K.similarity(x, offsets, backend="cpu"), y=y, alpha=0.5, tol=1e-14, backend="cpu")):
        np.testing.assert_allclose(r.z[:3], [3.0, 0.0, -2.0], rtol=0, atol=1e-14)
        assert r.z[3:].tolist() == [0.0, 0.0, 0.0]
        assert r.iterations[2] == 0 and r.residual[2] == 0.0 and r.converged.all()


# -- linearity, the seed path, zero videos ---------------------------------------------------------

@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("window", [None, 5])
def test_linear_in_y(rng, backend, window):
    lengths = rng.integers(2, 70, size=5)
    x, offsets = smooth_features(rng, lengths, 6, np.float64)
    g = K.similarity(x, offsets, window=window, backend="cpu")
    y1, y2 = random_y(rng, offsets), random_y(rng, offsets)
    a, b = rng.normal(size=2)
    solve = lambda y: np.asarray(host(K.solve(g, y=y, alpha=0.95, tol=1e-13, backend=backend).z))
    combined = a * solve(y1) + b * solve(y2)
    assert relative_error(solve(a * y1 + b * y2), combined) <= 1e-11
    assert np.array_equal(solve(0.0 * y1), np.zeros_like(y1))


def indicator(offsets, seeds):
    """The packed y that is 1 at the seeds (one list for all videos, or one per video)."""
    positions, seed_offsets = K.pack_seeds(seeds, np.diff(offsets))
    y = np.zeros(int(offsets[-1]))
    video = np.repeat(np.arange(len(offsets) - 1), np.diff(seed_offsets))
    y[offsets[video] + positions] = 1.0
    return y


@pytest.mark.parametrize("window", [None, 2, 40])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seed_indicator_equals_the_seed_path_bit_for_bit_on_the_cpu(rng, window, dtype):
    lengths = rng.integers(1, 90, size=9)
    x, offsets = smooth_features(rng, lengths, 12, dtype)
    per_video = [rng.choice(L, size=int(rng.integers(1, min(L, 4) + 1)), replace=False) for L in lengths]
    for seeds in ((0, -1), per_video):
        y = indicator(offsets, seeds)
        for by_seeds, by_y in ((K.propagate(x, offsets, seeds=seeds, window=window, backend="cpu"),
                                K.propagate(x, offsets, y=y, window=window, backend="cpu")),
                               (K.solve(K.similarity(x, offsets, window=window), seeds=seeds, backend="cpu"),
                                K.solve(K.similarity(x, offsets, window=window), y=y, backend="cpu"))):
            assert by_y.z.dtype == by_seeds.z.dtype
            assert np.array_equal(by_y.z.view(np.uint8), by_seeds.z.view(np.uint8))
            assert np.array_equal(by_y.iterations, by_seeds.iterations)
            assert np.array_equal(by_y.residual, by_seeds.residual)
            assert np.array_equal(by_y.converged, by_seeds.converged)


def test_float32_and_float64_y_give_the_same_bits(rng):
    x, offsets = smooth_features(rng, [17, 40, 3], 5, np.float32)
    y = random_y(rng, offsets).astype(np.float32)
    a = K.propagate(x, offsets, y=y, window=3, backend="cpu")
    b = K.propagate(x, offsets, y=y.astype(np.float64), window=3, backend="cpu")
    assert np.array_equal(a.z, b.z) and np.array_equal(a.iterations, b.iterations)


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("window", [None, 3])
def test_all_zero_videos_get_zero_and_leave_the_others_alone(rng, backend, window):
    lengths = rng.integers(1, 40, size=6)
    x, offsets = smooth_features(rng, lengths, 4, np.float64)
    zero = [0, 3]
    y = random_y(rng, offsets, zero_videos=zero)
    for v in range(len(lengths)):                     # every other video has a nonzero entry
        if v not in zero:
            y[offsets[v]] = 1.0 + rng.random()
    r = K.propagate(x, offsets, y=y, window=window, backend=backend)
    other = y.copy()
    for v in zero:
        other[offsets[v]:offsets[v + 1]] = rng.normal(size=lengths[v])
    s = K.propagate(x, offsets, y=other, window=window, backend=backend)
    z, zs = host(r.z), host(s.z)
    for v in range(len(lengths)):
        a, b = offsets[v], offsets[v + 1]
        if v in zero:
            assert np.all(z[a:b] == 0.0) and r.iterations[v] == 0
            assert r.residual[v] == 0.0 and r.converged[v]
        else:                                         # videos are solved independently
            assert np.array_equal(z[a:b], zs[a:b]) and r.iterations[v] == s.iterations[v]
            assert r.iterations[v] >= 1


# -- poisoned outputs ---------------------------------------------------------------------------------

def test_every_output_is_written_in_the_y_path(rng):
    """The kernels' outputs are NaN / -1 before the run (contract.poisoned_solver_outputs): none is
    left after it, for dense and banded graphs, with zero videos among them."""
    x, offsets = smooth_features(rng, [1, 2, 30, 7, 55], 3, np.float64)
    y = random_y(rng, offsets, zero_videos=[3])
    for window in (None, 2):
        for r in (K.propagate(x, offsets, y=y, window=window, backend="cpu"),
                  K.solve(K.similarity(x, offsets, window=window), y=y, backend="cpu")):
            assert np.isfinite(r.z).all() and np.isfinite(r.residual).all()
            assert (r.iterations >= 0).all()


def test_a_kernel_that_writes_nothing_is_caught_in_the_y_path(monkeypatch):
    import lanp.kernels.cpu.packed as C
    for kernel in ("propagate_packed", "solve_packed"):
        monkeypatch.setattr(C, kernel, lambda *args, **kwargs: None)
    x = np.ones((3, 2)) + np.eye(3, 2)
    with pytest.raises(RuntimeError, match="wrote no result for video #0"):
        K.propagate(x, np.array([0, 3]), y=np.ones(3), backend="cpu")
    graph = K.Graph(np.zeros(9), np.array([0, 3]), np.array([0, 9]), None)
    with pytest.raises(RuntimeError, match="wrote no result"):
        K.solve(graph, y=np.ones(3), backend="cpu")


def test_unconverged_videos_warn_in_the_y_path(rng):
    x, offsets = smooth_features(rng, [60, 3], 8)
    with pytest.warns(ConvergenceWarning, match=r"video long \(#0\)"):
        r = K.propagate(x, offsets, y=random_y(rng, offsets) + 1.0, maxiter=1, video_ids=["long", "short"],
                        backend="cpu")
    assert r.iterations[0] == 1 and not r.converged[0] and r.residual[0] > 1e-6


# -- refusals -----------------------------------------------------------------------------------------

def entry_points(x, offsets):
    g = K.similarity(x, offsets, backend="cpu")
    return {"propagate": lambda **kw: K.propagate(x, offsets, backend="cpu", video_ids=["a", "b"], **kw),
            "solve": lambda **kw: K.solve(g, backend="cpu", video_ids=["a", "b"], **kw)}


@pytest.mark.parametrize("entry", ["propagate", "solve"])
@pytest.mark.parametrize("y, match", [
    (np.zeros(6), r"y must be the packed right-hand side \(N,\) with N = 7 snippets .*got shape \(6,\)"),
    (np.zeros(8), r"N = 7 .*got shape \(8,\)"),
    (np.zeros((7, 1)), r"got shape \(7, 1\)"),
    (np.zeros(7, dtype=np.int64), "y must be float32 or float64, got int64"),
    (np.zeros(7, dtype=np.float16), "y must be float32 or float64, got float16"),
    (np.zeros(7, dtype=bool), "got bool"),
    (np.zeros(7, dtype=np.complex128), "got complex128"),
])
def test_bad_y_is_refused(entry, y, match):
    x, offsets = np.eye(7, 3) + 0.5, np.array([0, 3, 7])
    with pytest.raises(InputError, match=match):
        entry_points(x, offsets)[entry](y=y)


@pytest.mark.parametrize("entry", ["propagate", "solve"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_y_names_the_video_snippet_and_value(entry, bad):
    x, offsets = np.eye(7, 3) + 0.5, np.array([0, 3, 7])
    y = np.ones(7, dtype=np.float32)
    y[5] = bad
    y[6] = bad
    with pytest.raises(InputError, match=rf"y of video b \(#1\), snippet 2 \(row 5\) is {bad!r}: y must be "
                                         rf"finite; 2 such entries"):
        entry_points(x, offsets)[entry](y=y)


@pytest.mark.parametrize("entry", ["propagate", "solve"])
@pytest.mark.parametrize("seeds, shown", [((0,), r"\[0\]"), ((0, 1, -1), r"\[0, 1, -1\]"),
                                          ([[0], [1, 2]], r"\(one list per video\)"),
                                          (np.array([-1, 0]), r"\[-1, 0\]")])
def test_y_and_seeds_together_are_refused_naming_both(entry, seeds, shown):
    x, offsets = np.eye(7, 3) + 0.5, np.array([0, 3, 7])
    with pytest.raises(InputError, match=rf"y and seeds={shown} were both given.*leave seeds at its default"):
        entry_points(x, offsets)[entry](y=np.ones(7), seeds=seeds)


def test_default_seeds_given_explicitly_with_y_are_the_default(rng):
    x, offsets = smooth_features(rng, [5, 9], 3, np.float64)
    y = random_y(rng, offsets)
    a = K.propagate(x, offsets, y=y, seeds=(0, -1), backend="cpu")
    b = K.propagate(x, offsets, y=y, seeds=np.array([0, -1]), backend="cpu")
    c = K.propagate(x, offsets, y=y, backend="cpu")
    assert np.array_equal(a.z, c.z) and np.array_equal(b.z, c.z)


def test_a_list_y_is_read_as_an_array(rng):
    x, offsets = smooth_features(rng, [4, 6], 3, np.float64)
    y = random_y(rng, offsets)
    assert np.array_equal(K.propagate(x, offsets, y=list(y), backend="cpu").z,
                          K.propagate(x, offsets, y=y, backend="cpu").z)


# -- the CUDA C kernels: the cupy backend's own code on lanp.cu's host twins (tests/fake_cupy.py) ----

needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH or at /usr/local/bin/nvcc")
Y_HOST_TWINS = {"lanp_solve_y_host": "lanp_solve_host", "lanp_fused_y_f32_host": "lanp_fused_f32_host",
                "lanp_fused_y_f64_host": "lanp_fused_f64_host"}


@pytest.fixture(scope="module")
def lanp_cu(tmp_path_factory):
    """lanp.cu built by nvcc into a host library; the *_y twins declared as their seed-path
    twins plus the trailing y pointer."""
    lib = build_host_library(KERNEL_DIR / "lanp.cu", tmp_path_factory.mktemp("y_host"))
    for name, seed_twin in Y_HOST_TWINS.items():
        getattr(lib, name).argtypes = [*getattr(lib, seed_twin).argtypes, ctypes.c_void_p]
        getattr(lib, name).restype = None
    return lib


@pytest.fixture
def cupy_host(lanp_cu, monkeypatch):
    """The 'cupy-host' backend: CupyBackend over a numpy stand-in for cupy that knows lanp_solve_y
    too; returns the stand-in (its .launches lists every launch)."""
    from fake_cupy import FakeCupy, clear_cupy_caches, install_fake_cupy

    class FakeCupyWithY(FakeCupy):
        def launch(self, kernel, grid, block, args, shared_mem):
            if kernel.name != "lanp_solve_y":
                return super().launch(kernel, grid, block, args, shared_mem)
            self.launches.append((kernel.name, grid[0], shared_mem))
            c = [host_ptr(a) if isinstance(a, np.ndarray) else
                 (float(a) if isinstance(a, (float, np.floating)) else int(a)) for a in args]
            self.lib.lanp_solve_y_host(*c[:4], grid[0], *c[4:])      # as lanp_solve_host, y last

    def make(arch="sm_86", free=2 ** 34):
        return install_fake_cupy(monkeypatch, FakeCupyWithY(lanp_cu, DEVICES[arch], free))

    yield make
    clear_cupy_caches()


HOST_LENGTHS = [1, 2, 33, 75, 128, 129, 300, 17]     # fused (L <= 128 and fits) and two-step videos


@needs_nvcc
@pytest.mark.parametrize("window", [None, 20])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_c_propagate_with_y_matches_the_float64_reference(rng, cupy_host, window, dtype):
    fake = cupy_host("sm_86")
    x, offsets = smooth_features(rng, HOST_LENGTHS, 12, dtype)
    y = random_y(rng, offsets, zero_videos=[int(rng.integers(len(HOST_LENGTHS)))])
    graph = dict(sigma=0.5, window=window)
    r = K.propagate(x, offsets, y=y, tol=1e-12 if dtype == np.float64 else 1e-7, backend="cupy-host", **graph)
    assert r.backend == "cupy" and r.z.dtype == dtype
    names = {name for name, _, _ in fake.launches}
    suffix = "f32" if dtype == np.float32 else "f64"
    assert {f"lanp_fused_y_{suffix}", "lanp_solve_y"} <= names            # both paths took y
    assert not names & {f"lanp_fused_{suffix}", "lanp_solve"}
    ref = dense_reference(lambda v: normalized_similarity(x[offsets[v]:offsets[v + 1]].astype(np.float64), **graph),
                          offsets, y, 0.99)
    errors = per_video_errors(r.z, ref, offsets, y)
    assert errors.max() <= (1e-8 if dtype == np.float64 else 1e-4), errors


@needs_nvcc
@pytest.mark.parametrize("window", [None, 20])
def test_cuda_c_solve_with_y_zero_videos_and_the_seed_indicator(rng, cupy_host, window):
    cupy_host("sm_90")
    x, offsets = smooth_features(rng, HOST_LENGTHS, 6, np.float64)
    g = K.similarity(x, offsets, window=window, sigma=0.5, backend="cupy-host")
    zero = [1, 5]
    y = random_y(rng, offsets, zero_videos=zero)
    for v in set(range(len(HOST_LENGTHS))) - set(zero):
        y[offsets[v]] = 1.0 + rng.random()
    r = K.solve(g, y=y, alpha=0.95, tol=1e-12, backend="cupy-host")
    ref = dense_reference(g.dense, offsets, y, 0.95)
    assert per_video_errors(r.z, ref, offsets, y).max() <= 1e-9
    for v in zero:
        assert np.all(r.z[offsets[v]:offsets[v + 1]] == 0.0) and r.iterations[v] == 0
        assert r.residual[v] == 0.0 and r.converged[v]
    cpu = K.solve(K.similarity(x, offsets, window=window, sigma=0.5, backend="cpu"), y=y, alpha=0.95, tol=1e-12,
                  backend="cpu")
    assert relative_error(r.z, cpu.z) <= 1e-9
    seeds = [[0], [-1], [3, -1], [0, 40], [5], [0, -1], [1, 200], [-2]]
    for by_seeds, by_y in ((K.solve(g, seeds=seeds, backend="cupy-host"),
                            K.solve(g, y=indicator(offsets, seeds), backend="cupy-host")),
                           (K.propagate(x, offsets, window=window, sigma=0.5, seeds=seeds, backend="cupy-host"),
                            K.propagate(x, offsets, window=window, sigma=0.5, y=indicator(offsets, seeds),
                                        backend="cupy-host"))):
        # the y kernels work on every row (the seed kernels on the seeds' reach): extra exact zeros
        assert np.array_equal(by_y.z, by_seeds.z) and np.array_equal(by_y.iterations, by_seeds.iterations)
        assert np.array_equal(by_y.residual, by_seeds.residual)


@needs_nvcc
@pytest.mark.parametrize("window", [None, 20])
def test_cuda_c_memory_groups_give_the_same_bits_with_y(rng, cupy_host, window):
    x, offsets = smooth_features(rng, HOST_LENGTHS, 12, np.float64)
    y = random_y(rng, offsets)
    cupy_host("sm_86", free=2 ** 34)
    one = K.propagate(x, offsets, y=y, window=window, backend="cupy-host", tol=1e-10)
    need = cuda_plan.two_step_bytes(np.array(HOST_LENGTHS), window or 0, 12, 8)
    fake = cupy_host("sm_86", free=2 * int(need.max()))                  # a budget of one long video
    grouped = K.propagate(x, offsets, y=y, window=window, backend="cupy-host", tol=1e-10)
    assert sum("similarity" in n for n, _, _ in fake.launches) >= 2
    for field in ("z", "iterations", "residual", "converged"):
        assert np.array_equal(getattr(one, field), getattr(grouped, field)), field


@needs_nvcc
def test_cuda_c_y_kernels_compile_warning_free_for_sm_90():
    proc = nvcc_run(["-cubin", "-arch=sm_90", *DEFINES, "-Werror", "all-warnings", "-Xptxas", "-v",
                     "-o", "/dev/null", str(KERNEL_DIR / "lanp.cu")])
    assert proc.returncode == 0, proc.stderr
    for name in ("lanp_solve_y", "lanp_fused_y_f32", "lanp_fused_y_f64"):
        assert f"Compiling entry function '{name}'" in proc.stderr


# -- numba.cuda under the CUDA simulator (a subprocess: the simulator must be on before numba loads) --

SIM_SCRIPT = textwrap.dedent(r'''
    import json, os, sys
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    sys.setswitchinterval(1e-4)
    sys.path.insert(0, TESTS)
    sys.path.insert(0, os.path.join(TESTS, "kernels"))
    import numpy as np
    from numba import config, cuda
    assert config.ENABLE_CUDASIM
    import lanp.kernels as K
    from lanp.kernels import backends
    from lanp.kernels.cuda.numba_backend import NumbaCudaBackend
    from reference import normalized_similarity, relative_error
    from shared import smooth_features
    from test_y_vector import dense_reference, indicator, per_video_errors, random_y

    backends.register(NumbaCudaBackend(block=8))     # small blocks: fewer simulator threads
    rng = np.random.default_rng(SEED)
    out = {"propagate": [], "solve": [], "linear": [], "indicator": [], "zero": [], "device": []}
    lengths = (1, 5, 12, 3, 9)
    for dtype in ("float32", "float64"):
        x, offsets = smooth_features(rng, lengths, 3, dtype)
        for window in (None, 2):
            graph = dict(sigma=0.5, window=window)
            y = random_y(rng, offsets)
            r = K.propagate(x, offsets, y=y, tol=1e-12 if dtype == "float64" else 1e-7, maxiter=500,
                            backend="numba-cuda", **graph)
            ref = dense_reference(lambda v: normalized_similarity(
                x[offsets[v]:offsets[v + 1]].astype(np.float64), **graph), offsets, y, 0.99)
            out["propagate"].append([dtype, window, r.z.dtype.name, float(per_video_errors(r.z, ref, offsets, y).max()),
                                     r.backend])
            if dtype == "float32":
                continue
            g = K.similarity(x, offsets, backend="numba-cuda", **graph)
            ref = dense_reference(g.dense, offsets, y, 0.9)
            s = K.solve(g, y=y, alpha=0.9, tol=1e-12, maxiter=500, backend="numba-cuda")
            out["solve"].append([window, float(per_video_errors(s.z, ref, offsets, y).max()),
                                 bool(s.converged.all())])
            y2 = random_y(rng, offsets)
            a, b = rng.normal(size=2)
            z = lambda yy: K.solve(g, y=yy, alpha=0.9, tol=1e-13, maxiter=500, backend="numba-cuda").z
            out["linear"].append([window, relative_error(z(a * y + b * y2), a * z(y) + b * z(y2))])
            seeds = [[0], [-1, 1], [6], [2], [0, -1]]
            for by_seeds, by_y in ((K.solve(g, seeds=seeds, backend="numba-cuda"),
                                    K.solve(g, y=indicator(offsets, seeds), backend="numba-cuda")),
                                   (K.propagate(x, offsets, seeds=seeds, backend="numba-cuda", **graph),
                                    K.propagate(x, offsets, y=indicator(offsets, seeds), backend="numba-cuda",
                                                **graph))):
                out["indicator"].append([window, bool(np.array_equal(by_y.z, by_seeds.z)),
                                         bool(np.array_equal(by_y.iterations, by_seeds.iterations)),
                                         relative_error(by_y.z, by_seeds.z)])
            yz = y.copy()
            yz[offsets[2]:offsets[3]] = 0.0
            r = K.propagate(x, offsets, y=yz, backend="numba-cuda", **graph)
            zv = r.z[offsets[2]:offsets[3]]
            out["zero"].append([window, bool(np.all(zv == 0.0)), int(r.iterations[2]), float(r.residual[2]),
                                bool(r.converged[2]), bool(np.isfinite(r.z).all())])
    # a device y (numba device array) and device features: z stays on the device
    x, offsets = smooth_features(rng, (4, 7), 3, "float64")
    y = random_y(rng, offsets)
    host = K.propagate(x, offsets, y=y, backend="numba-cuda")
    dev = K.propagate(cuda.to_device(x), offsets, y=cuda.to_device(y), backend="numba-cuda")
    out["device"] = [type(dev.z).__module__, bool(np.array_equal(dev.z.copy_to_host(), host.z))]
    print("RESULT" + json.dumps(out))
''')


@pytest.fixture(scope="module")
def sim(request):
    """Run SIM_SCRIPT once with a fresh seed (printed on failure via the assertion messages)."""
    seed = int(os.environ.get("LANP_TEST_SEED") or np.random.SeedSequence().entropy % 2 ** 32)
    tests = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=os.pathsep.join(
        [str(tests.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", f"TESTS = {str(tests)!r}\nSEED = {seed}\n" + SIM_SCRIPT],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"seed {seed}: " + proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    return seed, json.loads(line[len("RESULT"):])


def test_simulator_propagate_and_solve_with_y_match_the_float64_reference(sim):
    seed, out = sim
    assert len(out["propagate"]) == 4 and len(out["solve"]) == 2
    for dtype, window, zdtype, err, name in out["propagate"]:
        assert name == "numba-cuda" and zdtype == dtype, seed
        assert err <= (1e-9 if dtype == "float64" else 1e-4), (seed, dtype, window, err)
    for window, err, converged in out["solve"]:
        assert err <= 1e-10 and converged, (seed, window, err)


def test_simulator_linearity_zero_videos_and_the_seed_indicator(sim):
    seed, out = sim
    for window, err in out["linear"]:
        assert err <= 1e-11, (seed, window, err)
    assert len(out["indicator"]) == 4
    for window, same_z, same_iterations, err in out["indicator"]:
        assert same_z and same_iterations, (seed, window, err)
    for window, zero, iterations, residual, converged, finite in out["zero"]:
        assert zero and iterations == 0 and residual == 0.0 and converged and finite, (seed, window)
    module, same = out["device"]
    assert module.startswith("numba") and same, seed
