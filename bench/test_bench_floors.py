"""The floors, measured in the same run: memory read bandwidth (a parallel float32 reduction over
an array far larger than the caches) and the BLAS float32 GEMM rate (numpy matmul)."""
import numpy as np
import pytest

import floors as F


@pytest.mark.benchmark(group="floors")
def test_read_bandwidth(benchmark, mode, floors):
    n = (1 << 24 if mode == "smoke" else 1 << 30) // 4
    a = np.full(n, 1.0, dtype=np.float32)
    F._parallel_sum(a[:16])
    benchmark.pedantic(F._parallel_sum, (a,), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(impl="floor: read bandwidth", bytes=float(a.nbytes),
                                bandwidth=floors.bandwidth)
    if benchmark.stats is not None:
        benchmark.extra_info["gbytes_per_s"] = a.nbytes / benchmark.stats.stats.min / 1e9


@pytest.mark.benchmark(group="floors")
def test_gemm(benchmark, mode, floors):
    n = 128 if mode == "smoke" else 2048
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    benchmark(np.matmul, a, b)
    benchmark.extra_info.update(impl="floor: float32 GEMM", flops=2.0 * n ** 3, gemm_rate=floors.gemm)
    if benchmark.stats is not None:
        benchmark.extra_info["gflops"] = 2.0 * n ** 3 / benchmark.stats.stats.min / 1e9


def test_kernel_work_counts_what_cg_touches():
    """Hand-counted CG work: a dense video sweeps every entry per matvec; a band only the rows its
    Krylov vectors reach from the two end seeds (22, 42, 62 rows for k = 10, until they cover L)."""
    dense = F.kernel_work(np.array([8]), 4, 4, None, np.array([3]))
    assert dense["cg_flops"] == 2 * 8 * 8 * 4                  # 3 iterations + the residual
    band = F.kernel_work(np.array([100]), 4, 4, 10, np.array([2]))
    assert band["cg_flops"] == 2 * 21 * (22 + 42 + 62)
    covered = F.kernel_work(np.array([100]), 4, 4, 10, np.array([6]))
    assert covered["cg_flops"] == 2 * 21 * (22 + 42 + 62 + 82 + 100 + 100 + 100)
