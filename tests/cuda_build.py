"""Build ``kernels/cuda/*.cu`` with nvcc into host shared libraries and drive their extern "C" host
twins through ctypes, laid out exactly as the cupy backend launches the kernels (same plans).

Outputs are poisoned with NaN (and -1 / sentinel values) before every call.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from lanp.kernels import GraphParams, SolverParams, pack_seeds
from lanp.kernels.codes import NO_BAD_ROW, cuda_options
from lanp.kernels.cuda import plan as cuda_plan

KERNEL_DIR = Path(__file__).resolve().parent.parent / "kernels" / "cuda"
CU_FILES = sorted(KERNEL_DIR.glob("*.cu"))
# the codes table as -D defines, as cupy's RawModule gets it (lanp.kernels.codes)
DEFINES = (f"-DLANP_BLOCK={cuda_plan.BLOCK}", *cuda_options())
NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists() else None)

_p = ctypes.c_void_p
_i64 = ctypes.c_longlong
_int = ctypes.c_int
_dbl = ctypes.c_double


def nvcc_run(args, cwd=None):
    return subprocess.run([NVCC, *args], capture_output=True, text=True, cwd=cwd)


# host flags that make gcc contract a * b + c into one FMA wherever it may, as nvcc and NVRTC do
# on the device (--fmad=true, their default): a host build with these shows what contraction
# does to the kernels' exactness properties without a GPU
CONTRACTING = ("-Xcompiler", "-O2,-mfma,-ffp-contract=fast")


def build_host_library(cu: Path, out_dir: Path, extra=(), name=None) -> ctypes.CDLL:
    lib = Path(out_dir) / ((name or cu.stem) + ".so")
    proc = nvcc_run(["-shared", "-Xcompiler", "-fPIC", "-arch=sm_90", *DEFINES, *extra, "-o", str(lib), str(cu)])
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed on {cu.name}:\n{proc.stderr}")
    return declare(ctypes.CDLL(str(lib)))


def declare(lib):
    sim = [_p, _i64, _p, _p, _p, _i64, _int, _int, _int, _dbl, _dbl, _p, _p, _p, _p, _p]
    fused = [_p, _i64, _p, _p, _i64, _int, _int, _int, _dbl, _dbl, _p, _p, _dbl, _dbl, _int,
             _p, _p, _p, _p, _p, _p]
    for name, args in (("lanp_similarity_f32_host", sim), ("lanp_similarity_f64_host", sim),
                       ("lanp_fused_f32_host", fused), ("lanp_fused_f64_host", fused),
                       ("lanp_solve_host", [_p, _p, _p, _p, _i64, _int, _p, _p, _dbl, _dbl, _int,
                                            _p, _p, _p, _p, _p, _p, _p]),
                       ("lanp_fused_doubles_host", [_i64, _int])):
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = _i64 if name == "lanp_fused_doubles_host" else None
    return lib


def ptr(a: np.ndarray):
    assert a.flags.c_contiguous
    return a.ctypes.data_as(ctypes.c_void_p)


def _suffix(x):
    return "f32" if x.dtype == np.float32 else "f64"


def host_similarity(lib, x, offsets, graph: GraphParams, rows_per_item=None):
    """S of every video through lanp_similarity_*_host. Returns (values, graph_offsets, bad_key)."""
    x = np.ascontiguousarray(x)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    plan = cuda_plan.similarity_plan(lengths, graph.band, rows_per_item)
    values = np.full(plan.values_shape, np.nan)
    norm_buf = np.full(plan.norm_size, np.nan)
    lse_buf = np.full(plan.lse_size, np.nan)
    halo_buf = np.full(plan.halo_size, np.nan)
    bad = np.full(lengths.shape[0], NO_BAD_ROW, dtype=np.int32)
    goff = plan.graph_offsets if plan.graph_offsets is not None else np.zeros(1, np.int64)
    getattr(lib, f"lanp_similarity_{_suffix(x)}_host")(
        ptr(x), x.shape[1], ptr(offsets), ptr(goff), ptr(plan.items), plan.items.shape[0],
        graph.band, graph.distance_code, int(graph.normalize), graph.inv_two_sigma2,
        graph.kernel_temporal_scale, ptr(values), ptr(norm_buf), ptr(lse_buf), ptr(halo_buf),
        ptr(bad))
    return values, plan.graph_offsets, bad


def _solver_outputs(N, V):
    return (np.full(N, np.nan), np.full(V, -1, dtype=np.int32), np.full(V, np.nan),
            np.full(V, 7, dtype=np.uint8))


def packed_seeds(solver: SolverParams, offsets, seeds=None):
    """(positions, seed_offsets) for the kernels: ``seeds`` (per video, or one list for all)
    when given, else solver.seeds."""
    positions, seed_offsets = pack_seeds(solver.seeds if seeds is None else seeds, np.diff(offsets))
    return np.ascontiguousarray(positions), np.ascontiguousarray(seed_offsets)


def host_solve(lib, values, offsets, graph_offsets, band, solver: SolverParams, seeds=None):
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    V, N = offsets.shape[0] - 1, int(offsets[-1])
    values = np.ascontiguousarray(values, dtype=np.float64)
    positions, seed_offsets = packed_seeds(solver, offsets, seeds)
    z, it, res, conv = _solver_outputs(N, V)
    scratch = [np.full(N, np.nan) for _ in range(3)]
    goff = graph_offsets if graph_offsets is not None else np.zeros(1, np.int64)
    videos = np.arange(V, dtype=np.int64)
    lib.lanp_solve_host(ptr(values), ptr(offsets), ptr(goff), ptr(videos), V, band, ptr(positions),
                        ptr(seed_offsets), solver.alpha, solver.tol, solver.maxiter, ptr(z),
                        *(ptr(s) for s in scratch), ptr(it), ptr(res), ptr(conv))
    return z, it, res, conv


def host_fused(lib, x, offsets, graph: GraphParams, solver: SolverParams, videos=None, seeds=None):
    """Fused similarity + CG through lanp_fused_*_host for ``videos`` (default all).
    Returns (z, iterations, residual, converged, bad_key)."""
    x = np.ascontiguousarray(x)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    V, N = lengths.shape[0], int(offsets[-1])
    videos = np.arange(V, dtype=np.int64) if videos is None else np.asarray(videos, np.int64)
    positions, seed_offsets = packed_seeds(solver, offsets, seeds)
    scratch = np.full(int(cuda_plan.fused_doubles(lengths, graph.band).max()), np.nan)
    z, it, res, conv = _solver_outputs(N, V)
    bad = np.full(V, NO_BAD_ROW, dtype=np.int32)
    getattr(lib, f"lanp_fused_{_suffix(x)}_host")(
        ptr(x), x.shape[1], ptr(offsets), ptr(videos), videos.size, graph.band,
        graph.distance_code, int(graph.normalize), graph.inv_two_sigma2,
        graph.kernel_temporal_scale, ptr(positions), ptr(seed_offsets), solver.alpha, solver.tol,
        solver.maxiter, ptr(scratch), ptr(z), ptr(it), ptr(res), ptr(conv), ptr(bad))
    return z, it, res, conv.astype(bool), bad
