"""Test helpers shared by several test modules (no test module imports another)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from lanp.kernels import backends
from lanp.kernels.cuda.limits import DeviceLimits


GPU_BACKENDS = ("cupy", "numba-cuda")


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


def smooth_features(rng, lengths, dim, dtype=np.float32):
    """Temporally smooth features with a per-video offset (like real snippet features)."""
    parts = []
    for L in lengths:
        base = rng.normal(size=(1, dim))
        parts.append(base + 0.3 * np.cumsum(rng.normal(size=(L, dim)), axis=0) / math.sqrt(max(L, 1)))
    return np.concatenate(parts).astype(dtype), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


KIB = 1024


DEVICES = {
    # name, cc, SMs, smem/block, opt-in, smem/SM, regs/block, regs/SM, threads/block, threads/SM, reserved
    "sm_75": DeviceLimits("Tesla T4", (7, 5), 40, 48 * KIB, 64 * KIB, 64 * KIB, 65536, 65536, 1024, 1024, 0),
    "sm_86": DeviceLimits("NVIDIA A10", (8, 6), 72, 48 * KIB, 99 * KIB, 100 * KIB, 65536, 65536, 1024, 1536, KIB),
    "sm_89": DeviceLimits("NVIDIA L4", (8, 9), 58, 48 * KIB, 99 * KIB, 100 * KIB, 65536, 65536, 1024, 1536, KIB),
    "sm_90": DeviceLimits("NVIDIA H200", (9, 0), 132, 48 * KIB, 227 * KIB, 228 * KIB, 65536, 65536, 1024, 2048, KIB),
}


def pairwise_auc(y, s):
    """Mann-Whitney AUC by counting every (positive, negative) pair; ties count one half."""
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def trapezoid_pr_reference(y, s):
    """Independent PR-curve area: one (recall, precision) point per distinct threshold, highest first,
    starting from (0, 1), joined by straight lines."""
    y, s = np.asarray(y), np.asarray(s, np.float64)
    points = [(0.0, 1.0)]
    for t in np.unique(s)[::-1]:
        hit = s >= t
        tp = float(np.sum(y[hit] == 1))
        points.append((tp / y.sum(), tp / hit.sum()))
    return sum((r1 - r0) * (p0 + p1) / 2 for (r0, p0), (r1, p1) in zip(points, points[1:]))


def step_ap_reference(y, s):
    y, s = np.asarray(y), np.asarray(s, np.float64)
    ap, prev = 0.0, 0.0
    for t in np.unique(s)[::-1]:
        hit = s >= t
        tp = float(np.sum(y[hit] == 1))
        ap += (tp / y.sum() - prev) * tp / hit.sum()
        prev = tp / y.sum()
    return ap


def dense_solution(W, y, alpha):
    """z = (I - alpha D^-1/2 W D^-1/2)^-1 y in float64, degree-0 rows and columns of S zero."""
    d = W.sum(axis=1)
    dinv = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
    S = dinv[:, None] * W * dinv[None, :]
    return np.linalg.solve(np.eye(W.shape[0]) - alpha * S, y), S


def to_csr(W):
    m = sp.csr_matrix(W)
    m.sum_duplicates()
    m.sort_indices()
    return m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.float64)


def random_symmetric(rng, N, density):
    upper = sp.random(N, N, density=density, random_state=rng, format="coo")
    W = sp.triu(upper, k=1)
    W = (W + W.T).toarray()
    isolated = rng.random(N) < 0.1                         # some rows of degree 0
    W[isolated] = 0.0
    W[:, isolated] = 0.0
    return W


def anchor_reference(x, offsets, anchors, anchor_video, k, first_video=0):
    """Brute force in float64: every cosine, same-video anchors masked, a stable sort on
    (-similarity, anchor index). Returns (index (N, k), similarity (N, k), all cosines (N, A))."""
    x = np.asarray(x, np.float64)
    a = np.asarray(anchors, np.float64)
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (a / np.linalg.norm(a, axis=1, keepdims=True)).T
    video = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)) + first_video
    masked = np.where(video[:, None] == np.asarray(anchor_video)[None, :], -np.inf, cos)
    index = np.full((x.shape[0], k), -1)
    sim = np.full((x.shape[0], k), -np.inf)
    for i in range(x.shape[0]):
        order = np.lexsort((np.arange(a.shape[0]), -masked[i]))
        order = [o for o in order if np.isfinite(masked[i, o])][:k]
        index[i, :len(order)] = order
        sim[i, :len(order)] = masked[i, order]
    return index, sim, masked


def random_case(rng, dtype):
    V = int(rng.integers(1, 7))
    lengths = rng.integers(1, 25, size=V)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    D = int(rng.integers(1, 40))
    x = rng.normal(size=(int(offsets[-1]), D)).astype(dtype)
    first_video = int(rng.integers(0, 3))
    A = int(rng.integers(0, 30))
    anchors = rng.normal(size=(A, D)).astype(dtype)
    anchor_video = rng.integers(0, V + first_video + 2, size=A)
    k = int(rng.integers(1, 6))
    return x, offsets, anchors, anchor_video, k, first_video


def labelled_files(d, num_videos: int, max_length: int, seed: int):
    """f.h5 + f.gt.h5 (lanp synth data), f.labels.h5, m.pt (2 epochs) and s.h5 in folder ``d``,
    each made by its CLI command: the inputs every command's bad-input tests start from."""
    from lanp.cli import main, propagate_main
    from lanp.data.synth import make_synthetic, write_synthetic

    synth = make_synthetic(num_videos=num_videos, dim=8, min_length=6, max_length=max_length, seed=seed)
    write_synthetic(synth, d / "f.h5", d / "f.gt.h5")
    assert propagate_main(["--features", str(d / "f.h5"), "--out", str(d / "f.labels.h5"), "--quiet"]) == 0
    assert main(["train", "--features", str(d / "f.h5"), "--labels", str(d / "f.labels.h5"), "--out",
                 str(d / "m.pt"), "--epochs", "2", "--quiet"]) == 0
    assert main(["score", "--model", str(d / "m.pt"), "--features", str(d / "f.h5"), "--out",
                 str(d / "s.h5"), "--quiet"]) == 0
    return synth


