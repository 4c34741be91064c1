"""Per-video row sums and the all-zero-row check of the method layer, in one cheap pass each.

:func:`video_sums` gives every video's float64 column sums bit for bit as
``np.add.reduceat(x.astype(float64), offsets[:-1], axis=0)`` computes them -- numpy reduces a
column of a segment as its first row plus the pairwise sum of the others (``pairwise_sum`` in
numpy's loops: sequential below 8 terms, 8 accumulators up to 128, halves beyond) -- but on whole
rows at a time instead of numpy's column-by-column strided walk (25 s for the 3.2 GB UCF-Crime
training set here, against well under a second). :func:`first_zero_row` finds an all-zero row by
reading each row only up to its first nonzero value. No fastmath: the order of the additions is
the point.
"""
from __future__ import annotations

import numpy as np
from numba import njit

PAIRWISE_BLOCK = 128            # numpy's PW_BLOCKSIZE


@njit(cache=True)
def _leaf(x, a, n, out, lanes):
    """out[d] = numpy's pairwise sum of float64(x[a:a+n, d]) for n <= PAIRWISE_BLOCK: sequential
    below 8 terms, else 8 running sums (lanes (8, D): lane j takes rows a + j, a + j + 8, ...)
    combined as ((0+1)+(2+3))+((4+5)+(6+7)), then the rows past the last multiple of 8. Rows
    are read whole (the column loop innermost), in the same order of additions per column."""
    D = x.shape[1]
    if n < 8:
        for d in range(D):
            out[d] = 0.0
        for i in range(a, a + n):
            for d in range(D):
                out[d] += np.float64(x[i, d])
        return
    last = a + n - n % 8
    for j in range(8):
        for d in range(D):
            lanes[j, d] = np.float64(x[a + j, d])
    for i in range(a + 8, last, 8):
        for j in range(8):
            for d in range(D):
                lanes[j, d] += np.float64(x[i + j, d])
    for d in range(D):
        out[d] = ((lanes[0, d] + lanes[1, d]) + (lanes[2, d] + lanes[3, d])) + (
            (lanes[4, d] + lanes[5, d]) + (lanes[6, d] + lanes[7, d]))
    for i in range(last, a + n):
        for d in range(D):
            out[d] += np.float64(x[i, d])


@njit(cache=True)
def _pairwise(x, a, n, result, left, starts, counts, states, lanes):
    """result[0] = numpy's pairwise sum of float64(x[a:a+n]) per column: the recursion
    pairwise(n) = pairwise(n2) + pairwise(n - n2), n2 = n // 2 rounded down to a multiple of 8,
    walked depth first with an explicit stack (level t: its node's range, its state, its result
    row result[t] and its left half's row left[t])."""
    D = x.shape[1]
    t = 0
    starts[0] = a
    counts[0] = n
    states[0] = 0
    while True:
        done = False
        m = counts[t]
        if m <= PAIRWISE_BLOCK:
            _leaf(x, starts[t], m, result[t], lanes)
            done = True
        else:
            half = m // 2
            half -= half % 8
            if states[t] == 0:                  # descend into the left half
                states[t] = 1
                starts[t + 1] = starts[t]
                counts[t + 1] = half
                states[t + 1] = 0
                t += 1
            elif states[t] == 1:                # left done: keep it, descend into the right half
                for d in range(D):
                    left[t, d] = result[t + 1, d]
                states[t] = 2
                starts[t + 1] = starts[t] + half
                counts[t + 1] = m - half
                states[t + 1] = 0
                t += 1
            else:
                for d in range(D):
                    result[t, d] = left[t, d] + result[t + 1, d]
                done = True
        if done:
            if t == 0:
                return
            t -= 1


@njit(cache=True, nogil=True)
def video_sums_slots(v0, v1, x, offsets, sums):
    """sums[v] for videos v0 <= v < v1 (see :func:`video_sums`): the first row plus numpy's
    pairwise sum of the others, per column."""
    D = x.shape[1]
    longest = 1
    for v in range(v0, v1):
        longest = max(longest, offsets[v + 1] - offsets[v])
    levels = 2
    while (1 << levels) * PAIRWISE_BLOCK < 2 * longest:
        levels += 1
    levels += 2
    result = np.empty((levels, D))
    left = np.empty((levels, D))
    starts = np.empty(levels, np.int64)
    counts = np.empty(levels, np.int64)
    states = np.empty(levels, np.int64)
    lanes = np.empty((8, D))
    for v in range(v0, v1):
        a = offsets[v]
        n = offsets[v + 1] - a
        if n == 1:                              # numpy copies the row: -0.0 stays -0.0
            for d in range(D):
                sums[v, d] = np.float64(x[a, d])
            continue
        _pairwise(x, a + 1, n - 1, result, left, starts, counts, states, lanes)
        for d in range(D):
            sums[v, d] = np.float64(x[a, d]) + result[0, d]


def video_sums(x, offsets) -> np.ndarray:
    """(V, D) float64 column sums of every video's rows, equal bit for bit to
    ``np.add.reduceat(np.asarray(x, np.float64), offsets[:-1], axis=0)`` (but the sign of a zero
    sum, which can come out +0.0 where numpy's is -0.0); x (N, D) float32/64
    C-contiguous, offsets (V+1,) int64, every video non-empty. Videos are split over numba's
    threads by rows (a nogil kernel per thread)."""
    import numba

    from .packed import run_threads
    x = np.ascontiguousarray(x)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    V = offsets.shape[0] - 1
    sums = np.empty((V, x.shape[1]))
    threads = max(1, min(numba.get_num_threads(), V))
    cuts = np.searchsorted(offsets, np.linspace(0, offsets[-1], threads + 1)[1:-1])
    bounds = np.concatenate([[0], np.clip(cuts, 0, V), [V]]).astype(np.int64)
    run_threads(video_sums_slots, np.maximum.accumulate(bounds), x, offsets, sums)
    return sums


@njit(cache=True, nogil=True)
def first_zero_row(x):
    """The first row of x (N, D) whose every value is 0 (-0.0 included; NaN is not 0), or -1.
    Reads a row only up to its first nonzero value."""
    for i in range(x.shape[0]):
        zero = True
        for d in range(x.shape[1]):
            if x[i, d] != 0:
                zero = False
                break
        if zero:
            return i
    return -1
