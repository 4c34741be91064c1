"""The cross-video section of kernels/cuda/lanp.cu on the CPU: nvcc builds lanp.cu into a host library
whose extern "C" twins run the same __host__ __device__ row bodies as the GPU kernels; they are
compared with the numba twins (cpu/neighbours.py, cpu/csr.py) and the float64 references. Then
the cupy backend's own cross-video code (cuda/crossvideo_cupy.py, cuda/csr_cg.py) runs through
the public API on a numpy stand-in for cupy whose kernels are those host twins. Outputs are
poisoned before every call. Skips only when nvcc is missing."""
from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp

from cuda_build import KERNEL_DIR, NVCC, build_host_library, ptr
from lanp.kernels import InputError, anchor_neighbours, backends, solve_csr
from lanp.kernels.codes import NO_BAD_ENTRY
from lanp.kernels.cpu import csr as cpu_csr
from lanp.kernels.cpu import neighbours as cpu_neighbours
from lanp.kernels.cuda import csr_cg
from lanp.kernels.cuda import plan as cuda_plan
from reference import relative_error
from shared import anchor_reference as reference, dense_solution, random_case, random_symmetric, to_csr

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH or at /usr/local/bin/nvcc")

_p, _i64, _int, _dbl = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int, ctypes.c_double
SIGNATURES = {
    "lanp_inverse_norms_f32_host": [_p, _i64, _i64, _dbl, _p, _p],
    "lanp_inverse_norms_f64_host": [_p, _i64, _i64, _dbl, _p, _p],
    "lanp_topk_f32_host": [_p, _p, _i64, _i64, _i64, _p, _p, _p, _p, _int, _p, _p],
    "lanp_topk_f64_host": [_p, _p, _i64, _i64, _i64, _p, _p, _p, _p, _int, _p, _p],
    "lanp_csr_check_host": [_p, _p, _p, _i64, _int, _p],
    "lanp_csr_degrees_host": [_p, _p, _i64, _p],
    "lanp_csr_apply_host": [_p, _p, _p, _p, _dbl, _p, _p, _p, _i64],
}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    lib = build_host_library(KERNEL_DIR / "lanp.cu", tmp_path_factory.mktemp("crossvideo_host"))
    for name, args in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = None
    return lib


def _suffix(a):
    return "f32" if a.dtype == np.float32 else "f64"


def host_norms(lib, x, dtype_max):
    x = np.ascontiguousarray(x)
    inv = np.full(x.shape[0], np.nan)
    status = np.full(x.shape[0], -7, dtype=np.int8)
    getattr(lib, f"lanp_inverse_norms_{_suffix(x)}_host")(ptr(x), x.shape[0], x.shape[1], dtype_max, ptr(inv),
                                                          ptr(status))
    return inv, status


