"""Each LANP ablation changes only what it names; the default path is the core pipeline exactly."""
import numpy as np
import pytest

from lanp.method.ablations import (ABLATIONS, Ablation, AblationRecipe, direct_normality, graph_variant,
                            local_contrast, prior_positions, seed_lists)
from lanp.kernels import similarity, solve
from lanp.method.options import PropagateConfig
from lanp.runners.file import label_file as run_propagation
from lanp.runners.memory import label_arrays


def ablation_labels(features, offsets, config=None, ablation=None):
    return label_arrays(AblationRecipe(config, ablation), features, offsets)
from lanp.data.synth import make_synthetic, write_synthetic


@pytest.fixture(scope="module")
def small():
    return make_synthetic(num_videos=14, dim=12, min_length=3, max_length=30, seed=3, world_seed=3)


def test_default_reproduces_pipeline_exactly(small, tmp_path):
    path = tmp_path / "f.h5"
    write_synthetic(small, path)
    for config in (PropagateConfig(preset="paper"), PropagateConfig(preset="paper", window=4, normal_fraction=0.3)):
        core = run_propagation(path, config, progress=False)
        ours = ablation_labels(small.features, small.offsets, config, Ablation())
        assert np.array_equal(ours.normality, core.normality)
        assert np.array_equal(ours.pseudo_label, core.pseudo_label)
        assert np.array_equal(ours.weight, core.weight)
        assert np.array_equal(ours.video_abnormal, core.video_abnormal)
        assert np.array_equal(ours.video_score.astype(np.float32), core.video_score)


def test_no_reweight_changes_only_the_weights(small):
    base = ablation_labels(small.features, small.offsets, ablation=Ablation())
    off = ablation_labels(small.features, small.offsets, ablation=ABLATIONS["lanp-no-reweight"])
    assert np.array_equal(off.normality, base.normality)
    assert np.array_equal(off.pseudo_label, base.pseudo_label)
    assert np.all(off.weight == 1.0) and not np.all(base.weight == 1.0)


def test_per_video_seeds_through_the_kernels_match_one_list_for_all(small):
    """Per-video seed lists that all say (0, 1, -1) give the uniform seeds' solve exactly."""
    x, o = small.features.astype(np.float64), small.offsets
    for window in (None, 3):
        g = similarity(x, o, window=window, dtype="float64")
        ref = solve(g, seeds=(0, 1, -1))
        per_video = solve(g, seeds=[prior_positions((0, 1, -1), int(n)) for n in np.diff(o)])
        assert np.array_equal(per_video.z, ref.z)
        assert np.array_equal(per_video.iterations, ref.iterations) and per_video.residual.max() < 1e-5


def test_random_seeds_same_count_seeded_distinct(small):
    config = PropagateConfig(seeds=(0, -1))
    a = seed_lists(small.features, small.offsets, config, Ablation(seeds="random", rng_seed=1))
    b = seed_lists(small.features, small.offsets, config, Ablation(seeds="random", rng_seed=1))
    c = seed_lists(small.features, small.offsets, config, Ablation(seeds="random", rng_seed=2))
    lengths = np.diff(small.offsets)
    for s, t, n in zip(a, b, lengths):
        assert np.array_equal(s, t)
        assert s.size == prior_positions((0, -1), int(n)).size == len(set(s.tolist()))
        assert s.min() >= 0 and s.max() < n
    assert any(not np.array_equal(s, t) for s, t in zip(a, c))


