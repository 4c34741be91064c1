"""The dual-prior recipe: its dataset ranks against exact ones, hand-checked pieces, equal labels
from every runner, refusals."""
import h5py
import numpy as np
import pytest
from scipy.stats import rankdata

import lanp
from lanp.cli import propagate_main
from lanp.method.crossvideo import CrossVideoSettings
from lanp.method.dualprior import (U_BINS, ZN_BINS, Bins, DualPriorRecipe, DualPriorSettings, HistogramCdf,
                                   sample_positions, seed_means, video_histograms, weighted_quantile)
from shared import (assert_every_runner_agrees, assert_labels_follow_exact_ranks, assert_sharded_equals_single,
                    independent_terms, packed, scene_videos)

DATASETS = ("normality", "pseudo_label", "weight", "video_score", "video_abnormal", "in_video_normality",
            "cross_video_normality")
EXACT = DualPriorSettings(crossvideo=CrossVideoSettings(anchor_search="exact"))


@pytest.mark.parametrize("bins, draw", [
    (Bins(hi=2.0), lambda rng, n: rng.uniform(0.0, 1.9, size=n) ** 2 / 1.9),            # skewed, inside [0, hi]
    (ZN_BINS, lambda rng, n: rng.uniform(0.0, 3.9, size=n) ** 3 / 3.9 ** 2),
    (U_BINS, lambda rng, n: np.exp(rng.uniform(np.log(5e-4), np.log(2e-3), size=n))),  # a sliver near 0
])
def test_histogram_cdf_is_the_empirical_cdf_up_to_one_bin(rng, bins, draw):
    values = draw(rng, 5000)
    offsets = np.array([0, 1200, 5000])
    counts = video_histograms(values, offsets, bins)
    assert counts.shape == (2, bins.count) and counts.sum() == values.size
    assert counts[0].sum() == 1200
    cdf = HistogramCdf(counts.sum(axis=0), bins)
    probe = np.concatenate([draw(rng, 200), rng.uniform(0.0, bins.hi, size=100)])
    exact = np.searchsorted(np.sort(values), probe, side="right") / values.size
    # linear inside a bin: off by at most the share of the probe's own bin
    if bins.floor > 0:
        own = np.floor(np.log1p(probe / bins.floor) / np.log1p(bins.hi / bins.floor) * bins.count).astype(int)
    else:
        own = np.floor(probe / bins.hi * bins.count).astype(int)
    allowed = cdf.counts[np.minimum(own, bins.count - 1)] / cdf.total + 1e-12
    assert np.all(np.abs(cdf(probe) - exact) <= allowed)
    assert cdf(np.array([-1.0]))[0] == 0.0 and cdf(np.array([bins.hi + 1.0]))[0] == 1.0
    with pytest.raises(ValueError, match="do not fit"):
        HistogramCdf(counts.sum(axis=0)[1:], bins)


def test_log_bins_resolve_a_sliver_that_equal_bins_tie(rng):
    """u crowded into [5e-4, 2e-3] (the scene worlds' snippets next to an anchor): the log bins'
    CDF is within 1 % of the exact one everywhere; equal bins of width 1e-3 are off by far more."""
    values = np.exp(rng.uniform(np.log(5e-4), np.log(2e-3), size=20000))
    exact = np.arange(1, values.size + 1) / values.size
    ordered = np.sort(values)
    for bins, worst in ((U_BINS, 0.01), (Bins(hi=2.0), None)):
        cdf = HistogramCdf(video_histograms(values, np.array([0, values.size]), bins)[0], bins)
        error = np.max(np.abs(cdf(ordered) - exact))
        if worst is not None:
            assert error < worst
        else:
            assert error > 0.05
    # hand-checked: log1p positions of 0, the floor and hi
    b = Bins(hi=3.0, floor=1.0, count=2)
    np.testing.assert_allclose(b.position(np.array([0.0, 1.0, 3.0, 7.0, -1.0, np.nan])),
                               [0.0, 2 * np.log(2) / np.log(4), 2.0, 2.0, 0.0, 2.0])
    assert b.index(np.array([3.0])).tolist() == [1]


