"""CPU twins of the propagation kernels (numba, parallel over videos); cuda/ holds the GPU twins.

Packed ragged input: features x (N, D) float32/float64 and offsets (V+1,) int64; video v owns rows
offsets[v]:offsets[v+1]. Per video of length L:

    a_ij  = log Wf_ij - |i - j| / s               (log affinity; a_ii = -inf)
    S_ij  = W_ij / sqrt(d_i d_j), W_ij = exp(a_ij - m), m = max a   (dense, a within 700 of m)
    S_ij  = exp(a_ij - (lse_i + lse_j) / 2), lse_i = logsumexp_j a_ij  (otherwise: exact where
                                                  W underflows)
    (I - alpha S) z = y  by conjugate gradient, y = 1 at the seeds.

Squared distances accumulate in the feature dtype across SIMD lanes (float32 products in float32
lanes): dense graphs as a Gram matrix of the mean-centred rows, banded graphs by direct
differences; logs, S and CG are float64. A dense graph is stored as an (L, L) float64 scratch
matrix, a banded one (half-width k) as (L, 2k+1) with column c <-> j = i + c - k. At most one such
matrix per thread exists at a time.

Modules (one job each): simd (explicit vector intrinsics, exps), tiles (Gram tiles), distances
(norms, squared distances, log affinities), normalise (D^-1/2 W D^-1/2), graph (one video's S),
cg (one video's CG), packed (the batch drivers), schedule (videos over threads), weights (the
loss-weight distances), official (the public code's propagation), backend (the ``cpu`` backend),
cache_guard (numba's disk cache kept in step with these sources).
"""
from . import cache_guard
from .distances import squared_norms

# numba's cache does not notice edits to a file a kernel inlines from (simd.py, tiles.py, ...):
# drop lanp's cached kernels once whenever their sources change together (before any is loaded)
cache_guard.ensure_fresh(squared_norms)
