"""Propagation over sharded datasets (several feature files) on a dask.distributed cluster.

The result equals the single-process run (lanp.runners.file.run_propagation) over the concatenation of
the shards in input order, exactly: every per-video quantity depends only on that video, and the
global steps run on the same per-video arrays in the same order.

Official presets (``--preset official-ucf|official-sht``) run the same four steps with the
preset's per-video kernel, split rules, sampled normal list and weight distance (lanp.method.official).

1. pass 1, one task per shard: propagate every video (lanp.runners.file.propagate_file), save z and
   the per-video results to ``<work>/<stem>.z.h5`` (atomic, keyed by the input file's identity and
   the pass-1 options), return the small per-video summary (std(z), length, CG results, prior
   violations);
2. on the client: video scores, the normal/abnormal split over ALL videos (N_nor), the confident
   normal list, the diagnostics;
3. one small task per shard holding confident normal videos: their mean features (the list M);
4. pass 2, one task per shard: pseudo-labels and loss weights, written atomically to
   ``<out>/<stem>.labels.h5`` in the single-file layout (lanp.runners.file.write_labels), plus
   ``dist_*`` attributes saying which shard of which run it is.

``resume=True`` reuses every work file whose key matches and every output whose run key matches,
so a killed run restarts where it stopped. Work files are removed after a successful run.
Input, work and output paths must be the same on the client and every worker (a shared file
system). dask[distributed] is the optional extra ``dist``; it is imported only when a run starts.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import h5py
import numpy as np
from tqdm import tqdm

import lanp
from lanp.method import diagnostics
from lanp.method import labels as L
from lanp.method import official as presets
from lanp.data.io import CHUNK_BYTES, FeatureFile, write_h5
from lanp.kernels import warn_unconverged
from lanp.kernels import InputError
from lanp.runners.file import (PropagateConfig, PropagationOutput, default_output_path, loss_weights_file,
                           normal_list_means, propagate_file, write_labels)

WORK_DIR = ".lanp-work"
WORK_FORMAT = 1
# options that change pass 1 (z, CG results, prior violations); everything else only changes pass 2
PASS1_OPTIONS = ("alpha", "sigma", "distance", "normalize", "window", "temporal_scale", "terms", "seeds",
                 "tol", "maxiter", "backend", "dtype", "preset", "abnormal_ratio")

# numba's parallel kernels use every core already; tasks of one worker process take turns
_KERNEL_LOCK = threading.Lock()
# test hook, called as _shard_hook(stage, path) when a task starts computing ('propagate' | 'labels');
# only seen by workers in this process (LocalCluster(processes=False))
_shard_hook = None


def _distributed():
    try:
        import distributed
    except ImportError:
        raise RuntimeError("sharded propagation (several --features, --scheduler or --resume) needs "
                           "dask.distributed: pip install 'lanp[dist]'") from None
    return distributed


# -- inputs, outputs, keys ------------------------------------------------------------------------
def expand_inputs(patterns: Sequence) -> List[Path]:
    """Paths and globs (sorted matches) in argument order; an existing path is taken literally."""
    paths: List[Path] = []
    for pattern in patterns:
        text = str(pattern)
        if any(c in text for c in "*?[") and not Path(text).exists():
            matches = sorted(Path(m) for m in glob.glob(text))
            if not matches:
                raise InputError(f"--features {text!r} matches no file")
            paths.extend(matches)
        else:
            paths.append(Path(text))
    seen = {}
    for p in paths:
        resolved = p.resolve()
        if resolved in seen:
            raise InputError(f"features file {str(p)!r} is given twice (also as {str(seen[resolved])!r})")
        seen[resolved] = p
    return paths


def output_paths(inputs: Sequence[Path], out=None) -> List[Path]:
    """One labels file per input: ``out/<stem>.labels.h5`` when ``out`` is a directory (always with
    several inputs), else ``out`` itself, else ``<features stem>.labels.h5`` beside the input."""
    inputs = [Path(p) for p in inputs]
    as_dir = out is not None and (len(inputs) > 1 or Path(out).is_dir() or str(out).endswith(("/", os.sep)))
    if len(inputs) > 1:
        if out is None:
            raise ValueError(f"{len(inputs)} feature files: give --out DIR for their labels files")
        if Path(out).exists() and not Path(out).is_dir():
            raise ValueError(f"--out {str(out)!r} is a file: with several inputs it must be a directory")
        stems = {}
        for p in inputs:
            if p.stem in stems:
                raise ValueError(f"inputs {str(stems[p.stem])!r} and {str(p)!r} share the stem {p.stem!r}: "
                                 f"their labels files would collide in {str(out)!r}")
            stems[p.stem] = p
    if as_dir:
        return [Path(out) / f"{p.stem}.labels.h5" for p in inputs]
    return [Path(out) if out is not None else default_output_path(inputs[0])]


def _digest(payload) -> str:
    text = json.dumps(payload, sort_keys=True, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def shard_key(path, config: PropagateConfig) -> str:
    """Hash of the input file's identity (resolved path, size, mtime) and the pass-1 options."""
    st = os.stat(path)
    return _digest({"format": WORK_FORMAT, "lanp": lanp.__version__,
                    "file": [str(Path(path).resolve()), st.st_size, st.st_mtime_ns],
                    "config": {k: getattr(config, k) for k in PASS1_OPTIONS}})


