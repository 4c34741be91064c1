"""GPU backends on a real device against the float64 reference (skipped without one).

Run on a GPU machine with ``bench/gpu_check.sh``, or ``pytest -m gpu tests/kernels/test_gpu.py
tests/kernels/test_seeds.py tests/kernels/test_terms.py`` (the last two hold GPU rows of their own).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from lanp.kernels import InputError, backends, propagate, similarity, solve
from reference import normalized_similarity, propagate_reference, relative_error
from shared import usable, GPU_BACKENDS, BACKENDS, ragged  # noqa: E402

TOL = {"float32": 1e-4, "float64": 1e-6}


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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("distance", ["sqeuclidean", "rms"])
@pytest.mark.parametrize("window", [None, 3])
def test_symmetric_bit_for_bit_and_exact_zero_on_the_device(backend, distance, window):
    """FMA contraction on the device must not make S_ij and S_ji round differently, nor leave a
    rounding residue as the distance of a repeated snippet (products rounded on their own)."""
    seed = 31
    rng = np.random.default_rng(seed)
    base = (3.0 + rng.normal(size=(6, 40))).astype(np.float32)
    rows = [0, 1, 1, 2, 3, 3, 3, 4, 5, 0]
    x = base[rows]
    offsets = np.array([0, len(rows)])
    kw = dict(sigma=0.05, distance=distance, normalize=True, window=window)
    S = similarity(x, offsets, backend=backend, **kw).dense(0)
    assert np.array_equal(S, S.T), f"seed {seed}"
    ref = normalized_similarity(x.astype(np.float64), **kw)
    for i, j in itertools.permutations(range(len(rows)), 2):
        if rows[i] == rows[j] and (window is None or abs(i - j) <= window):
            assert abs(S[i, j] - ref[i, j]) <= 1e-9 * ref[i, j], (seed, i, j)


@pytest.mark.gpu
def test_fused_launch_just_over_48_kib_with_the_static_array():
    """L = 75 dense needs (75^2 + 5 * 75) * 8 = 48000 B of dynamic shared memory: under 48 KiB
    alone, over it with the kernel's 2048 B static array, so the launch needs the opt-in."""
    if not usable("cupy")[0]:
        pytest.skip("cupy: " + usable("cupy")[1])
    rng = np.random.default_rng(7)
    x, offsets = ragged(rng, [75, 3], 16, "float64")
    r = propagate(x, offsets, backend="cupy", tol=1e-10, maxiter=5000)
    for a, b in zip(offsets[:-1], offsets[1:]):
        assert relative_error(r.z[a:b], propagate_reference(x[a:b])) <= 1e-6


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_device_inputs_keep_the_asked_dtype(dtype):
    """cupy arrays into both GPU backends with dtype=float32 | float64: z on the device, in that dtype."""
    if not usable("cupy")[0]:
        pytest.skip("cupy: " + usable("cupy")[1])
    import cupy
    rng = np.random.default_rng(8)
    x, offsets = ragged(rng, [5, 40, 200], 16, "float64")
    for name in GPU_BACKENDS:
        if usable(name)[0]:
            r = propagate(cupy.asarray(x), offsets, dtype=dtype, backend=name, tol=1e-7)
            assert isinstance(r.z, cupy.ndarray) and r.z.dtype == np.dtype(dtype), name


@pytest.mark.gpu
def test_budget_counts_cupys_pool():
    if not usable("cupy")[0]:
        pytest.skip("cupy: " + usable("cupy")[1])
    import cupy
    from lanp.kernels.cuda import devices
    pool = cupy.get_default_memory_pool()
    a = cupy.empty(256 * 2 ** 20, dtype=np.uint8)
    del a                                           # back to the pool, still taken for the driver
    assert pool.free_bytes() >= 256 * 2 ** 20
    free, _ = cupy.cuda.runtime.memGetInfo()
    assert devices.cupy_budget() >= (free + 256 * 2 ** 20) // 2


def two_devices():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() >= 2
    except Exception:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not two_devices(), reason="needs two CUDA devices")
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_inputs_on_the_second_device_are_computed_there(backend):
    import cupy
    rng = np.random.default_rng(9)
    x, offsets = ragged(rng, [5, 40, 200], 16, "float32")
    expected = propagate(x, offsets, backend=backend, tol=1e-7)
    with cupy.cuda.Device(1):
        x1 = cupy.asarray(x)
    cupy.cuda.Device(0).use()
    r = propagate(x1, offsets, backend=backend, tol=1e-7)
    assert r.z.device.id == 1
    assert np.array_equal(cupy.asnumpy(r.z), expected.z)
    try:
        import torch
    except ImportError:
        return
    t = propagate(torch.as_tensor(x, device="cuda:1"), offsets, backend=backend, tol=1e-7)
    assert t.z.device == torch.device("cuda:1") and np.array_equal(t.z.cpu().numpy(), expected.z)
