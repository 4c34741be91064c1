"""The presets' loss-weight distance kernel (lanp.kernels.official.weight_distance) against a
float64 loop reference, its torch-eps rule, row invariance and its errors."""
import math

import numpy as np
import pytest

from lanp.kernels.official import weight_distance


def reference(x, means, kind):
    """min over the list, one row and one mean at a time, float64."""
    out = np.empty(len(x))
    for q, xq in enumerate(np.asarray(x, dtype=np.float64)):
        ds = []
        for m in np.asarray(means, dtype=np.float64):
            if kind == "cosine":
                ds.append(1.0 - xq @ m / max(np.linalg.norm(xq) * np.linalg.norm(m), 1e-6))
            else:
                ds.append(math.sqrt(np.sum((xq - m) ** 2) / len(xq)))
        out[q] = min(ds)
    return out


@pytest.mark.parametrize("kind", ["cosine", "rms"])
@pytest.mark.parametrize("n, D, M", [(1, 1, 1), (3, 5, 2), (9, 16, 4), (13, 67, 5), (6, 2048, 9)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_float64_reference(rng, kind, n, D, M, dtype):
    x = (rng.normal(size=(n, D)) + 0.5).astype(dtype)
    means = rng.normal(size=(M, D)) + 0.5
    got = weight_distance(x, means, kind)
    ref = reference(x, means, kind)
    assert got.dtype == np.float64 and got.shape == (n,)
    if kind == "cosine":     # 1 - cos is formed at unit scale (exactly 0 for parallel rows at D = 1)
        assert np.max(np.abs(got - ref)) <= 1e-12
    else:                    # the expansion ||x||^2 + ||m||^2 - 2 x.m loses about eps ||x||^2 / d^2
        assert np.max(np.abs(got - ref) / np.abs(ref)) <= 1e-12 * D


def test_hand_checked_values():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    means = np.array([[3.0, 4.0], [0.0, 2.0]])
    # cosine: row 0 parallel to mean 0 -> 0; the zero row -> 1 - 0 / max(0, 1e-6) = 1;
    # row 2: cos with (3,4) is 0.6, with (0,2) is 0 -> 1 - 0.6
    np.testing.assert_allclose(weight_distance(x, means, "cosine"), [0.0, 1.0, 0.4], rtol=0, atol=1e-15)
    # rms: sqrt(min ||x - m||^2 / 2): row 0 -> 0; zero row -> sqrt(4 / 2); row 2 -> sqrt(5 / 2)
    np.testing.assert_allclose(weight_distance(x, means, "rms"), [0.0, math.sqrt(2.0), math.sqrt(2.5)],
                               rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("kind", ["cosine", "rms"])
def test_a_row_does_not_depend_on_its_neighbours_or_alignment(rng, kind):
    """What makes chunked and sharded preset runs bit-identical: any slice of the rows, copied to
    any byte offset, gives exactly the full run's values."""
    x = rng.normal(size=(23, 64))
    means = rng.normal(size=(6, 64))
    full = weight_distance(x, means, kind)
    for a, b, shift in [(0, 1, 8), (3, 10, 16), (5, 23, 24), (22, 23, 0)]:
        buf = np.empty((b - a) * 64 * 8 + 128, dtype=np.uint8)
        start = (-buf.ctypes.data) % 64 + shift
        part = buf[start:start + (b - a) * 64 * 8].view(np.float64).reshape(b - a, 64)
        part[:] = x[a:b]
        assert np.array_equal(weight_distance(part, means, kind), full[a:b])


def test_errors_name_the_bad_value():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="weight distance 'l1' is invalid: choose one of cosine, rms"):
        weight_distance(x, np.ones((1, 3)), "l1")
    with pytest.raises(ValueError, match=r"normal list of shape \(0, 3\)"):
        weight_distance(x, np.ones((0, 3)), "cosine")
    with pytest.raises(ValueError, match=r"normal list of shape \(1, 4\) for features of width 3"):
        weight_distance(x, np.ones((1, 4)), "rms")
