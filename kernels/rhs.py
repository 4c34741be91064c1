"""The right-hand side y of (I - alpha S) z = y: seed positions, or a packed vector y, checked.

Either ``seeds`` (y_v = 1 at those snippets of every video: :func:`lanp.kernels.seeds.pack_seeds`)
or ``y``, a packed (N,) float32/float64 right-hand side (finite, any sign; a video whose y is all
zero gets z = 0). Giving both is refused; ``seeds`` left at its default means "not given".
"""
from __future__ import annotations

import numpy as np

from .arrays import as_array_module, to_numpy
from .errors import InputError, video_name
from .seeds import is_uniform_seeds, pack_seeds

DEFAULT_SEEDS = (0, -1)


def is_default_seeds(seeds) -> bool:
    """True when ``seeds`` is the default (0, -1) (one list for all videos)."""
    if isinstance(seeds, np.ndarray):
        return seeds.ndim == 1 and seeds.dtype.kind in "iu" and seeds.tolist() == list(DEFAULT_SEEDS)
    return is_uniform_seeds(seeds) and [int(s) for s in seeds] == list(DEFAULT_SEEDS)


def check_y(y, offsets, video_ids=None, where: str = "features"):
    """Check a packed right-hand side against ``offsets`` (V+1,): y (N,) float32/float64, finite.

    Returns y as given (device arrays stay on their device; the checks read a host copy), or
    numpy for anything else array-like. Raises InputError naming the shape or dtype, or the
    video, snippet and value of the first non-finite entry.
    """
    y = as_array_module(y)
    N = int(offsets[-1])
    if len(y.shape) != 1 or y.shape[0] != N:
        raise InputError(f"{where}: y must be the packed right-hand side (N,) with N = {N} snippets "
                         f"(offsets[-1]), got shape {tuple(y.shape)}")
    host = to_numpy(y)
    if host.dtype not in (np.float32, np.float64):
        raise InputError(f"{where}: y must be float32 or float64, got {host.dtype}")
    bad = np.flatnonzero(~np.isfinite(host))
    if bad.size:
        row = int(bad[0])
        v = int(np.searchsorted(offsets, row, side="right")) - 1
        raise InputError(f"{where}: y of {video_name(video_ids, v)}, snippet {row - int(offsets[v])} "
                         f"(row {row}) is {float(host[row])!r}: y must be finite; {bad.size} such "
                         f"entr{'y' if bad.size == 1 else 'ies'} in all")
    return y


def right_hand_side(y, seeds, offsets, video_ids=None, where: str = "features"):
    """(packed seeds, y) for a backend: y None -> (pack_seeds(seeds), None); y given ->
    (no seeds: positions (0,), seed_offsets (V+1,) zeros, checked y). ``seeds`` must then be
    left at its default: giving both raises InputError naming both parameters."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    if y is None:
        return pack_seeds(seeds, lengths, video_ids, where), None
    if not is_default_seeds(seeds):
        shown = (repr(seeds.tolist() if isinstance(seeds, np.ndarray) else list(seeds))
                 if is_uniform_seeds(seeds) else "(one list per video)")
        raise InputError(f"{where}: y and seeds={shown} were both given: give the right-hand side "
                         f"either as y (a packed (N,) vector) or as seeds (snippet positions), and "
                         f"leave seeds at its default {DEFAULT_SEEDS} when giving y")
    y = check_y(y, offsets, video_ids, where)
    return (np.zeros(0, dtype=np.int64), np.zeros(lengths.shape[0] + 1, dtype=np.int64)), y
