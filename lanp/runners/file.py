"""Feature file -> labels file: propagation, pseudo-labels and loss weights, chunk by chunk.

Pass 1 reads videos in chunks of bounded size and runs the propagation kernel (z is kept: 4 bytes
per snippet). The global steps (video scores, the normal/abnormal split, the confident normal list)
run on those small per-video arrays. Pass 2 re-reads the features to compute the loss weights.
The output is written atomically.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from tqdm import tqdm

import lanp
from lanp.method import diagnostics
from lanp.method import labels as L
from lanp.method.official import get_preset, run_preset
from lanp.data.io import CHUNK_BYTES, FeatureFile, write_h5
from lanp.kernels import warn_unconverged
from lanp.kernels import GraphParams, InputError, SolverParams, propagate
from lanp.kernels import check_graph_memory
from lanp.kernels import check_dtype, resolve_seeds, video_name


@dataclass
class PropagateConfig:
    """Every hyper-parameter of ``lanp propagate`` (defaults: the paper on L2-normalised features)."""

    alpha: float = 0.99
    sigma: float = 0.1
    distance: str = "sqeuclidean"
    normalize: str = "l2"                  # 'l2' | 'none'
    window: Optional[int] = None
    temporal_scale: Optional[float] = None
    terms: str = "both"                    # 'both' (W = Wf * Wt) | 'feature' | 'temporal'
    seeds: Sequence[int] = (0, -1)
    n_normal: Optional[int] = None
    normal_fraction: Optional[float] = None
    abnormal_ratio: float = 0.4
    confident_fraction: float = 0.1
    tol: float = 1e-6
    maxiter: int = 1000
    backend: str = "auto"
    dtype: str = "float32"
    preset: str = "paper"                  # 'paper' | 'official-ucf' | 'official-sht' (lanp.method.official)
    video_score: str = "std"               # 'std' | 'std-length-adjusted' (lanp.method.diagnostics)

    def __post_init__(self):
        if self.normalize not in ("l2", "none"):
            raise ValueError(f"normalize={self.normalize!r} is invalid: choose l2 or none")
        self.seeds = tuple(self.seeds)
        check_dtype(self.dtype)
        self.graph_params()
        self.solver_params()
        if not 0.0 <= self.abnormal_ratio <= 1.0:
            raise ValueError(f"abnormal_ratio={self.abnormal_ratio!r} is invalid: it must be in [0, 1]")
        if not 0.0 < self.confident_fraction <= 1.0:
            raise ValueError(f"confident_fraction={self.confident_fraction!r} is invalid: it must be in (0, 1]")
        get_preset(self.preset)
        if self.video_score not in diagnostics.VIDEO_SCORES:
            raise ValueError(f"video_score={self.video_score!r} is invalid: choose one of "
                             f"{', '.join(diagnostics.VIDEO_SCORES)}")

    def graph_params(self) -> GraphParams:
        return GraphParams(sigma=self.sigma, distance=self.distance, normalize=self.normalize == "l2",
                           window=self.window, temporal_scale=self.temporal_scale, terms=self.terms)

    def solver_params(self) -> SolverParams:
        return SolverParams(alpha=self.alpha, seeds=self.seeds, tol=self.tol, maxiter=self.maxiter)

    def kernel_kwargs(self) -> dict:
        g, s = self.graph_params(), self.solver_params()
        return dict(alpha=s.alpha, sigma=g.sigma, distance=g.distance, normalize=g.normalize,
                    window=g.window, temporal_scale=g.temporal_scale, terms=g.terms, seeds=s.seeds, tol=s.tol,
                    maxiter=s.maxiter, dtype=self.dtype, backend=self.backend)

    def attrs(self) -> dict:
        out = {}
        for key, value in asdict(self).items():
            if value is None:
                value = "none"
            elif isinstance(value, (tuple, list)):
                value = np.asarray(value, dtype=np.int64)
            out[key] = value
        return out


@dataclass
class PropagationOutput:
    """What ``run_propagation`` computed (also written to the labels file)."""

    video_ids: list
    offsets: np.ndarray
    normality: np.ndarray
    pseudo_label: np.ndarray
    weight: np.ndarray
    video_score: np.ndarray
    video_abnormal: np.ndarray
    cg_iterations: np.ndarray
    cg_residual: np.ndarray
    cg_converged: np.ndarray
    backend: str
    seconds: float = 0.0
    kernel_seconds: float = 0.0
    attrs: dict = field(default_factory=dict)


def default_output_path(features_path) -> Path:
    p = Path(features_path)
    return p.with_name(p.stem + ".labels.h5")


def _check_nonzero(x, local_offsets, v0, ff: FeatureFile) -> None:
    zero = np.flatnonzero(~np.any(x != 0, axis=1))
    if zero.size:
        row = int(zero[0])
        v = int(np.searchsorted(local_offsets, row, side="right")) - 1
        raise InputError(f"{ff.path}: {video_name(ff.video_ids, v0 + v)}, snippet "
                         f"{row - int(local_offsets[v])} is an all-zero feature vector: the cosine of the "
                         f"loss weights is undefined for it")


@dataclass
class FilePropagation:
    """Pass 1 over one feature file: z (N,) (float32; float64 from an official preset,
    lanp.method.official.propagate_preset_file) and the per-video CG results."""

    z: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray
    converged: np.ndarray
    backend: str
    kernel_seconds: float


def propagate_file(ff: FeatureFile, config: PropagateConfig, progress: bool = True,
                   chunk_bytes: int = CHUNK_BYTES) -> FilePropagation:
    """Pass 1 (preset 'paper'): check the seeds and graph memory, then propagate every video of
    ``ff`` chunk by chunk. Per-video results do not depend on the chunking (nor on which other
    videos share a file), which is what makes sharded runs (lanp.runners.sharded) exact."""
    where = ff.path
    V, N = ff.num_videos, ff.num_snippets
    resolve_seeds(config.seeds, ff.lengths, ff.video_ids, where)
    check_graph_memory(ff.lengths, config.window, ff.video_ids, where)
    dtype = check_dtype(config.dtype)
    z = np.full(N, np.nan, dtype=np.float32)
    iterations = np.full(V, -1, dtype=np.int32)
    residual = np.full(V, np.nan, dtype=np.float64)
    converged = np.zeros(V, dtype=bool)
    backend = config.backend
    kernel_seconds = 0.0
    kwargs = config.kernel_kwargs()
    bar = tqdm(total=V, unit="video", desc="propagate", disable=not progress)
    for v0, v1 in ff.chunks(chunk_bytes, dtype.itemsize):
        x, local = ff.read(v0, v1, dtype=dtype, reuse=True)
        t0 = time.perf_counter()
        result = propagate(x, local, video_ids=ff.video_ids[v0:v1], where=where, warn=False, **kwargs)
        kernel_seconds += time.perf_counter() - t0
        a, b = int(ff.offsets[v0]), int(ff.offsets[v1])
        z[a:b] = result.z
        iterations[v0:v1] = result.iterations
        residual[v0:v1] = result.residual
        converged[v0:v1] = result.converged
        backend = result.backend
        bar.update(v1 - v0)
    bar.close()
    return FilePropagation(z, iterations, residual, converged, backend, kernel_seconds)


def normal_list_means(ff: FeatureFile, videos) -> np.ndarray:
    """The normal list M: mean feature (float64) of each of ``videos`` (indices into ``ff``), in order."""
    means = np.stack([ff.read(int(v), int(v) + 1, dtype=np.float64)[0].mean(axis=0) for v in videos])
    empty = np.flatnonzero(~np.any(means != 0, axis=1))
    if empty.size:
        raise InputError(f"{ff.path}: the mean feature of confident normal "
                         f"{video_name(ff.video_ids, int(videos[empty[0]]))} is zero: cosine undefined")
    return means


def loss_weights_file(ff: FeatureFile, pseudo: np.ndarray, means: np.ndarray, dtype, progress: bool = True,
                      chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Pass 2: w (N,) float32 for every snippet of ``ff`` given its pseudo-labels and the normal list."""
    dtype = check_dtype(dtype)
    weight = np.full(ff.num_snippets, np.nan, dtype=np.float32)
    bar = tqdm(total=ff.num_videos, unit="video", desc="weights", disable=not progress)
    for v0, v1 in ff.chunks(chunk_bytes, dtype.itemsize):
        x, local = ff.read(v0, v1, dtype=dtype, reuse=True)
        _check_nonzero(x, local, v0, ff)
        a, b = int(ff.offsets[v0]), int(ff.offsets[v1])
        weight[a:b] = L.loss_weights(x, pseudo[a:b], means)
        bar.update(v1 - v0)
    bar.close()
    return weight