def host_topk(lib, sims, x, inv, row_video, anchor_video, unit64, k):
    R, A = sims.shape
    index = np.full((R, k), -2, dtype=np.int64)
    similarity = np.full((R, k), np.nan)
    getattr(lib, f"lanp_topk_{_suffix(sims)}_host")(
        ptr(sims), ptr(x), R, A, x.shape[1], ptr(inv), ptr(row_video), ptr(anchor_video), ptr(unit64), k,
        ptr(index), ptr(similarity))
    return index, similarity


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norms_and_topk_twins_agree(rng, lib, dtype):
    x, offsets, anchors, anchor_video, k, first_video = random_case(rng, dtype)
    x[0] = 0.0
    if x.shape[0] > 2:
        x[2, 0] = np.nan
    dtype_max = float(np.finfo(dtype).max)
    inv, status = host_norms(lib, x, dtype_max)
    cpu_inv, cpu_status = np.empty(x.shape[0]), np.empty(x.shape[0], np.int8)
    cpu_neighbours.inverse_norms(x, dtype_max, cpu_inv, cpu_status)
    np.testing.assert_array_equal(status, cpu_status)
    np.testing.assert_allclose(inv, cpu_inv, rtol=1e-14)
    x[status != 0] = 1.0                                     # the top-k part on good rows
    inv, _ = host_norms(lib, x, dtype_max)
    A = anchors.shape[0]
    anchors = np.ascontiguousarray(anchors) if A else np.zeros((0, x.shape[1]), dtype)
    inv_a = 1.0 / np.linalg.norm(anchors.astype(np.float64), axis=1) if A else np.zeros(0)
    unit64 = np.ascontiguousarray(anchors * inv_a[:, None], dtype=np.float64)
    sims = np.ascontiguousarray(x @ unit64.astype(dtype).T)
    row_video = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)) + first_video
    anchor_video = np.ascontiguousarray(anchor_video, dtype=np.int64)
    index, similarity = host_topk(lib, sims, x, inv, row_video, anchor_video, unit64, k)
    cpu_index = np.full((x.shape[0], k), -2, dtype=np.int64)
    cpu_similarity = np.full((x.shape[0], k), np.nan)
    cpu_neighbours.topk_rows(sims, x, inv, unit64, row_video, anchor_video, cpu_index, cpu_similarity)
    np.testing.assert_array_equal(index, cpu_index)
    filled = index >= 0
    np.testing.assert_allclose(similarity[filled], cpu_similarity[filled], rtol=1e-13, atol=1e-15)
    assert np.all(np.isneginf(similarity[~filled]))
    ref_index, ref_sim, _ = reference(x, offsets, anchors, anchor_video, k, first_video)
    np.testing.assert_array_equal(index < 0, ref_index < 0)
    assert np.all(np.abs(similarity[filled] - ref_sim[filled]) <= (2e-6 if dtype == np.float32 else 1e-12))


def test_topk_ties_go_to_the_lower_anchor(lib):
    sims = np.array([[0.5, 0.9, 0.9, 0.1, 0.9]])
    x = np.ones((1, 1))
    unit = np.ones((5, 1))                      # rescoring: every kept anchor gets cos 1: a tie again
    index, similarity = host_topk(lib, sims, x, np.ones(1), np.array([7]), np.array([0, 1, 2, 3, 7]), unit, 3)
    assert index.tolist() == [[0, 1, 2]] and similarity.tolist() == [[1.0, 1.0, 1.0]]
    index, _ = host_topk(lib, sims, x, np.ones(1), np.array([7]), np.array([0, 1, 2, 3, 7]), sims.T.copy(), 4)
    assert index.tolist() == [[1, 2, 0, 3]]     # anchor 4 is the row's own video


def host_check(lib, indptr, indices, data, symmetry):
    N = indptr.shape[0] - 1
    keys = np.full(max(N, 1), -5, dtype=np.int64)
    lib.lanp_csr_check_host(ptr(indptr), ptr(indices), ptr(data), N, int(symmetry), ptr(keys))
    return int(keys[:N].min()) if N else NO_BAD_ENTRY


def _broken(rng):
    W = random_symmetric(rng, int(rng.integers(3, 30)), 0.3)
    W[0, 1] = W[1, 0] = 1.0
    indptr, indices, data = (np.ascontiguousarray(a) for a in to_csr(W))
    e = int(rng.integers(0, indices.size))
    how = int(rng.integers(0, 6))
    if how == 1:
        indices[e] = W.shape[0] + 3
    elif how == 2:
        data[e] = -data[e]
    elif how == 3:
        data[e] = np.nan
    elif how == 4:
        data[e] *= 1.5
    elif how == 5 and indptr[1] - indptr[0] >= 1:
        indices[indptr[0]] = 0                  # a nonzero diagonal entry
    return indptr, indices, data


@pytest.mark.parametrize("trial", range(6))
def test_csr_check_twins_agree(rng, lib, trial):
    indptr, indices, data = _broken(rng)
    for symmetry in (False, True):          # (the backends run the symmetry pass on sorted rows only)
        key = host_check(lib, indptr, indices, data, symmetry)
        assert key == cpu_csr.first_bad_entry(indptr, indices, data, symmetry)
        if key != NO_BAD_ENTRY:
            break


def host_apply(lib, indptr, indices, data, dinv, alpha, p):
    u = dinv * p
    q = np.full(p.shape[0], np.nan)
    lib.lanp_csr_apply_host(ptr(indptr), ptr(indices), ptr(data), ptr(dinv), alpha, ptr(p), ptr(u), ptr(q),
                            p.shape[0])
    return q