def learnable_snippets(rng, V, D, min_length, max_length):
    """A tiny learnable task: (x (N, D) float32, y (N,) uint8, offsets (V+1,), lengths (V,)); the
    first half of the videos hold a run of label-1 snippets (a third of the video, from a third in)
    whose first feature is shifted by +3."""
    lengths = rng.integers(min_length, max_length, V)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    N = int(offsets[-1])
    y = np.zeros(N, np.uint8)
    for v in range(V // 2):
        a = offsets[v] + lengths[v] // 3
        y[a:a + max(1, lengths[v] // 3)] = 1
    x = rng.normal(0, 1, (N, D)).astype(np.float32)
    x[:, 0] += 3.0 * y
    return x, y, offsets, lengths


def scene_videos(rng, n_videos=12, dim=10):
    """Videos of three shared scenes, each a little noisy; every fourth (v % 4 == 1) holds an anomaly
    no other video has (snippets L//3 .. L//2). A list of (L, dim) float32."""
    base = rng.gamma(2.0, 0.2, size=(3, dim))
    out = []
    for v, n in enumerate(rng.integers(8, 40, size=n_videos)):
        x = base[v % 3] + 0.03 * rng.normal(size=(n, dim))
        if v % 4 == 1:
            x[n // 3: n // 2] += rng.gamma(2.0, 0.5, size=dim)
        out.append(np.abs(x).astype(np.float32))
    return out


def packed(videos):
    """(x (N, D), offsets (V+1,) int64) of a list of per-video arrays."""
    return np.concatenate(videos), np.concatenate([[0], np.cumsum([len(v) for v in videos])]).astype(np.int64)


def labels_dataset(labels, name):
    """A dataset of a lanp.label result by its file name (the recipe's extras or the fields)."""
    return labels.extra[name] if name in labels.extra else getattr(labels, name)


def assert_every_runner_agrees(tmp_path, videos, make_recipe, preset, datasets):
    """In memory, one file in many chunks and the CLI (``--preset preset``) give the same datasets
    bit for bit; returns the CLI file's attributes."""
    import h5py

    import lanp
    from lanp.cli import propagate_main
    from lanp.runners.file import label_file

    x, offsets = packed(videos)
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["features"], f["offsets"] = x, offsets
    memory = lanp.label(videos, recipe=make_recipe())
    chunked = label_file(path, make_recipe(), progress=False, chunk_bytes=4 * x.shape[1] * 25)   # many chunks
    assert propagate_main(["--features", str(path), "--out", str(tmp_path / "l.h5"), "--preset", preset,
                           "--quiet"]) == 0
    with h5py.File(tmp_path / "l.h5", "r") as f:
        cli, attrs = {k: f[k][()] for k in datasets}, dict(f.attrs)
    for k in datasets:
        np.testing.assert_array_equal(labels_dataset(chunked, k), labels_dataset(memory, k), err_msg=k)
        np.testing.assert_array_equal(cli[k], labels_dataset(memory, k), err_msg=k)
    return attrs


def assert_sharded_equals_single(tmp_path, videos, make_recipe, preset, datasets, split=5, options=()):
    """A Dask run over two shard files (videos[:split], videos[split:]), with the CLI ``options``,
    writes what one in-memory run gives, bit for bit (needs the 'dist' extra)."""
    import h5py

    import lanp
    from lanp.cli import propagate_main

    pytest.importorskip("distributed")
    paths = []
    for i, part in enumerate((videos[:split], videos[split:])):
        p = tmp_path / f"part{i}.h5"
        with h5py.File(p, "w") as f:
            f["features"], f["offsets"] = packed(part)
        paths.append(p)
    assert propagate_main(["--features", *map(str, paths), "--out", str(tmp_path / "out"), "--preset", preset,
                           "--quiet", *options]) == 0
    single = lanp.label(videos, recipe=make_recipe())
    for k in datasets:
        got = []
        for p in paths:
            with h5py.File(tmp_path / "out" / f"{p.stem}.labels.h5", "r") as f:
                got.append(f[k][()])
        np.testing.assert_array_equal(np.concatenate(got), labels_dataset(single, k), err_msg=k)


def labelled_split(tmp_path, name, V=10, D=5, crops=None, seed=0, max_length=30):
    """A features file, a labels file (the ground truth, weights 1) and a gt.h5 of V videos of
    6..max_length-1 snippets; every second video is abnormal, its label-1 snippets (its middle third)
    have a shifted first feature; with ``crops`` the features are (N, crops, D). Returns (paths
    {feats, labels, gt}, x, offsets, ids)."""
    from lanp.data.io import write_h5

    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, max_length, V)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    y = np.zeros(offsets[-1], np.uint8)
    for v in range(0, V, 2):
        a = offsets[v] + lengths[v] // 3
        y[a:a + lengths[v] // 3] = 1
    x = rng.normal(0, 1, (offsets[-1], D)).astype(np.float32)
    x[:, 0] += 3.0 * y
    if crops:
        x = x[:, None, :] + rng.normal(0, 0.05, (offsets[-1], crops, D)).astype(np.float32)
    ids = [f"{name}_{v:03d}" for v in range(V)]
    paths = {k: tmp_path / f"{name}.{k}.h5" for k in ("feats", "labels", "gt")}
    write_h5(paths["feats"], {"features": x, "offsets": offsets, "video_ids": ids})
    write_h5(paths["labels"], {"pseudo_label": y, "weight": np.ones(len(y), np.float32), "offsets": offsets,
                               "video_ids": ids})
    write_h5(paths["gt"], {"snippet_labels": y, "offsets": offsets, "video_ids": ids})
    return paths, x, offsets, ids


def independent_terms(x, offsets):
    """(zn, n) float64 of the dual and tri priors computed here from the kernels directly: z over
    the mean z at the video's first and last snippets, and the cosine to the nearest first or last
    snippet of another video (exact search)."""
    from lanp.kernels import anchor_neighbours, propagate

    V = offsets.shape[0] - 1
    z = np.asarray(propagate(x, offsets, warn=False).z, np.float64)
    zn = z / np.repeat(0.5 * (z[offsets[:-1]] + z[offsets[1:] - 1]), np.diff(offsets))
    video = np.repeat(np.arange(V), np.diff(offsets))
    seeds = np.stack([offsets[:-1], offsets[1:] - 1], axis=1).ravel()
    return zn, anchor_neighbours(x, offsets, x[seeds], video[seeds], k=1).similarity[:, 0]


def assert_labels_follow_exact_ranks(out, offsets, a, q=0.15):
    """A ranking preset's labels ``out`` against its abnormality ``a`` (N,) from exact ranks: the
    normality follows 1 - a, the top q of a are pseudo-abnormal up to the snippets next to the
    threshold (the recipe's CDFs come from histograms, its threshold from a sample), weights are 1,
    video_abnormal marks the videos holding pseudo-abnormal snippets, and the most abnormal
    snippets lie in the videos with a planted anomaly (v % 4 == 1, :func:`scene_videos`)."""
    from scipy.stats import rankdata

    N, V = a.shape[0], offsets.shape[0] - 1
    assert np.corrcoef(a, 1.0 - out.normality)[0, 1] > 0.999
    want = rankdata(a, method="max") / N > 1.0 - q
    got = out.pseudo_label.astype(bool)
    assert abs(got.mean() - q) < 0.03
    assert np.mean(got == want) > 0.97
    assert np.all(out.weight == 1.0)
    # estimated from the sample: every video here is shorter than the sample, so it is exact
    holds = np.maximum.reduceat(out.pseudo_label, offsets[:-1]) > 0
    np.testing.assert_array_equal(out.video_abnormal, holds)
    worst = np.argsort(out.normality)[:5]
    assert set((np.searchsorted(offsets, worst, side="right") - 1).tolist()) <= {v for v in range(V) if v % 4 == 1}