def run_propagation(features_path, config: PropagateConfig, progress: bool = True,
                    chunk_bytes: int = CHUNK_BYTES) -> PropagationOutput:
    """Propagate every video of ``features_path``; returns the labels (nothing is written)."""
    if config.preset != "paper":
        return _run_official_preset(features_path, config, progress, chunk_bytes)
    start = time.perf_counter()
    with FeatureFile(features_path) as ff:
        where = ff.path
        V = ff.num_videos
        n_normal = L.resolve_n_normal(V, config.n_normal, config.normal_fraction)
        dtype = check_dtype(config.dtype)
        p1 = propagate_file(ff, config, progress, chunk_bytes)
        z, iterations, residual, converged = p1.z, p1.iterations, p1.residual, p1.converged
        backend, kernel_seconds = p1.backend, p1.kernel_seconds

        scores, score_attrs = diagnostics.video_scores(z, ff.offsets, config.video_score)
        abnormal = L.split_videos(scores, n_normal)
        pseudo = L.pseudo_labels(z, ff.offsets, abnormal, config.abnormal_ratio)
        confident = L.confident_normal_videos(scores, abnormal, config.confident_fraction)
        means = normal_list_means(ff, confident)
        weight = loss_weights_file(ff, pseudo, means, dtype, progress, chunk_bytes)
        video_ids, offsets = list(ff.video_ids), ff.offsets.copy()

    warn_unconverged(converged, residual, config.tol, config.maxiter, video_ids, where)

    return PropagationOutput(
        video_ids=video_ids, offsets=offsets, normality=z, pseudo_label=pseudo, weight=weight,
        video_score=scores.astype(np.float32), video_abnormal=abnormal, cg_iterations=iterations,
        cg_residual=residual.astype(np.float32), cg_converged=converged, backend=backend,
        seconds=time.perf_counter() - start, kernel_seconds=kernel_seconds,
        attrs={"n_normal": n_normal, "confident_videos": len(confident), **score_attrs,
               **diagnostics.diagnose(z, offsets, scores, abnormal, iterations, residual, config.abnormal_ratio)})


