"""Propagation over sharded datasets (several feature files) on a dask.distributed cluster.

Any recipe runs here, with no recipe-specific branch. The result equals the single-file run
(:func:`lanp.runners.file.label_file`) over the concatenation of the shards in input order,
exactly: every per-video quantity depends only on that video, and the global step runs on the same
per-video arrays in the same order.

1. pass 1, one task per shard: the recipe's first pass over every video
   (:func:`lanp.runners.passes.first_pass`), saved to ``<work>/<stem>.z.h5`` (atomic, keyed by the
   input file's identity and the recipe's pass-1 options); the task returns the per-video summary
   (no z);
2. on the client: the recipe's global step (:meth:`lanp.method.recipe.Recipe.decide`) over ALL
   videos, in input order;
3. pass 2, one task per shard: pseudo-labels and loss weights
   (:func:`lanp.runners.passes.second_pass`), written atomically to ``<out>/<stem>.labels.h5`` in the
   single-file layout (:func:`lanp.runners.file.write_labels`), plus ``dist_*`` attributes saying
   which shard of which run it is.

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
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import h5py
import numpy as np
from tqdm import tqdm

import lanp
from lanp import config_file
from lanp.data.io import CHUNK_BYTES, FeatureFile, write_h5
from lanp.kernels import InputError
from lanp.method.recipe import Recipe
from lanp.method.registry import as_recipe
from lanp.method.results import Decision, FirstPass
from lanp.runners import passes
from lanp.runners.file import default_output_path, write_labels

WORK_DIR = ".lanp-work"
WORK_FORMAT = 2

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


def shard_key(path, recipe: Recipe, first_video: int = 0) -> str:
    """Hash of the input file's identity (resolved path, size, mtime), its place in the run (the
    global index of its first video) and the recipe's pass-1 options."""
    st = os.stat(path)
    return _digest({"format": WORK_FORMAT, "lanp": lanp.__version__,
                    "file": [str(Path(path).resolve()), st.st_size, st.st_mtime_ns, int(first_video)],
                    "recipe": recipe.pass1_key()})


def run_key(shard_keys: Sequence[str], recipe: Recipe) -> str:
    """Hash of every shard key (in order) and every option: equal keys mean equal outputs."""
    return _digest({"shards": list(shard_keys), "recipe": recipe.run_key()})


def work_path(work_dir, features_path) -> Path:
    return Path(work_dir) / f"{Path(features_path).stem}.z.h5"


# -- tasks (run on the workers) -------------------------------------------------------------------
@dataclass
class ShardPass:
    """Pass 1 of one shard as the client sees it: the summary (no z) and where it came from."""

    path: str
    key: str
    video_ids: list
    first: FirstPass
    computed: bool               # False: reused from the work file (resume)


def _read_work(wpath, key, with_z: bool):
    """(video ids, FirstPass) of a work file with this key, else None."""
    try:
        with h5py.File(wpath, "r") as f:
            if f.attrs.get("key") != key:
                return None
            arrays = {name: f[name][()] for name in f if name != "video_ids" and (with_z or name != "z")}
            ids = [str(s) for s in f["video_ids"].asstr()[()]]
            return ids, FirstPass.from_arrays(arrays, str(f.attrs["backend"]), float(f.attrs["kernel_seconds"]))
    except (OSError, KeyError):
        return None


def propagate_shard(path, wpath, recipe: Recipe, resume: bool = False, chunk_bytes: int = CHUNK_BYTES,
                    first_video: int = 0) -> ShardPass:
    """Pass 1 of one shard (its first video is video ``first_video`` of the run); saves it (z
    included) to ``wpath`` atomically."""
    key = shard_key(path, recipe, first_video)
    if resume:
        cached = _read_work(wpath, key, with_z=False)
        if cached is not None:
            return ShardPass(str(path), key, cached[0], cached[1], computed=False)
    if _shard_hook is not None:
        _shard_hook("propagate", str(path))
    with FeatureFile(path) as ff:
        recipe.check(ff.lengths, ff.video_ids, ff.path)
        with _KERNEL_LOCK:
            first = passes.first_pass(recipe, ff, progress=False, chunk_bytes=chunk_bytes, first_video=first_video)
        ids = list(ff.video_ids)
    write_h5(wpath, {**first.arrays(), "video_ids": ids},
             {"key": key, "backend": first.backend, "kernel_seconds": first.kernel_seconds,
              "features": str(path), "lanp_version": lanp.__version__})
    return ShardPass(str(path), key, ids, first.summary(), computed=True)