def run_key(shard_keys: Sequence[str], config: PropagateConfig) -> str:
    """Hash of every shard key (in order) and every option: equal keys mean equal outputs."""
    return _digest({"shards": list(shard_keys), "config": asdict(config)})


def work_path(work_dir, features_path) -> Path:
    return Path(work_dir) / f"{Path(features_path).stem}.z.h5"


# -- tasks (run on the workers) -------------------------------------------------------------------
@dataclass
class ShardSummary:
    """Pass 1 of one shard: its per-video results (z itself stays in the work file)."""

    path: str
    key: str
    video_ids: list
    lengths: np.ndarray
    std: np.ndarray              # std(z) per video, float64 (the 'std' video score)
    iterations: np.ndarray
    residual: np.ndarray         # float64
    converged: np.ndarray
    violations: np.ndarray       # diagnostics.prior_violations per video
    backend: str
    kernel_seconds: float
    computed: bool               # False: reused from the work file (resume)


def _read_summary(path, wpath, key) -> Optional[ShardSummary]:
    try:
        with h5py.File(wpath, "r") as f:
            if f.attrs.get("key") != key:
                return None
            g = {name: f[name][()] for name in ("offsets", "std", "cg_iterations", "cg_residual",
                                                "cg_converged", "prior_violation")}
            ids = [str(s) for s in f["video_ids"].asstr()[()]]
            return ShardSummary(str(path), key, ids, np.diff(g["offsets"]), g["std"], g["cg_iterations"],
                                g["cg_residual"], g["cg_converged"], g["prior_violation"],
                                str(f.attrs["backend"]), float(f.attrs["kernel_seconds"]), computed=False)
    except (OSError, KeyError):
        return None


def propagate_shard(path, wpath, config: PropagateConfig, resume: bool = False,
                    chunk_bytes: int = CHUNK_BYTES) -> ShardSummary:
    """Pass 1 of one shard; saves z and the per-video results to ``wpath`` atomically."""
    key = shard_key(path, config)
    if resume:
        cached = _read_summary(path, wpath, key)
        if cached is not None:
            return cached
    if _shard_hook is not None:
        _shard_hook("propagate", str(path))
    preset = presets.get_preset(config.preset)
    with FeatureFile(path) as ff:
        with _KERNEL_LOCK:
            if preset is None:
                p1 = propagate_file(ff, config, progress=False, chunk_bytes=chunk_bytes)
            else:                           # z stays float64, as in the single-process preset run
                p1 = presets.propagate_preset_file(ff, preset, progress=False, chunk_bytes=chunk_bytes)
        ids, offsets = list(ff.video_ids), ff.offsets.copy()
    std = L.video_scores(p1.z, offsets)
    violations = diagnostics.prior_violations(p1.z, offsets, abnormal_ratio(config, preset))
    write_h5(wpath, {"normality": p1.z, "offsets": offsets, "video_ids": ids, "std": std,
                     "cg_iterations": p1.iterations, "cg_residual": p1.residual,
                     "cg_converged": p1.converged, "prior_violation": violations},
             {"key": key, "backend": p1.backend, "kernel_seconds": p1.kernel_seconds,
              "features": str(path), "lanp_version": lanp.__version__})
    return ShardSummary(str(path), key, ids, np.diff(offsets), std, p1.iterations, p1.residual, p1.converged,
                        violations, p1.backend, p1.kernel_seconds, computed=True)