def test_hand_checked_pieces():
    assert sample_positions(3).tolist() == [0, 1, 2]
    assert sample_positions(8, m=4).tolist() == [1, 3, 5, 7]            # floor((k + 1/2) 8 / 4)
    assert weighted_quantile(np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 2.0]), 0.5) == 2.0
    assert weighted_quantile(np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 2.0]), 0.8) == 3.0
    z = np.array([2.0, 1.0, 4.0, 1.0, 1.0, 3.0])
    np.testing.assert_allclose(seed_means(z, np.array([0, 3, 6]), (0, -1)), [3.0, 2.0])
    np.testing.assert_allclose(seed_means(z, np.array([0, 3, 6]), [[1], [0, 1]]), [1.0, 1.0])


def test_labels_are_the_exact_dataset_ranks(rng):
    """Against the definition with exact ranks over every snippet: a_i = 1 - (F_z + F_n) / 2, the
    top q of a pseudo-abnormal. The recipe's CDFs come from histograms and its threshold from a
    sample, so a few snippets next to the threshold may differ; everything else must agree."""
    x, offsets = packed(scene_videos(rng, n_videos=30))
    out = lanp.label(x, offsets, recipe=DualPriorRecipe(settings=EXACT))
    zn, n = independent_terms(x, offsets)
    np.testing.assert_allclose(out.extra["in_video_normality"], zn, rtol=2e-6)
    np.testing.assert_allclose(out.extra["cross_video_normality"], n, rtol=1e-6)
    N = x.shape[0]
    a = 1.0 - 0.5 * (rankdata(zn, method="max") / N + rankdata(n, method="max") / N)
    assert_labels_follow_exact_ranks(out, offsets, a)


def test_every_runner_gives_the_same_labels(tmp_path, rng):
    attrs = assert_every_runner_agrees(tmp_path, scene_videos(rng), DualPriorRecipe, "dual-prior", DATASETS)
    assert attrs["recipe"] == "dual-prior"


def test_sharded_equals_single(tmp_path, rng):
    assert_sharded_equals_single(tmp_path, scene_videos(rng), DualPriorRecipe, "dual-prior", DATASETS)


def test_refusals(tmp_path):
    for bad in (0.0, 1.0, -0.1, True, "0.2"):
        with pytest.raises(ValueError, match="abnormal_share"):
            DualPriorSettings(abnormal_share=bad)
    with pytest.raises(RuntimeError, match="needs its anchors"):
        DualPriorRecipe().first_pass(np.ones((4, 3), np.float32), np.array([0, 4]), None, "x")
    for option in ({"n_normal": 3}, {"normal_fraction": 0.3}, {"normal_split": "otsu"}, {"abnormal_ratio": 0.2},
                   {"video_score": "std"}):
        with pytest.raises(ValueError, match=f"{next(iter(option))}=.*does not apply to the dual-prior"):
            lanp.label([np.ones((4, 3), np.float32)] * 3, preset="dual-prior", **option)
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["features"], f["offsets"] = np.abs(np.random.default_rng(0).normal(size=(12, 3))), np.array([0, 4, 8, 12])
    for argv in (["--video-score", "std"], ["--n-normal", "1"]):
        out = tmp_path / "l.h5"
        assert propagate_main(["--features", str(path), "--out", str(out), "--preset", "dual-prior", *argv]) == 2
        assert not out.exists()


# -- human labels ---------------------------------------------------------------------------------
def _human(ids, offsets):
    from lanp.data.human_labels import HumanLabels
    lengths = np.diff(offsets)
    return HumanLabels({ids[0]: "normal_video", ids[1]: "abnormal_video", ids[5]: "abnormal_video",
                        ids[2]: "abnormal_video"},
                       {ids[1]: ((1, 4),), ids[5]: ((0, 2), (int(lengths[5]) - 2, int(lengths[5])))}, "few.csv")


