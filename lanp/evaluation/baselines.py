"""Baselines from the UVAD field, re-implemented on snippet features (packed ``x (N, D)``, ``offsets``).

These are lanp's own feature-level versions of the ideas, for side-by-side comparison with the same
features and budget (``lanp compare``); they are not the authors' code and not frame-level models.

- LBR-SPR style (Yu et al., CVPR 2022, "normality advantage" + self-paced refinement), FEATURE-LEVEL:
  an MLP autoencoder reconstructs every unlabeled training snippet (standardised features); after a
  warm-up the snippets with the largest reconstruction loss are progressively dropped from training
  (the dropped share grows linearly to ``drop_fraction``); a snippet's anomaly score is its
  reconstruction error. The snippets dropped at the end are its pseudo-abnormal snippets.
- C2FPL style (Al-Lahham et al., WACV 2024, coarse-to-fine pseudo-labels): coarse, a 2-component
  Gaussian mixture (scikit-learn) over per-video statistics of snippet feature norms (mean, std)
  picks the abnormal videos (the component with the larger mean std); fine, inside each abnormal
  video the contiguous window of ceil(window_fraction * L) snippets with the largest summed
  deviation from a diagonal Gaussian fitted to the snippets of the normal videos is pseudo-abnormal.
  The detector is then trained on these labels (all weights 1), like LANP.
- trivial: the distance of each snippet to the mean of its video's first and last snippets (the
  normality prior used directly, no learning); an isolation forest over all training snippets
  (scikit-learn), scoring each test snippet.
"""
from __future__ import annotations

import math

import numpy as np


def _rows(x, normalize: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True) if normalize else x


# -- trivial ---------------------------------------------------------------------------------------

def ends_distance(x: np.ndarray, offsets: np.ndarray, normalize: bool = True) -> np.ndarray:
    """(N,) Euclidean distance of each snippet to the mean of its video's first and last snippets
    (on L2-normalised rows unless ``normalize=False``). Higher = more anomalous."""
    rows = _rows(x, normalize)
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    ends = 0.5 * (rows[offsets[:-1]] + rows[offsets[1:] - 1])
    return np.linalg.norm(rows - np.repeat(ends, lengths, axis=0), axis=1)


def isolation_forest(train_x: np.ndarray, test_x: np.ndarray, seed: int = 0, n_estimators: int = 100):
    """(train scores (N_train,), test scores (N_test,)) of an isolation forest fitted on all training
    snippets; score = -score_samples (higher = more anomalous)."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=n_estimators, random_state=seed).fit(np.asarray(train_x, np.float32))
    return -forest.score_samples(np.asarray(train_x, np.float32)), -forest.score_samples(np.asarray(test_x, np.float32))


# -- C2FPL style -----------------------------------------------------------------------------------

def c2fpl_labels(x: np.ndarray, offsets: np.ndarray, window_fraction: float = 0.15, seed: int = 0):
    """(pseudo_label (N,) uint8, video_abnormal (V,) bool) by the coarse-to-fine rule above."""
    from sklearn.mixture import GaussianMixture

    if not 0.0 < window_fraction <= 1.0:
        raise ValueError(f"window_fraction={window_fraction!r} is invalid: it must be in (0, 1]")
    x = np.asarray(x, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    V = lengths.shape[0]
    norms = np.linalg.norm(x, axis=1)
    mean = np.add.reduceat(norms, offsets[:-1]) / lengths
    std = np.sqrt(np.maximum(np.add.reduceat(norms ** 2, offsets[:-1]) / lengths - mean ** 2, 0.0))
    stats = np.stack([mean, std], axis=1)
    stats = (stats - stats.mean(axis=0)) / np.where(stats.std(axis=0) > 0, stats.std(axis=0), 1.0)
    abnormal = np.zeros(V, dtype=bool)
    if V >= 2:
        gmm = GaussianMixture(n_components=2, random_state=seed).fit(stats)
        comp = gmm.predict(stats)
        abnormal_comp = int(np.argmax(gmm.means_[:, 1]))          # larger spread of norms
        abnormal = comp == abnormal_comp
        if abnormal.all():                                          # need normal videos to fit the fine stage
            abnormal[np.argmin(std)] = False
    normal_rows = np.concatenate([np.arange(offsets[v], offsets[v + 1]) for v in np.flatnonzero(~abnormal)])
    mu = x[normal_rows].mean(axis=0)
    sd = x[normal_rows].std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    deviation = np.mean(((x - mu) / sd) ** 2, axis=1)
    pseudo = np.zeros(x.shape[0], dtype=np.uint8)
    for v in np.flatnonzero(abnormal):
        a, n = int(offsets[v]), int(lengths[v])
        w = max(1, int(math.ceil(window_fraction * n)))
        sums = np.convolve(deviation[a:a + n], np.ones(w), mode="valid")
        start = int(np.argmax(sums))                                 # ties: earliest window
        pseudo[a + start:a + start + w] = 1
    return pseudo, abnormal


# -- LBR-SPR style (feature level) ------------------------------------------------------------------

def lbr_spr(train_x: np.ndarray, test_x: np.ndarray, epochs: int = 50, drop_fraction: float = 0.2,
            warmup_fraction: float = 0.2, hidden: int = 256, bottleneck: int = 32, batch: int = 960,
            lr: float = 1e-3, seed: int = 0, device: str = "cpu"):
    """Train the self-paced autoencoder; returns (test scores (N_test,), train pseudo-labels (N_train,)
    uint8 = the snippets excluded at the last epoch, train scores (N_train,))."""
    import torch
    from torch import nn

    if not 0.0 <= drop_fraction < 1.0:
        raise ValueError(f"drop_fraction={drop_fraction!r} is invalid: it must be in [0, 1)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_x = np.asarray(train_x, dtype=np.float32)
    mu, sd = train_x.mean(axis=0), train_x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0).astype(np.float32)
    xt = torch.from_numpy((train_x - mu) / sd).to(device)
    D = xt.shape[1]
    model = nn.Sequential(nn.Linear(D, hidden), nn.ReLU(), nn.Linear(hidden, bottleneck), nn.ReLU(),
                          nn.Linear(bottleneck, hidden), nn.ReLU(), nn.Linear(hidden, D)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def errors(x):
        model.eval()
        with torch.no_grad():
            return torch.cat([((model(x[i:i + 8192]) - x[i:i + 8192]) ** 2).mean(dim=1)
                              for i in range(0, x.shape[0], 8192)]).cpu().numpy()

    n = xt.shape[0]
    keep = np.arange(n)
    warmup = int(math.floor(warmup_fraction * epochs))
    for epoch in range(epochs):
        if epoch >= warmup and drop_fraction > 0:
            share = drop_fraction * (epoch - warmup + 1) / max(1, epochs - warmup)
            keep = np.argsort(errors(xt), kind="stable")[:n - int(math.floor(share * n))]
        model.train()
        order = keep[rng.permutation(keep.size)]
        for b in range(0, order.size, batch):
            xb = xt[torch.from_numpy(order[b:b + batch]).to(device)]
            loss = ((model(xb) - xb) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    pseudo = np.ones(n, dtype=np.uint8)
    pseudo[keep] = 0
    xs = torch.from_numpy((np.asarray(test_x, np.float32) - mu) / sd).to(device)
    return errors(xs), pseudo, errors(xt)
