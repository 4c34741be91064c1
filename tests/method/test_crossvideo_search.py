"""The projected anchor search (lanp.method.anchor_search) against a float64 brute force and the
exact kernel: exact when nothing is cut, every value an exact cosine, recall on clustered data,
bad input named as the exact kernel names it, the recipe's option."""
import numpy as np
import pytest

import lanp
from lanp.kernels import InputError, anchor_neighbours
from lanp.method.anchor_search import ProjectedAnchors, check_search
from lanp.method.crossvideo import CrossVideoRecipe, CrossVideoSettings
from shared import anchor_reference, random_case

ROUNDING = 1e-12        # float64 dot products of unit rows


def clustered(rng, videos=40, length=(20, 60), D=64, clusters=12, spread=0.25):
    """Videos that wander around a few shared centres (positive, like post-ReLU features)."""
    centres = np.abs(rng.normal(size=(clusters, D)))
    lengths = rng.integers(*length, size=videos)
    parts = []
    for L in lengths:
        c = centres[rng.integers(clusters, size=L)]
        parts.append(np.abs(c + spread * rng.normal(size=(L, D))))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return np.concatenate(parts), offsets


def seed_anchors(x, offsets):
    rows = np.stack([offsets[:-1], offsets[1:] - 1], axis=1).ravel()
    return np.ascontiguousarray(x[rows]), np.repeat(np.arange(len(offsets) - 1), 2)


@pytest.mark.parametrize("projection", ["pca", "random"])
def test_nothing_cut_is_the_exact_search(rng, projection):
    """d = D and c = A: the float64 brute force's k largest cosines, to rounding, and certified."""
    for _ in range(20):
        x, offsets, anchors, anchor_video, k, first_video = random_case(rng, np.float64)
        D, A = x.shape[1], anchors.shape[0]
        search = ProjectedAnchors(anchors, anchor_video, D, max(A, 1), projection, seed=int(rng.integers(1 << 30)))
        got, _, stats = search.search(x, offsets, k, first_video=first_video, backend="cpu")
        _, want, _ = anchor_reference(x, offsets, anchors, anchor_video, k, first_video)
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
        ok = np.isfinite(want)
        assert np.max(np.abs(got[ok] - want[ok]), initial=0.0) <= ROUNDING
        assert stats.rows == x.shape[0] and stats.certified == x.shape[0]


def test_every_value_is_an_exact_cosine_of_an_eligible_anchor(rng):
    """A small d and c may miss the nearest anchor, never return a value no anchor has."""
    x, offsets = clustered(rng)
    anchors, anchor_video = seed_anchors(x, offsets)
    search = ProjectedAnchors(anchors, anchor_video, dims=3, candidates=2, projection="random",
                              seed=int(rng.integers(1 << 30)))
    got, index, _ = search.search(x.astype(np.float32), offsets, 2, backend="cpu")
    _, want, cos = anchor_reference(x.astype(np.float32), offsets, anchors, anchor_video, 2)
    assert np.all(index >= 0)
    # the kept anchor's float64 cosine (-inf in ``cos`` for an anchor of the row's own video)
    np.testing.assert_allclose(got, np.take_along_axis(cos, index, axis=1), rtol=0, atol=ROUNDING)
    assert np.all(got <= want + ROUNDING)
    assert np.all(got[:, 0] >= got[:, 1])


def test_recall_on_clustered_data(rng):
    """recall@1 >= 0.97 with d = 8 of D = 64 and c = 12 of 80 anchors (PCA fitted on the anchors;
    30 seeds gave 0.990 - 1.000, mean 0.999; d = 4, c = 4 gives about 0.75); a certified row is
    never a miss."""
    x, offsets = clustered(rng)
    anchors, anchor_video = seed_anchors(x, offsets)
    search = ProjectedAnchors(anchors, anchor_video, dims=8, candidates=12)
    got, _, stats = search.search(x, offsets, 1, backend="cpu")
    _, want, _ = anchor_reference(x, offsets, anchors, anchor_video, 1)
    hit = np.abs(got[:, 0] - want[:, 0]) <= ROUNDING
    assert hit.mean() >= 0.97, hit.mean()
    assert stats.certified <= hit.sum()
    assert 0 < stats.rescored <= 12 * x.shape[0]


