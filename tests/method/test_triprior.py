"""The tri-prior recipe: its third term against an independently fitted forest, its labels against
exact dataset ranks, equal labels from every runner, refusals, human labels."""
import json
import os

import h5py
import numpy as np
import pytest
from scipy.stats import rankdata

import lanp
from lanp.cli import propagate_main
from lanp.method.crossvideo import CrossVideoSettings
from lanp.method.dualprior import U_BINS, ZN_BINS, DualPriorSettings, sample_positions
from lanp.method.triprior import R_BINS, SAMPLE_MARK, TriPriorRecipe, TriPriorSettings
from shared import (assert_every_runner_agrees, assert_labels_follow_exact_ranks, assert_sharded_equals_single,
                    independent_terms, packed, scene_videos)

DATASETS = ("normality", "pseudo_label", "weight", "video_score", "video_abnormal", "in_video_normality",
            "cross_video_normality", "isolation_score")
EXACT = TriPriorSettings(dual=DualPriorSettings(crossvideo=CrossVideoSettings(anchor_search="exact")))


def test_context_rows_hold_the_anchors_then_the_marked_sample():
    recipe = TriPriorRecipe(settings=TriPriorSettings(per_video=3))
    x = np.arange(11 * 2, dtype=np.float32).reshape(11, 2)
    offsets = np.array([0, 2, 11])                     # lengths 2 (all of it) and 9 (rows 1, 4, 7)
    rows, videos = recipe.context_rows(x, offsets, first_video=5)
    mark = SAMPLE_MARK
    assert videos.tolist() == [5, 5, 6, 6, 5 + mark, 5 + mark, 6 + mark, 6 + mark, 6 + mark]
    want = [0, 1, 2, 10, 0, 1, 2 + 1, 2 + 4, 2 + 7]
    np.testing.assert_array_equal(rows, x[want].astype(np.float64))
    assert sample_positions(9, 3).tolist() == [1, 4, 7]


def test_isolation_score_is_sklearns_forest_on_the_sample(rng):
    from sklearn.ensemble import IsolationForest

    videos = scene_videos(rng, n_videos=20)
    x, offsets = packed(videos)
    out = lanp.label(x, offsets, recipe=TriPriorRecipe(settings=EXACT))
    picks = np.concatenate([offsets[v] + sample_positions(len(videos[v]), 8) for v in range(len(videos))])
    forest = IsolationForest(n_estimators=100, max_samples=min(256, picks.size), random_state=0).fit(x[picks])
    want = -forest.score_samples(x)
    got = out.extra["isolation_score"].astype(np.float64)
    assert np.max(np.abs(got - want) / want) < 1e-6                 # float32 output of a float64 score
    assert out.attrs["tri_forest_rows"] == picks.size and out.attrs["recipe"] == "tri-prior"


def test_threaded_forest_scores_are_the_sequential_ones_bit_for_bit(rng, monkeypatch):
    from sklearn.ensemble import IsolationForest

    import lanp.method.triprior as T

    x = rng.normal(size=(5000, 6)).astype(np.float32)
    forest = IsolationForest(n_estimators=20, random_state=1).fit(x[:500])
    monkeypatch.setattr(T, "SCORE_BLOCK", 700)                     # several blocks, uneven ends
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(3)), raising=False)   # 3 threads
    np.testing.assert_array_equal(T.forest_scores(forest, x), forest.score_samples(x))
    np.testing.assert_array_equal(T.forest_scores(forest, x[:5]), forest.score_samples(x[:5]))


def test_labels_are_the_exact_dataset_ranks(rng):
    """a_i = 1 - (F_z(zn) + F_n(n) + 1 - F_r(r)) / 3 with exact ranks over every snippet, the top q
    pseudo-abnormal; the recipe's histogram CDFs and sampled threshold may move snippets next to
    the threshold only."""
    x, offsets = packed(scene_videos(rng, n_videos=30))
    out = lanp.label(x, offsets, recipe=TriPriorRecipe(settings=EXACT))
    zn, n = independent_terms(x, offsets)
    r = out.extra["isolation_score"].astype(np.float64)             # checked against sklearn above
    np.testing.assert_allclose(out.extra["in_video_normality"], zn, rtol=2e-6)
    np.testing.assert_allclose(out.extra["cross_video_normality"], n, rtol=1e-6)
    N = x.shape[0]
    a = 1.0 - (rankdata(zn, method="max") / N + rankdata(n, method="max") / N + 1.0 - rankdata(r, method="max") / N) / 3
    assert_labels_follow_exact_ranks(out, offsets, a)