def test_degrees_apply_and_cg_driver_match_the_dense_reference(rng, lib):
    N = int(rng.integers(2, 70))
    W = random_symmetric(rng, N, 0.2)
    indptr, indices, data = (np.ascontiguousarray(a) for a in to_csr(W))
    dinv = np.full(N, np.nan)
    lib.lanp_csr_degrees_host(ptr(indptr), ptr(data), N, ptr(dinv))
    d = W.sum(axis=1)
    np.testing.assert_allclose(dinv, np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0), rtol=1e-14)
    p = rng.normal(size=N)
    _, S = dense_solution(W, p, 0.9)
    np.testing.assert_allclose(host_apply(lib, indptr, indices, data, dinv, 0.9, p), p - 0.9 * S @ p, rtol=1e-12,
                               atol=1e-14)
    y = rng.normal(size=N)

    def apply(p, u, q):
        lib.lanp_csr_apply_host(ptr(indptr), ptr(indices), ptr(data), ptr(dinv), 0.99, ptr(p), ptr(u), ptr(q), N)

    z, it, res, conv = csr_cg.conjugate_gradient(csr_cg.ArrayOps(np), apply, dinv, y, 0.99, 1e-12, 5000)
    ref, _ = dense_solution(W, y, 0.99)
    assert conv and relative_error(z, ref) < 1e-10 and res < 1e-11
    cpu = solve_csr(indptr, indices, data, y, tol=1e-12, maxiter=5000, backend="cpu")
    assert abs(cpu.iterations - it) <= 1
    z0, it0, res0, conv0 = csr_cg.conjugate_gradient(csr_cg.ArrayOps(np), apply, dinv, np.zeros(N), 0.99, 1e-6, 10)
    assert np.all(z0 == 0) and (it0, res0, conv0) == (0, 0.0, True)


# -- the cupy backend's own code on a numpy stand-in for cupy ------------------------------------

class _ndarray(np.ndarray):
    def get(self):
        return np.array(self)

    @property
    def device(self):
        return types.SimpleNamespace(id=0)


_ndarray.__module__ = "cupy._core.core"


def _wrap(a):
    return np.ascontiguousarray(a).view(_ndarray) if isinstance(a, np.ndarray) else a


class FakeCupy(types.ModuleType):
    """numpy under cupy's names; RawModule kernels run lanp.cu's host twins."""

    def __init__(self, lib):
        super().__init__("cupy")
        self.launches = []
        fake = self

        class Device:
            def __init__(self, index=None):
                self.id = 0

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        self.cuda = types.SimpleNamespace(Device=Device, runtime=types.SimpleNamespace(
            getDevice=lambda: 0, getDeviceCount=lambda: 1, memGetInfo=lambda: (1 << 22, 1 << 30)))

        class Kernel:
            def __init__(self, name):
                self.name = name

            def __call__(self, grid, block, args):
                assert block == (cuda_plan.BLOCK,) and grid[0] >= 1
                fake.launches.append(self.name)
                c = [ptr(a) if isinstance(a, np.ndarray) else a.item() for a in args]
                getattr(lib, self.name + "_host")(*c)

        class RawModule:
            def __init__(self, code, options):
                assert "#error" in code and any(o.startswith("-DLANP_CSR_KEY_STRIDE") for o in options)

            def get_function(self, name):
                return Kernel(name)

        self.RawModule = RawModule
        self.ndarray = _ndarray

    def get_default_memory_pool(self):
        return types.SimpleNamespace(free_bytes=lambda: 0)

    def __getattr__(self, name):
        fn = getattr(np, name)
        if not callable(fn):
            return fn
        return lambda *args, **kwargs: _wrap(fn(*args, **kwargs))


