"""GPU backends on a real device against the float64 reference (skipped without one).

Run on a GPU machine with ``bench/gpu_check.sh``, or ``pytest -m gpu tests/test_gpu.py
tests/test_seeds.py tests/test_terms.py`` (the last two hold GPU rows of their own).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from lanp.kernels import InputError, backends, propagate, similarity, solve
from reference import normalized_similarity, propagate_reference, relative_error

GPU_BACKENDS = ("cupy", "numba-cuda")
TOL = {"float32": 1e-4, "float64": 1e-6}


def usable(name):
    ok, reason = backends._REGISTRY[name].available() if name in backends._REGISTRY else (False, "not registered")
    return ok, reason


def backend_param(name):
    ok, reason = usable(name)
    return pytest.param(name, marks=[pytest.mark.gpu,
                                     pytest.mark.skipif(not ok, reason=f"{name}: {reason}")])


BACKENDS = [backend_param(n) for n in GPU_BACKENDS]


def ragged(rng, lengths, D, dtype):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    x = np.concatenate([rng.normal(size=D) + np.cumsum(rng.normal(scale=0.3, size=(L, D)), axis=0)
                        for L in lengths])
    return x.astype(dtype), offsets


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_propagate_matches_reference(backend, dtype):
    rng = np.random.default_rng(1)
    # short (fused path) and long (similarity + solve path) videos in one batch
    lengths = [1, 2, 32, 5, 128, 129, 300, 17]
    x, offsets = ragged(rng, lengths, 64, dtype)
    for distance, normalize, window in itertools.product(("sqeuclidean", "rms", "cosine"),
                                                         (True, False), (None, 50)):
        kw = dict(sigma=0.4, distance=distance, normalize=normalize, window=window)
        r = propagate(x, offsets, backend=backend, tol=1e-10, maxiter=5000, **kw)
        assert r.backend == backend and r.z.dtype == np.dtype(dtype) and r.converged.all()
        for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
            ref = propagate_reference(x[a:b].astype(np.float64), **kw)
            assert relative_error(r.z[a:b], ref) <= TOL[dtype], (kw, v)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("window", [None, 3])
def test_similarity_and_solve_match_reference(backend, window):
    rng = np.random.default_rng(2)
    x, offsets = ragged(rng, [1, 7, 40, 600], 33, "float32")
    g = similarity(x, offsets, window=window, backend=backend)
    cpu = similarity(x, offsets, window=window, backend="cpu")
    assert g.values.shape == cpu.values.shape
    for v in range(4):
        ref = normalized_similarity(x[offsets[v]:offsets[v + 1]].astype(np.float64), window=window)
        got = g.dense(v)
        assert (relative_error(got, ref) if np.linalg.norm(ref) else np.abs(got).max()) <= 1e-4
    s = solve(g, backend=backend, tol=1e-10)
    ref = np.concatenate([propagate_reference(x[a:b].astype(np.float64), window=window)
                          for a, b in zip(offsets[:-1], offsets[1:])])
    assert s.converged.all() and relative_error(s.z, ref) <= 1e-4


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_is_named(backend):
    x = np.random.default_rng(3).normal(size=(9, 4)).astype(np.float32)
    x[5] = 0.0
    with pytest.raises(InputError, match=r"video #1.*snippet 2"):
        propagate(x, np.array([0, 3, 9]), backend=backend)


@pytest.mark.gpu
def test_device_arrays_stay_on_device():
    ok, reason = usable("cupy")
    if not ok:
        pytest.skip(f"cupy: {reason}")
    import cupy
    rng = np.random.default_rng(4)
    x, offsets = ragged(rng, [10, 200, 3], 16, "float32")
    ref = propagate(x, offsets, backend="cpu").z
    r = propagate(cupy.asarray(x), offsets, backend="cupy")
    assert isinstance(r.z, cupy.ndarray) and relative_error(r.z.get(), ref) <= 1e-4
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        for name in GPU_BACKENDS:
            if usable(name)[0]:
                t = propagate(torch.as_tensor(x, device="cuda"), offsets, backend=name)
                assert t.z.is_cuda and relative_error(t.z.cpu().numpy(), ref) <= 1e-4


@pytest.mark.gpu
def test_auto_picks_a_gpu_backend():
    if not any(usable(n)[0] for n in GPU_BACKENDS):
        pytest.skip("no GPU backend usable here")
    assert backends.get("auto").name in GPU_BACKENDS
