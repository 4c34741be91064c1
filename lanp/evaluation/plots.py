"""Figures with matplotlib's Agg backend (files only; no pyplot, no global backend change)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _figure(size=(8, 3)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out) -> Path:
    from lanp.data.io import atomic_path

    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".").lower() or "png", bbox_inches="tight")
    return out


def runs(labels: np.ndarray):
    """[(start, end)) frame intervals where labels == 1."""
    y = np.concatenate([[0], np.asarray(labels, np.int8) != 0, [0]]).astype(np.int8)
    d = np.diff(y)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def plot_video(frame_scores: np.ndarray, frame_labels: np.ndarray, out, title: str = "") -> Path:
    """Anomaly score over frames, ground-truth anomalies shaded (as in the paper's Fig. 6)."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for k, (a, b) in enumerate(runs(frame_labels)):
        ax.axvspan(a, b, color="tab:red", alpha=0.2, lw=0, label=None if k else "ground-truth anomaly")
    ax.plot(np.arange(len(frame_scores)), frame_scores, color="tab:blue", lw=1.2, label="anomaly score")
    ax.set_xlim(0, max(1, len(frame_scores)))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("frame")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, out)


def plot_roc(frame_labels: np.ndarray, frame_scores: np.ndarray, out, title: str = "") -> Path:
    """Frame-level ROC curve with its AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(frame_labels, frame_scores)
    auc = roc_auc_score(frame_labels, frame_scores)
    fig = _figure((4.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(fpr, tpr, color="tab:blue", lw=1.5, label=f"AUC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "frame-level ROC")
    ax.legend(loc="lower right")
    return _save(fig, out)
