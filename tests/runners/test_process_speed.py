"""Issue 19 (start-up and whole-process speed): the specialised kernels give the bits of the general
ones, the row sums give numpy's, prefetching chunks changes nothing, the light imports stay light,
lanp warmup covers every variant."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lanp.kernels import propagate
from lanp.kernels.cpu import packed
from lanp.kernels.cpu.rows import first_zero_row, video_sums
from shared import smooth_features


@pytest.mark.parametrize("window", [None, 4, 40])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_paper_shortcut_variant_equals_the_general_kernel(monkeypatch, rng, window, dtype):
    """propagate_packed picks the unit-row kernel (and the dense-only CG) where they apply; the
    general kernel on the same input gives the same bits."""
    x, offsets = smooth_features(rng, rng.integers(1, 90, size=19), 24, dtype)
    assert packed.unit_fast_applies(np.diff(offsets), window or 0, 0, True, 50.0, 0.0)
    fast = propagate(x, offsets, window=window, backend="cpu")
    monkeypatch.setattr(packed, "unit_fast_applies", lambda *args: False)
    general = propagate(x, offsets, window=window, backend="cpu")
    assert np.array_equal(fast.z, general.z) and np.array_equal(fast.iterations, general.iterations)
    assert np.array_equal(fast.residual, general.residual)


def test_shortcut_is_refused_where_w_could_underflow():
    assert not packed.unit_fast_applies(np.array([10]), 0, 0, True, 1.0 / (2 * 0.01 ** 2), 0.0)  # sigma 0.01
    assert not packed.unit_fast_applies(np.array([10]), 0, 0, False, 50.0, 0.0)                  # raw rows
    assert not packed.unit_fast_applies(np.array([10]), 0, 2, True, 50.0, 0.0)                   # cosine
    assert not packed.unit_fast_applies(np.array([900]), 0, 0, True, 50.0, 1.0)                  # s = 1


def test_video_sums_equal_numpy_reduceat_bit_for_bit(rng):
    for trial in range(40):
        lengths = rng.integers(1, 700, size=rng.integers(1, 12))
        lengths[0] = 1 if trial % 3 == 0 else lengths[0]
        D = int(rng.integers(1, 40))
        dtype = np.float32 if trial % 2 else np.float64
        x = (rng.normal(size=(lengths.sum(), D)) * 10 ** rng.uniform(-3, 3, size=(lengths.sum(), 1))).astype(dtype)
        x[rng.random(x.shape) < 0.05] = -0.0
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ref = np.add.reduceat(np.asarray(x, np.float64), offsets[:-1], axis=0)
        got = video_sums(x, offsets)
        nonzero = ref != 0                          # a zero sum's sign may differ (-0.0 against +0.0)
        assert np.array_equal(got, ref), trial
        assert np.array_equal(got[nonzero].view(np.int64), ref[nonzero].view(np.int64)), trial


def test_first_zero_row():
    x = np.ones((10, 4), np.float32)
    assert first_zero_row(x) == -1
    x[7] = 0
    x[7, 2] = -0.0
    x[9] = 0
    assert first_zero_row(x) == 7
    x[7, 3] = np.nan                          # NaN is not zero (as for numpy's x != 0)
    assert first_zero_row(x) == 9


def test_prefetched_chunks_give_the_same_labels(tmp_path, monkeypatch):
    """Many chunks, read ahead on a thread into two buffers: the labels of reading them one by one."""
    from lanp.data.io import FeatureFile, write_h5
    from lanp.method.options import PropagateConfig
    from lanp.runners.file import label_file
    rng = np.random.default_rng(3)
    x, offsets = smooth_features(rng, rng.integers(5, 60, size=40), 16, np.float32)
    write_h5(tmp_path / "f.h5", {"features": np.abs(x) + 0.1, "offsets": offsets})
    ahead = label_file(tmp_path / "f.h5", PropagateConfig(), progress=False, chunk_bytes=2048)
    monkeypatch.setattr(FeatureFile, "prefetch", False)
    plain = label_file(tmp_path / "f.h5", PropagateConfig(), progress=False, chunk_bytes=2048)
    for name in ("normality", "pseudo_label", "weight", "video_score", "cg_residual"):
        assert np.array_equal(getattr(ahead, name), getattr(plain, name)), name


def test_two_read_buffers(tmp_path):
    from lanp.data.io import FeatureFile, write_h5
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    write_h5(tmp_path / "f.h5", {"features": x, "offsets": np.array([0, 5, 12, 20])})
    with FeatureFile(tmp_path / "f.h5") as ff:
        a, _ = ff.read(0, 1, reuse=True, buffer=0)
        b, _ = ff.read(1, 2, reuse=True, buffer=1)
        assert not np.shares_memory(a, b)
        assert np.array_equal(a, x[:5]) and np.array_equal(b, x[5:12])


def test_light_imports_do_not_load_numba_or_torch():
    """lanp evaluate's modules (and every command's error type) need neither numba nor torch."""
    code = ("import sys, lanp.cli, lanp.commands.evaluate, lanp.data.io, lanp.evaluation.metrics, "
            "lanp.model.score\nfrom lanp.kernels import InputError, Propagation\n"
            "print(sorted(m for m in ('numba', 'torch', 'llvmlite') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_warmup_covers_every_variant(monkeypatch, capsys):
    from lanp.cli import main
    from lanp.commands import warmup
    names = [what for what, _ in warmup.steps(("float32", "float64"))]
    for dtype in ("float32", "float64"):
        for shape in ("dense", "banded"):
            assert f"propagate, paper settings, {shape}, {dtype}" in names
            assert f"propagate, general graph, {shape}, {dtype}" in names
        assert f"loss weights, {dtype}" in names
    calls = []
    monkeypatch.setattr(warmup, "steps", lambda dtypes: [("one", lambda: calls.append(dtypes))])
    assert main(["warmup", "--dtype", "float32"]) == 0
    assert calls == [("float32",)] and "warmup: 1 kernel calls" in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_kernels_run_in_a_forked_child(rng):
    """The kernels' thread pool is per process: a child forked after a parallel call computes."""
    import os
    import numba
    if numba.get_num_threads() < 2:
        pytest.skip("one numba thread: no pool")
    x, offsets = smooth_features(rng, [30, 40, 50, 60], 8, np.float32)
    expected = propagate(x, offsets, backend="cpu").z
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                               # the child: compute, report, leave at once
        try:
            __import__("signal").alarm(120)    # a deadlocked pool kills the child, not the run
            ok = np.array_equal(propagate(x, offsets, backend="cpu").z, expected)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and status == 0