def context_shard(path, recipe: Recipe, chunk_bytes: int = CHUNK_BYTES):
    """Pass 0 of one shard for recipes with a context: (rows, local video of each row, videos)."""
    with FeatureFile(path) as ff:
        return (*passes.context_rows(recipe, ff, chunk_bytes), ff.num_videos)


def _output_done(out_path, key) -> Optional[int]:
    """Pseudo-abnormal snippet count of a finished output of this run, else None."""
    try:
        with h5py.File(out_path, "r") as f:
            if f.attrs.get("dist_run_key") != key:
                return None
            return int(f["pseudo_label"][()].sum(dtype=np.int64))
    except (OSError, KeyError):
        return None


def label_shard(path, wpath, out_path, decision: Decision, recipe: Recipe, attrs: dict,
                resume: bool = False, chunk_bytes: int = CHUNK_BYTES, first_video: int = 0):
    """Pass 2 of one shard from the global decision (``decision`` holds the shard's slice of the
    scores and the split, and the whole normal list), written to ``out_path`` in the single-file
    layout. Returns (pseudo-abnormal snippets, computed)."""
    if resume:
        done = _output_done(out_path, attrs["dist_run_key"])
        if done is not None:
            return done, False
    if _shard_hook is not None:
        _shard_hook("labels", str(path))
    ids, first = _read_work(wpath, shard_key(path, recipe, first_video), with_z=True) or (None, None)
    if first is None:
        raise RuntimeError(f"{wpath}: the work file of pass 1 is missing or stale; rerun without --resume")
    with FeatureFile(path) as ff:
        pseudo, weight = passes.second_pass(recipe, ff, first.z, decision, progress=False, chunk_bytes=chunk_bytes)
    labels = passes.assemble(recipe, first, decision, pseudo, weight, ids)
    write_labels(out_path, labels, path, attrs)
    return int(pseudo.sum(dtype=np.int64)), True