def test_row_blocks_that_cut_videos_give_the_same_bits(rng, monkeypatch):
    from lanp.method import anchor_search
    x, offsets = clustered(rng, videos=12)
    x = x.astype(np.float32)
    anchors, anchor_video = seed_anchors(x, offsets)
    search = ProjectedAnchors(anchors, anchor_video, dims=6, candidates=4)
    whole = search.search(x, offsets, 2, first_video=3, backend="cpu")
    monkeypatch.setattr(anchor_search, "BLOCK_ROWS", int(rng.integers(5, 40)))
    blocked = search.search(x, offsets, 2, first_video=3, backend="cpu")
    np.testing.assert_array_equal(blocked.similarity, whole.similarity)
    np.testing.assert_array_equal(blocked.index, whole.index)
    assert blocked.stats == whole.stats


def test_chunks_give_the_same_bits(rng):
    x, offsets = clustered(rng, videos=12)
    x = x.astype(np.float32)
    anchors, anchor_video = seed_anchors(x, offsets)
    search = ProjectedAnchors(anchors, anchor_video, dims=6, candidates=4)
    whole, _, _ = search.search(x, offsets, 1, backend="cpu")
    cut = int(rng.integers(1, 11))
    a = int(offsets[cut])
    head, _, _ = search.search(x[:a], offsets[:cut + 1], 1, backend="cpu")
    tail, _, _ = search.search(x[a:], offsets[cut:] - a, 1, first_video=cut, backend="cpu")
    np.testing.assert_array_equal(np.concatenate([head, tail]), whole)


@pytest.mark.parametrize("bad", [0.0, np.nan, np.inf])
def test_a_bad_row_is_named_as_the_exact_kernel_names_it(rng, bad):
    x, offsets = clustered(rng, videos=5)
    x = x.astype(np.float32)
    anchors, anchor_video = seed_anchors(x, offsets)
    row = int(offsets[3]) + 1
    x[row] = bad if bad != 0.0 else 0.0
    if bad != 0.0:
        x[row, 1:] = 0.0
    search = ProjectedAnchors(anchors, anchor_video, dims=4, candidates=3)
    with pytest.raises(InputError) as exact:
        anchor_neighbours(x, offsets, anchors, anchor_video, k=1, video_ids=list("abcde"), where="f.h5")
    with pytest.raises(InputError) as projected:
        search.search(x, offsets, 1, video_ids=list("abcde"), where="f.h5")
    assert str(projected.value) == str(exact.value)
    assert "f.h5" in str(projected.value) and "snippet 1" in str(projected.value)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="anchor_search='fast' is invalid"):
        CrossVideoSettings(anchor_search="fast")
    with pytest.raises(ValueError, match="search_candidates=1 is invalid"):
        CrossVideoSettings(neighbours=2, search_candidates=1)
    with pytest.raises(ValueError, match="search_dims=0 is invalid"):
        CrossVideoSettings(search_dims=0)
    with pytest.raises(ValueError, match="projection='svd' is invalid"):
        check_search("projected", 8, 8, "svd", 1)


def test_the_recipe_default_is_projected_and_exact_stays_available(rng):
    x, offsets = clustered(rng, videos=30, length=(10, 30), D=48)
    videos = [x[offsets[v]:offsets[v + 1]].astype(np.float32) for v in range(30)]
    projected = lanp.label(videos, preset="cross-video")
    assert projected.attrs["crossvideo_anchor_search"] == "projected"
    exact = lanp.label(videos, recipe=CrossVideoRecipe(settings=CrossVideoSettings(anchor_search="exact")))
    assert exact.attrs["crossvideo_anchor_search"] == "exact"
    anchors, anchor_video = seed_anchors(np.concatenate(videos), offsets)
    _, want, _ = anchor_reference(np.concatenate(videos), offsets, anchors, anchor_video, 1)
    assert np.max(np.abs(exact.normality - want[:, 0])) <= 1e-6             # float32 normality
    # the projected run's values are exact cosines no larger than the exact ones
    assert np.all(projected.normality <= exact.normality + 1e-6)
    assert np.mean(np.abs(projected.normality - exact.normality) <= 1e-6) >= 0.9
