"""Sweeps of lanp.kernels.propagate: time against the number of videos, against L (dense and
banded, window 50, at a fixed total of snippets) and against D. Plotted by bench/report.py."""
import numpy as np
import pytest

import workloads
from conftest import record_floor_fraction, record_lanp
from lanp.kernels import propagate

SIZES = {
    #          videos sweep (L=32)           L sweep (N fixed)                     D sweep (L=32)
    "smoke": dict(videos=[10, 20], vdim=16, lengths=[32, 128], n=512, ldim=16, dims=[16, 32], dvideos=20),
    "quick": dict(videos=[100, 400, 1610, 6440], vdim=512, lengths=[32, 128, 512, 2048, 8192], n=16384,
                  ldim=256, dims=[64, 256, 1024, 2048, 4096], dvideos=400),
    "full": dict(videos=[100, 400, 1610, 6440], vdim=2048, lengths=[32, 128, 512, 2048, 8192], n=32768,
                 ldim=1024, dims=[64, 256, 1024, 2048, 4096], dvideos=1610),
}


def _cases(key):
    # parametrise over the union of every size; sizes not in this session's mode are skipped
    return sorted({v for s in SIZES.values() for v in s[key]})


def _run(benchmark, floors, x, off, window, sweep, value):
    kwargs = {} if window is None else {"window": window}
    if benchmark.disabled:
        result = benchmark(propagate, x, off, **kwargs)
    else:
        big = int(off[-1]) * x.shape[1] > 50_000_000 or np.diff(off).max() >= 2048
        result = benchmark.pedantic(propagate, (x, off), kwargs, rounds=3 if big else 7, iterations=1,
                                    warmup_rounds=1)
    record_lanp(benchmark, floors, np.diff(off), x.shape[1], x.itemsize, window, result, sweep=sweep,
                sweep_value=value)
    record_floor_fraction(benchmark)


@pytest.mark.parametrize("videos", _cases("videos"))
@pytest.mark.benchmark(group="sweep-videos")
def test_videos(benchmark, floors, mode, videos):
    s = SIZES[mode]
    if videos not in s["videos"]:
        pytest.skip(f"not in the {mode} sweep")
    x, off = workloads.uniform(videos, 32, s["vdim"])
    _run(benchmark, floors, x, off, None, "videos", videos)


@pytest.mark.parametrize("kind", ["dense", "banded"])
@pytest.mark.parametrize("length", _cases("lengths"))
@pytest.mark.benchmark(group="sweep-length")
def test_length(benchmark, floors, mode, length, kind):
    s = SIZES[mode]
    if length not in s["lengths"]:
        pytest.skip(f"not in the {mode} sweep")
    x, off = workloads.uniform(max(1, s["n"] // length), length, s["ldim"])
    _run(benchmark, floors, x, off, None if kind == "dense" else 50, f"length-{kind}", length)


@pytest.mark.parametrize("dim", _cases("dims"))
@pytest.mark.benchmark(group="sweep-dim")
def test_dim(benchmark, floors, mode, dim):
    s = SIZES[mode]
    if dim not in s["dims"]:
        pytest.skip(f"not in the {mode} sweep")
    x, off = workloads.uniform(s["dvideos"], 32, dim)
    _run(benchmark, floors, x, off, None, "dim", dim)
