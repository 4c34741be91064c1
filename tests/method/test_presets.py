"""official-ucf / official-sht against a small independent implementation of issue 6's rules
(plain loops, a dense W, scipy's cg capped the same way)."""
import math

import h5py
import numpy as np
import pytest
from scipy.sparse.linalg import cg

from lanp.kernels import InputError
from lanp.kernels.official import propagate_official
from lanp.method.official import PRESETS, OfficialRecipe, abnormal_videos, get_preset
from lanp.method.options import PropagateConfig
from lanp.runners.file import label_file

LENGTHS = [1, 2, 3, 4, 7, 100, 101, 257]


def reference_video(x, variant, sigma=0.1, alpha=0.99):
    """The rules, written out: window, row weights, W = A + A^T, degrees, S, seeds, capped CG."""
    x = np.asarray(x, dtype=np.float64)
    T, D = x.shape
    k = min(50, T - 1)
    m = min(2 * k, T)
    A = np.zeros((T, T))
    for i in range(T):
        start = min(max(i - m // 2, 0), T - m)
        for j in range(start, start + m):
            if j == i:
                continue
            if variant == "rms":
                f = math.exp(-math.sqrt(np.sum((x[i] - x[j]) ** 2) / D) / (2 * sigma ** 2))
            else:
                f = float(x[i] @ x[j]) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
            A[i, j] = f * math.exp(-abs(i - j) / m)
    W = A + A.T
    np.fill_diagonal(W, 0.0)
    d = W.sum(axis=1)
    d[d == 0] = 1.0
    S = W / np.sqrt(np.outer(d, d))
    y = np.zeros(T)
    for s in (0, 1, T - 2, T - 1):
        y[s % T] = 1.0
    z, _ = cg(np.eye(T) - alpha * S, y, x0=np.zeros(T), rtol=1e-6, atol=0.0, maxiter=10)
    z[z < 0] = 0.0
    z[y == 1] = z.max()
    return z


def smooth_features(rng, T, D, positive):
    """Temporally smooth features with an interior bump (like real clips), optionally >= 0."""
    walk = np.cumsum(rng.normal(scale=0.02, size=(T, D)), axis=0) + rng.normal(size=D)
    walk[T // 3: T // 2] += 0.5
    return (np.abs(walk) if positive else walk).astype(np.float32)


@pytest.mark.parametrize("variant", ["rms", "cosine"])
def test_kernel_matches_independent_rules(variant):
    rng = np.random.default_rng(7)
    D = 12
    xs = [smooth_features(rng, T, D, positive=variant == "cosine") * (0.05 if variant == "rms" else 1)
          for T in LENGTHS]
    offsets = np.concatenate([[0], np.cumsum(LENGTHS)])
    r = propagate_official(np.concatenate(xs), offsets, variant=variant)
    for v, x in enumerate(xs):
        got = r.z[offsets[v]:offsets[v + 1]]
        expect = reference_video(x, variant)
        np.testing.assert_allclose(got, expect, rtol=1e-7, atol=1e-9 * np.abs(expect).max(),
                                   err_msg=f"T = {LENGTHS[v]}")
    assert r.iterations.max() <= 10
    assert r.z.min() >= 0.0
    assert r.iterations[0] == 1 and r.z[0] == 1.0                   # T = 1: S = 0, z = y
    # every video keeps its seeds at its maximum
    for v, T in enumerate(LENGTHS):
        zv = r.z[offsets[v]:offsets[v + 1]]
        for s in (0, 1, T - 2, T - 1):
            assert zv[s % T] == zv.max()


def test_window_changes_at_101_snippets():
    """T = 100 is dense; T = 101 is windowed (row 0 must not see snippet 100)."""
    rng = np.random.default_rng(1)
    x = smooth_features(rng, 101, 6, positive=True)
    dense = reference_video(x, "cosine")
    r = propagate_official(x, np.array([0, 101]), variant="cosine")
    np.testing.assert_allclose(r.z, dense, rtol=1e-7)
    # a dense graph would give a different answer: the window matters
    y = np.zeros(101)
    y[[0, 1, 99, 100]] = 1
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    t = np.arange(101)
    W = (xn @ xn.T) * np.exp(-np.abs(t[:, None] - t[None, :]) / 101)
    np.fill_diagonal(W, 0)
    d = W.sum(1)
    S = W / np.sqrt(np.outer(d, d))
    zd, _ = cg(np.eye(101) - 0.99 * S, y, rtol=1e-6, atol=0.0, maxiter=10)
    zd[zd < 0] = 0
    zd[y == 1] = zd.max()
    assert np.max(np.abs(zd - r.z)) > 1e-3 * r.z.max()


def test_zero_vector_and_negative_degree_are_named_errors():
    x = np.ones((5, 3), np.float32)
    x[2] = 0
    with pytest.raises(InputError, match=r"video b \(#0\), snippet 2.*all-zero"):
        propagate_official(x, np.array([0, 5]), variant="cosine", video_ids=["b"])
    x = np.array([[1, 0], [-1, 0.1], [1, 0.1]], np.float32)
    with pytest.raises(InputError, match="negative degree"):
        propagate_official(x, np.array([0, 3]), variant="cosine")
    with pytest.raises(ValueError, match="preset='x' is invalid"):
        get_preset("x")


def reference_dataset(xs, preset):
    """Dataset-level rules on top of reference_video, with plain loops."""
    zs = [reference_video(x, preset.graph) for x in xs]
    scores = np.array([np.std(z) for z in zs])
    V = len(xs)
    n_abn = int(preset.abnormal_video_fraction * V)
    order = sorted(range(V), key=lambda v: (scores[v], v))
    abnormal = np.zeros(V, bool)
    abnormal[order[V - n_abn:]] = True
    labels = []
    for v, z in enumerate(zs):
        lab = np.zeros(len(z), np.uint8)
        if abnormal[v]:
            lowest = sorted(range(len(z)), key=lambda i: (z[i], i))[:int(0.4 * len(z))]
            lab[lowest] = 1
        labels.append(lab)
    n_list = max(1, int(0.1 * (V - n_abn)))
    means = [np.mean([xs[v][int(math.floor(i * len(xs[v]) / 32))].astype(np.float64) for i in range(32)], axis=0)
             for v in order[:n_list]]
    weights = []
    for x, lab in zip(xs, labels):
        w = np.zeros(len(x))
        for q in range(len(x)):
            xq = x[q].astype(np.float64)
            if preset.weight_distance == "cosine":
                d = min(1 - xq @ m / (np.linalg.norm(xq) * np.linalg.norm(m)) for m in means)
            else:
                d = min(math.sqrt(np.sum((xq - m) ** 2) / len(xq)) for m in means)
            w[q] = math.exp(-abs(d - lab[q]))
        weights.append(w)
    return np.concatenate(zs), scores, abnormal, np.concatenate(labels), np.concatenate(weights)


@pytest.mark.filterwarnings("ignore::lanp.kernels.ConvergenceWarning")
@pytest.mark.parametrize("name", ["official-ucf", "official-sht"])
def test_run_preset_matches_reference_dataset(tmp_path, name):
    preset = PRESETS[name]
    rng = np.random.default_rng(11)
    lengths = [3, 40, 101, 60, 25, 230, 33, 45, 80, 12, 18, 70] * 2
    xs = [smooth_features(rng, T, 8, positive=True) * (0.03 if preset.graph == "rms" else 1) for T in lengths]
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["features"] = np.concatenate(xs)
        f["offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    recipe = OfficialRecipe(PropagateConfig(preset=name))
    out = label_file(path, recipe, progress=False, chunk_bytes=4000)   # many small chunks
    z, scores, abnormal, labels, weights = reference_dataset(xs, preset)
    np.testing.assert_allclose(out.normality, z, rtol=1e-6)
    np.testing.assert_allclose(out.video_score, scores, rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(out.video_abnormal, abnormal)
    assert abnormal.sum() == int(preset.abnormal_video_fraction * len(lengths))
    np.testing.assert_array_equal(out.pseudo_label, labels)
    np.testing.assert_allclose(out.weight, weights, rtol=1e-5)
    assert out.attrs["normal_list_videos"] == max(1, int(0.1 * (~abnormal).sum()))


def test_split_fractions():
    s = np.arange(10.0)
    assert np.flatnonzero(abnormal_videos(s, PRESETS["official-ucf"])).tolist() == [5, 6, 7, 8, 9]
    assert np.flatnonzero(abnormal_videos(s[::-1], PRESETS["official-sht"])).tolist() == [0, 1]
