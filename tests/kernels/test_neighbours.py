"""anchor_neighbours (CPU backend) against a float64 brute-force reference on fresh seeded random
inputs, hand-checked tiny cases (ties, empty places, first_video), chunking, poisoned outputs and
the errors."""
from __future__ import annotations

import numpy as np
import pytest

from lanp.kernels import InputError, Neighbours, anchor_neighbours
from lanp.kernels.cpu import neighbours as cpu_neighbours
from shared import anchor_reference as reference, random_case  # noqa: E402

TOL = {np.float32: 1e-12, np.float64: 1e-13}      # absolute, on cosines in [-1, 1] (kept ones: float64)
PICK = {np.float32: 2e-6, np.float64: 1e-13}     # candidates: picked by the compute dtype's matmul


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trial", range(8))
def test_matches_float64_reference(rng, dtype, trial):
    x, offsets, anchors, anchor_video, k, first_video = random_case(rng, dtype)
    got = anchor_neighbours(x, offsets, anchors, anchor_video, k=k, first_video=first_video, backend="cpu")
    assert isinstance(got, Neighbours) and got.backend == "cpu"
    assert got.index.shape == got.similarity.shape == (x.shape[0], k)
    assert got.index.dtype == np.int64 and got.similarity.dtype == np.float64
    index, sim, masked = reference(x, offsets, anchors, anchor_video, k, first_video)
    empty = index < 0
    np.testing.assert_array_equal(got.index < 0, empty)               # -1 exactly where no anchor is left
    assert np.all(np.isneginf(got.similarity[empty]))
    assert np.all(np.abs(got.similarity[~empty] - sim[~empty]) <= PICK[dtype])
    # the anchor chosen is eligible, its similarity is the float64 cosine of that pair, and it
    # has the reference similarity of its place (up to near-ties in the compute dtype); every
    # row's anchors are distinct and ordered
    rows = np.nonzero(~empty)[0]
    assert np.all(np.abs(masked[rows, got.index[~empty]] - got.similarity[~empty]) <= TOL[dtype])
    assert np.all(np.abs(masked[rows, got.index[~empty]] - sim[~empty]) <= PICK[dtype])
    for i in range(x.shape[0]):
        chosen = got.index[i][got.index[i] >= 0]
        assert len(set(chosen.tolist())) == chosen.size
        assert np.all(np.diff(got.similarity[i][got.index[i] >= 0]) <= 0)
    if dtype == np.float64:                                            # rows without near-ties: same anchors
        top = -np.sort(-masked, axis=1)[:, :k + 1]
        with np.errstate(invalid="ignore"):
            gaps = np.abs(np.diff(top, axis=1))
        clear = np.all((gaps > 1e-9) | np.isnan(gaps) | np.isinf(gaps), axis=1)
        np.testing.assert_array_equal(got.index[clear], index[clear])


