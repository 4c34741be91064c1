"""Presets: ``paper`` (lanp's defaults) and ``official-ucf`` / ``official-sht``, which reproduce what
the method's public code (shyern/LANP-UVAD) computes; its numbers are the ones the paper reports.

The per-video numerics (windowed graph, capped CG, post-processing) are the numba kernel
:func:`lanp.kernels.official.propagate_official`. The dataset-level rules live here:

- video score std(z) (population); the int(f V) highest-score videos are abnormal
  (f = 0.5 UCF, 0.27 SHT), the rest normal;
- in each abnormal video the int(0.4 T) lowest-z snippets are pseudo-abnormal (ties: earlier
  snippet first);
- normal list: for each of the int(0.1 N_nor) lowest-score videos (at least 1), the mean of its 32
  uniformly sampled snippets (indices floor(i T / 32));
- d = min over the list of 1 - cos (UCF) or of the RMS distance sqrt(||x - m||^2 / D) (SHT);
  w = exp(-|d - y_hat|).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
from tqdm import tqdm

from lanp.method import labels as L
from lanp.data.io import CHUNK_BYTES, FeatureFile
from lanp.kernels import ConvergenceWarning, InputError
from lanp.kernels import propagate_official, weight_distance

PRESET_NAMES = ("paper", "official-ucf", "official-sht")


@dataclass(frozen=True)
class OfficialPreset:
    """Every constant of the public code for one dataset."""

    name: str
    graph: str                      # 'rms' (UCF) or 'cosine' (SHT): the feature term of a_ij
    abnormal_video_fraction: float  # int(f V) highest-score videos are abnormal
    weight_distance: str            # 'cosine' (d = 1 - cos) or 'rms' (d = sqrt(||x-m||^2 / D))
    sigma: float = 0.1
    alpha: float = 0.99
    max_k: int = 50
    maxiter: int = 10
    rtol: float = 1e-6
    abnormal_ratio: float = 0.4
    confident_fraction: float = 0.1
    samples: int = 32

    def attrs(self) -> dict:
        return {f"preset_{k}": v for k, v in asdict(self).items()}


PRESETS = {
    "official-ucf": OfficialPreset("official-ucf", graph="rms", abnormal_video_fraction=0.5,
                                   weight_distance="cosine"),
    "official-sht": OfficialPreset("official-sht", graph="cosine", abnormal_video_fraction=0.27,
                                   weight_distance="rms"),
}


def get_preset(name: str) -> Optional[OfficialPreset]:
    """None for 'paper', else the official preset; unknown names get an error listing the choices."""
    if name == "paper":
        return None
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is invalid: choose one of {', '.join(PRESET_NAMES)}")
    return PRESETS[name]


def abnormal_videos(scores: np.ndarray, preset: OfficialPreset) -> np.ndarray:
    """(V,) bool: the int(f V) highest-score videos (ties: the later video counts as higher)."""
    V = scores.shape[0]
    n_abnormal = int(preset.abnormal_video_fraction * V)
    abnormal = np.zeros(V, dtype=bool)
    if n_abnormal:
        abnormal[np.argsort(scores, kind="stable")[V - n_abnormal:]] = True
    return abnormal


def normal_list_videos(scores: np.ndarray, abnormal: np.ndarray, preset: OfficialPreset) -> np.ndarray:
    """Indices of the max(1, int(h N_nor)) lowest-score videos, lowest first."""
    n_normal = int((~abnormal).sum())
    if n_normal == 0:
        raise InputError("no normal video: the preset's split left every video abnormal")
    count = max(1, int(preset.confident_fraction * n_normal))
    return np.argsort(scores, kind="stable")[:count]


def sample_indices(T: int, samples: int = 32) -> np.ndarray:
    """floor(i T / samples) for i < samples (repeats when T < samples)."""
    return np.floor(np.arange(samples) * T / samples).astype(np.int64)


def propagate_preset_file(ff, preset: OfficialPreset, progress: bool = True, chunk_bytes: int = CHUNK_BYTES):
    """The public code's per-video propagation over every video of the open FeatureFile ``ff``, chunk
    by chunk; per-video results do not depend on the chunking or on the other videos of the file.
    Returns a :class:`lanp.runners.file.FilePropagation` whose z is the post-processed z in float64."""
    from lanp.runners.file import FilePropagation          # lanp.runners.file imports this module

    V, N = ff.num_videos, ff.num_snippets
    z = np.zeros(N, dtype=np.float64)
    iterations = np.zeros(V, dtype=np.int32)
    residual = np.zeros(V)
    converged = np.zeros(V, dtype=bool)
    kernel_seconds = 0.0
    bar = tqdm(total=V, unit="video", desc=f"propagate ({preset.name})", disable=not progress)
    for v0, v1 in ff.chunks(chunk_bytes, 4):
        x, local = ff.read(v0, v1, dtype=np.float32, reuse=True)
        t0 = time.perf_counter()
        r = propagate_official(x, local, variant=preset.graph, sigma=preset.sigma, alpha=preset.alpha,
                               rtol=preset.rtol, maxiter=preset.maxiter, max_k=preset.max_k,
                               video_ids=ff.video_ids[v0:v1], where=ff.path)
        kernel_seconds += time.perf_counter() - t0
        a, b = int(ff.offsets[v0]), int(ff.offsets[v1])
        z[a:b] = r.z
        iterations[v0:v1], residual[v0:v1], converged[v0:v1] = r.iterations, r.residual, r.converged
        bar.update(v1 - v0)
    bar.close()
    return FilePropagation(z, iterations, residual, converged, f"cpu-{preset.name}", kernel_seconds)


def sampled_means(ff, videos, preset: OfficialPreset) -> np.ndarray:
    """The normal list: for each of ``videos`` (indices into ``ff``), in order, the float64 mean of
    its ``preset.samples`` uniformly sampled snippets (:func:`sample_indices`)."""
    return np.stack([ff.read(int(v), int(v) + 1, dtype=np.float64)[0]
                     [sample_indices(int(ff.lengths[v]), preset.samples)].mean(axis=0) for v in videos])


def preset_weights_file(ff, pseudo: np.ndarray, means: np.ndarray, preset: OfficialPreset,
                        chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """w = exp(-|d - y_hat|) (N,) float32 for every snippet of ``ff``, d by ``preset.weight_distance``
    (:func:`lanp.kernels.official.weight_distance`, row by row in float64)."""
    weight = np.full(ff.num_snippets, np.nan, dtype=np.float32)
    for v0, v1 in ff.chunks(chunk_bytes, 4):
        x, _ = ff.read(v0, v1, dtype=np.float32, reuse=True)
        a, b = int(ff.offsets[v0]), int(ff.offsets[v1])
        d = weight_distance(x, means, preset.weight_distance)
        weight[a:b] = np.exp(-np.abs(d - pseudo[a:b]))
    return weight


def warn_capped(converged: np.ndarray, preset: OfficialPreset, where) -> None:
    """One ConvergenceWarning when CG stopped at the preset's cap for some videos (the public
    code's behaviour, reported rather than hidden)."""
    capped = int((~np.asarray(converged)).sum())
    if capped:
        warnings.warn(f"{where}: {preset.name}: CG stopped at maxiter={preset.maxiter} above "
                      f"rtol={preset.rtol:g} for {capped} of {len(converged)} video(s), as the public code does",
                      ConvergenceWarning, stacklevel=3)


