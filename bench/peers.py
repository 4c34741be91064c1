"""The peers lanp is timed against (written for this benchmark; no code copied from elsewhere).

(a) textbook_cg:      per video, in a Python loop: numpy dense W and S, scipy.sparse.linalg.cg.
(b) fixed_point:      the paper's iteration z <- alpha S z + (1 - alpha) y on the same dense S, per
                      video, to the same relative residual; its z is (1 - alpha) x lanp's.
(c) official_ucf:     the method's public code as it computes (the official-ucf rules of issue 6),
                      run the way that code runs them: a Python loop over snippets, numpy distances,
                      a per-element math.exp through np.vectorize, a scipy sparse W, scipy cg capped
                      at 10 iterations. It computes something else than lanp by design (RMS distance
                      on raw features, a sliding window, W = A + A^T, four seeds, 10 CG steps,
                      clipping), so it is checked against official_ucf_dense below instead of lanp.
official_ucf_dense:   a small independent implementation of the same rules (dense masks, a
                      hand-written CG) used only to check (c).
(d) GPU peers live in bench/gpu_bench.py.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import cg


# ---------------------------------------------------------------- (a) and (b): the paper, textbook

def textbook_similarity(xv: np.ndarray, sigma: float = 0.1, normalize: bool = True,
                        window=None) -> np.ndarray:
    """Dense S = D^-1/2 W D^-1/2 of one video, the textbook way (float64 after the Gram)."""
    L = xv.shape[0]
    if normalize:
        xv = xv / np.linalg.norm(xv, axis=1, keepdims=True)
    g = (xv @ xv.T).astype(np.float64)
    sq = np.diag(g).copy()
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * g, 0.0)
    t = np.arange(L)
    dt = np.abs(t[:, None] - t[None, :])
    W = np.exp(-d2 / (2.0 * sigma ** 2)) * np.exp(-dt / L)
    np.fill_diagonal(W, 0.0)
    if window is not None:
        W[dt > window] = 0.0
    deg = W.sum(axis=1)
    deg[deg == 0] = 1.0
    inv = 1.0 / np.sqrt(deg)
    return W * inv[:, None] * inv[None, :]


def seed_vector(L: int, seeds=(0, -1)) -> np.ndarray:
    y = np.zeros(L)
    for s in seeds:
        y[s] = 1.0
    return y


def textbook_cg(x, offsets, alpha=0.99, sigma=0.1, seeds=(0, -1), tol=1e-6, maxiter=1000,
                window=None) -> np.ndarray:
    """Peer (a): z per video with scipy cg on the dense I - alpha S."""
    z = np.empty(x.shape[0])
    for a, b in zip(offsets[:-1], offsets[1:]):
        S = textbook_similarity(x[a:b], sigma, window=window)
        A = np.eye(b - a) - alpha * S
        z[a:b], info = cg(A, seed_vector(b - a, seeds), rtol=tol, atol=0.0, maxiter=maxiter)
        if info:
            raise RuntimeError(f"textbook cg did not converge on video at row {a}")
    return z


def fixed_point(x, offsets, alpha=0.99, sigma=0.1, seeds=(0, -1), tol=1e-6, maxiter=100_000,
                window=None):
    """Peer (b): z <- alpha S z + (1 - alpha) y from z = 0 until ||z_new - z|| <= tol ||(1-alpha) y||.

    z_new - z is exactly the residual of (I - alpha S) z = (1 - alpha) y, so this is the same
    relative-residual test lanp's CG uses. Returns (z, iterations per video).
    """
    z = np.empty(x.shape[0])
    its = np.empty(len(offsets) - 1, dtype=np.int64)
    for v, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        S = textbook_similarity(x[a:b], sigma, window=window)
        c = (1.0 - alpha) * seed_vector(b - a, seeds)
        bound = tol * np.linalg.norm(c)
        zv = np.zeros(b - a)
        for it in range(1, maxiter + 1):
            new = alpha * (S @ zv) + c
            done = np.linalg.norm(new - zv) <= bound
            zv = new
            if done:
                break
        z[a:b] = zv
        its[v] = it
    return z, its


# ---------------------------------------------------------------- (c): the public code's rules

OFFICIAL_SIGMA = 0.1
OFFICIAL_ALPHA = 0.99
OFFICIAL_MAXITER = 10


def official_window(T: int):
    """(k, m): k = min(50, T-1), m = min(2k, T)."""
    k = min(50, T - 1)
    return k, min(2 * k, T)


def official_seeds(T: int) -> np.ndarray:
    return np.unique(np.array([0, 1, T - 2, T - 1]) % T)


_vexp = np.vectorize(math.exp)


def official_ucf_video(xv: np.ndarray, sigma=OFFICIAL_SIGMA, alpha=OFFICIAL_ALPHA) -> np.ndarray:
    """Peer (c) on one video of T snippets, row by row."""
    T, D = xv.shape
    k, m = official_window(T)
    rows, cols, vals = [], [], []
    for i in range(T):
        if m == 0:
            break
        start = min(max(i - m // 2, 0), T - m)
        js = np.arange(start, start + m)
        diff = xv[js] - xv[i]
        dist = np.sqrt(np.sum(diff * diff, axis=1) / D)
        w = _vexp(-dist / (2.0 * sigma ** 2)) * _vexp(-np.abs(js - i) / m)
        w[js == i] = 0.0
        rows.append(np.full(m, i))
        cols.append(js)
        vals.append(w)
    if rows:
        A = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(T, T)).tocsr()
    else:
        A = sp.csr_matrix((T, T))
    W = (A + A.T).tolil()
    W.setdiag(0.0)
    W = W.tocsr()
    d = np.asarray(W.sum(axis=1)).ravel()
    d[d == 0] = 1.0
    Dh = sp.diags(1.0 / np.sqrt(d))
    S = Dh @ W @ Dh
    M = sp.identity(T, format="csr") - alpha * S
    y = np.zeros(T)
    seeds = official_seeds(T)
    y[seeds] = 1.0
    z, _ = cg(M, y, x0=np.zeros(T), rtol=1e-6, atol=0.0, maxiter=OFFICIAL_MAXITER)
    z[z < 0] = 0.0
    z[seeds] = z.max()
    return z


def official_ucf(x, offsets) -> np.ndarray:
    """Peer (c) over a packed batch (a Python loop over videos, then over snippets)."""
    return np.concatenate([official_ucf_video(x[a:b]) for a, b in zip(offsets[:-1], offsets[1:])])


def official_ucf_dense(xv: np.ndarray, sigma=OFFICIAL_SIGMA, alpha=OFFICIAL_ALPHA) -> np.ndarray:
    """Independent check of (c): the same rules with dense masks and a hand-written CG."""
    xv = np.asarray(xv, dtype=np.float64)
    T, D = xv.shape
    k, m = official_window(T)
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    start = np.clip(i - m // 2, 0, max(T - m, 0))
    inside = (j >= start) & (j < start + m) & (j != i)
    d2 = ((xv[:, None, :] - xv[None, :, :]) ** 2).sum(-1)
    with np.errstate(divide="ignore"):
        a = np.exp(-np.sqrt(d2 / D) / (2 * sigma ** 2) - np.abs(i - j) / max(m, 1))
    A = np.where(inside, a, 0.0)
    W = A + A.T
    np.fill_diagonal(W, 0.0)
    d = W.sum(1)
    d[d == 0] = 1.0
    S = W / np.sqrt(np.outer(d, d))
    M = np.eye(T) - alpha * S
    y = np.zeros(T)
    y[official_seeds(T)] = 1.0
    z = np.zeros(T)
    r = y.copy()
    p = r.copy()
    rr = r @ r
    for _ in range(OFFICIAL_MAXITER):
        if math.sqrt(rr) < 1e-6 * np.linalg.norm(y):
            break
        q = M @ p
        step = rr / (p @ q)
        z += step * p
        r -= step * q
        rr, rr_old = r @ r, rr
        p = r + (rr / rr_old) * p
    z[z < 0] = 0.0
    z[official_seeds(T)] = z.max()
    return z


def relative_error(approx, exact) -> float:
    approx = np.asarray(approx, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    return float(np.linalg.norm(approx - exact) / np.linalg.norm(exact))