def test_hand_checked_ties_empty_places_and_first_video():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    offsets = np.array([0, 1, 3])
    # anchors 0 and 2 are the same direction (a tie: the lower index first), anchor 1 is video 1's own
    anchors = np.array([[0.0, 5.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    anchor_video = np.array([0, 1, 0, 1])
    r = anchor_neighbours(x, offsets, anchors, anchor_video, k=3, backend="cpu")
    h = np.sqrt(0.5)
    # row 0 (video 0): eligible anchors 1 (cos h), 3 (cos -1)
    assert r.index[0].tolist() == [1, 3, -1]
    np.testing.assert_allclose(r.similarity[0], [h, -1.0, -np.inf])
    # row 1 (video 1, direction (0, 1)): eligible 0 and 2, both cos 1: lower index first
    assert r.index[1].tolist() == [0, 2, -1]
    np.testing.assert_allclose(r.similarity[1], [1.0, 1.0, -np.inf])
    # row 2 (video 1, (1, 1)): anchors 0 and 2 tie at h
    assert r.index[2].tolist() == [0, 2, -1]
    # the same rows as global videos 1 and 2: anchor 1 (video 1) now excluded for row 0 only
    r = anchor_neighbours(x, offsets, anchors, anchor_video, k=1, first_video=1, backend="cpu")
    assert r.index[:, 0].tolist() == [0, 0, 1]
    np.testing.assert_allclose(r.similarity[:, 0], [0.0, 1.0, 1.0])


def test_no_anchors_and_all_own_video():
    x = np.ones((4, 3), np.float32)
    offsets = np.array([0, 4])
    r = anchor_neighbours(x, offsets, np.zeros((0, 3), np.float32), np.zeros(0, np.int64), k=2, backend="cpu")
    assert np.all(r.index == -1) and np.all(np.isneginf(r.similarity))
    r = anchor_neighbours(x, offsets, x[:2], np.array([0, 0]), backend="cpu")
    assert np.all(r.index == -1) and np.all(np.isneginf(r.similarity))


def test_chunks_and_file_chunks_give_the_same_bits(rng, monkeypatch):
    x, offsets, anchors, anchor_video, k, _ = random_case(rng, np.float32)
    reps = max(8, -(-200 // int(offsets[-1])))                 # > 3 chunks of 64 rows, whatever was drawn
    x = np.concatenate([x] * reps)
    offsets = np.concatenate([offsets[:-1] + i * offsets[-1] for i in range(reps)] + [[reps * offsets[-1]]])
    anchor_video = rng.integers(0, len(offsets), size=anchors.shape[0])
    whole = anchor_neighbours(x, offsets, anchors, anchor_video, k=k, backend="cpu")
    monkeypatch.setattr(cpu_neighbours, "CHUNK_BYTES", 1)        # 64 rows per matmul
    assert cpu_neighbours.chunk_rows(anchors.shape[0], 4, x.shape[0]) == 64 < x.shape[0] // 3
    small = anchor_neighbours(x, offsets, anchors, anchor_video, k=k, backend="cpu")
    _, _, masked = reference(x, offsets, anchors, anchor_video, k)
    differ = small.index != whole.index          # only near-ties of the float32 matmul may differ
    rows = np.nonzero(differ)[0]
    assert np.all(np.abs(masked[rows, small.index[differ]] - masked[rows, whole.index[differ]]) <= 1e-6)
    same = (small.index == whole.index).all(axis=1)
    np.testing.assert_array_equal(small.similarity[same], whole.similarity[same])
    # a file in two parts, each searched against the same global anchors
    cut = (len(offsets) - 1) // 2
    first = anchor_neighbours(x[:offsets[cut]], offsets[:cut + 1], anchors, anchor_video, k=k, backend="cpu")
    second = anchor_neighbours(x[offsets[cut]:], offsets[cut:] - offsets[cut], anchors, anchor_video, k=k,
                               first_video=cut, backend="cpu")
    np.testing.assert_array_equal(np.concatenate([first.index, second.index]), small.index)
    np.testing.assert_array_equal(np.concatenate([first.similarity, second.similarity]), small.similarity)


def test_dtype_float64_on_float32_features(rng):
    x, offsets, anchors, anchor_video, k, first_video = random_case(rng, np.float32)
    r = anchor_neighbours(x, offsets, anchors, anchor_video, k=k, first_video=first_video, dtype=np.float64,
                          backend="cpu")
    index, sim, masked = reference(x, offsets, anchors, anchor_video, k, first_video)
    # places may swap only between anchors whose float64 cosines tie to rounding (e.g. D = 1: all +-1)
    differ = r.index != index
    rows = np.nonzero(differ)[0]
    assert np.all(r.index[differ] >= 0) and np.all(index[differ] >= 0), f"D={x.shape[1]}"
    assert np.all(np.abs(masked[rows, r.index[differ]] - masked[rows, index[differ]]) <= 1e-13), f"D={x.shape[1]}"
    ok = index >= 0
    assert np.all(np.abs(r.similarity[ok] - sim[ok]) <= 1e-13)


def test_poisoned_outputs_are_caught(monkeypatch):
    """A kernel that writes nothing leaves the poison (-2), which the API reports as a bug."""
    monkeypatch.setattr(cpu_neighbours, "topk_rows", lambda *args: None)
    with pytest.raises(RuntimeError, match="wrote no neighbours for row 0"):
        anchor_neighbours(np.ones((3, 2)), np.array([0, 3]), np.ones((1, 2)), np.array([1]), backend="cpu")


@pytest.mark.parametrize("bad, what", [(0.0, "all-zero"), (np.nan, "NaN or Inf"), (np.inf, "NaN or Inf")])
def test_bad_rows_name_video_and_snippet(bad, what):
    x = np.ones((7, 3))
    x[5] = bad
    with pytest.raises(InputError, match=rf"features: video b \(#1\), snippet 2 \(row 5\) has .*{what}"):
        anchor_neighbours(x, np.array([0, 3, 7]), np.ones((2, 3)), np.array([0, 1]), video_ids=["a", "b"],
                          backend="cpu")


def test_bad_anchor_names_it_and_its_video():
    anchors = np.ones((3, 4), np.float32)
    anchors[2, 1] = np.nan
    with pytest.raises(InputError, match=r"anchor 2 \(of global video 9\) has a NaN"):
        anchor_neighbours(np.ones((2, 4), np.float32), np.array([0, 2]), anchors, np.array([0, 1, 9]), backend="cpu")
    anchors[2] = 0
    with pytest.raises(InputError, match=r"anchor 2 .* all-zero"):
        anchor_neighbours(np.ones((2, 4), np.float32), np.array([0, 2]), anchors, np.array([0, 1, 9]), backend="cpu")


def test_too_large_to_square_in_float32():
    x = np.ones((2, 2), np.float32)
    x[1] = 3e19
    with pytest.raises(InputError, match="too large to square"):
        anchor_neighbours(x, np.array([0, 2]), np.ones((1, 2), np.float32), np.array([1]), backend="cpu")
    r = anchor_neighbours(x, np.array([0, 2]), np.ones((1, 2), np.float32), np.array([1]), dtype=np.float64,
                          backend="cpu")
    np.testing.assert_allclose(r.similarity[:, 0], 1.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(anchors=np.ones((2, 5))), r"anchors must be \(A, D\) with D = 3"),
    (dict(anchors=np.ones((2, 3), np.int64)), "anchors must be float32 or float64"),
    (dict(anchor_video=np.array([0])), r"anchor_video must be \(2,\) integers"),
    (dict(anchor_video=np.array([0.0, 1.0])), r"anchor_video must be \(2,\) integers"),
    (dict(k=0), "k=0 is invalid"),
    (dict(k=1.5), "k=1.5 is invalid"),
    (dict(first_video=-1), "first_video=-1 is invalid"),
    (dict(backend="tpu"), "backend='tpu' is invalid"),
    (dict(offsets=np.array([0, 2])), "offsets"),
])
def test_argument_errors(kwargs, match):
    args = dict(features=np.ones((4, 3)), offsets=np.array([0, 4]), anchors=np.ones((2, 3)),
                anchor_video=np.array([0, 1]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        anchor_neighbours(args.pop("features"), args.pop("offsets"), args.pop("anchors"), args.pop("anchor_video"),
                          **args)


def test_every_backend_implements_the_cross_video_entry_points():
    """The registered backends (the GPU ones as lazy stand-ins, their classes imported here
    without a GPU) all satisfy the Backend protocol, cross-video methods included."""
    import importlib

    from lanp.kernels import backends
    from lanp.kernels.protocol import Backend
    for name in backends.names()[1:]:
        backend = backends._REGISTRY[name]
        assert isinstance(backend, Backend), name
        if isinstance(backend, backends.LazyBackend):
            try:
                cls = getattr(importlib.import_module(backend._module), backend._cls)
            except ImportError:                      # numba-cuda / cupy not installed here
                continue
            for method in ("anchor_neighbours", "solve_csr", "propagate", "similarity", "solve"):
                assert callable(getattr(cls, method, None)), (name, method)