def split_attrs(preset: OfficialPreset, abnormal: np.ndarray, listed: np.ndarray) -> dict:
    """The labels-file attributes of a preset run: every constant, the split and the list size."""
    attrs = preset.attrs()
    attrs.update({"preset": preset.name, "normal_list_videos": len(listed),
                  "n_normal": int((~abnormal).sum())})
    return attrs


def run_preset(features_path, preset: OfficialPreset, *, progress: bool = True,
               chunk_bytes: int = CHUNK_BYTES, score_fn=None):
    """Run ``preset`` over a feature file, chunk by chunk (bounded memory).

    score_fn(z, offsets) -> (V,) video scores, default std(z). Returns a dict of the labels-file
    arrays (normality, pseudo_label, weight, video_score, video_abnormal, cg_iterations,
    cg_residual, cg_converged, offsets, video_ids) plus kernel_seconds and attrs.
    """
    with FeatureFile(features_path) as ff:
        p1 = propagate_preset_file(ff, preset, progress, chunk_bytes)
        z, offsets = p1.z, ff.offsets.copy()
        scores = L.video_scores(z, offsets) if score_fn is None else score_fn(z, offsets)
        abnormal = abnormal_videos(scores, preset)
        pseudo = L.pseudo_labels(z, offsets, abnormal, preset.abnormal_ratio)
        listed = normal_list_videos(scores, abnormal, preset)
        weight = preset_weights_file(ff, pseudo, sampled_means(ff, listed, preset), preset, chunk_bytes)
        video_ids = list(ff.video_ids)
    warn_capped(p1.converged, preset, features_path)
    return dict(video_ids=video_ids, offsets=offsets, normality=z.astype(np.float32), pseudo_label=pseudo,
                weight=weight, video_score=scores, video_abnormal=abnormal, cg_iterations=p1.iterations,
                cg_residual=p1.residual, cg_converged=p1.converged, kernel_seconds=p1.kernel_seconds,
                attrs=split_attrs(preset, abnormal, listed))
