"""Whole-process benchmarks (issue 19): what a user waits for, each next to its floor measured in
the same run, interleaved with it (the floors are measured in pytest-benchmark's untimed setup
before every timed round).

- cold start: ``lanp-propagate`` on a small file (20 videos of 30-180 snippets, D = 64) with a
  fresh NUMBA_CACHE_DIR per round (the first run after an install); floor: the same command once
  its cache is filled (the next run). Also ``lanp warmup`` followed by that first run.
- warm whole process on UCF-32 (1610 x 32 x 2048 float32 in an h5 file, page-cached), start-up
  included; floor: the kernel on the same features in memory + one h5py ``read_direct`` pass.
- whole process on the UCF-Crime training lengths (790,271 snippets, ``--window 50``): D = 1024
  (a 3.2 GB file under /tmp) with ``--full``, D = 128 otherwise; floor as for UCF-32. The loss
  weights' kernel (``max_cosine``, the normal list of 80 means) is measured and recorded too.
- ``lanp score`` and ``lanp train``'s data loading: the time spent reading features against the
  command's whole time (in-process).

Smoke (``--benchmark-disable``): tiny files, the default numba cache, every path once. No test
asserts a timing; each asserts that the command wrote what it should.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import workloads

SIZES = {
    "smoke": dict(cold_videos=6, cold_rounds=1, u32=(40, 32, 64), u32_rounds=1, lengths_dim=16,
                  lengths_videos=24, lengths_clip=300, lengths_rounds=1, train_epochs=1),
    "quick": dict(cold_videos=20, cold_rounds=2, u32=(1610, 32, 2048), u32_rounds=5, lengths_dim=128,
                  lengths_videos=None, lengths_clip=None, lengths_rounds=3, train_epochs=3),
    "full": dict(cold_videos=20, cold_rounds=3, u32=(1610, 32, 2048), u32_rounds=7, lengths_dim=1024,
                 lengths_videos=None, lengths_clip=None, lengths_rounds=3, train_epochs=3),
}


def write_features(path, lengths, dim, seed=0):
    x, off = workloads.make_packed(lengths, dim, seed=seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=x)
        f.create_dataset("offsets", data=off)
        f.create_dataset("video_ids", data=np.array([f"v{i:05d}" for i in range(len(lengths))], dtype=object),
                         dtype=h5py.string_dtype())
    return x, off


def lanp(*args, cache_dir=None):
    """Run ``python -m lanp.cli ARGS`` (what the console scripts run); returns its wall seconds."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lanp.cli", *map(str, args)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def read_pass(path) -> float:
    """Seconds of one h5py read_direct pass over the file's features (256 MiB at a time)."""
    with h5py.File(path, "r") as f:
        d = f["features"]
        step = max(1, (256 << 20) // (d.shape[1] * d.dtype.itemsize))
        buf = np.empty((min(step, d.shape[0]), d.shape[1]), d.dtype)
        t = time.perf_counter()
        for a in range(0, d.shape[0], step):
            b = min(d.shape[0], a + step)
            d.read_direct(buf[:b - a], np.s_[a:b])
        return time.perf_counter() - t


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def startup() -> float:
    """An interpreter that imports numpy and h5py and exits: the part of a run no lanp code adds."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy, h5py"], check=True)
    return time.perf_counter() - t


def finish(benchmark, walls, floors, **info):
    """Record medians and the ratio wall / floor (the goal is stated per test)."""
    wall, floor = statistics.median(walls), statistics.median(floors)
    benchmark.extra_info.update(wall_median_s=wall, walls_s=walls, floor_median_s=floor, floors_s=floors,
                                ratio_to_floor=wall / floor, loadavg=list(os.getloadavg()), **info)


def run_rounds(benchmark, target, setup, rounds):
    """``rounds`` timed calls of target, setup (untimed: the floors) before each; with
    --benchmark-disable pytest-benchmark runs target once without setup, so setup runs here."""
    calls = []

    def counted():
        calls.append(1)
        target()

    benchmark.pedantic(counted, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    if benchmark.disabled:
        setup()


@pytest.fixture(scope="module")
def small_file(mode, tmp_path_factory):
    lengths = np.random.default_rng(4).integers(30, 180, size=SIZES[mode]["cold_videos"])
    path = tmp_path_factory.mktemp("cold") / "small.h5"
    write_features(path, lengths, 64)
    return path


@pytest.mark.benchmark(group="process")
def test_cold_start(benchmark, mode, small_file, tmp_path):
    """First lanp-propagate after an install (a fresh numba cache) against the same run warm."""
    rounds = SIZES[mode]["cold_rounds"]
    out = tmp_path / "small.labels.h5"
    state = {"round": 0}
    walls, floors = [], []

    def cache():
        return None if mode == "smoke" else tmp_path / f"numba-cache-{state['round']}"

    def target():
        walls.append(lanp("propagate", "--features", small_file, "--out", out, "--quiet", cache_dir=cache()))

    def setup():
        if walls:                          # the previous round's cache is filled: the warm floor
            floors.append(lanp("propagate", "--features", small_file, "--out", out, "--quiet",
                               cache_dir=cache()))
            state["round"] += 1

    run_rounds(benchmark, target, setup, rounds)
    if not walls:
        target()
        setup()
    finish(benchmark, walls, floors, impl="lanp-propagate, first run after install (fresh NUMBA_CACHE_DIR)",
           floor="the same command with its cache filled", goal="cold wall <= 8 s",
           fresh_cache=mode != "smoke", file_bytes=small_file.stat().st_size)
    assert out.exists()


@pytest.mark.benchmark(group="process")
def test_warmup_then_first_run(benchmark, mode, small_file, tmp_path):
    """lanp warmup into a fresh cache, then the first lanp-propagate: as fast as a warm run."""
    cache = None if mode == "smoke" else tmp_path / "numba-cache"
    out = tmp_path / "small.labels.h5"
    info = {}

    def target():
        info["warmup_s"] = lanp("warmup", "--dtype", "float32", "--quiet", cache_dir=cache)

    benchmark.pedantic(target, rounds=1, iterations=1, warmup_rounds=0)
    if not info:
        target()
    first = lanp("propagate", "--features", small_file, "--out", out, "--quiet", cache_dir=cache)
    second = lanp("propagate", "--features", small_file, "--out", out, "--quiet", cache_dir=cache)
    benchmark.extra_info.update(impl="lanp warmup --dtype float32, then lanp-propagate", first_run_s=first,
                                warm_run_s=second, loadavg=list(os.getloadavg()), **info)
    assert out.exists()


def _whole_process(benchmark, path, x, off, rounds, window=None, what=""):
    """lanp-propagate on ``path`` (timed) against kernel + one read pass (measured in setup)."""
    from lanp.kernels import max_cosine, propagate
    out = Path(path).with_name(Path(path).stem + ".labels.h5")
    kw = {} if window is None else {"window": window}
    args = ["propagate", "--features", path, "--out", out, "--quiet"] + (["--window", window] if window else [])
    lanp(*args)                                         # fills / loads numba's cache, page-caches the file
    propagate(x[:off[2]], off[:3], **kw)                # the in-process kernel compiled (or loaded)
    walls, floors, kernels, reads, weights = [], [], [], [], []
    M = max(1, (len(off) - 1) // 2 // 10)               # the paper's normal list: floor(h N_nor)
    rng = np.random.default_rng(0)
    means = np.abs(rng.normal(size=(M, x.shape[1]))).astype(x.dtype)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    best = np.empty(x.shape[0])

    def setup():
        k = timed(lambda: propagate(x, off, **kw))
        r = read_pass(path)
        weights.append(timed(lambda: max_cosine(x, means, x.dtype.type(0), best)))
        kernels.append(k)
        reads.append(r)
        floors.append(k + r)

    def target():
        walls.append(lanp(*args))

    run_rounds(benchmark, target, setup, rounds)
    if not walls:
        target()
    finish(benchmark, walls, floors, impl=f"lanp-propagate{' --window ' + str(window) if window else ''}, {what}",
           floor="kernel in memory + one h5py read_direct pass, same run", kernel_s=statistics.median(kernels),
           read_pass_s=statistics.median(reads), weights_kernel_s=statistics.median(weights), normal_list=M,
           startup_s=startup(), videos=len(off) - 1, snippets=int(off[-1]), dim=int(x.shape[1]),
           file_bytes=Path(path).stat().st_size)
    with h5py.File(out, "r") as f:
        assert f["normality"].shape == (int(off[-1]),)


@pytest.mark.benchmark(group="process")
def test_warm_ucf32(benchmark, mode, tmp_path):
    """Warm lanp-propagate on the UCF-32 file, start-up included (goal: <= 0.6 s wall)."""
    V, L, D = SIZES[mode]["u32"]
    path = tmp_path / "ucf32.h5"
    x, off = write_features(path, np.full(V, L), D)
    _whole_process(benchmark, path, x, off, SIZES[mode]["u32_rounds"], what=f"UCF-32 file ({V} x {L} x {D})")
    benchmark.extra_info["goal"] = "wall <= 0.6 s"


@pytest.mark.benchmark(group="process")
def test_whole_ucf_lengths(benchmark, mode, tmp_path):
    """lanp-propagate --window 50 on the UCF-Crime training lengths (goal: wall <= 1.5 x floor).
    --full: D = 1024, a 3.2 GB file under /tmp (removed afterwards)."""
    s = SIZES[mode]
    lengths = workloads.ucf_lengths()
    if s["lengths_videos"]:
        lengths = np.minimum(lengths[:s["lengths_videos"]], s["lengths_clip"])
    folder = Path(tempfile.mkdtemp(prefix="lanp-bench-", dir="/tmp")) if mode == "full" else tmp_path
    try:
        path = folder / "ucf-lengths.h5"
        x, off = write_features(path, lengths, s["lengths_dim"], seed=1)
        _whole_process(benchmark, path, x, off, s["lengths_rounds"], window=workloads.UCF_WINDOW,
                       what=f"UCF-Crime training lengths, D = {s['lengths_dim']}")
        benchmark.extra_info["goal"] = "wall <= 1.5 x (kernel + one read pass)"
    finally:
        if mode == "full":
            shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.benchmark(group="process")
def test_score_and_train_reads(benchmark, mode, tmp_path, monkeypatch):
    """lanp train and lanp score in-process: seconds in FeatureFile.read against the whole call."""
    pytest.importorskip("torch")
    from lanp.data import io
    from lanp.method.options import PropagateConfig
    from lanp.model.score import score_file
    from lanp.model.train import TrainConfig, train
    from lanp.runners.file import label_file, write_labels
    V, L, D = SIZES[mode]["u32"]
    path = tmp_path / "ucf32.h5"
    write_features(path, np.full(V, L), D)
    labels = tmp_path / "ucf32.labels.h5"
    write_labels(labels, label_file(path, PropagateConfig(), progress=False), path)
    spent = {"read": 0.0}
    original = io.FeatureFile.read

    def read(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent["read"] += time.perf_counter() - t

    monkeypatch.setattr(io.FeatureFile, "read", read)
    info = {}

    def target():
        spent["read"] = 0.0
        info["train_s"] = timed(lambda: train(path, labels, tmp_path / "model.pt",
                                              TrainConfig(epochs=SIZES[mode]["train_epochs"]), quiet=True,
                                              log=lambda *a: None))
        info["train_read_s"] = spent["read"]
        spent["read"] = 0.0
        info["score_s"] = timed(lambda: score_file(tmp_path / "model.pt", path, tmp_path / "scores.h5", quiet=True))
        info["score_read_s"] = spent["read"]

    benchmark.pedantic(target, rounds=1, iterations=1, warmup_rounds=0)
    if not info:
        target()
    benchmark.extra_info.update(impl="lanp train + lanp score (in-process), UCF-32 file", epochs=SIZES[mode]["train_epochs"],
                                loadavg=list(os.getloadavg()), **info)
    assert (tmp_path / "scores.h5").exists()
