"""Diagnostics of a propagation run.

- Spearman correlation of video length with video score. On real ShanghaiTech the public code's
  std(z) correlates -0.89 with length: the normal/abnormal split is then largely a length detector.
- Prior violations: the share of videos whose first or last snippet is among their floor(r L)
  lowest-z snippets (the normality prior says the ends are normal).
- The spread of CG iterations and true residuals.
"""
from __future__ import annotations

import math

import numpy as np

from lanp.method import labels as L


def length_score_spearman(lengths: np.ndarray, scores: np.ndarray) -> float:
    """Spearman rho of video length vs video score (NaN with fewer than 3 videos or constant input)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if lengths.size < 3 or np.ptp(lengths) == 0 or np.ptp(scores) == 0:
        return float("nan")
    return float(np.corrcoef(average_ranks(lengths), average_ranks(scores))[0, 1])


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing their mean rank (what scipy.stats.rankdata does by default;
    written here because importing scipy.stats costs ~1 s on every lanp-propagate run)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts                  # 0-based rank of each distinct value's first
    return (first + (counts + 1) / 2.0)[inverse.ravel()]


def prior_violations(z: np.ndarray, offsets: np.ndarray, ratio: float = 0.4) -> np.ndarray:
    """(V,) bool: the first or the last snippet is among the video's floor(ratio L) lowest-z
    snippets (ties go to the earlier snippet, as for the pseudo-labels)."""
    V = offsets.shape[0] - 1
    low = L.pseudo_labels(z, offsets, np.ones(V, dtype=bool), ratio).astype(bool)
    return low[offsets[:-1]] | low[offsets[1:] - 1]


def diagnose(z, offsets, scores, abnormal, iterations, residual, ratio: float = 0.4) -> dict:
    """Every diagnostic as a flat dict of file attributes (keys start with ``diag_``)."""
    offsets = np.asarray(offsets)
    return diagnose_from_summaries(np.diff(offsets), scores, abnormal, iterations, residual,
                                   prior_violations(np.asarray(z), offsets, ratio))


def diagnose_from_summaries(lengths, scores, abnormal, iterations, residual, violations) -> dict:
    """:func:`diagnose` from per-video arrays (sharded runs compute the violations per shard)."""
    violations = np.asarray(violations, dtype=bool)
    abnormal = np.asarray(abnormal, dtype=bool)
    it = np.asarray(iterations)
    res = np.asarray(residual, dtype=np.float64)
    return {
        "diag_length_score_spearman": length_score_spearman(lengths, scores),
        "diag_prior_violation_share": float(violations.mean()),
        "diag_prior_violation_share_abnormal": float(violations[abnormal].mean()) if abnormal.any() else float("nan"),
        "diag_prior_violation_share_normal": float(violations[~abnormal].mean()) if (~abnormal).any() else float("nan"),
        "diag_cg_iterations_min": int(it.min()),
        "diag_cg_iterations_median": float(np.median(it)),
        "diag_cg_iterations_p90": float(np.percentile(it, 90)),
        "diag_cg_iterations_max": int(it.max()),
        "diag_cg_residual_median": float(np.median(res)),
        "diag_cg_residual_p90": float(np.percentile(res, 90)),
        "diag_cg_residual_max": float(res.max()),
    }


def format_lines(diag: dict) -> list:
    """Human-readable lines for the CLI summary."""
    rho = diag["diag_length_score_spearman"]
    warn = "  (|rho| > 0.5: the video split is largely a length detector)" if abs(rho) > 0.5 else ""
    return [
        f"Spearman(length, video score) {rho:+.3f}{warn}" if not math.isnan(rho)
        else "Spearman(length, video score) n/a (fewer than 3 videos or constant)",
        f"prior violations (first/last snippet among the lowest r): {diag['diag_prior_violation_share']:.1%} "
        f"of videos (abnormal {diag['diag_prior_violation_share_abnormal']:.1%}, normal "
        f"{diag['diag_prior_violation_share_normal']:.1%})",
        f"CG iterations min/median/p90/max {diag['diag_cg_iterations_min']}/{diag['diag_cg_iterations_median']:g}/"
        f"{diag['diag_cg_iterations_p90']:g}/{diag['diag_cg_iterations_max']}, true residual median/p90/max "
        f"{diag['diag_cg_residual_median']:.1e}/{diag['diag_cg_residual_p90']:.1e}/{diag['diag_cg_residual_max']:.1e}",
    ]
