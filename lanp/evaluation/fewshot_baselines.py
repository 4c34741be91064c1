"""Few-shot baselines (issue 16, deliverable 5): what a handful of human labels buys WITHOUT
normality propagation, on the same label draws as few-shot lanp.

Each baseline is a pure function of arrays: training snippet features ``train_x`` (N, D), their
``train_offsets`` (V+1,) and ``train_ids`` (V,), the human labels ``human`` (a
:class:`lanp.data.human_labels.HumanLabels`, or any object with ``kinds`` {video id:
"normal_video" | "abnormal_video"} and ``spans`` {video id: ((start, end), ...)} in snippets, end
exclusive) and test snippet features ``test_x`` (M, D); each returns test snippet scores (M,)
float32, higher = more anomalous. Only the labelled training videos are used; the unlabelled ones
and the test labels are never looked at. Deterministic given ``seed`` (torch's global generator is
left as it was); torch's thread count is the caller's business.

Notation: A = labelled abnormal videos, B = labelled normal videos, P = positive snippets (the
spans of the abnormal videos; an abnormal video without spans -- a video-level label -- counts
whole in P: span_classifier then learns abnormal VIDEOS vs normal ones), Q = all snippets of the
normal videos.

- :func:`mil_sultani` -- Sultani, Chen & Shah (CVPR 2018) on snippet features. A bag per labelled
  video; each epoch samples one snippet in each of its 32 equal segments (local index
  floor((i + u_i) L / 32), u_i ~ U[0, 1)). Network f: Linear(D, 512), ReLU, Dropout 0.6,
  Linear(512, 32), Dropout 0.6, Linear(32, 1), sigmoid, on features standardised with the mean and
  std of the labelled videos' snippets. Loss of a mini-batch (up to 30 abnormal and 30 normal bags)
  with m_v = max_i f(x_v,i):
      mean over (a, b) in A_batch x B_batch of max(0, 1 - m_a + m_b)
      + lambda1 * mean over a in A_batch of sum_{i<31} (f(x_a,i) - f(x_a,i+1))^2      (smoothness)
      + lambda2 * mean over a in A_batch of sum_i f(x_a,i)                           (sparsity)
      + decay * sum of the squared entries of the three weight matrices              (the ||W|| term)
  lambda1 = lambda2 = 8e-5, decay = 1e-3, Adagrad(lr). An epoch is ceil(max(|A|, |B|) / 30)
  mini-batches (the shorter list cycles). Spans are not used (MIL needs video labels only).
  Test score: f(x) of each test snippet.
- :func:`span_classifier` -- logistic regression (scikit-learn, L-BFGS, C = 1, balanced class
  weights) on P (label 1) vs Q (label 0), features standardised with the mean and std of P and Q.
  Test score: P(abnormal | x) = sigmoid(w . x_std + b).
- :func:`nearest_prototype` -- one prototype per labelled video, on features standardised with the
  mean and std of the labelled videos' snippets (x~): p_b = mean of x~ over the snippets of b in B;
  p_a = mean of x~ over the spans of a in A, or, for an abnormal video without spans (a video-level
  label), its one snippet farthest from every normal prototype, x~_a,t with t = argmax_t min_b
  ||x~_a,t - p_b|| (MIL's max-instance assumption: the mean of a whole abnormal video is mostly
  normal). Test score: min_b ||x~ - p_b|| - min_a ||x~ - p_a|| (Euclidean distance to the nearest
  normal prototype minus distance to the nearest abnormal one; a raw difference, no softmax).

Every baseline refuses (InputError) labels with no abnormal or no normal video, an id not among
``train_ids``, a span outside its video, and features of the wrong shape.
"""
from __future__ import annotations

import math

import numpy as np

from lanp.kernels import InputError

SEGMENTS = 32              # Sultani's bag size: 32 temporal segments per video
BAG_BATCH = 30             # Sultani's mini-batch: 30 abnormal + 30 normal bags
LAMBDA_SMOOTH = 8e-5       # lambda1
LAMBDA_SPARSE = 8e-5       # lambda2
WEIGHT_DECAY = 1e-3        # the ||W|| term (squared Frobenius norm of the weight matrices)
DROPOUT = 0.6


# -- the labelled videos ---------------------------------------------------------------------------