def shard_means(path, videos, preset_name: str = "paper") -> np.ndarray:
    """Mean features of the shard's normal-list videos (local indices, in order): whole videos, or
    an official preset's sampled snippets."""
    preset = presets.get_preset(preset_name)
    with FeatureFile(path) as ff:
        return normal_list_means(ff, videos) if preset is None else presets.sampled_means(ff, videos, preset)


def abnormal_ratio(config: PropagateConfig, preset) -> float:
    """r of the pseudo-labels: the official preset's where one is set, else config.abnormal_ratio."""
    return config.abnormal_ratio if preset is None else preset.abnormal_ratio


def _output_done(out_path, key) -> Optional[int]:
    """Pseudo-abnormal snippet count of a finished output of this run, else None."""
    try:
        with h5py.File(out_path, "r") as f:
            if f.attrs.get("dist_run_key") != key:
                return None
            return int(f["pseudo_label"][()].sum(dtype=np.int64))
    except (OSError, KeyError):
        return None


def label_shard(path, wpath, out_path, scores, abnormal, means, config: PropagateConfig, attrs: dict,
                resume: bool = False, chunk_bytes: int = CHUNK_BYTES):
    """Pass 2 of one shard: pseudo-labels and weights from the global decisions, written to
    ``out_path`` (single-file layout). Returns (pseudo-abnormal snippets, computed)."""
    if resume:
        done = _output_done(out_path, attrs["dist_run_key"])
        if done is not None:
            return done, False
    if _shard_hook is not None:
        _shard_hook("labels", str(path))
    with h5py.File(wpath, "r") as f:
        z = f["normality"][()]
        iterations, residual, converged = f["cg_iterations"][()], f["cg_residual"][()], f["cg_converged"][()]
        backend, kernel_seconds = str(f.attrs["backend"]), float(f.attrs["kernel_seconds"])
    preset = presets.get_preset(config.preset)
    with FeatureFile(path) as ff:
        pseudo = L.pseudo_labels(z, ff.offsets, abnormal, abnormal_ratio(config, preset))
        if preset is None:
            weight = loss_weights_file(ff, pseudo, means, config.dtype, progress=False, chunk_bytes=chunk_bytes)
        else:
            weight = presets.preset_weights_file(ff, pseudo, means, preset, chunk_bytes)
        ids, offsets = list(ff.video_ids), ff.offsets.copy()
    out = PropagationOutput(
        video_ids=ids, offsets=offsets, normality=z.astype(np.float32), pseudo_label=pseudo, weight=weight,
        video_score=np.asarray(scores).astype(np.float32), video_abnormal=np.asarray(abnormal, dtype=bool),
        cg_iterations=iterations, cg_residual=residual.astype(np.float32), cg_converged=converged,
        backend=backend, kernel_seconds=kernel_seconds, attrs=attrs)
    write_labels(out_path, out, config, path)
    return int(pseudo.sum(dtype=np.int64)), True


# -- global steps (client) ------------------------------------------------------------------------
@dataclass
class ShardedRun:
    """What ``run_sharded`` did (the labels themselves are in ``outputs``)."""

    inputs: List[Path]
    outputs: List[Path]
    video_ids: list
    lengths: np.ndarray
    video_score: np.ndarray
    video_abnormal: np.ndarray
    cg_iterations: np.ndarray
    cg_residual: np.ndarray
    cg_converged: np.ndarray
    pseudo_abnormal: int
    backend: str
    seconds: float
    kernel_seconds: float
    propagated: int               # shards whose pass 1 ran (the rest came from work files)
    labelled: int                 # shards whose output was written (the rest were already done)
    attrs: dict = field(default_factory=dict)


