"""numba.cuda kernels (backend 'numba-cuda') under the CUDA simulator, against the float64 reference.

The simulator must be enabled before numba is first imported, and this pytest process already
runs the native numba CPU kernels, so every case runs in one subprocess started with
NUMBA_ENABLE_CUDASIM=1 that prints its measurements as JSON. Cases are small (the simulator runs a
Python thread per CUDA thread): L <= 12, D <= 6, blocks of 8 threads.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]          # the helpers live there

SCRIPT = textwrap.dedent(r'''
    import itertools, json, os, sys, time
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    sys.setswitchinterval(1e-4)
    sys.path.insert(0, TESTS)
    import numpy as np
    from numba import config
    assert config.ENABLE_CUDASIM
    from lanp.kernels import propagate, similarity, solve, InputError
    from lanp.kernels import backends
    from lanp.kernels.cuda.numba_backend import NumbaCudaBackend
    from lanp.kernels import GraphParams, SolverParams
    from reference import normalized_similarity, propagate_reference, relative_error

    backends.register(NumbaCudaBackend(block=8))     # small blocks: fewer simulator threads
    out = {"similarity": [], "propagate": [], "solve": [], "seeds": [], "terms": [], "errors": []}
    rng = np.random.default_rng(20240)
    t0 = time.time()
    cases = [((1,), 3), ((2,), 2), ((5, 1, 9), 4), ((12, 3, 7, 2), 6)]
    for (lengths, D), dtype, distance, normalize, window in itertools.product(
            cases, ("float32", "float64"), ("sqeuclidean", "rms", "cosine"), (True, False), (None, 2)):
        if (distance, normalize) == ("cosine", False) and window is None:
            continue
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        x = (rng.normal(size=D) + np.cumsum(rng.normal(scale=0.4, size=(offsets[-1], D)), axis=0)).astype(dtype)
        kw = dict(sigma=0.4, distance=distance, normalize=normalize, window=window)
        g = similarity(x, offsets, backend="numba-cuda", **kw)
        for v in range(len(lengths)):
            ref = normalized_similarity(x[offsets[v]:offsets[v + 1]].astype(np.float64), **kw)
            got = g.dense(v)
            err = relative_error(got, ref) if np.linalg.norm(ref) else float(np.abs(got).max())
            out["similarity"].append([str(lengths), dtype, distance, normalize, window, v, err])
        tol = 1e-11 if dtype == "float64" else 1e-7
        r = propagate(x, offsets, backend="numba-cuda", tol=tol, maxiter=500, **kw)
        ref = np.concatenate([propagate_reference(x[a:b].astype(np.float64), **kw)
                              for a, b in zip(offsets[:-1], offsets[1:])])
        out["propagate"].append([str(lengths), dtype, distance, normalize, window,
                                 relative_error(r.z, ref), r.z.dtype.name, bool(r.converged.all()),
                                 float(r.residual.max()), r.iterations.tolist(), r.backend])
        s = solve(g, backend="numba-cuda", tol=1e-11, maxiter=500)
        out["solve"].append([str(lengths), dtype, window, relative_error(s.z, ref), bool(s.converged.all())])
    # per-video seed lists (some from the end, one in the middle of a band), fused and two-step
    lengths = (1, 4, 12, 7)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    x = np.cumsum(rng.normal(scale=0.4, size=(offsets[-1], 3)), axis=0)
    seeds = [[0], [-1, 1], [6], [2, -2]]
    for window in (None, 2):
        kw = dict(sigma=0.4, window=window)
        ref = np.concatenate([propagate_reference(x[a:b], seeds=seeds[v], **kw)
                              for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:]))])
        r = propagate(x, offsets, seeds=seeds, backend="numba-cuda", tol=1e-11, maxiter=500, **kw)
        s = solve(similarity(x, offsets, backend="numba-cuda", **kw), seeds=seeds, backend="numba-cuda",
                  tol=1e-11, maxiter=500)
        out["seeds"].append([window, relative_error(r.z, ref), relative_error(s.z, ref),
                             bool(r.converged.all() and s.converged.all())])
    # one-term graphs (W = Wf or W = Wt), dense and banded
    for terms, window in itertools.product(("feature", "temporal"), (None, 2)):
        kw = dict(sigma=0.4, window=window, terms=terms)
        ref = np.concatenate([propagate_reference(x[a:b], **kw) for a, b in zip(offsets[:-1], offsets[1:])])
        r = propagate(x, offsets, backend="numba-cuda", tol=1e-11, maxiter=500, **kw)
        out["terms"].append([terms, window, relative_error(r.z, ref), bool(r.converged.all())])
    # errors: a zero row under normalisation names the video and snippet; maxiter is reported
    x = rng.normal(size=(7, 3)); x[4] = 0.0
    try:
        propagate(x, np.array([0, 3, 7]), backend="numba-cuda")
    except InputError as exc:
        out["errors"].append(str(exc))
    r = propagate(rng.normal(size=(9, 3)), np.array([0, 9]), backend="numba-cuda", maxiter=1, tol=1e-12, warn=False)
    out["maxiter"] = [r.iterations.tolist(), r.converged.tolist(), float(r.residual[0])]
    # device arrays in: z comes back on the device, in the dtype asked for (not float64)
    from numba import cuda
    from lanp.kernels.cuda.numba_backend import BLOCK
    lengths = (4, 9, 1)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    x = np.cumsum(rng.normal(scale=0.4, size=(offsets[-1], 3)), axis=0)
    out["device"] = []
    for dtype, window in itertools.product(("float32", "float64"), (None, 2)):
        kw = dict(sigma=0.4, window=window, tol=1e-7, maxiter=500)
        host = propagate(x.astype(dtype), offsets, backend="numba-cuda", **kw)
        dev = propagate(cuda.to_device(x), offsets, dtype=dtype, backend="numba-cuda", **kw)
        out["device"].append([dtype, window, type(dev.z).__module__, str(dev.z.dtype),
                              float(np.abs(dev.z.copy_to_host().astype(np.float64) - host.z).max())])
    # the production block size (BLOCK threads; the cases above use 8)
    backends.register(NumbaCudaBackend())
    kw = dict(sigma=0.4, tol=1e-11, maxiter=500)
    out["production_block"] = [BLOCK]
    for window in (None, 2):
        ref = np.concatenate([propagate_reference(x[a:b], window=window, sigma=0.4)
                              for a, b in zip(offsets[:-1], offsets[1:])])
        r = propagate(x, offsets, backend="numba-cuda", window=window, **kw)
        out["production_block"].append([window, relative_error(r.z, ref), bool(r.converged.all())])
    out["seconds"] = time.time() - t0
    print("RESULT" + json.dumps(out))
''')


@pytest.fixture(scope="module")
def sim():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=os.pathsep.join(
        [str(TESTS.parent.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", f"TESTS = {str(TESTS)!r}\n" + SCRIPT],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def test_similarity_matches_reference(sim):
    assert len(sim["similarity"]) > 50
    for *case, err in sim["similarity"]:
        assert err <= 1e-6, case           # float64 accumulation: float32 inputs too


def test_propagate_matches_reference(sim):
    for lengths, dtype, distance, normalize, window, err, zdtype, conv, res, its, name in sim["propagate"]:
        assert name == "numba-cuda"
        assert zdtype == dtype
        assert conv and res <= 1e-6, (lengths, dtype, distance, normalize, window, res)
        assert err <= (1e-6 if dtype == "float64" else 1e-4), (lengths, dtype, distance, normalize, window, err)
        assert all(i >= 1 for i in its)


def test_solve_on_graph_matches_reference(sim):
    for *case, err, conv in sim["solve"]:
        assert conv and err <= 1e-6, case


def test_per_video_seeds_match_reference(sim):
    assert len(sim["seeds"]) == 2
    for window, err_fused, err_two_step, conv in sim["seeds"]:
        assert conv and err_fused <= 1e-9 and err_two_step <= 1e-9, window


def test_one_term_graphs_match_reference(sim):
    assert len(sim["terms"]) == 4
    for terms, window, err, conv in sim["terms"]:
        assert conv and err <= 1e-9, (terms, window)


def test_errors_and_maxiter(sim):
    assert sim["errors"]
    assert "snippet 1" in sim["errors"][0] and "video #1" in sim["errors"][0]
    its, conv, res = sim["maxiter"]
    assert its == [1] and conv == [False] and res > 1e-12


def test_simulator_is_quick(sim):
    assert sim["seconds"] < 90


def test_device_arrays_keep_the_asked_dtype_on_the_device(sim):
    assert len(sim["device"]) == 4
    for dtype, window, module, zdtype, diff in sim["device"]:
        assert module.startswith("numba.cuda") and zdtype == dtype, (dtype, window, module, zdtype)
        assert diff == 0.0, (dtype, window, diff)        # the same bits as the numpy path


def test_production_block_size(sim):
    block, *cases = sim["production_block"]
    assert block >= 128 and len(cases) == 2
    for window, err, conv in cases:
        assert conv and err <= 1e-9, (window, err)
