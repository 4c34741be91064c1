"""Result types of the kernels (the bottom of the import graph: every backend imports these)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Propagation:
    """Result of normality propagation over V videos with N snippets in all.

    z:          (N,) normal magnitudes, z = (I - alpha S)^-1 y per video (compute dtype).
    iterations: (V,) int32 CG iterations per video.
    residual:   (V,) float64 true relative residual ||y - (I - alpha S) z|| / ||y||.
    converged:  (V,) bool, the stopping test ||r_k|| <= tol ||y|| was met.
    backend:    name of the backend that ran.
    """

    z: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray
    converged: np.ndarray
    backend: str


@dataclass
class Graph:
    """Normalised similarity S of every video.

    window None: ``values`` flat float64; video v's (L, L) matrix is
        values[graph_offsets[v]:graph_offsets[v+1]].reshape(L, L).
    window k:    ``values`` (N, 2k+1); row i of a video holds S_ij at column j - i + k, zero
        outside the video.
    """

    values: np.ndarray
    offsets: np.ndarray
    graph_offsets: Optional[np.ndarray]
    window: Optional[int]

    def dense(self, v: int) -> np.ndarray:
        """Video v's S as an (L, L) float64 matrix."""
        a, b = int(self.offsets[v]), int(self.offsets[v + 1])
        L = b - a
        if self.window is None:
            g0 = int(self.graph_offsets[v])
            return np.array(self.values[g0:g0 + L * L], dtype=np.float64).reshape(L, L)
        k = self.window
        out = np.zeros((L, L))
        band = np.asarray(self.values[a:b], dtype=np.float64)
        for i in range(L):
            for c in range(2 * k + 1):
                j = i + c - k
                if 0 <= j < L:
                    out[i, j] = band[i, c]
        return out


@dataclass
class Neighbours:
    """Result of :func:`lanp.kernels.anchor_neighbours`: for every snippet row i, its k most
    cosine-similar anchors from other videos, most similar first (ties: lower anchor index).

    index:      (N, k) int64 rows of ``anchors``; -1 where fewer than k anchors are eligible.
    similarity: (N, k) float64 cosine of the L2-normalised row and anchor; -inf where index = -1.
    backend:    name of the backend that ran.
    """

    index: np.ndarray
    similarity: np.ndarray
    backend: str


@dataclass
class CsrSolution:
    """Result of :func:`lanp.kernels.solve_csr`: CG for (I - alpha S) z = y on one sparse graph.

    z:          (N,) float64.
    iterations: CG iterations run.
    residual:   true relative residual ||y - (I - alpha S) z|| / ||y||, recomputed after the loop
                (0 for y = 0).
    converged:  the stopping test ||r_k|| <= tol ||y|| was met.
    backend:    name of the backend that ran.
    """

    z: np.ndarray
    iterations: int
    residual: float
    converged: bool
    backend: str
