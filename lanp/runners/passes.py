"""The two passes of a recipe over a source of videos, shared by every runner.

A source is anything with the reading interface of :class:`lanp.data.io.FeatureFile`:
``video_ids``, ``lengths``, ``offsets``, ``num_videos``, ``num_snippets``, ``path``,
``chunks(max_bytes, itemsize)`` (consecutive whole-video ranges) and
``read(v0, v1, dtype, reuse=True)`` -> (features (n, D), local offsets (v+1,)).
:class:`lanp.runners.memory.ArraySource` is the in-memory one.

Every pass reads through :func:`read_chunks`: a source with ``prefetch = True`` (a feature file)
has its next chunk read on a thread while the current one is computed on (the kernels release
the GIL), into the second of two kept buffers, so reading and computing overlap.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm import tqdm

from lanp.data.io import CHUNK_BYTES
from lanp.outputs import checkpoint
from lanp.method.recipe import Recipe
from lanp.method.results import Decision, FirstPass, Labels


def read_chunks(source, dtype, chunk_bytes: int = CHUNK_BYTES):
    """(v0, v1, features, local offsets) of every chunk of ``source`` in order. With
    ``source.prefetch`` (and more than one chunk) chunk i + 1 is read on a reader thread while the
    caller works on chunk i, alternating between the source's read buffers 0 and 1: a chunk's
    array is valid until the caller asks for the chunk after next. Memory: two chunks."""
    ranges = list(source.chunks(chunk_bytes, dtype.itemsize))
    if len(ranges) < 2 or not getattr(source, "prefetch", False):
        for v0, v1 in ranges:
            checkpoint()                      # a Ctrl-C swallowed by a C callback stops here
            x, local = source.read(v0, v1, dtype=dtype, reuse=True)
            yield v0, v1, x, local
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lanp-reader") as reader:
        pending = reader.submit(source.read, *ranges[0], dtype=dtype, reuse=True, buffer=0)
        for i, (v0, v1) in enumerate(ranges):
            checkpoint()
            x, local = pending.result()
            if i + 1 < len(ranges):     # buffer (i + 1) % 2: not the one the caller gets now
                pending = reader.submit(source.read, *ranges[i + 1], dtype=dtype, reuse=True,
                                        buffer=(i + 1) % 2)
            try:
                yield v0, v1, x, local
            except GeneratorExit:
                pending.cancel()
                raise


def context_rows(recipe: Recipe, source, chunk_bytes: int = CHUNK_BYTES):
    """(rows, video of each row) of :meth:`Recipe.context_rows` over every video of ``source``;
    the videos are the source's own indices (a sharded run shifts them by the shard's place)."""
    rows, videos = [], []
    for v0, v1, x, local in read_chunks(source, recipe.read_dtype(), chunk_bytes):
        r, v = recipe.context_rows(x, local, v0)
        rows.append(r)
        videos.append(v)
    return np.concatenate(rows), np.concatenate(videos)


def gather_context(recipe: Recipe, source, chunk_bytes: int = CHUNK_BYTES) -> Recipe:
    """The recipe with its context (e.g. the cross-video anchors) from every video of ``source``;
    recipes that need none come back as they are."""
    if not recipe.needs_context:
        return recipe
    return recipe.with_context(*context_rows(recipe, source, chunk_bytes))


def first_pass(recipe: Recipe, source, progress: bool = False, chunk_bytes: int = CHUNK_BYTES,
               first_video: int = 0) -> FirstPass:
    """:meth:`Recipe.first_pass` over every video of ``source``, chunk by chunk (bounded memory);
    ``first_video`` is the global index of the source's first video (a shard's place in its run)."""
    dtype = recipe.read_dtype()
    parts = []
    with tqdm(total=source.num_videos, unit="video", desc=f"propagate ({recipe.name})", disable=not progress) as bar:
        for v0, v1, x, local in read_chunks(source, dtype, chunk_bytes):
            parts.append(recipe.first_pass(x, local, source.video_ids[v0:v1], source.path,
                                           first_video=first_video + v0))
            bar.update(v1 - v0)
    return FirstPass.concat(parts)


def second_pass(recipe: Recipe, source, z: np.ndarray, decision: Decision, progress: bool = False,
                chunk_bytes: int = CHUNK_BYTES):
    """:meth:`Recipe.second_pass` over every video of ``source``: (pseudo-labels (N,) uint8,
    weights (N,) float32). ``decision`` holds this source's slice of the split."""
    dtype = recipe.read_dtype()
    pseudo = np.zeros(source.num_snippets, dtype=np.uint8)
    weight = np.full(source.num_snippets, np.nan, dtype=np.float32)
    with tqdm(total=source.num_videos, unit="video", desc="weights", disable=not progress) as bar:
        for v0, v1, x, local in read_chunks(source, dtype, chunk_bytes):
            a, b = int(source.offsets[v0]), int(source.offsets[v1])
            pseudo[a:b], weight[a:b] = recipe.second_pass(x, z[a:b], local, decision.video_abnormal[v0:v1], decision)
            bar.update(v1 - v0)
    return pseudo, weight


def assemble(recipe: Recipe, first: FirstPass, decision: Decision, pseudo, weight, video_ids,
             seconds: float = 0.0) -> Labels:
    """The :class:`Labels` of the passes (attrs: the recipe's options, then the decision's)."""
    extra = recipe.outputs(first, decision)
    return Labels(
        video_ids=list(video_ids), offsets=first.offsets, normality=extra.pop("normality"),
        pseudo_label=pseudo, weight=weight, video_score=np.asarray(decision.video_score, dtype=np.float32),
        video_abnormal=np.asarray(decision.video_abnormal, dtype=bool), cg_iterations=first.iterations,
        cg_residual=np.asarray(first.residual, dtype=np.float32), cg_converged=first.converged,
        backend=first.backend, seconds=seconds, kernel_seconds=first.kernel_seconds,
        attrs={**recipe.attrs(), **decision.attrs}, extra=extra)


def run(recipe: Recipe, source, progress: bool = False, chunk_bytes: int = CHUNK_BYTES) -> Labels:
    """Check, pass 1, the global step, pass 2 over one source; returns its labels."""
    start = time.perf_counter()
    ids, where = source.video_ids, source.path
    recipe.check(source.lengths, ids, where)
    recipe.check_dataset(source.num_videos)
    recipe = gather_context(recipe, source, chunk_bytes)
    first = first_pass(recipe, source, progress, chunk_bytes)
    decision = recipe.decide(first, ids, where)
    pseudo, weight = second_pass(recipe, source, first.z, decision, progress, chunk_bytes)
    recipe.warn(first, ids, where)
    return assemble(recipe, first, decision, pseudo, weight, ids, time.perf_counter() - start)
