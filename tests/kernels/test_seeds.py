"""Per-video seed lists: y_v = 1 at seeds[v] (local positions, negative from the end), on every
backend, against the float64 dense reference; plus the packing and its bad-input errors."""
from __future__ import annotations

import numpy as np
import pytest

from lanp.kernels import InputError, propagate, similarity, solve
from lanp.kernels import is_uniform_seeds, pack_seeds
from reference import propagate_reference, relative_error
from shared import BACKENDS as GPU_BACKENDS, ragged

BACKENDS = ["cpu", *GPU_BACKENDS]
TOL = {"float32": 1e-4, "float64": 1e-7}


def random_seed_lists(rng, lengths):
    """1 to 3 distinct positions per video, some written from the end (negative)."""
    out = []
    for L in lengths:
        chosen = rng.choice(L, size=min(L, int(rng.integers(1, 4))), replace=False)
        out.append([int(p) - L if rng.random() < 0.5 else int(p) for p in chosen])
    return out


def reference_z(x, offsets, seeds, **graph):
    return np.concatenate([propagate_reference(x[a:b].astype(np.float64), seeds=seeds[v], **graph)
                           for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:]))])


def test_pack_uniform_seeds_by_hand():
    positions, offsets = pack_seeds((0, -1), np.array([1, 3, 2]))
    assert positions.tolist() == [0, 0, 0, 2, 0, 1] and offsets.tolist() == [0, 2, 4, 6]
    assert positions.dtype == offsets.dtype == np.int64


def test_pack_per_video_seeds_by_hand():
    positions, offsets = pack_seeds([[1], np.array([0, -1]), (-3, 2, 0)], np.array([2, 5, 3]))
    assert positions.tolist() == [1, 0, 4, 0, 2, 0] and offsets.tolist() == [0, 1, 3, 6]


@pytest.mark.parametrize("seeds, uniform", [((0, -1), True), ([3], True), (np.array([0, 2]), True),
                                            ([[0], [1, 2]], False), ([np.array([0])], False),
                                            (np.zeros((2, 1), dtype=int), False)])
def test_uniform_or_per_video(seeds, uniform):
    assert is_uniform_seeds(seeds) is uniform


@pytest.mark.parametrize("seeds, message", [
    ([[0], [1]], r"2 per-video lists for 3 videos"),
    ([[0], [], [1]], r"video #1 has seeds=\[\]; give at least one"),
    ([[0], [1], [0.5]], r"video #2 has seeds=\[0.5\]; positions must be integers"),
    ([[0], [7], [1]], r"video #1 has seed position 7, out of range for its length L = 4 \(allowed -4 .. 3\)"),
    ([[0], [1], [-3]], r"video #2 has seed position -3, out of range for its length L = 2"),
    ([[0], [[0, 1]], [1]], r"video #1 has seeds=\[\[0, 1\]\]; give at least one snippet position \(a 1-D"),
])
@pytest.mark.parametrize("entry", ["propagate", "solve"])
def test_bad_per_video_seeds_are_named(rng, seeds, message, entry):
    x, offsets = ragged(rng, [3, 4, 2], 5, "float64")
    with pytest.raises(InputError, match=message):
        if entry == "propagate":
            propagate(x, offsets, seeds=seeds, backend="cpu")
        else:
            solve(similarity(x, offsets, backend="cpu"), seeds=seeds, backend="cpu")


def test_bad_seed_names_the_video_id(rng):
    x, offsets = ragged(rng, [3, 4], 5, "float64")
    with pytest.raises(InputError, match=r"features: video b \(#1\) has seed position 9"):
        propagate(x, offsets, seeds=[[0], [9]], video_ids=["a", "b"], backend="cpu")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("window", [None, 3])
def test_per_video_seeds_match_reference(rng, backend, dtype, window):
    """Fresh random features and seed lists; short and long videos (the GPU fused and unfused
    paths), fused propagate and similarity + solve."""
    lengths = [1, 2, 9, 40, 150, 5]
    x, offsets = ragged(rng, lengths, 16, dtype)
    seeds = random_seed_lists(rng, lengths)
    kw = dict(sigma=0.4, window=window)
    ref = reference_z(x, offsets, seeds, **kw)
    r = propagate(x, offsets, seeds=seeds, tol=1e-11, maxiter=5000, backend=backend, **kw)
    assert r.converged.all() and r.backend == backend
    assert relative_error(r.z, ref) <= TOL[dtype]
    s = solve(similarity(x, offsets, backend=backend, **kw), seeds=seeds, tol=1e-11, maxiter=5000,
              backend=backend)
    assert s.converged.all() and relative_error(s.z, ref) <= TOL[dtype]


@pytest.mark.parametrize("window", [None, 4])
def test_one_seed_at_the_middle_is_symmetric(rng, window):
    """A hand-checkable case: features mirrored about the middle snippet and one seed there give
    z mirrored too; and z = sum_k alpha^k S^k y >= y with every snippet reached (S >= 0, the
    graph connected), so z > 0 everywhere and z > 1 at the seed."""
    half = np.cumsum(rng.normal(scale=0.3, size=(6, 4)), axis=0)
    x = np.concatenate([half[::-1], rng.normal(size=(1, 4)), half])       # L = 13, middle 6
    r = propagate(x, np.array([0, 13]), seeds=[[6]], sigma=0.5, window=window, tol=1e-12, backend="cpu")
    assert np.allclose(r.z, r.z[::-1], rtol=1e-9, atol=0)
    assert np.all(r.z > 0) and r.z[6] > 1.0


def test_seeds_from_an_iterator_are_read_once(rng):
    x, offsets = ragged(rng, [4, 6], 3, "float64")
    want = propagate(x, offsets, seeds=[[1], [2, -1]], backend="cpu").z
    got = propagate(x, offsets, seeds=(s for s in ([1], [2, -1])), backend="cpu").z
    assert np.array_equal(got, want)
    assert np.array_equal(propagate(x, offsets, seeds=iter((0, -1)), backend="cpu").z,
                          propagate(x, offsets, backend="cpu").z)
