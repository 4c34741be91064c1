"""Backend ``cupy`` with the cross-video kernels: :class:`CupyBackend` is
:class:`lanp.kernels.cuda.cupy_backend.CupyBackend` plus ``anchor_neighbours`` and ``solve_csr``
on the cross-video section of ``lanp.cu`` (the registered 'cupy' backend; a subclass here, so that
cupy_backend.py stays the propagation backend it was).

* ``anchor_neighbours``: anchor norms and checks (``lanp_inverse_norms_*``), then per chunk of rows
  (the (rows x A) block within a quarter of the memory budget) the row norms, one cuBLAS matmul
  against the unit anchors in the compute dtype, and ``lanp_topk_*`` (top-k of a row, then the kept
  similarities again in double), a thread per row.
* ``solve_csr``: ``lanp_csr_check`` (structure, then symmetry; a key per row, the smallest
  reported), ``lanp_csr_degrees``, and :func:`lanp.kernels.cuda.csr_cg.conjugate_gradient` with
  ``lanp_csr_apply`` (a thread per row) as its matvec.

Arrays come back in the kind they came in (numpy, cupy, torch CUDA).
"""
from __future__ import annotations

import numpy as np

from ..codes import NO_BAD_ENTRY, STATUS_OK
from ..contract import poisoned_neighbours, raise_for_anchor, raise_for_csr_key, raise_for_row
from ..results import CsrSolution, Neighbours
from . import cupy_backend, devices
from . import plan as cuda_plan
from .csr_cg import ArrayOps, conjugate_gradient

MAX_BLOCKS = 8192                  # grid-stride loops: enough blocks to fill any current device


def launch(name: str, n: int, *args) -> None:
    """Kernel ``name`` of lanp.cu over n rows (a thread per row, grid-stride, LANP_BLOCK threads
    per block) on the current device."""
    blocks = max(1, min(MAX_BLOCKS, -(-int(n) // cuda_plan.BLOCK)))
    cupy_backend.kernel(name, cupy_backend._device())((blocks,), (cuda_plan.BLOCK,), args)


def chunk_rows(A: int, itemsize: int, N: int, budget: int) -> int:
    """Rows per matmul: the (rows x A) block within budget / 4 bytes, at least 64 rows."""
    return int(max(64, min(N, (budget // 4) // max(1, A * itemsize))))


def _first_bad(status) -> int:
    """Index of the first nonzero status, -1 if none."""
    bad = status != STATUS_OK
    return int(bad.argmax()) if bool(bad.any()) else -1


class CupyBackend(cupy_backend.CupyBackend):
    """The 'cupy' backend: lanp.cu's propagation kernels (the parent class) and its cross-video section."""

    def anchor_neighbours(self, features, offsets, anchors, anchor_video, k, first_video, dt, video_ids, where):
        import cupy
        kind = cupy_backend._kind(features)
        suffix = cupy_backend._suffix(dt)
        dtype_max = np.float64(np.finfo(dt).max)
        with cupy_backend._on_device_of(features):
            x = cupy_backend._to_cupy(features)
            a = cupy_backend._to_cupy(anchors, dt)
            N, D = int(x.shape[0]), int(x.shape[1])
            A = int(a.shape[0])
            inv_a = cupy.empty(A)
            status_a = cupy.empty(A, dtype=np.int8)
            if A:
                launch(f"lanp_inverse_norms_{suffix}", A, a, np.int64(A), np.int64(D), dtype_max, inv_a, status_a)
                bad = _first_bad(status_a)
                if bad >= 0:
                    raise_for_anchor(bad, int(status_a[bad:bad + 1].get()[0]), anchor_video, where)
            unit64 = cupy.ascontiguousarray(cupy.asarray(a, dtype=np.float64) * inv_a[:, None])
            unit = cupy.ascontiguousarray(unit64, dtype=dt)
            videos = cupy.asarray(anchor_video, dtype=np.int64)
            row_video = cupy.asarray(np.repeat(np.arange(offsets.shape[0] - 1, dtype=np.int64) + first_video,
                                               np.diff(offsets)))
            index, similarity = poisoned_neighbours(N, k, cupy)
            chunk = chunk_rows(A, np.dtype(dt).itemsize, N, devices.cupy_budget())
            sims = cupy.empty((chunk, A), dtype=dt)
            inv = cupy.empty(chunk)
            status = cupy.empty(chunk, dtype=np.int8)
            for lo in range(0, N, chunk):
                hi = min(N, lo + chunk)
                R = hi - lo
                xc = cupy.ascontiguousarray(x[lo:hi], dtype=dt)
                launch(f"lanp_inverse_norms_{suffix}", R, xc, np.int64(R), np.int64(D), dtype_max, inv, status)
                bad = _first_bad(status[:R])
                if bad >= 0:
                    raise_for_row(lo + bad, int(status[bad:bad + 1].get()[0]), offsets, video_ids, where)
                cupy.matmul(xc, unit.T, out=sims[:R])
                launch(f"lanp_topk_{suffix}", R, sims, xc, np.int64(R), np.int64(A), np.int64(D), inv,
                       row_video[lo:hi], videos, unit64, np.int32(k), index[lo:hi], similarity[lo:hi])
            return Neighbours(cupy_backend._out(index, kind), cupy_backend._out(similarity, kind), self.name)

    def solve_csr(self, indptr, indices, data, y, solver, where):
        import cupy
        kind = cupy_backend._kind(y)
        with cupy_backend._on_device_of(data):
            ip = cupy_backend._to_cupy(indptr, np.int64)
            ix = cupy_backend._to_cupy(indices, np.int64)
            w = cupy_backend._to_cupy(data, np.float64)
            yd = cupy_backend._to_cupy(y, np.float64)
            N = int(yd.shape[0])
            keys = cupy.empty(max(N, 1), dtype=np.int64)
            for symmetry in (0, 1):                 # structure first: the symmetry test needs sorted rows
                keys[:] = NO_BAD_ENTRY
                launch("lanp_csr_check", N, ip, ix, w, np.int64(N), np.int32(symmetry), keys)
                key = int(keys.min())
                if key != NO_BAD_ENTRY:
                    raise_for_csr_key(key, ip, ix, w, where)
            dinv = cupy.empty(N)
            launch("lanp_csr_degrees", N, ip, w, np.int64(N), dinv)
            alpha = np.float64(solver.alpha)

            def apply(p, u, q):
                launch("lanp_csr_apply", N, ip, ix, w, dinv, alpha, p, u, q, np.int64(N))

            z, it, residual, converged = conjugate_gradient(ArrayOps(cupy), apply, dinv, yd, solver.alpha, solver.tol,
                                                            solver.maxiter)
            return CsrSolution(cupy_backend._out(z, kind), int(it), float(residual), bool(converged), self.name)
