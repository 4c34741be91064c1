"""The cupy backend's own code run without a GPU: a numpy stand-in for cupy (tests/fake_cupy.py)
whose kernels are lanp.cu's host twins. Checks the fused/two-step split on different devices,
the shared-memory opt-in (the stand-in refuses launches CUDA would refuse), memory groups and
their sub-batches (same bits whatever the grouping), per-video seeds through the groups,
refusals, and the unfused similarity/solve pair, against the CPU backend and the float64
reference."""
from __future__ import annotations

import numpy as np
import pytest

from cuda_build import NVCC, build_host_library
from cuda_build import KERNEL_DIR
from lanp.kernels import InputError, propagate, similarity, solve
from lanp.kernels.cuda import plan as cuda_plan
from reference import propagate_reference, relative_error
from shared import DEVICES

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH or at /usr/local/bin/nvcc")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_host_library(KERNEL_DIR / "lanp.cu", tmp_path_factory.mktemp("cupy_host"))


@pytest.fixture
def install(lib, monkeypatch):
    """install(arch, free_bytes, pool_free) -> the fake cupy, with a 'cupy-host' backend."""
    from fake_cupy import FakeCupy, clear_cupy_caches, install_fake_cupy

    def make(arch="sm_86", free=2 ** 34, pool=0):
        return install_fake_cupy(monkeypatch, FakeCupy(lib, DEVICES[arch], free, pool))

    yield make
    clear_cupy_caches()


def ragged(seed, lengths, D, dtype):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    x = np.concatenate([rng.normal(size=D) + np.cumsum(rng.normal(scale=0.3, size=(L, D)), axis=0)
                        for L in lengths])
    return x.astype(dtype), offsets


LENGTHS = [1, 2, 33, 75, 128, 129, 300, 17]


@pytest.mark.parametrize("arch", ["sm_75", "sm_86", "sm_90"])
@pytest.mark.parametrize("window", [None, 20])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_propagate_matches_the_reference_on_every_device(install, arch, window, dtype):
    fake = install(arch)
    seed = 40 + len(arch) + (window or 0)
    x, offsets = ragged(seed, LENGTHS, 12, dtype)
    kw = dict(sigma=0.4, window=window, tol=1e-10, maxiter=5000)
    r = propagate(x, offsets, backend="cupy-host", **kw)
    assert r.backend == "cupy" and r.z.dtype == np.dtype(dtype) and r.converged.all()
    for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        ref = propagate_reference(x[a:b].astype(np.float64), window=window, sigma=0.4)
        assert relative_error(r.z[a:b], ref) <= (1e-4 if dtype == "float32" else 1e-7), (seed, v)
    fused = [launch for launch in fake.launches if "fused" in launch[0]]
    assert len(fused) == 1
    if window is None:
        # L = 75 dense: 48000 B dynamic + 2048 B static > 48 KiB, fused only after the opt-in;
        # sm_75 fuses dense videos up to L = 86, sm_86 up to 108, sm_90 up to 128
        longest = {"sm_75": 75, "sm_86": 75, "sm_90": 128}[arch]
        assert fused[0][2] == (longest ** 2 + 5 * longest) * 8


def test_opt_in_is_needed_just_over_48_kib(install, monkeypatch):
    """Without the opt-in the stand-in refuses the launch as CUDA would: the backend must ask."""
    fake = install("sm_86")
    from lanp.kernels.cuda import limits
    monkeypatch.setattr(limits, "shared_opt_in", lambda device, kernel, dynamic: None)   # the old rule at 48000 B
    x, offsets = ragged(3, [75], 8, "float64")
    with pytest.raises(RuntimeError, match="without the opt-in"):
        propagate(x, offsets, backend="cupy-host")
    assert not fake.launches


@pytest.mark.parametrize("window", [None, 20])
def test_memory_groups_give_the_same_bits(install, window):
    seeds = [[0], [-1], [3, -1], [0, 40], [5], [0, -1], [1, 200], [-2]]
    x, offsets = ragged(5, LENGTHS, 12, "float64")
    fake = install("sm_86", free=2 ** 34)
    one = propagate(x, offsets, backend="cupy-host", window=window, seeds=seeds, tol=1e-10)
    assert sum("similarity" in n for n, _, _ in fake.launches) == 1
    need = cuda_plan.two_step_bytes(np.array(LENGTHS), 0 if window is None else window, 12, 8)
    fake = install("sm_86", free=2 * int(need.max()))                     # a budget of one long video
    grouped = propagate(x, offsets, backend="cupy-host", window=window, seeds=seeds, tol=1e-10)
    assert sum("similarity" in n for n, _, _ in fake.launches) >= 2
    for field in ("z", "iterations", "residual", "converged"):
        assert np.array_equal(getattr(one, field), getattr(grouped, field)), field
    cpu = propagate(x, offsets, backend="cpu", window=window, seeds=seeds, tol=1e-10)
    assert relative_error(grouped.z, cpu.z) <= 1e-8


def test_the_pool_counts_towards_the_budget(install):
    x, offsets = ragged(6, LENGTHS, 12, "float64")
    small = 2 * 300 * 300 * 8 + 2 * 10 ** 5
    fake = install("sm_86", free=small, pool=2 ** 30)                    # the pool holds 1 GiB unused
    propagate(x, offsets, backend="cupy-host")
    assert sum("similarity" in n for n, _, _ in fake.launches) == 1


def test_refusals_name_the_video_and_a_remedy(install):
    install("sm_86", free=2 ** 24)
    x, offsets = ragged(7, [10, 9000], 2, "float32")
    with pytest.raises(InputError, match=r"video long \(#1\) has L = 9000 .*one GPU thread block.*window"):
        propagate(x, offsets, backend="cupy-host", video_ids=["short", "long"])
    x, offsets = ragged(7, [10, 1500], 2, "float32")                     # 18 MB dense > 8 MB budget
    with pytest.raises(InputError, match=r"video long \(#1\) has L = 1500 .*GB.*--window"):
        propagate(x, offsets, backend="cupy-host", video_ids=["short", "long"])
    x[12] = np.nan
    with pytest.raises(InputError, match=r"video long \(#1\), snippet 2 .*NaN"):
        propagate(x, offsets, backend="cupy-host", video_ids=["short", "long"], window=5)


@pytest.mark.parametrize("window", [None, 4])
def test_similarity_and_solve_in_the_cpu_layout(install, window):
    install("sm_90")
    x, offsets = ragged(8, [1, 7, 40, 130], 6, "float64")
    g = similarity(x, offsets, backend="cupy-host", window=window, sigma=0.4)
    c = similarity(x, offsets, backend="cpu", window=window, sigma=0.4)
    assert g.values.shape == c.values.shape and type(g.values) is np.ndarray
    np.testing.assert_allclose(g.values, c.values, rtol=1e-9, atol=1e-12)
    s = solve(g, backend="cupy-host", tol=1e-10)
    assert relative_error(s.z, solve(c, backend="cpu", tol=1e-10).z) <= 1e-8 and s.converged.all()