def test_empty_human_labels_give_the_dual_prior_exactly(rng):
    from lanp.data.human_labels import HumanLabels
    videos = scene_videos(rng)
    plain = lanp.label(videos, preset="dual-prior")
    few = lanp.label(videos, preset="dual-prior", human=HumanLabels.empty())
    for k in DATASETS:
        np.testing.assert_array_equal(few.extra.get(k, getattr(few, k, None)), plain.extra.get(k, getattr(plain, k, None)),
                                      err_msg=k)
    assert "label_source" not in few.extra


def test_human_labels_override_and_the_ranks_come_from_the_rest(rng, tmp_path):
    videos = scene_videos(rng, n_videos=16)
    x, offsets = packed(videos)
    ids = [f"v{i}" for i in range(len(videos))]
    human = _human(ids, offsets)
    out = lanp.label(x, offsets, video_ids=ids, preset="dual-prior", human=human)
    label, video = human.snippet_arrays(ids, offsets)
    np.testing.assert_array_equal(out.extra["label_source"], (label >= 0).astype(np.uint8))
    np.testing.assert_array_equal(out.extra["video_human"], video)
    np.testing.assert_array_equal(out.pseudo_label[label >= 0], label[label >= 0])
    assert out.video_abnormal[[1, 2, 5]].all() and not out.video_abnormal[0]
    free = label < 0
    assert abs(out.pseudo_label[free].mean() - 0.15) < 0.03           # the share is the unlabelled snippets'
    assert np.all(out.weight == 1.0)
    assert out.attrs["human_abnormal_videos"] == 3 and out.attrs["human_normal_videos"] == 1
    # the ranks ignore the labelled snippets: moving a labelled snippet's features changes nothing
    # of the unlabelled snippets' labels beyond its own cross-video anchor role (video 0 keeps its seeds)
    y = x.copy()
    y[offsets[0] + 2] *= 3.0                                         # an interior snippet of labelled video 0
    moved = lanp.label(y, offsets, video_ids=ids, preset="dual-prior", human=human)
    others = np.arange(x.shape[0]) >= offsets[1]
    np.testing.assert_array_equal(moved.pseudo_label[others & free], out.pseudo_label[others & free])
    # one file through the CLI: the same labels, and lanp train takes them as human labels
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["features"], f["offsets"], f["video_ids"] = x, offsets, ids
    csv = tmp_path / "few.csv"
    from lanp.data.human_labels import write_labels_csv
    write_labels_csv(csv, human)
    assert propagate_main(["--features", str(path), "--out", str(tmp_path / "l.h5"), "--preset", "dual-prior",
                           "--labels-file", str(csv), "--quiet"]) == 0
    with h5py.File(tmp_path / "l.h5", "r") as f:
        np.testing.assert_array_equal(f["pseudo_label"][()], out.pseudo_label)
        np.testing.assert_array_equal(f["label_source"][()], out.extra["label_source"])
    from lanp.data.io import FeatureFile
    from lanp.model.train import read_training_labels
    with FeatureFile(path) as ff:
        got = read_training_labels(tmp_path / "l.h5", ff)
    assert set(got.human_video_ids) == set(human.kinds)


def test_dual_prior_refuses_cross_domain_labels(tmp_path, rng):
    x, offsets = packed(scene_videos(rng))
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["features"], f["offsets"] = x, offsets
    csv = tmp_path / "few.csv"
    csv.write_text("video_000001,abnormal_span,1,3\n")
    out = tmp_path / "l.h5"
    assert propagate_main(["--features", str(path), "--out", str(out), "--preset", "dual-prior", "--labels-file",
                           str(csv), "--source-features", str(path)]) == 2
    assert not out.exists()
