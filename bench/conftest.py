"""Shared fixtures of the benchmark suite (see bench/RESULTS.md for how to run it).

Three sizes, picked once per session:
  smoke  ``--benchmark-disable`` (CI): tiny inputs, every code path once, no timing (< 1 minute);
  quick  the default: UCF-32 at D = 2048, UCF-full shape at D = 128, reduced sweeps (a few minutes);
  full   ``--full``: UCF-full shape at D = 2048 and the full sweeps.
No test asserts a timing; each test asserts that its implementation agrees with lanp (or, for the
public-code peer, with an independent implementation of the same rules).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import floors as F  # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup("lanp-bench")
    group.addoption("--full", action="store_true", default=False,
                    help="lanp bench: large workloads (UCF-full shape at D=2048, full sweeps)")


def _mode(config) -> str:
    if config.getoption("benchmark_disable", default=False):
        return "smoke"
    return "full" if config.getoption("full") else "quick"


@pytest.fixture(scope="session")
def mode(request) -> str:
    return _mode(request.config)


class Floors:
    """Read bandwidth and GEMM rate, measured once per session (lazily)."""

    def __init__(self, mode: str):
        self.mode = mode
        self._bw = None
        self._gemm = None

    @property
    def bandwidth(self) -> float:
        if self._bw is None:
            self._bw = F.read_bandwidth(1 << 24 if self.mode == "smoke" else 1 << 30)
        return self._bw

    @property
    def gemm(self) -> float:
        if self._gemm is None:
            self._gemm = F.gemm_rate(128 if self.mode == "smoke" else 2048)
        return self._gemm


@pytest.fixture(scope="session")
def floors(mode) -> Floors:
    return Floors(mode)


def record_lanp(benchmark, floors: Floors, lengths, dim, itemsize, window, result, **extra):
    """extra_info of a lanp benchmark: its work, floors and the fraction of the floor reached.

    Called right after the timing: the read bandwidth is measured again here (256 MiB, best of
    3) and the memory floor uses it, because on a shared machine the bandwidth drifts by 4x
    between minutes; the session's first measurement is kept as bandwidth_session."""
    work = F.kernel_work(lengths, dim, itemsize, window, result.iterations)
    adjacent = F.read_bandwidth(1 << 24 if floors.mode == "smoke" else 1 << 28, repeats=3)
    fl = F.floor_seconds(work, adjacent, floors.gemm)
    info = benchmark.extra_info
    info.update(impl="lanp", videos=int(len(lengths)), snippets=int(np.sum(lengths)), dim=int(dim),
                window=window, bandwidth=adjacent, bandwidth_session=floors.bandwidth,
                gemm_rate=floors.gemm,
                cg_iterations_median=float(np.median(result.iterations)),
                cg_iterations_max=int(np.max(result.iterations)), **work, **fl, **extra)


def record_floor_fraction(benchmark) -> None:
    """After timing: fraction of the floor reached (floor / median time)."""
    stats = getattr(benchmark, "stats", None)
    if stats is None or "floor_s" not in benchmark.extra_info:
        return
    med = stats.stats.median
    benchmark.extra_info["floor_fraction"] = benchmark.extra_info["floor_s"] / med
    benchmark.extra_info["gflops"] = (benchmark.extra_info["gram_flops"] + benchmark.extra_info["cg_flops"]) / med / 1e9
    benchmark.extra_info["gbytes_per_s"] = benchmark.extra_info["bytes"] / med / 1e9


def slow(benchmark, fn, rounds=1):
    """Time a slow peer: ``rounds`` calls, no calibration, no warm-up."""
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)


def time_peer_c(benchmark, x, off, check_videos, which: str) -> None:
    """Time peer (c) (the public code's rules, bench/peers.official_ucf) once, then check its z on
    ``check_videos`` against the independent dense implementation and record the check
    (``which`` ends the check's description: which videos)."""
    import peers
    out = {}

    def run():
        out["z"] = peers.official_ucf(x, off)

    slow(benchmark, run)
    if "z" not in out:                          # --benchmark-disable: nothing ran
        run()
    got = np.concatenate([out["z"][off[v]:off[v + 1]] for v in check_videos])
    ref = np.concatenate([peers.official_ucf_dense(x[off[v]:off[v + 1]]) for v in check_videos])
    err = peers.relative_error(got, ref)
    assert err < 1e-6, err
    benchmark.extra_info.update(impl="peer (c) public code (official-ucf rules)",
                                check=f"rel. error vs independent dense implementation{which}",
                                check_error=err)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=BENCH,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def pytest_configure(config):
    config._lanp_load_start = list(os.getloadavg())
    config._lanp_start = time.strftime("%Y-%m-%d %H:%M:%S %Z")


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Run conditions go to output_json["lanp"], not machine_info: pytest-benchmark compares
    machine_info in --benchmark-compare, and a load average must not make two runs incomparable."""
    try:
        import numba
        threads = numba.get_num_threads()
    except ImportError:
        threads = None
    output_json["lanp"] = {
        "mode": _mode(config), "commit": _git_commit(), "cpu_count": os.cpu_count(),
        "numba_threads": threads, "started": getattr(config, "_lanp_start", None),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_start": getattr(config, "_lanp_load_start", None), "loadavg_end": list(os.getloadavg()),
    }
