"""The explicit-vector CPU building blocks (lanp.kernels.cpu.simd) against float64 references."""
import math
import platform

import numpy as np
import pytest
from numba import njit

from lanp.kernels.cpu import simd, tiles
from lanp.kernels.cpu.flags import FASTMATH

EPS = np.finfo(np.float64).eps


@njit(fastmath=FASTMATH)        # not cached: a cache-loaded function has no assembly to read
def exp_all(a, out):
    for i in range(a.shape[0]):
        out[i] = simd.exp_flush(a[i])


def test_exp_flush_is_accurate_on_fresh_random_inputs(rng):
    a = np.concatenate([rng.uniform(-708.0, 709.0, 200_000), rng.uniform(-2.0, 2.0, 200_000),
                        -rng.exponential(30.0, 200_000)])
    a = a[a >= -708.0]
    out = np.full_like(a, np.nan)                       # poisoned
    exp_all(a, out)
    exact = np.exp(a)                                   # numpy's exp: < 1 ulp
    assert np.max(np.abs(out - exact) / exact) <= 3 * EPS


def test_exp_flush_hand_checked_values():
    ln2 = math.log(2.0)
    a = np.array([0.0, -0.0, 1.0, -1.0, -np.inf, np.nan, -708.5, -1000.0, -708.0, 709.0]
                 + [k * ln2 for k in range(-1000, 1001, 37)])
    out = np.full_like(a, 123.0)
    exp_all(a, out)
    assert out[0] == 1.0 and out[1] == 1.0
    assert abs(out[2] - math.e) <= EPS * math.e and abs(out[3] - 1 / math.e) <= EPS / math.e
    assert out[4] == 0.0 and math.isnan(out[5])
    assert out[6] == 0.0 and out[7] == 0.0              # below exp(-708): flushed, no subnormals
    assert out[8] == pytest.approx(math.exp(-708.0), rel=3 * EPS)
    assert out[9] == pytest.approx(math.exp(709.0), rel=3 * EPS)
    for k, got in zip(range(-1000, 1001, 37), out[10:]):
        # exp(k ln 2) = 2^k, up to the rounding of x = k ln 2 (<= |x| eps absolute in x)
        assert got == pytest.approx(2.0 ** k, rel=(3 + abs(k) * ln2) * EPS), k


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or simd.VECTOR_BYTES < 32,
                    reason="the packed-instruction check reads x86 AVX assembly")
def test_exp_flush_loop_vectorises():
    """The point of exp_flush: a loop over it compiles to packed double instructions."""
    exp_all(np.zeros(4), np.zeros(4))
    asm = "\n".join(exp_all.inspect_asm().values())
    packed = [line for line in asm.splitlines() if "pd" in line and ("ymm" in line or "zmm" in line)]
    assert len(packed) >= 10


@njit(cache=True)
def tile_via_cpu(X, rx, Y, ry, P, lo, hi):
    return tiles.dot_tile(X, rx[0], rx[1], rx[2], rx[3], Y, ry[0], ry[1], ry[2], ry[3],
                        X.dtype.type(0), P, lo, hi)


@njit(cache=True)
def triangles_via_cpu(X, a, b, P, lo, hi):
    return tiles.dot_triangles(X, a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], X.dtype.type(0),
                             P, lo, hi)


