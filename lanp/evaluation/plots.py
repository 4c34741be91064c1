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


def figure_format(out) -> str:
    """The file format of a figure path (its extension; none: png), or an InputError listing
    what matplotlib can write."""
    from lanp.kernels import InputError

    fmt = Path(out).suffix.lstrip(".").lower() or "png"
    supported = _figure().canvas.get_supported_filetypes()
    if fmt not in supported:
        raise InputError(f"figure {str(out)!r}: format {fmt!r} is not supported: use one of "
                         f"{', '.join(sorted(supported))}")
    return fmt


def _save(fig, out) -> Path:
    from lanp.outputs import atomic_file

    out = Path(out)
    fmt = figure_format(out)
    with atomic_file(out, "figure") as f:
        fig.savefig(f, format=fmt, bbox_inches="tight")
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


def plot_pr(frame_labels: np.ndarray, frame_scores: np.ndarray, out, title: str = "") -> Path:
    """Frame-level precision-recall curve; the legend gives both APs (pr_auc, the trapezoid area the
    papers print, and ap, scikit-learn's step interpolation) and the positive rate (chance)."""
    from sklearn.metrics import precision_recall_curve

    from lanp.evaluation.metrics import average_precision, pr_auc

    precision, recall, _ = precision_recall_curve(frame_labels, frame_scores)
    base = float(np.mean(np.asarray(frame_labels) != 0))
    fig = _figure((4.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(recall, precision, color="tab:blue", lw=1.5,
            label=f"pr_auc = {pr_auc(frame_labels, frame_scores):.4f}\nap = "
                  f"{average_precision(frame_labels, frame_scores):.4f}")
    ax.axhline(base, color="grey", lw=0.8, ls="--", label=f"chance = {base:.4f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or "frame-level precision-recall")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, out)


def safe_file_name(video_id: str, taken: set) -> str:
    """A file name for a video id: characters other than letters, digits, '.', '-', '_' become '_';
    a name already taken gets a numeric suffix."""
    import re

    base = re.sub(r"[^A-Za-z0-9._-]", "_", str(video_id)).strip(".") or "video"
    name, k = base, 1
    while name.lower() in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name.lower())
    return name


def plot_all(rows, out_dir, config: dict = None, title: str = "lanp scores") -> dict:
    """Every video's score curve (``rows`` from lanp.evaluation.metrics.pooled) as
    ``out_dir/<video>.png`` plus ``out_dir/index.html``: one self-contained page (no scripts, no
    external files but the PNGs beside it) with a thumbnail per video, its frame counts and
    its frame AUC, abnormal videos first, and the resolved configuration."""
    import html

    from lanp.evaluation.metrics import roc_auc
    from lanp.outputs import atomic_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    taken: set = {"index"}
    entries = []
    for vid, s, y in rows:
        name = safe_file_name(vid, taken) + ".png"
        plot_video(s, y, out / name, title=str(vid))
        entries.append((vid, name, int(len(y)), int(np.sum(y)), roc_auc(np.asarray(y), s), float(np.max(s))))
    entries.sort(key=lambda e: (e[3] == 0, str(e[0])))
    cells = []
    for vid, name, frames, abn, auc, top in entries:
        auc_text = "n/a" if auc is None else f"{auc:.4f}"
        cells.append(f'<figure><a href="{html.escape(name)}"><img src="{html.escape(name)}" loading="lazy" '
                     f'alt="{html.escape(str(vid))}"></a><figcaption><b>{html.escape(str(vid))}</b><br>{frames} '
                     f'frames, {abn} abnormal; frame AUC {auc_text}; max score {top:.3f}</figcaption></figure>')
    import json

    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>\n"
            "<style>body{font-family:sans-serif;margin:1em}figure{display:inline-block;width:420px;margin:6px;"
            "vertical-align:top}img{width:100%}figcaption{font-size:12px}pre{font-size:11px;background:#f4f4f4;"
            "padding:6px}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1><p>{len(entries)} videos "
            f"({sum(1 for e in entries if e[3])} with ground-truth anomalies, shown first); the red band "
            f"is the ground truth, the blue line the score per frame.</p>\n" + "\n".join(cells) +
            ("\n<h2>configuration</h2><pre>" + html.escape(json.dumps(config, indent=2)) + "</pre>" if config else "") +
            "\n</body></html>\n")
    with atomic_file(out / "index.html", "index page") as f:
        f.write(page.encode("utf-8"))
    return {"out": str(out), "index": str(out / "index.html"), "videos": len(entries)}
