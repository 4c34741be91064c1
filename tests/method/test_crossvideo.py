"""The cross-video recipe: hand-checked normality, equal results from every runner, refusals."""
import h5py
import numpy as np
import pytest

import lanp
from lanp.cli import propagate_main
from lanp.method.crossvideo import CrossVideoRecipe
from lanp.runners.file import label_file

DATASETS = ("normality", "pseudo_label", "weight", "video_score", "video_abnormal")


def _videos(seed):
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 0.2, size=(3, 10))                     # three shared scenes
    out = []
    for v, n in enumerate(rng.integers(8, 30, size=10)):
        x = base[v % 3] + 0.03 * rng.normal(size=(n, 10))
        if v % 4 == 1:
            x[n // 3: n // 2] += rng.gamma(2.0, 0.5, size=10)      # an anomaly no other video has
        out.append(np.abs(x).astype(np.float32))
    return out


def test_normality_is_the_nearest_seed_of_another_video():
    rng = np.random.default_rng(5)
    videos = [np.abs(rng.normal(1.0, 0.3, size=(n, 6))).astype(np.float32) for n in (5, 7, 4)]
    out = lanp.label(videos, preset="cross-video")
    x = np.concatenate(videos).astype(np.float64)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    offsets = np.array([0, 5, 12, 16])
    seeds = [0, 4, 5, 11, 12, 15]
    seed_video = [0, 0, 1, 1, 2, 2]
    for i in range(16):
        v = int(np.searchsorted(offsets, i, side="right")) - 1
        want = max(u[i] @ u[s] for s, sv in zip(seeds, seed_video) if sv != v)
        assert out.normality[i] == pytest.approx(want, rel=1e-6)
    assert out.attrs["preset"] == "cross-video" and out.attrs["video_score"] == "low-tail"


@pytest.mark.parametrize("seed", [0, 1])
def test_every_runner_gives_the_same_labels(tmp_path, seed):
    videos = _videos(seed)
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["features"] = np.concatenate(videos)
        f["offsets"] = np.concatenate([[0], np.cumsum([len(v) for v in videos])]).astype(np.int64)
    memory = lanp.label(videos, preset="cross-video")
    chunked = label_file(path, CrossVideoRecipe(), progress=False, chunk_bytes=4 * 10 * 25)   # many chunks
    assert propagate_main(["--features", str(path), "--out", str(tmp_path / "l.h5"), "--preset", "cross-video",
                           "--quiet"]) == 0
    with h5py.File(tmp_path / "l.h5", "r") as f:
        cli = {k: f[k][()] for k in DATASETS}
    for k in DATASETS:
        np.testing.assert_array_equal(getattr(chunked, k), getattr(memory, k), err_msg=f"seed {seed}: {k}")
        np.testing.assert_array_equal(cli[k], getattr(memory, k), err_msg=f"seed {seed}: {k}")
    # the planted anomalies (videos 1, 5, 9) are the least normal snippets of the dataset
    worst = np.argsort(memory.normality)[:5]
    video = np.searchsorted(memory.offsets, worst, side="right") - 1
    assert set(video.tolist()) <= {1, 5, 9}


def test_sharded_equals_single(tmp_path):
    pytest.importorskip("distributed")
    videos = _videos(3)
    paths = []
    for i, part in enumerate((videos[:4], videos[4:])):
        p = tmp_path / f"part{i}.h5"
        with h5py.File(p, "w") as f:
            f["features"] = np.concatenate(part)
            f["offsets"] = np.concatenate([[0], np.cumsum([len(v) for v in part])]).astype(np.int64)
        paths.append(p)
    assert propagate_main(["--features", *map(str, paths), "--out", str(tmp_path / "out"), "--preset",
                           "cross-video", "--quiet"]) == 0
    single = lanp.label(videos, preset="cross-video")
    got = {k: [] for k in DATASETS}
    for p in paths:
        with h5py.File(tmp_path / "out" / f"{p.stem}.labels.h5", "r") as f:
            for k in DATASETS:
                got[k].append(f[k][()])
    for k in DATASETS:
        np.testing.assert_array_equal(np.concatenate(got[k]), getattr(single, k), err_msg=k)


def test_the_recipe_needs_its_anchors():
    with pytest.raises(RuntimeError, match="needs its anchors"):
        CrossVideoRecipe().first_pass(np.ones((4, 3), np.float32), np.array([0, 4]), None, "x")