@contextlib.contextmanager
def connect(scheduler: Optional[str] = None, n_workers: Optional[int] = None):
    """A dask Client: to ``scheduler`` (e.g. tcp://host:8786), or to a LocalCluster of single-threaded
    worker processes on this machine (numba threads split between them)."""
    distributed = _distributed()
    if scheduler:
        with distributed.Client(scheduler) as client:
            yield client
        return
    cpus = os.cpu_count() or 1
    n = max(1, min(n_workers or cpus, cpus))
    with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, env={"NUMBA_NUM_THREADS": str(max(1, cpus // n))}) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def _gather(distributed, futures, desc: str, progress: bool) -> list:
    """Results in submission order. When a task fails the others still finish (their work is
    saved for --resume), then the first error is raised."""
    index = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(futures)
    failed = None
    with tqdm(total=len(futures), unit="shard", desc=desc, disable=not progress) as bar:
        for f in distributed.as_completed(futures):
            if f.status == "error":
                failed = failed or f
            else:
                results[index[f.key]] = f.result()
            bar.update(1)
    if failed is not None:
        failed.result()                                  # re-raises the task's exception
    return results


def run_sharded(inputs: Sequence, outputs: Sequence, config: PropagateConfig, *, scheduler: Optional[str] = None,
                client=None, resume: bool = False, progress: bool = True, chunk_bytes: int = CHUNK_BYTES,
                work_dir=None, n_workers: Optional[int] = None) -> ShardedRun:
    """Propagate the shards ``inputs`` as one dataset and write one labels file per shard to
    ``outputs``; ``client`` (a distributed.Client) wins over ``scheduler``; default: local processes."""
    preset = presets.get_preset(config.preset)
    inputs, outputs = [Path(p) for p in inputs], [Path(p) for p in outputs]
    if len(inputs) != len(outputs) or not inputs:
        raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    for p in inputs:
        if not p.is_file():
            raise InputError(f"features file {str(p)!r} does not exist")
    work_dir = Path(work_dir) if work_dir is not None else outputs[0].parent / WORK_DIR
    works = [work_path(work_dir, p) for p in inputs]
    if len(set(works)) != len(works):
        raise ValueError("two inputs share a stem: their work files would collide")
    distributed = _distributed()
    if client is None:
        with connect(scheduler, n_workers or len(inputs)) as own:
            return run_sharded(inputs, outputs, config, client=own, resume=resume, progress=progress,
                               chunk_bytes=chunk_bytes, work_dir=work_dir)
    start = time.perf_counter()
    token = uuid.uuid4().hex[:8]

    # pass 1
    futures = [client.submit(propagate_shard, str(p), str(w), config, resume, chunk_bytes, pure=False,
                             key=f"lanp-propagate-{i}-{p.stem}-{token}")
               for i, (p, w) in enumerate(zip(inputs, works))]
    shards: List[ShardSummary] = _gather(distributed, futures, "propagate", progress)

    # global steps on the per-video summaries, in input order
    video_ids = [v for s in shards for v in s.video_ids]
    lengths = np.concatenate([s.lengths for s in shards])
    iterations = np.concatenate([s.iterations for s in shards])
    residual = np.concatenate([s.residual for s in shards])
    converged = np.concatenate([s.converged for s in shards])
    violations = np.concatenate([s.violations for s in shards])
    V = len(video_ids)
    scores, score_attrs = diagnostics.video_scores_from_std(np.concatenate([s.std for s in shards]), lengths, config.video_score)
    if preset is None:
        n_normal = L.resolve_n_normal(V, config.n_normal, config.normal_fraction)
        abnormal = L.split_videos(scores, n_normal)
        confident = L.confident_normal_videos(scores, abnormal, config.confident_fraction)
        split_attrs = {"n_normal": n_normal, "confident_videos": len(confident)}
        warn_unconverged(converged, residual, config.tol, config.maxiter, video_ids, f"{len(inputs)} shards")
    else:
        abnormal = presets.abnormal_videos(scores, preset)
        confident = presets.normal_list_videos(scores, abnormal, preset)
        split_attrs = presets.split_attrs(preset, abnormal, confident)
        presets.warn_capped(converged, preset, f"{len(inputs)} shards")
    first = np.concatenate([[0], np.cumsum([len(s.video_ids) for s in shards])])
    snippet_first = np.concatenate([[0], np.cumsum([int(s.lengths.sum()) for s in shards])])

    # the normal list M, in confident order, from the shards that hold those videos
    owner = np.searchsorted(first, confident, side="right") - 1
    mean_futures = {i: client.submit(shard_means, str(inputs[i]), confident[owner == i] - first[i], config.preset,
                                     pure=False, key=f"lanp-means-{i}-{inputs[i].stem}-{token}")
                    for i in np.unique(owner).tolist()}
    got = _gather(distributed, list(mean_futures.values()), "normal list", False)
    means = np.empty((confident.size, got[0].shape[1]), dtype=np.float64)
    for i, m in zip(mean_futures, got):
        means[owner == i] = m
    means_future = client.scatter(means, broadcast=True)

    # pass 2
    key = run_key([s.key for s in shards], config)
    attrs = {**split_attrs, **score_attrs,
             **diagnostics.diagnose_from_summaries(lengths, scores, abnormal, iterations, residual, violations)}
    futures = []
    for i, (p, w, o) in enumerate(zip(inputs, works, outputs)):
        a, b = int(first[i]), int(first[i + 1])
        shard_attrs = {**attrs, "dist_run_key": key, "dist_shard_index": i, "dist_num_shards": len(inputs),
                       "dist_total_videos": V, "dist_total_snippets": int(snippet_first[-1]),
                       "dist_video_offset": a, "dist_snippet_offset": int(snippet_first[i])}
        futures.append(client.submit(label_shard, str(p), str(w), str(o), scores[a:b], abnormal[a:b], means_future,
                                     config, shard_attrs, resume, chunk_bytes, pure=False,
                                     key=f"lanp-labels-{i}-{p.stem}-{token}"))
    written = _gather(distributed, futures, "labels", progress)

    for w in works:                                       # success: the work files are no longer needed
        with contextlib.suppress(FileNotFoundError):
            w.unlink()
    with contextlib.suppress(OSError):
        work_dir.rmdir()
    return ShardedRun(
        inputs=inputs, outputs=outputs, video_ids=video_ids, lengths=lengths,
        video_score=scores.astype(np.float32), video_abnormal=abnormal, cg_iterations=iterations,
        cg_residual=residual.astype(np.float32), cg_converged=converged,
        pseudo_abnormal=sum(n for n, _ in written), backend=",".join(sorted({s.backend for s in shards})),
        seconds=time.perf_counter() - start, kernel_seconds=sum(s.kernel_seconds for s in shards),
        propagated=sum(s.computed for s in shards), labelled=sum(c for _, c in written), attrs=attrs)


def summary_lines(run: ShardedRun) -> list:
    it = run.cg_iterations
    where = run.outputs[0].parent if len(run.outputs) > 1 else run.outputs[0]
    return [
        f"shards {len(run.inputs)}, videos {len(run.video_ids)}, snippets {int(run.lengths.sum())}, "
        f"abnormal videos {int(run.video_abnormal.sum())}, pseudo-abnormal snippets {run.pseudo_abnormal}",
        f"time {run.seconds:.2f} s (kernel {run.kernel_seconds:.3f} s summed over shards, backend {run.backend}); "
        f"shards propagated {run.propagated}, reused {len(run.inputs) - run.propagated}; "
        f"labels written {run.labelled}, already done {len(run.inputs) - run.labelled}",
        f"CG iterations min/median/max {int(it.min())}/{int(np.median(it))}/{int(it.max())}, "
        f"max true residual {float(np.max(run.cg_residual)):.2e}, "
        f"videos not converged {int((~run.cg_converged).sum())}",
        f"wrote {len(run.outputs)} labels file(s) to {where}",
    ]