def aligned_at(rng, shape, dtype, offset_bytes):
    """A C-contiguous array whose data starts offset_bytes past a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape))
    raw = np.empty(size + 64 // itemsize + 16, dtype)
    start = ((-raw.ctypes.data) % 64 + offset_bytes) // itemsize
    out = raw[start:start + size].reshape(shape)
    out[...] = rng.normal(size=shape)
    assert out.ctypes.data % 64 == offset_bytes
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim", [1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 2048])
@pytest.mark.parametrize("offset", [0, 8, 16, 24, 40, 56])
def test_dot_tile_matches_float64_reference(rng, dtype, dim, offset):
    """Every column count around the vector steps (masked head and tail), every start alignment
    (aligned body where rows share it), repeated rows, two arrays; then the diagonal triangles."""
    X = aligned_at(rng, (9, dim), dtype, offset)
    Y = aligned_at(rng, (6, dim), dtype, 64 - 8 - offset % 32)
    rx = rng.integers(0, 9, 4)
    ry = np.array([rx[0] % 6, rng.integers(0, 6), 5, 5])
    P = rng.normal(size=(3, 50))
    got = np.array(tile_via_cpu(X, rx, Y, ry, P, 0, P.nbytes), dtype=np.float64)
    exact = X[rx].astype(np.float64) @ Y[ry].astype(np.float64).T
    scale = np.abs(X[rx]).astype(np.float64) @ np.abs(Y[ry]).astype(np.float64).T
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(got - exact) <= 4 * eps * math.sqrt(dim) * scale + 1e-300)

    a, b = rx, np.array([3, 4, 8, 8])
    first, second = triangles_via_cpu(X, a, b, P, 0, 64)
    upper = [(r, c) for r in range(4) for c in range(r, 4)]
    for rows, got in ((a, first), (b, second)):
        exact = X[rows].astype(np.float64) @ X[rows].astype(np.float64).T
        scale = np.abs(X[rows]).astype(np.float64) @ np.abs(X[rows]).astype(np.float64).T
        for q, (r, c) in enumerate(upper):
            assert abs(got[q] - exact[r, c]) <= 4 * eps * math.sqrt(dim) * scale[r, c] + 1e-300


WIDTHS = (16, 32, 64)
TILES_AT_WIDTH = {width: simd._dot_products_intrinsic(simd.TILE_PAIRS, "", width)
                  for width in WIDTHS}
TRIANGLES_AT_WIDTH = {width: simd._dot_products_intrinsic(simd.TRIANGLE_PAIRS, "", width)
                      for width in WIDTHS}


def _via_width(intrinsic):
    @njit
    def call(X, rx, Y, ry):
        return intrinsic(X, (rx[0], rx[1], rx[2], rx[3]), Y, (ry[0], ry[1], ry[2], ry[3]), X, 0, 0,
                         X.shape[1])
    return call


TILE_CALLS = {width: _via_width(f) for width, f in TILES_AT_WIDTH.items()}
TRIANGLE_CALLS = {width: _via_width(f) for width, f in TRIANGLES_AT_WIDTH.items()}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim", [1, 3, 4, 9, 16, 17, 40, 257])
@pytest.mark.parametrize("offset", [0, 8, 48])
def test_every_vector_width_matches_float64_reference(rng, width, dtype, dim, offset):
    """The lane reductions (shuffle trees of 2 to 16 lanes) and the masked head and tail at each
    SIMD width the host may get (16, 32, 64 bytes), not only the one this machine uses."""
    X = aligned_at(rng, (8, dim), dtype, offset)
    rx = np.array([0, 1, 2, 3])
    ry = np.array([4, 5, 6, 7])
    eps = np.finfo(dtype).eps
    exact = X.astype(np.float64) @ X.astype(np.float64).T
    scale = np.abs(X).astype(np.float64) @ np.abs(X).astype(np.float64).T
    bound = 4 * eps * math.sqrt(dim) * scale + 1e-300
    got = np.array(TILE_CALLS[width](X, rx, X, ry)).reshape(4, 4)
    assert np.all(np.abs(got - exact[:4, 4:]) <= bound[:4, 4:])
    got = TRIANGLE_CALLS[width](X, rx, X, ry)
    upper = [(r, c) for r in range(4) for c in range(r, 4)]
    for q, (r, c) in enumerate(upper):
        for base, value in ((0, got[q]), (4, got[10 + q])):
            i, j = base + r, base + c
            assert abs(value - exact[i, j]) <= bound[i, j], (width, q, base)


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("count", [1, 2, 3, 5, 16, 20, 33])
def test_reduction_network_finishes_every_sum_once(lanes, count):
    """After the rounds every lane holds one finished sum: each vector's label appears exactly
    once, padding (-1) fills the rest, and a round halves the vectors (odd counts padded)."""
    rounds = simd.reduction_network(count, lanes)
    assert len(rounds) == int(math.log2(lanes))
    vectors = count
    for _, _, labels in rounds:
        vectors = (vectors + 1) // 2
        assert len(labels) == vectors and all(len(v) == lanes for v in labels)
    final = [label for vector in (rounds[-1][2] if rounds else []) for label in vector]
    if rounds:
        assert sorted(label for label in final if label >= 0) == list(range(count))


def test_dot_tile_strided_rows_take_the_scalar_path(rng):
    base = rng.normal(size=(8, 80)).astype(np.float32)
    X = base[:, ::2]                                     # column stride 8 bytes: not contiguous
    rows = np.array([0, 2, 4, 7])
    got = np.array(tile_via_cpu(X, rows, X, rows[::-1].copy(), X, 0, 0))
    exact = X[rows].astype(np.float64) @ X[rows[::-1]].astype(np.float64).T
    assert np.abs(got - exact).max() <= 1e-5 * np.abs(exact).max()


@pytest.mark.parametrize("band", [0, 3, 9])
def test_gram_prefetch_never_changes_the_values(rng, band):
    """gram_tiles writes exactly the upper band (poison elsewhere survives), and what it
    prefetches meanwhile (a next video, or nothing) leaves every value bit-identical."""
    L, dim = 23, 300
    x = rng.normal(size=(L, dim)).astype(np.float32)
    ahead = rng.normal(size=(40, dim)).astype(np.float32)
    dense = band == 0
    k = L - 1 if dense else band
    shape = (L, L) if dense else (L, 2 * band + 1)
    results = []
    for rows_ahead in (ahead, ahead[:0], ahead[:3]):
        G = np.full(shape, np.nan)
        tiles.gram_tiles(x, np.float32(0), k, dense, G, rows_ahead)
        results.append(G)
    for G in results[1:]:
        assert np.array_equal(G, results[0], equal_nan=True)
    exact = x.astype(np.float64) @ x.astype(np.float64).T
    G = results[0]
    for i in range(L):
        for j in range(L):
            stored = (i <= j <= i + k)
            value = G[i, j] if dense else (G[i, j - i + k] if abs(j - i) <= k else None)
            if value is None:
                continue
            if stored:
                assert abs(value - exact[i, j]) <= 1e-5 * abs(exact).max(), (i, j)
            else:
                assert math.isnan(value), (i, j)


@njit(cache=True, fastmath=FASTMATH)
def exp_finite_all(a, coarse, out):
    for i in range(a.shape[0]):
        out[i] = simd.exp_finite(a[i], coarse)


@pytest.mark.parametrize("coarse, bound", [(False, 3 * EPS), (True, 1e-8)])
def test_exp_finite_accuracy_in_its_range(rng, coarse, bound):
    a = np.concatenate([rng.uniform(-708.0, 709.0, 100_000), rng.uniform(-201.0, 0.0, 100_000),
                        [0.0, -708.0, 709.0, -0.5 * math.log(2.0)]])
    out = np.full_like(a, np.nan)
    exp_finite_all(a, coarse, out)
    exact = np.exp(a)
    rel = np.abs(out - exact) / exact
    assert rel.max() <= bound
    if coarse:
        assert rel.max() > 1e-12                    # really the short polynomial
