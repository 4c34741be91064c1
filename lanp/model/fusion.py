"""Test-time fusion of the detector with an isolation forest (``lanp score --fuse-forest TRAIN``;
docs/compare.md, "Fusion with the forest at test time").

    s_i = (F_d(d_i) + F_r(r_i)) / 2                                   in [0, 1]

d_i is the detector's score of snippet i and r_i an isolation forest's anomaly score of it (the tri
prior's forest: :func:`lanp.method.triprior.fit_forest` on at most ``per_video`` evenly spaced
snippets of every *training* video, ``trees`` trees, seed ``forest_seed``). F_d and F_r are the
empirical CDFs of the two scores over a calibration sample of the training snippets (at most
``CALIBRATION`` evenly spaced snippets per training video: all of a video of up to 64 snippets,
the forest's among them; in longer videos the two samples rarely share a snippet, none at 100 or
500 snippets), F(v) = #{calibration scores <= v} / m. So each snippet's fused score
depends on that snippet and the training data only, never on the rest of the scored file, and the
two scores, on unrelated scales, are averaged as ranks against the training distribution.

Why: the forest and the detector err differently. On lanp's synthetic worlds the forest alone beat
the detector trained on the tri prior's labels on ``subtle`` (73.1 against 68.6 test AUC over 12
draws) and lost on the others. On the 8 draws not looked at while choosing the fusion, the fused
score raised the hard-world mean from 81.8 to 83.9, and lost 0.9 on ``easy`` and 1.3 on
``length-biased-long`` (docs/compare.md has the table), so it is an option, not the default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from lanp.data.io import FeatureFile
from lanp.kernels import InputError
from lanp.method.dualprior import sample_rows
from lanp.method.triprior import TriPriorSettings, fit_forest, forest_scores

CALIBRATION = 64          # calibration snippets per training video (evenly spaced)


def read_rows(ff: FeatureFile, *row_sets: np.ndarray) -> Tuple[np.ndarray, ...]:
    """(len(rows), D) float32 crop-averaged features for each of the sorted global ``row_sets`` of
    an open file, in one pass over its chunks."""
    out = [np.empty((rows.shape[0], ff.dim), np.float32) for rows in row_sets]
    for v0, v1 in ff.chunks():
        lo, hi = int(ff.offsets[v0]), int(ff.offsets[v1])
        spans = [np.searchsorted(rows, [lo, hi]) for rows in row_sets]
        if any(b > a for a, b in spans):
            x, _ = ff.read(v0, v1)
            for rows, dest, (a, b) in zip(row_sets, out, spans):
                dest[a:b] = x[rows[a:b] - lo]
    return tuple(out)


def empirical_cdf(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """F(v) = #{reference <= v} / m for each value (float64, in [0, 1])."""
    return _sorted_cdf(np.sort(np.asarray(reference, np.float64)), values)


def _sorted_cdf(ordered: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.searchsorted(ordered, np.asarray(values, np.float64), side="right") / ordered.size


@dataclass
class ForestFusion:
    """A fitted fusion: the forest and the calibration scores of the detector and the forest over
    the training sample (``calibration_detector``, ``calibration_forest``, (m,) float64 each,
    sorted once here: :meth:`fuse` runs once per chunk of the scored file)."""

    forest: object
    calibration_detector: np.ndarray
    calibration_forest: np.ndarray
    settings: TriPriorSettings
    forest_rows: int

    def __post_init__(self):
        self.calibration_detector = np.sort(np.asarray(self.calibration_detector, np.float64))
        self.calibration_forest = np.sort(np.asarray(self.calibration_forest, np.float64))

    def fuse(self, detector: np.ndarray, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(fused (n,) float32, forest score r (n,) float32) of snippets with detector scores
        ``detector`` (n,) and crop-averaged features ``x`` (n, D)."""
        r = -forest_scores(self.forest, np.asarray(x, np.float32))
        fused = 0.5 * (_sorted_cdf(self.calibration_detector, detector) + _sorted_cdf(self.calibration_forest, r))
        return fused.astype(np.float32), r.astype(np.float32)

    def attrs(self, train_path) -> dict:
        s = self.settings
        return {"fusion": "isolation-forest", "fusion_train_features": str(train_path),
                "fusion_trees": int(s.trees), "fusion_per_video": int(s.per_video),
                "fusion_forest_seed": int(s.forest_seed), "fusion_forest_rows": int(self.forest_rows),
                "fusion_calibration_rows": int(self.calibration_detector.size)}


def fit_fusion(train_x: np.ndarray, train_offsets: np.ndarray, train_detector: np.ndarray,
               settings: TriPriorSettings = TriPriorSettings()) -> ForestFusion:
    """The fusion from the training features (N, D), offsets (V+1,) and the detector's scores of
    every training snippet (N,): the forest on ``settings.per_video`` snippets per video, the CDFs
    on ``CALIBRATION`` per video."""
    fit, calibration = sample_rows(train_offsets, settings.per_video), sample_rows(train_offsets, CALIBRATION)
    x = np.asarray(train_x)
    return _fitted(x[fit], x[calibration], np.asarray(train_detector)[calibration], settings, "the training data")


def fit_fusion_file(ff: FeatureFile, train_detector: np.ndarray,
                    settings: TriPriorSettings = TriPriorSettings()) -> ForestFusion:
    """:func:`fit_fusion` from an open training feature file and the detector's scores of its
    snippets (N,), read in chunks: only the two samples are kept."""
    fit, calibration = sample_rows(ff.offsets, settings.per_video), sample_rows(ff.offsets, CALIBRATION)
    return _fitted(*read_rows(ff, fit, calibration), np.asarray(train_detector)[calibration],
                   settings, f"--fuse-forest {ff.path!r}")


def _fitted(fit_x, calibration_x, calibration_detector, settings: TriPriorSettings, where: str) -> ForestFusion:
    if fit_x.shape[0] == 0:
        raise InputError(f"{where} has no snippets to fit the fusion's forest on")
    forest = fit_forest(fit_x, settings.trees, settings.forest_seed)
    r = -forest_scores(forest, np.asarray(calibration_x, np.float32))
    return ForestFusion(forest, calibration_detector, r, settings, int(fit_x.shape[0]))