def _labelled(name: str, train_x, train_offsets, train_ids, human, test_x):
    """(rows (N, D) float64, offsets, abnormal video indices, normal video indices, positive
    snippet mask (N,) bool, test rows (M, D) float64) after checking every input."""
    x, t = np.asarray(train_x), np.asarray(test_x)
    offsets = np.asarray(train_offsets, dtype=np.int64)
    source = getattr(human, "source", "human labels")
    if x.ndim != 2 or t.ndim != 2 or x.shape[1] != t.shape[1]:
        raise InputError(f"{name}: train_x {x.shape} and test_x {t.shape} must be (N, D) and (M, D) with the same D")
    ids = list(train_ids)
    if offsets.shape != (len(ids) + 1,) or offsets[0] != 0 or offsets[-1] != x.shape[0] or np.any(np.diff(offsets) < 1):
        raise InputError(f"{name}: train_offsets {offsets.shape} do not describe {len(ids)} non-empty videos "
                         f"over {x.shape[0]} snippets")
    kinds = dict(getattr(human, "kinds", None) or {})
    spans = dict(getattr(human, "spans", None) or {})
    index = {vid: v for v, vid in enumerate(ids)}
    abnormal, normal = [], []
    positive = np.zeros(x.shape[0], dtype=bool)
    for vid, kind in kinds.items():
        if vid not in index:
            raise InputError(f"{name}: {source}: video {vid!r} is not among the {len(ids)} training videos")
        v = index[vid]
        a, b = int(offsets[v]), int(offsets[v + 1])
        if kind == "normal_video":
            normal.append(v)
            if spans.get(vid):
                raise InputError(f"{name}: {source}: video {vid!r} is labelled normal_video but has spans")
        elif kind == "abnormal_video":
            abnormal.append(v)
            runs = spans.get(vid) or ((0, b - a),)          # video-level label: the whole video
            for s, e in runs:
                if not 0 <= int(s) < int(e) <= b - a:
                    raise InputError(f"{name}: {source}: video {vid!r}: span [{s}, {e}) lies outside its "
                                     f"{b - a} snippets (it must satisfy 0 <= start < end <= {b - a})")
                positive[a + int(s):a + int(e)] = True
        else:
            raise InputError(f"{name}: {source}: video {vid!r} has kind {kind!r}: choose normal_video or "
                             f"abnormal_video")
    if not abnormal or not normal:
        raise InputError(f"{name} needs at least one labelled abnormal and one labelled normal video; "
                         f"{source} holds {len(abnormal)} abnormal and {len(normal)} normal")
    rows, test_rows = x.astype(np.float64), t.astype(np.float64)
    for what, r in (("train_x", rows), ("test_x", test_rows)):
        if not np.all(np.isfinite(r)):
            raise InputError(f"{name}: {what} holds NaN or Inf at row {int(np.flatnonzero(~np.isfinite(r).all(1))[0])}")
    return rows, offsets, sorted(abnormal), sorted(normal), positive, test_rows


def _standardiser(rows: np.ndarray):
    """(mean (D,), std (D,)) of ``rows``; a constant column gets std 1 (it stays constant)."""
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    return mean, np.where(std > 1e-12 * max(1.0, float(np.abs(mean).max(initial=0.0))), std, 1.0)


def _check_training(epochs, lr):
    if isinstance(epochs, bool) or int(epochs) != epochs or not 1 <= epochs <= 10 ** 6:
        raise InputError(f"epochs={epochs!r} is invalid: it must be an integer in [1, 10**6]")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InputError(f"lr={lr!r} is invalid: it must be a finite number > 0")


# -- MIL (Sultani et al. 2018) ---------------------------------------------------------------------

def mil_sultani(train_x, train_offsets, train_ids, human, test_x, *, seed: int = 0, epochs: int = 100,
                lr: float = 1e-3, device: str = "cpu") -> np.ndarray:
    """(M,) float32 test snippet scores of a Sultani-style MIL ranking network trained on the
    labelled videos only (formula in the module docstring)."""
    import torch
    from torch import nn

    _check_training(epochs, lr)
    rows, offsets, abnormal, normal, _, test_rows = _labelled("mil_sultani", train_x, train_offsets, train_ids,
                                                              human, test_x)
    bags = np.array(abnormal + normal)
    lengths = np.diff(offsets)[bags]
    used = np.concatenate([np.arange(offsets[v], offsets[v + 1]) for v in bags])
    mean, std = _standardiser(rows[used])
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(rows.shape[1], 512), nn.ReLU(), nn.Dropout(DROPOUT),
                            nn.Linear(512, 32), nn.Dropout(DROPOUT), nn.Linear(32, 1), nn.Sigmoid()).to(device)
        weights = [m.weight for m in net if isinstance(m, nn.Linear)]
        opt = torch.optim.Adagrad(net.parameters(), lr=lr)
        n_a, n_b = len(abnormal), len(normal)
        steps = math.ceil(max(n_a, n_b) / BAG_BATCH)
        for _ in range(int(epochs)):
            # one random snippet in each of the 32 segments of every bag
            u = rng.random((len(bags), SEGMENTS))
            local = np.minimum(np.floor((np.arange(SEGMENTS) + u) * lengths[:, None] / SEGMENTS).astype(np.int64),
                               lengths[:, None] - 1)
            x = torch.from_numpy(((rows[offsets[bags][:, None] + local] - mean) / std).astype(np.float32)).to(device)
            order_a, order_b = rng.permutation(n_a), n_a + rng.permutation(n_b)
            net.train()
            for k in range(steps):
                pick_a = order_a[np.arange(k * BAG_BATCH, (k + 1) * BAG_BATCH) % n_a][:min(n_a, BAG_BATCH)]
                pick_b = order_b[np.arange(k * BAG_BATCH, (k + 1) * BAG_BATCH) % n_b][:min(n_b, BAG_BATCH)]
                s_a = net(x[torch.from_numpy(pick_a)]).squeeze(-1)          # (|A_batch|, 32)
                s_b = net(x[torch.from_numpy(pick_b)]).squeeze(-1)          # (|B_batch|, 32)
                loss = mil_loss(s_a, s_b) + WEIGHT_DECAY * sum((w ** 2).sum() for w in weights)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        net.eval()
        out = np.empty(test_rows.shape[0], np.float32)
        with torch.no_grad():
            for a in range(0, test_rows.shape[0], 1 << 16):
                chunk = ((test_rows[a:a + (1 << 16)] - mean) / std).astype(np.float32)
                out[a:a + chunk.shape[0]] = net(torch.from_numpy(chunk).to(device)).squeeze(-1).cpu().numpy()
    return out