@pytest.fixture
def fake(lib, monkeypatch):
    from lanp.kernels.cuda import crossvideo_cupy, cupy_backend
    cupy = FakeCupy(lib)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    cupy_backend.module.cache_clear()
    cupy_backend.kernel.cache_clear()
    monkeypatch.setitem(backends._REGISTRY, "cupy-host", crossvideo_cupy.CupyBackend())
    yield cupy
    cupy_backend.module.cache_clear()
    cupy_backend.kernel.cache_clear()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_backend_anchor_neighbours_equals_cpu(rng, fake, dtype):
    x, offsets, anchors, anchor_video, k, first_video = random_case(rng, dtype)
    x = np.concatenate([x] * 30)                        # several chunks of the 1 MiB stand-in budget
    offsets = np.concatenate([offsets[:-1] + i * offsets[-1] for i in range(30)] + [[30 * offsets[-1]]])
    anchors = np.concatenate([anchors] * 40)
    anchor_video = np.concatenate([anchor_video] * 40)
    got = anchor_neighbours(x, offsets, anchors, anchor_video, k=k, first_video=first_video, backend="cupy-host")
    cpu = anchor_neighbours(x, offsets, anchors, anchor_video, k=k, first_video=first_video, backend="cpu")
    assert got.backend == "cupy" and type(got.index) is np.ndarray and got.index.dtype == np.int64
    from lanp.kernels.cuda.crossvideo_cupy import chunk_rows
    chunk = chunk_rows(anchors.shape[0], x.itemsize, x.shape[0], (1 << 22) // 2)     # the stand-in's budget
    assert fake.launches.count(f"lanp_topk_{_suffix(x)}") == -(-x.shape[0] // chunk)
    _, _, masked = reference(x, offsets, anchors, anchor_video, k, first_video)
    differ = got.index != cpu.index                      # near-ties of the matmul only
    rows = np.nonzero(differ)[0]
    assert np.all(np.abs(masked[rows, got.index[differ]] - masked[rows, cpu.index[differ]]) <= 1e-6)
    same = got.index == cpu.index
    np.testing.assert_allclose(got.similarity[same], cpu.similarity[same], rtol=1e-13, atol=1e-15)


def test_cupy_backend_anchor_neighbours_errors(fake):
    x = np.ones((6, 3))
    x[4] = np.inf
    with pytest.raises(InputError, match=r"features: video b \(#1\), snippet 1 \(row 4\) has a NaN or Inf"):
        anchor_neighbours(x, np.array([0, 3, 6]), np.ones((2, 3)), np.array([0, 1]), video_ids=["a", "b"],
                          backend="cupy-host")
    with pytest.raises(InputError, match=r"anchor 1 \(of global video 5\) has an all-zero"):
        anchor_neighbours(np.ones((2, 3)), np.array([0, 2]), np.array([[1.0, 0, 0], [0, 0, 0]]), np.array([1, 5]),
                          backend="cupy-host")


def test_cupy_backend_solve_csr_equals_cpu_and_checks_w(rng, fake):
    N = int(rng.integers(2, 60))
    W = random_symmetric(rng, N, 0.2)
    args = to_csr(W)
    y = rng.normal(size=N)
    got = solve_csr(*args, y, tol=1e-12, maxiter=5000, backend="cupy-host")
    cpu = solve_csr(*args, y, tol=1e-12, maxiter=5000, backend="cpu")
    ref, _ = dense_solution(W, y, 0.99)
    assert got.backend == "cupy" and type(got.z) is np.ndarray and got.converged
    assert relative_error(got.z, ref) < 1e-10 and relative_error(got.z, cpu.z) < 1e-10
    assert abs(got.iterations - cpu.iterations) <= 1 and got.residual < 1e-11
    assert {"lanp_csr_check", "lanp_csr_degrees", "lanp_csr_apply"} <= set(fake.launches)
    indptr, indices, data = (a.copy() for a in args)
    if data.size:
        data[-1] *= 2.0
        with pytest.raises(InputError, match="W must be symmetric bit for bit"):
            solve_csr(indptr, indices, data, y, backend="cupy-host")
        data[-1] = -1.0
        with pytest.raises(InputError, match="W must be finite and >= 0"):
            solve_csr(indptr, indices, data, y, backend="cupy-host")
    W = sp.csr_matrix((np.ones(2), np.array([1, 0]), np.array([0, 1, 2])), shape=(2, 2))
    with pytest.warns(Warning, match="did not reach tol"):
        r = solve_csr(W.indptr.astype(np.int64), W.indices.astype(np.int64), W.data, np.array([1.0, -0.5]),
                      tol=1e-14, maxiter=1, backend="cupy-host")
    assert r.iterations == 1 and not r.converged
