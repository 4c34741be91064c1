"""The joint-graph recipe: z against a dense float64 solve of the same system, the refusals of
runners that cannot give it every video at once, its settings, its compare row."""
import h5py
import numpy as np
import pytest

import lanp
from lanp.kernels import InputError
from lanp.method.joint import JointGraphRecipe, JointSettings
from lanp.method.registry import METHOD_RECIPES, method_recipe
from lanp.runners.file import label_file


def _videos(rng, count=8):
    base = np.abs(rng.normal(1.0, 0.3, size=(3, 6)))
    out = []
    for v, n in enumerate(rng.integers(6, 20, size=count)):
        x = base[v % 3] + 0.05 * rng.normal(size=(n, 6))
        if v % 3 == 1:
            x[n // 3: n // 2] += np.abs(rng.normal(1.0, 0.5, size=6))      # an anomaly only this video has
        out.append(np.abs(x).astype(np.float32))
    return out


def _dense_reference(videos, settings, sigma=0.1, alpha=0.99):
    """The joint system built from scratch in float64: band S_v (paper's W_f * W_t on a window,
    L2-normalised rows), anchor edges to the k nearest first/last snippets of other videos, dense solve."""
    x = np.concatenate(videos).astype(np.float64)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in videos])])
    N, w = x.shape[0], settings.window
    W = np.zeros((N, N))
    for v in range(len(videos)):
        a, b = offsets[v], offsets[v + 1]
        L = b - a
        d2 = ((u[a:b, None] - u[None, a:b]) ** 2).sum(-1)
        t = np.abs(np.arange(L)[:, None] - np.arange(L)[None, :])
        Wv = np.exp(-d2 / (2 * sigma ** 2)) * np.exp(-t / L)
        Wv[(t > w) | (t == 0)] = 0.0
        dinv = 1.0 / np.sqrt(Wv.sum(1))
        W[a:b, a:b] = dinv[:, None] * Wv * dinv[None, :]
    rows = np.unique(np.stack([offsets[:-1], offsets[1:] - 1], 1).ravel())
    video_of = np.searchsorted(offsets, np.arange(N), side="right") - 1
    E = np.zeros((N, N))
    for i in range(N):
        cos = u[i] @ u[rows].T
        cos[video_of[rows] == video_of[i]] = -np.inf
        for j in np.argsort(-cos, kind="stable")[:settings.neighbours]:
            E[i, rows[j]] += settings.cross_weight * np.exp(-(1 - cos[j]) / sigma ** 2) / (2 * w)
    np.fill_diagonal(E, 0.0)
    W = W + (E + E.T) / 2
    dinv = 1.0 / np.sqrt(W.sum(1))
    S = dinv[:, None] * W * dinv[None, :]
    y = np.zeros(N)
    y[rows] = 1.0
    return np.linalg.solve(np.eye(N) - alpha * S, y)


@pytest.mark.parametrize("search", ["exact", "projected"])
def test_normality_is_the_joint_solve(rng, search):
    videos = _videos(rng)
    settings = JointSettings(anchor_search=search, search_dims=6, search_candidates=16, window=3)
    out = lanp.label(videos, recipe=JointGraphRecipe(settings=settings))
    want = _dense_reference(videos, settings)
    rel = np.max(np.abs(out.normality - want)) / np.max(np.abs(want))
    assert rel < 1e-4, rel                                   # float32 z, CG to tol 1e-6
    assert out.attrs["preset"] == "joint-graph" and out.attrs["joint_window"] == 3
    assert out.cg_converged.all() and len(set(out.cg_iterations.tolist())) == 1    # one solve for all


def test_cross_edges_change_the_solution(rng):
    """cross_weight 0 is every video's own banded propagation: a different z (the edges act)."""
    videos = _videos(rng)
    joint = lanp.label(videos, recipe=JointGraphRecipe())
    alone = lanp.label(videos, recipe=JointGraphRecipe(settings=JointSettings(cross_weight=0.0)))
    want = _dense_reference(videos, JointSettings(cross_weight=0.0))
    assert np.max(np.abs(alone.normality - want)) / np.max(np.abs(want)) < 1e-4
    assert np.max(np.abs(joint.normality - alone.normality)) > 1e-2


def test_a_file_in_one_chunk_runs_a_larger_one_is_refused(rng, tmp_path):
    videos = _videos(rng)
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["features"] = np.concatenate(videos)
        f["offsets"] = np.concatenate([[0], np.cumsum([len(v) for v in videos])]).astype(np.int64)
    whole = label_file(path, JointGraphRecipe(), progress=False)
    np.testing.assert_array_equal(whole.normality, lanp.label(videos, recipe=JointGraphRecipe()).normality)
    with pytest.raises(InputError, match=r"f\.h5: the joint-graph recipe solves one system over all 8 videos"):
        label_file(path, JointGraphRecipe(), progress=False, chunk_bytes=4 * 6 * 25)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="window=0 is invalid"):
        JointSettings(window=0)
    with pytest.raises(ValueError, match="cross_weight=-1.0 is invalid"):
        JointSettings(cross_weight=-1.0)
    with pytest.raises(ValueError, match="search_candidates=2 is invalid"):
        JointSettings(search_candidates=2)


def test_compare_row():
    assert "joint-graph" in METHOD_RECIPES
    assert isinstance(method_recipe("joint-graph"), JointGraphRecipe)
