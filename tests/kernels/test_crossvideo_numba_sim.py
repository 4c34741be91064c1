"""The numba.cuda cross-video kernels (backend 'numba-cuda', cuda/crossvideo_numba.py) under the CUDA
simulator, against the CPU backend and the float64 references, in one subprocess started with
NUMBA_ENABLE_CUDASIM=1 (the simulator must be on before numba is first imported) that prints its
measurements as JSON. Small cases: the simulator runs a Python thread per CUDA thread."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parents[1]          # the helpers live there

SCRIPT = textwrap.dedent(r'''
    import json, os, sys, warnings
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    sys.setswitchinterval(1e-4)
    sys.path.insert(0, TESTS)
    import numpy as np
    from numba import config
    assert config.ENABLE_CUDASIM
    from lanp.kernels import InputError, anchor_neighbours, solve_csr
    from shared import anchor_reference as reference, dense_solution, random_symmetric, to_csr
    from reference import relative_error

    seed = SEED
    rng = np.random.default_rng(seed)
    out = {"neighbours": [], "csr": [], "errors": []}
    for dtype in ("float32", "float64"):
        lengths = rng.integers(1, 6, size=3)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        x = rng.normal(size=(int(offsets[-1]), 4)).astype(dtype)
        anchors = rng.normal(size=(5, 4)).astype(dtype)
        anchor_video = rng.integers(0, 4, size=5)
        got = anchor_neighbours(x, offsets, anchors, anchor_video, k=3, first_video=1, backend="numba-cuda")
        cpu = anchor_neighbours(x, offsets, anchors, anchor_video, k=3, first_video=1, backend="cpu")
        index, sim, masked = reference(x, offsets, anchors, anchor_video, 3, 1)
        filled = index >= 0
        rows = np.nonzero(got.index >= 0)[0]
        out["neighbours"].append([dtype, got.backend, type(got.index).__name__,
                                  bool(np.array_equal(got.index < 0, index < 0)),
                                  float(np.max(np.abs(got.similarity[filled] - sim[filled]), initial=0.0)),
                                  float(np.max(np.abs(masked[rows, got.index[got.index >= 0]] - got.similarity[got.index >= 0]), initial=0.0)),
                                  int(np.sum(got.index != cpu.index))])
    for N in (1, 7, 40):
        W = random_symmetric(rng, N, 0.3)
        y = rng.normal(size=N)
        r = solve_csr(*to_csr(W), y, tol=1e-12, maxiter=2000, backend="numba-cuda")
        ref, _ = dense_solution(W, y, 0.99)
        out["csr"].append([N, r.backend, type(r.z).__name__, relative_error(r.z, ref) if np.linalg.norm(ref) else 0.0,
                           r.converged, r.residual])
    x = np.ones((4, 2)); x[2] = 0
    for call in (lambda: anchor_neighbours(x, np.array([0, 2, 4]), np.ones((1, 2)), np.array([0]), backend="numba-cuda"),
                 lambda: solve_csr(np.array([0, 1, 2]), np.array([1, 0]), np.array([1.0, 2.0]), np.ones(2), backend="numba-cuda")):
        try:
            call()
            out["errors"].append("no error")
        except InputError as exc:
            out["errors"].append(str(exc))
    print("JSON" + json.dumps(out))
''')


@pytest.fixture(scope="module")
def results():
    seed = int(np.random.SeedSequence().entropy % 2 ** 32)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    code = SCRIPT.replace("TESTS", repr(str(TESTS))).replace("SEED", str(seed))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, f"seed {seed}\n{proc.stderr[-4000:]}"
    line = next(l for l in proc.stdout.splitlines() if l.startswith("JSON"))
    return seed, json.loads(line[4:])


def test_anchor_neighbours_under_the_simulator(results):
    seed, out = results
    for dtype, backend, kind, same_empty, err, pair_err, differ in out["neighbours"]:
        assert backend == "numba-cuda" and kind == "ndarray" and same_empty, (seed, dtype)
        assert err <= (2e-6 if dtype == "float32" else 1e-12), (seed, dtype, err)
        assert pair_err <= 1e-12, (seed, dtype, pair_err)           # the kept values: float64 cosines


def test_solve_csr_under_the_simulator(results):
    seed, out = results
    for N, backend, kind, err, converged, residual in out["csr"]:
        assert backend == "numba-cuda" and kind == "ndarray" and converged, (seed, N)
        assert err < 1e-10 and residual < 1e-11, (seed, N, err, residual)


def test_errors_under_the_simulator(results):
    seed, out = results
    assert "video #1, snippet 0 (row 2) has an all-zero" in out["errors"][0], out["errors"]
    assert "W[0, 1] = 1.0 (entry 0): but W[1, 0] = 2.0: W must be symmetric" in out["errors"][1], out["errors"]