# -- global steps (client) ------------------------------------------------------------------------
@dataclass
class ShardedRun:
    """What ``run_sharded`` did: the joined first pass (no z), the decision, and where the labels
    went (the per-snippet labels themselves are in ``outputs``)."""

    inputs: List[Path]
    outputs: List[Path]
    video_ids: list
    first: FirstPass
    decision: Decision
    pseudo_abnormal: int
    seconds: float
    propagated: int               # shards whose pass 1 ran (the rest came from work files)
    labelled: int                 # shards whose output was written (the rest were already done)

    @property
    def attrs(self) -> dict:
        return self.decision.attrs


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
    import logging

    # silence_logs: a failing shard is reported once, as the client's error line, not also as the
    # workers' logged traceback
    with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=logging.CRITICAL, env={"NUMBA_NUM_THREADS": str(max(1, cpus // n))}) as cluster:
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


def run_sharded(inputs: Sequence, outputs: Sequence, recipe, *, scheduler: Optional[str] = None,
                client=None, resume: bool = False, progress: bool = True, chunk_bytes: int = CHUNK_BYTES,
                work_dir=None, n_workers: Optional[int] = None) -> ShardedRun:
    """Label the shards ``inputs`` as one dataset with ``recipe`` (a Recipe, or a PropagateConfig
    for its preset's recipe) and write one labels file per shard to ``outputs``; ``client`` (a
    distributed.Client) wins over ``scheduler``; default: local processes."""
    recipe = as_recipe(recipe)
    inputs, outputs = [Path(p) for p in inputs], [Path(p) for p in outputs]
    if len(inputs) != len(outputs) or not inputs:
        raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    for p in inputs:
        if not p.is_file():
            raise InputError(f"features file {str(p)!r} does not exist")
    first_dim, counts = None, []
    for p in inputs:                  # headers only: one feature size for the dataset, each shard's place in it
        with FeatureFile(p) as ff:
            counts.append(ff.num_videos)
            if first_dim is None:
                first_dim = (ff.dim, str(p))
            elif ff.dim != first_dim[0]:
                raise InputError(f"features file {str(p)!r} has feature size D = {ff.dim} but {first_dim[1]!r} "
                                 f"has D = {first_dim[0]}: the shards of one dataset must share D")
    work_dir = Path(work_dir) if work_dir is not None else outputs[0].parent / WORK_DIR
    works = [work_path(work_dir, p) for p in inputs]
    if len(set(works)) != len(works):
        raise ValueError("two inputs share a stem: their work files would collide")
    distributed = _distributed()
    if client is None:
        with connect(scheduler, n_workers or len(inputs)) as own:
            return run_sharded(inputs, outputs, recipe, client=own, resume=resume, progress=progress,
                               chunk_bytes=chunk_bytes, work_dir=work_dir)
    start = time.perf_counter()
    token = uuid.uuid4().hex[:8]
    where = f"{len(inputs)} shards"
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    # pass 0 (recipes with a context): every shard's rows, with global video indices
    if recipe.needs_context:
        futures = [client.submit(context_shard, str(p), recipe, chunk_bytes, pure=False,
                                 key=f"lanp-context-{i}-{p.stem}-{token}") for i, p in enumerate(inputs)]
        parts = _gather(distributed, futures, "context", progress)
        recipe = recipe.with_context(np.concatenate([r for r, _, _ in parts]),
                                     np.concatenate([v + starts[i] for i, (_, v, _) in enumerate(parts)]))

    # pass 1
    futures = [client.submit(propagate_shard, str(p), str(w), recipe, resume, chunk_bytes, int(starts[i]), pure=False,
                             key=f"lanp-propagate-{i}-{p.stem}-{token}")
               for i, (p, w) in enumerate(zip(inputs, works))]
    shards: List[ShardPass] = _gather(distributed, futures, "propagate", progress)

    # the global step on the per-video summaries, in input order
    video_ids = [v for s in shards for v in s.video_ids]
    first = FirstPass.concat([s.first for s in shards])
    recipe.check_dataset(len(video_ids))
    decision = recipe.decide(first, video_ids, where)
    recipe.warn(first, video_ids, where)
    snippet_first = np.concatenate([[0], np.cumsum([int(s.first.lengths.sum()) for s in shards])])
    means_future = client.scatter(decision.means, broadcast=True)

    # pass 2
    key = run_key([s.key for s in shards], recipe)
    futures = []
    for i, (p, w, o) in enumerate(zip(inputs, works, outputs)):
        a, b = int(starts[i]), int(starts[i + 1])
        shard_attrs = {**config_file.output_attrs(), "dist_run_key": key, "dist_shard_index": i, "dist_num_shards": len(inputs),
                       "dist_total_videos": len(video_ids), "dist_total_snippets": int(snippet_first[-1]),
                       "dist_video_offset": a, "dist_snippet_offset": int(snippet_first[i])}
        futures.append(client.submit(_label_shard_task, str(p), str(w), str(o), decision.video_score[a:b],
                                     decision.video_abnormal[a:b], decision.normal_list, means_future,
                                     decision.attrs, recipe, shard_attrs, resume, chunk_bytes, int(starts[i]),
                                     pure=False,
                                     key=f"lanp-labels-{i}-{p.stem}-{token}"))
    written = _gather(distributed, futures, "labels", progress)

    for w in works:                                       # success: the work files are no longer needed
        with contextlib.suppress(FileNotFoundError):
            w.unlink()
    with contextlib.suppress(OSError):
        work_dir.rmdir()
    return ShardedRun(inputs=inputs, outputs=outputs, video_ids=video_ids, first=first, decision=decision,
                      pseudo_abnormal=sum(n for n, _ in written), seconds=time.perf_counter() - start,
                      propagated=sum(s.computed for s in shards), labelled=sum(c for _, c in written))


def _label_shard_task(path, wpath, out_path, scores, abnormal, listed, means, decision_attrs, recipe, attrs,
                      resume, chunk_bytes, first_video):
    """:func:`label_shard` with the shard's decision rebuilt on the worker (the normal list M is
    scattered once to every worker, not sent with every task)."""
    decision = Decision(np.asarray(scores), np.asarray(abnormal, dtype=bool), listed, means, decision_attrs)
    return label_shard(path, wpath, out_path, decision, recipe, attrs, resume, chunk_bytes, first_video)


def summary_lines(run: ShardedRun) -> list:
    it = run.first.iterations
    where = run.outputs[0].parent if len(run.outputs) > 1 else run.outputs[0]
    return [
        f"shards {len(run.inputs)}, videos {len(run.video_ids)}, snippets {int(run.first.lengths.sum())}, "
        f"abnormal videos {int(run.decision.video_abnormal.sum())}, pseudo-abnormal snippets {run.pseudo_abnormal}",
        f"time {run.seconds:.2f} s (kernel {run.first.kernel_seconds:.3f} s summed over shards, "
        f"backend {run.first.backend}); "
        f"shards propagated {run.propagated}, reused {len(run.inputs) - run.propagated}; "
        f"labels written {run.labelled}, already done {len(run.inputs) - run.labelled}",
        f"CG iterations min/median/max {int(it.min())}/{int(np.median(it))}/{int(it.max())}, "
        f"max true residual {float(np.max(run.first.residual)):.2e}, "
        f"videos not converged {int((~run.first.converged).sum())}",
        f"wrote {len(run.outputs)} labels file(s) to {where}",
    ]