def test_the_third_term_changes_the_dual_priors_labels_only_through_its_rank(rng):
    """With the forest's rank constant the abnormality is the dual prior's, rescaled: the same order."""
    videos = scene_videos(rng, n_videos=16)
    tri = lanp.label(videos, preset="tri-prior")
    dual = lanp.label(videos, preset="dual-prior")
    for k in ("in_video_normality", "cross_video_normality"):
        np.testing.assert_array_equal(tri.extra[k], dual.extra[k], err_msg=k)
    assert not np.array_equal(tri.normality, dual.normality)


def test_every_runner_gives_the_same_labels(tmp_path, rng):
    attrs = assert_every_runner_agrees(tmp_path, scene_videos(rng), TriPriorRecipe, "tri-prior", DATASETS)
    assert attrs["recipe"] == "tri-prior" and attrs["tri_trees"] == 100
    # the file says how to read its cumulative tables: one bin spec per table, of its length
    bins = json.loads(attrs["dual_bins"])
    assert bins == {"dual_cdf_zn": ZN_BINS.describe(), "dual_cdf_u": U_BINS.describe(), "dual_cdf_r": R_BINS.describe()}
    for name, spec in ((n, b) for n, _, b in TriPriorRecipe.TABLES):
        assert len(attrs[name]) == spec.count + 1 and attrs[name][0] == 0.0 and attrs[name][-1] == 1.0


def test_sharded_equals_single(tmp_path, rng):
    assert_sharded_equals_single(tmp_path, scene_videos(rng), TriPriorRecipe, "tri-prior", DATASETS)


def test_refusals(tmp_path):
    for name, bad in (("per_video", 0), ("trees", 0), ("trees", 2.5), ("forest_seed", -1), ("per_video", True)):
        with pytest.raises(ValueError, match=f"{name}="):
            TriPriorSettings(**{name: bad})
    recipe = TriPriorRecipe()
    recipe.anchors = np.ones((2, 3))                               # anchors but no forest
    with pytest.raises(RuntimeError, match="needs its forest"):
        recipe.extra_terms(np.ones((4, 3), np.float32))
    for option in ({"n_normal": 3}, {"abnormal_ratio": 0.2}, {"video_score": "std"}):
        with pytest.raises(ValueError, match=f"{next(iter(option))}=.*does not apply to the tri-prior recipe"):
            lanp.label([np.ones((4, 3), np.float32)] * 3, preset="tri-prior", **option)
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["features"], f["offsets"] = np.abs(np.random.default_rng(0).normal(size=(12, 3))), np.array([0, 4, 8, 12])
    out = tmp_path / "l.h5"
    out.write_bytes(b"keep me")
    assert propagate_main(["--features", str(path), "--out", str(out), "--preset", "tri-prior", "--n-normal", "1"]) == 2
    assert out.read_bytes() == b"keep me"


def test_human_labels_override(rng):
    from lanp.data.human_labels import HumanLabels

    videos = scene_videos(rng, n_videos=16)
    x, offsets = packed(videos)
    ids = [f"v{i}" for i in range(len(videos))]
    human = HumanLabels({ids[0]: "normal_video", ids[1]: "abnormal_video"}, {ids[1]: ((1, 4),)}, "few.csv")
    out = lanp.label(x, offsets, video_ids=ids, preset="tri-prior", human=human)
    label, video = human.snippet_arrays(ids, offsets)
    np.testing.assert_array_equal(out.pseudo_label[label >= 0], label[label >= 0])
    np.testing.assert_array_equal(out.extra["label_source"], (label >= 0).astype(np.uint8))
    assert abs(out.pseudo_label[label < 0].mean() - 0.15) < 0.03
    plain = lanp.label(x, offsets, video_ids=ids, preset="tri-prior", human=HumanLabels.empty())
    np.testing.assert_array_equal(plain.pseudo_label, lanp.label(x, offsets, video_ids=ids, preset="tri-prior").pseudo_label)


def test_the_forests_sample_is_part_of_the_run_key(rng):
    """A resumed run must not reuse pass-1 results computed with another forest: the key follows the
    sample (by digest: the rows themselves are not kept, the recipe is sent to every shard)."""
    x = rng.normal(size=(40, 5)).astype(np.float32)
    offsets = np.array([0, 20, 40])
    recipe = TriPriorRecipe()
    rows, videos = recipe.context_rows(x, offsets, 0)
    same = recipe.with_context(rows, videos).pass1_key()
    assert recipe.with_context(rows.copy(), videos).pass1_key() == same
    moved = rows.copy()
    moved[np.flatnonzero(videos >= SAMPLE_MARK)[3]] += 1.0       # a sample row, not an anchor
    assert recipe.with_context(moved, videos).pass1_key() != same
    assert not any(isinstance(v, np.ndarray) and v.shape == rows[videos >= SAMPLE_MARK].shape
                   for v in vars(recipe.with_context(rows, videos)).values())