def _run_official_preset(features_path, config: PropagateConfig, progress: bool, chunk_bytes) -> PropagationOutput:
    """``--preset official-ucf|official-sht`` (lanp.method.official): the public code's rules; the graph,
    solver and split options of ``config`` are not used (the preset fixes them)."""
    start = time.perf_counter()
    score_attrs = {}

    def score_fn(z, offsets):
        scores, attrs = diagnostics.video_scores(z, offsets, config.video_score)
        score_attrs.update(attrs)
        return scores

    r = run_preset(features_path, get_preset(config.preset), progress=progress, chunk_bytes=chunk_bytes,
                   score_fn=score_fn)
    attrs = {**r.pop("attrs"), **score_attrs,
             **diagnostics.diagnose(r["normality"], r["offsets"], r["video_score"], r["video_abnormal"],
                                    r["cg_iterations"], r["cg_residual"], get_preset(config.preset).abnormal_ratio)}
    kernel_seconds = r.pop("kernel_seconds")
    r["video_score"] = r["video_score"].astype(np.float32)
    r["cg_residual"] = r["cg_residual"].astype(np.float32)
    return PropagationOutput(**r, backend=f"cpu-{config.preset}", seconds=time.perf_counter() - start,
                             kernel_seconds=kernel_seconds, attrs=attrs)


def write_labels(path, out: PropagationOutput, config: PropagateConfig, features_path) -> None:
    """Write the labels file (packed, input order) atomically, every hyper-parameter as attributes."""
    attrs = config.attrs()
    attrs.update(out.attrs)
    attrs.update({"backend": out.backend, "lanp_version": lanp.__version__,
                  "features": str(features_path), "cg_not_converged": int((~out.cg_converged).sum()),
                  "cg_iterations_max": int(out.cg_iterations.max()),
                  "cg_residual_max": float(np.max(out.cg_residual))})
    write_h5(path, {
        "normality": out.normality, "pseudo_label": out.pseudo_label, "weight": out.weight,
        "offsets": out.offsets, "video_ids": out.video_ids, "video_score": out.video_score,
        "video_abnormal": out.video_abnormal, "cg_iterations": out.cg_iterations,
        "cg_residual": out.cg_residual,
    }, attrs)