def mil_loss(s_abnormal, s_normal, lambda_smooth: float = LAMBDA_SMOOTH, lambda_sparse: float = LAMBDA_SPARSE):
    """Sultani's bag loss without the weight term: s_abnormal (A, T), s_normal (B, T) instance scores;
    mean over (a, b) of max(0, 1 - max_i s_a,i + max_i s_b,i) + lambda_smooth * mean_a sum_i
    (s_a,i - s_a,i+1)^2 + lambda_sparse * mean_a sum_i s_a,i."""
    import torch

    m_a, m_b = s_abnormal.max(dim=1).values, s_normal.max(dim=1).values
    hinge = torch.relu(1.0 - m_a[:, None] + m_b[None, :]).mean()
    smooth = ((s_abnormal[:, 1:] - s_abnormal[:, :-1]) ** 2).sum(dim=1).mean()
    sparse = s_abnormal.sum(dim=1).mean()
    return hinge + lambda_smooth * smooth + lambda_sparse * sparse


# -- snippet classifier on the labelled spans -----------------------------------------------------

def span_classifier(train_x, train_offsets, train_ids, human, test_x, *, seed: int = 0, epochs=None,
                    lr=None, C: float = 1.0) -> np.ndarray:
    """(M,) float32 test P(abnormal | x) of a balanced logistic regression on the labelled positive
    snippets P vs the labelled normal videos' snippets Q (formula in the module docstring).
    ``epochs`` and ``lr`` are accepted so the three baselines share one call and are unused
    (L-BFGS runs to convergence, at most 1000 iterations)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
        raise InputError(f"C={C!r} is invalid: it must be a finite number > 0")
    rows, offsets, _, normal, positive, test_rows = _labelled("span_classifier", train_x, train_offsets,
                                                              train_ids, human, test_x)
    negative = np.zeros(rows.shape[0], dtype=bool)
    for v in normal:
        negative[offsets[v]:offsets[v + 1]] = True
    fit_rows = np.concatenate([rows[positive], rows[negative]])
    target = np.concatenate([np.ones(int(positive.sum())), np.zeros(int(negative.sum()))])
    mean, std = _standardiser(fit_rows)
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=1000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit((fit_rows - mean) / std, target)
    return model.predict_proba((test_rows - mean) / std)[:, 1].astype(np.float32)


# -- nearest prototype ----------------------------------------------------------------------------

def _nearest(rows: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """(M,) Euclidean distance of each row to its nearest prototype (float64)."""
    out = np.empty(rows.shape[0])
    p2 = (prototypes ** 2).sum(axis=1)
    for a in range(0, rows.shape[0], 1 << 14):
        r = rows[a:a + (1 << 14)]
        d2 = (r ** 2).sum(axis=1)[:, None] - 2.0 * r @ prototypes.T + p2[None, :]
        out[a:a + r.shape[0]] = np.sqrt(np.maximum(d2, 0.0).min(axis=1))
    return out


def nearest_prototype(train_x, train_offsets, train_ids, human, test_x, *, seed: int = 0, epochs=None,
                      lr=None) -> np.ndarray:
    """(M,) float32 test scores min_b ||x^ - p_b|| - min_a ||x^ - p_a|| (formula in the module
    docstring). Nothing is trained: ``seed``, ``epochs`` and ``lr`` are accepted so the three
    baselines share one call, and unused."""
    rows, offsets, abnormal, normal, positive, test_rows = _labelled("nearest_prototype", train_x, train_offsets,
                                                                     train_ids, human, test_x)
    used = np.concatenate([np.arange(offsets[v], offsets[v + 1]) for v in abnormal + normal])
    mean, std = _standardiser(rows[used])
    z = (rows - mean) / std
    proto_b = np.stack([z[offsets[v]:offsets[v + 1]].mean(axis=0) for v in normal])
    spans = dict(getattr(human, "spans", None) or {})
    ids = list(train_ids)
    proto_a = []
    for v in abnormal:
        video = z[offsets[v]:offsets[v + 1]]
        if spans.get(ids[v]):
            proto_a.append(video[positive[offsets[v]:offsets[v + 1]]].mean(axis=0))
        else:                                  # video-level label: its most normal-unlike snippet
            proto_a.append(video[int(np.argmax(_nearest(video, proto_b)))])
    proto_a = np.stack(proto_a)
    t = (test_rows - mean) / std
    return (_nearest(t, proto_b) - _nearest(t, proto_a)).astype(np.float32)
