"""What the kernels raise and warn: InputError, ConvergenceWarning, and how a video is named."""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np

from .arrays import to_numpy


class ConvergenceWarning(UserWarning):
    """Raised (as a warning) when CG stops at ``maxiter`` above ``tol`` for some videos."""


class InputError(ValueError):
    """Bad input data: names the video (and snippet) and the bad value."""


def video_name(video_ids: Optional[Sequence], v: int) -> str:
    """'video <id> (#v)' when ids are known, else 'video #v'."""
    if video_ids is not None and 0 <= v < len(video_ids):
        return f"video {video_ids[v]!s} (#{v})"
    return f"video #{v}"


def warn_unconverged(converged, residual, tol: float, maxiter: int, video_ids, where: str,
                     stacklevel: int = 2) -> None:
    """One ConvergenceWarning naming the videos (first five) whose CG stopped above ``tol``;
    converged (V,) bool, residual (V,) float. stacklevel 2 points at the caller of the function
    that calls this."""
    bad = np.flatnonzero(~to_numpy(converged))
    if bad.size:
        names = ", ".join(video_name(video_ids, int(v)) for v in bad[:5])
        worst = float(np.max(to_numpy(residual)[bad]))
        warnings.warn(f"{where}: CG did not reach tol={tol:g} within maxiter={maxiter} for {bad.size} of "
                      f"{len(converged)} video(s) (worst true residual {worst:.3g}): {names}"
                      f"{' ...' if bad.size > 5 else ''}", ConvergenceWarning, stacklevel=stacklevel + 1)
