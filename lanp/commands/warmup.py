"""Compile every CPU kernel of lanp ahead of time into numba's disk cache.

A lanp command compiles only the kernels it calls, the first time it calls them, and numba keeps
them on disk (the folder of NUMBA_CACHE_DIR, else __pycache__ next to the kernels): the first
lanp-propagate after an install spends seconds compiling, later runs load the cache. Run
``lanp warmup`` once where the first real run must be fast -- a container image build, a shared
install on a cluster (with NUMBA_CACHE_DIR on a shared disk) -- and every variant is compiled: the
propagation kernels (dense and banded graphs, the paper's shortcut and the general path,
float32 and float64), the unfused similarity and solve, the loss weights, the official presets'
kernels and the cross-video kernels. Each is compiled by a call on a few tiny videos, so the
cache holds exactly what real calls load. Already cached kernels are only loaded (seconds).

Example:
  lanp warmup                 # everything, float32 and float64
  lanp warmup --dtype float32 # the dtype lanp-propagate uses by default
"""
from __future__ import annotations

import argparse
import time
import warnings


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", choices=("float32", "float64", "all"), default="all",
                   help="compute dtype(s) to compile for (default all; lanp-propagate's default is float32)")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")


def _tiny(np, dtype):
    """Three small videos (lengths 3, 9, 24) of positive features, D = 8, and their offsets."""
    rng = np.random.default_rng(0)
    lengths = [3, 9, 24]
    x = (np.abs(rng.normal(1.0, 0.3, size=(sum(lengths), 8))) + 0.05).astype(dtype)
    return x, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def steps(dtypes):
    """(description, callable) of every warm-up call, in order."""
    import numpy as np

    from lanp import kernels as K
    from lanp.kernels.cpu.rows import first_zero_row, video_sums
    from lanp.method.labels import loss_weights

    out = []
    for name in dtypes:
        dt = np.dtype(name)
        x, off = _tiny(np, dt)
        for window in (None, 2):
            shape = "dense" if window is None else "banded"
            out.append((f"propagate, paper settings, {shape}, {name}",
                        lambda x=x, off=off, w=window: K.propagate(x, off, window=w, backend="cpu")))
            out.append((f"propagate, general graph, {shape}, {name}",
                        lambda x=x, off=off, w=window: K.propagate(x, off, window=w, distance="rms",
                                                                   normalize=False, backend="cpu")))
            out.append((f"similarity + solve, {shape}, {name}",
                        lambda x=x, off=off, w=window: K.solve(K.similarity(x, off, window=w, backend="cpu"),
                                                               backend="cpu")))
        out.append((f"normal-list rows and the zero-row check, {name}",
                    lambda x=x, off=off: (video_sums(x, off), first_zero_row(x))))
        out.append((f"loss weights, {name}",
                    lambda x=x: loss_weights(x, np.zeros(x.shape[0]), x[:2].astype(np.float64))))
        out.append((f"official presets, {name}",
                    lambda x=x, off=off: [K.propagate_official(x, off, variant=v) for v in ("rms", "cosine")]))
        out.append((f"cross-video anchors, {name}",
                    lambda x=x, off=off: K.anchor_neighbours(x, off, x[[0, 3]], np.array([0, 1]), backend="cpu")))
    x, off = _tiny(np, np.float64)
    out.append(("official weight distances",
                lambda: [K.weight_distance(x, x[:2], kind) for kind in ("cosine", "rms")]))
    W = np.array([[0., 1., 0.], [1., 0., 1.], [0., 1., 0.]])
    out.append(("joint sparse CG (solve_csr)",
                lambda: K.solve_csr(np.array([0, 1, 3, 4]), np.array([1, 0, 2, 1]), W[W > 0],
                                    np.array([1., 0., 1.]), alpha=0.5, backend="cpu")))
    return out


def run(args) -> int:
    import numba

    dtypes = ("float32", "float64") if args.dtype == "all" else (args.dtype,)
    start = time.perf_counter()
    todo = steps(dtypes)
    for what, call in todo:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")              # tiny inputs: convergence is not the point
            call()
        if not args.quiet:
            print(f"{time.perf_counter() - t:7.2f} s  {what}", flush=True)
    where = numba.config.CACHE_DIR or "__pycache__ folders next to lanp's kernels"
    print(f"warmup: {len(todo)} kernel calls compiled or loaded in {time.perf_counter() - start:.1f} s "
          f"(numba cache: {where})")
    return 0