def test_data_driven_seeds_least_local_contrast():
    x = np.array([[0.0], [1.0], [1.0], [3.0], [7.0], [7.5]])
    np.testing.assert_allclose(local_contrast(x, np.array([0, 4, 6])), [1.0, 0.5, 1.0, 2.0, 0.5, 0.5])
    # a video whose flattest snippets are its two ends: the data-driven ablation is the prior again
    rng = np.random.default_rng(0)
    x = np.concatenate([np.tile(rng.normal(size=(1, 6)), (2, 1)), rng.normal(size=(8, 6)) * 3,
                        np.tile(rng.normal(size=(1, 6)), (2, 1))]) + 5
    o = np.array([0, 12])
    config = PropagateConfig(preset="paper", dtype="float64")
    x[1] += 0.01 * rng.normal(size=6)          # break the tie: 0 and 11 are now strictly the flattest
    x[10] += 0.01 * rng.normal(size=6)
    seeds = seed_lists(x, o, config, Ablation(seeds="data-driven"))
    assert seeds[0].tolist() == [0, 11]
    z_dd = AblationRecipe(config, Ablation(seeds="data-driven")).normality(x, o, None, "x", 0).z
    z_core = AblationRecipe(config, Ablation()).normality(x, o, None, "x", 0).z
    np.testing.assert_allclose(z_dd, z_core, rtol=1e-8)


def _raw_w(x, L, feature, temporal, sigma=0.1):
    """Reference W (float64, zero diagonal) from the paper's formulas on unit rows."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    d2 = ((u[:, None] - u[None]) ** 2).sum(-1)
    t = np.arange(L)
    W = np.ones((L, L))
    if feature:
        W = W * np.exp(-d2 / (2 * sigma ** 2))
    if temporal:
        W = W * np.exp(-np.abs(t[:, None] - t[None]) / L)
    np.fill_diagonal(W, 0.0)
    return W


@pytest.mark.parametrize("window", [None, 2])
def test_similarity_variants_change_only_their_term(small, window):
    x, o = small.features.astype(np.float64), small.offsets
    config = PropagateConfig(window=window, dtype="float64")
    # feature only == the kernels' graph with Wt = 1 (a temporal scale so large that exp(-|i-j|/s) = 1)
    wf = graph_variant(x, o, config, "feature")
    ref = similarity(x, o, window=window, temporal_scale=1e300, dtype="float64")
    np.testing.assert_allclose(wf.values, ref.values, atol=1e-12)
    wt = graph_variant(x, o, config, "temporal")
    for v in range(len(o) - 1):
        L = int(o[v + 1] - o[v])
        xv = x[o[v]:o[v + 1]]
        i = np.arange(L)
        band = np.ones((L, L), bool) if window is None else np.abs(i[:, None] - i[None]) <= window
        for g, feat, temp in ((wf, True, False), (wt, False, True)):
            raw = _raw_w(xv, L, feat, temp) * band
            d = np.outer(raw.sum(1), raw.sum(1))
            want = np.divide(raw, np.sqrt(d), out=np.zeros_like(raw), where=d > 0)
            np.testing.assert_allclose(g.dense(v), want, atol=1e-12)
    assert np.all(np.isfinite(solve(wt).z))        # the kernels' solver runs on the variant graphs


def test_direct_comparison_by_hand():
    x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [1.0, 0.1]])
    o = np.array([0, 4])
    config = PropagateConfig(sigma=0.5)
    z = direct_normality(x, o, [np.array([0, 3])], config)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    want = [max(np.exp(-np.sum((u[i] - u[s]) ** 2) / 0.5 - abs(i - s) / 4) for s in (0, 3)) for i in range(4)]
    np.testing.assert_allclose(z, want, rtol=1e-12)
    assert z[0] == 1.0 and z[3] == 1.0


def test_direct_changes_only_the_normality(small):
    base = ablation_labels(small.features, small.offsets, ablation=Ablation())
    d = ablation_labels(small.features, small.offsets, ablation=ABLATIONS["lanp-direct"])
    seeds = seed_lists(small.features, small.offsets, PropagateConfig(), Ablation())
    want = direct_normality(small.features, small.offsets, seeds, PropagateConfig())
    np.testing.assert_array_equal(d.normality, want.astype(np.float32))
    assert not np.array_equal(d.pseudo_label, base.pseudo_label)


def test_bad_ablation_names():
    with pytest.raises(ValueError, match="seeds='corners'"):
        Ablation(seeds="corners")
    with pytest.raises(ValueError, match="similarity"):
        Ablation(similarity="spatial")
