"""Frame-level evaluation as the field reports it (definitions in docs/evaluation.md).

Metrics of :func:`evaluate` (None where a metric is undefined, e.g. only one class present):

- ``auc``: ROC-AUC pooled over every frame of every scored video (the headline of UCF-Crime and
  ShanghaiTech papers).
- ``ap``: average precision with step interpolation, sum_n (R_n - R_{n-1}) P_n
  (scikit-learn's ``average_precision_score``).
- ``pr_auc``: the trapezoid area under the precision-recall curve,
  ``sklearn.metrics.auc(recall, precision)`` on ``precision_recall_curve``: what the public
  evaluation code of RTFM, PEL4VAD, XDVioDet and LANP computes and the papers print as "AP"
  (XD-Violence's headline). It is usually a little below ``ap``: the trapezoid joins the
  curve's points with straight lines where the step rule holds each precision to the next recall.
- ``auc_abnormal``, ``ap_abnormal``, ``pr_auc_abnormal``: the same over the abnormal videos only
  (those with any ground-truth frame = 1).
- ``far``: false alarm rate on the normal videos (no ground-truth frame = 1) at
  ``far_threshold`` (default 0.5): the share of their frames scored >= the threshold, i.e.
  FP / (FP + TN) there.
- ``video_auc``, ``video_ap``: one score per video, the largest of its frame scores (its maximum
  snippet score unless the length rule trimmed it), against its label (any abnormal frame).
- ``per_class_auc`` (UCF-Crime): for each anomaly class, the pooled frame AUC over that class's
  videos plus every normal video (``Normal_Videos*``), the class taken from the name
  (``Burglary018_x264`` -> ``Burglary``).

Length rule (one rule for every format): a video's snippet scores are expanded to frames by
repeating each score ``fps`` (16) times; the ground truth's frame count is authoritative; when the
expanded scores are shorter they are padded with the last score, when longer they are trimmed at
the end. Every video so adjusted is counted (``videos_padded``, ``videos_trimmed``); a mismatch of
more than ``max_mismatch`` snippets (default 2) is an error, since it means the GT belongs to other
features (another extraction or frame rate). ``max_mismatch=None`` removes the limit.
"""
from __future__ import annotations

import math
import re
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from lanp.data.groundtruth import FRAMES_PER_SNIPPET, canonical_name, match_videos
from lanp.kernels import InputError

LENGTH_RULE = ("snippet scores repeated fps times per frame; padded with the last score or trimmed at the end "
               "to the ground truth's frame count")
DATASETS = ("auto", "ucf-crime", "shanghaitech", "xd-violence", "other")
# the metric each dataset's papers lead with
HEADLINE = {"ucf-crime": "auc", "shanghaitech": "auc", "xd-violence": "pr_auc", "other": "auc"}
AP_NOTE = ("ap = step-interpolated average precision (scikit-learn average_precision_score); pr_auc = "
           "trapezoid area under the precision-recall curve (sklearn auc(recall, precision)), the 'AP' that "
           "the public code of RTFM, PEL4VAD, XDVioDet and LANP computes and papers print")

_UCF_CLASS = re.compile(r"^([A-Za-z]+?)(\d+)_x264$")
_UCF_NORMAL = re.compile(r"^Normal_Videos_?\d+_x264$", re.IGNORECASE)
_SHT = re.compile(r"^\d{2}_\d{3,4}$")
_XD = re.compile(r"_label_[A-Z]")


def frame_scores(snippet_scores: np.ndarray, n_frames: int, fps: int = FRAMES_PER_SNIPPET):
    """(frame scores (n_frames,), adjustment in frames: > 0 padded, < 0 trimmed, 0 exact)."""
    s = np.repeat(np.asarray(snippet_scores, dtype=np.float64), fps)
    delta = int(n_frames) - s.shape[0]
    if delta > 0:
        s = np.concatenate([s, np.full(delta, s[-1] if s.size else 0.0)])
    elif delta < 0:
        s = s[:n_frames]
    return s, delta


# -- single metrics on (labels, scores) ----------------------------------------------------------
def _two_classes(y: np.ndarray) -> bool:
    return y.size > 0 and y.min() != y.max()


def roc_auc(y: np.ndarray, s: np.ndarray) -> Optional[float]:
    """ROC-AUC (ties count one half); None with one class only."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if _two_classes(y) else None


def average_precision(y: np.ndarray, s: np.ndarray) -> Optional[float]:
    """Step-interpolated AP, sum_n (R_n - R_{n-1}) P_n over the thresholds; None with one class."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, s)) if _two_classes(y) else None


def pr_auc(y: np.ndarray, s: np.ndarray) -> Optional[float]:
    """Trapezoid area under the precision-recall curve (the published code's "AP"): the points of
    ``precision_recall_curve`` (including recall 0, precision 1) joined by straight lines."""
    from sklearn.metrics import auc, precision_recall_curve

    if not _two_classes(y):
        return None
    precision, recall, _ = precision_recall_curve(y, s)
    return float(auc(recall, precision))


def false_alarm_rate(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> Optional[float]:
    """FP / (FP + TN) at ``threshold`` (a frame is an alarm when its score >= threshold)."""
    negative = np.asarray(y) == 0
    if not negative.any():
        return None
    return float(np.mean(np.asarray(s)[negative] >= threshold))


def _three(y, s):
    return roc_auc(y, s), average_precision(y, s), pr_auc(y, s)


# -- names ---------------------------------------------------------------------------------------
def ucf_class(name: str) -> Optional[str]:
    """UCF-Crime class of a video name: 'Burglary018_x264' -> 'Burglary', 'Normal_Videos_003_x264' ->
    'Normal'; None when the name is not a UCF-Crime test name."""
    base = canonical_name(name)
    if _UCF_NORMAL.match(base):
        return "Normal"
    m = _UCF_CLASS.match(base)
    return m.group(1) if m else None


def guess_dataset(names: Sequence[str]) -> str:
    """'ucf-crime' (every name a UCF-Crime name), 'xd-violence' (every name has '_label_<X>'),
    'shanghaitech' (every name like 01_0014), else 'other'."""
    base = [canonical_name(n) for n in names]
    if not base:
        return "other"
    if all(ucf_class(n) is not None for n in base):
        return "ucf-crime"
    if all(_XD.search(n) for n in base):
        return "xd-violence"
    if all(_SHT.match(n) for n in base):
        return "shanghaitech"
    return "other"


# -- matching and the length rule ----------------------------------------------------------------
def pooled(scores: Mapping[str, np.ndarray], gt: Mapping[str, np.ndarray], fps: int = FRAMES_PER_SNIPPET,
           max_mismatch: Optional[int] = 2):
    """Per matched video: (score id, frame scores, frame labels), and the adjustment counts.
    Two score videos naming the same ground-truth video are an error."""
    if int(fps) < 1:
        raise InputError(f"frames_per_snippet={fps!r} is invalid: it must be >= 1")
    match = match_videos(list(scores), gt)
    owner: Dict[str, str] = {}
    for vid, key in match.items():
        if key in owner:
            raise InputError(f"scores videos {owner[key]!r} and {vid!r} both match ground-truth video {key!r}: "
                             f"a video may be scored once only")
        owner[key] = vid
    rows, padded, trimmed, worst = [], 0, 0, 0
    for vid, key in match.items():
        labels = gt[key]
        s, delta = frame_scores(scores[vid], labels.shape[0], fps)
        if max_mismatch is not None and abs(delta) > max_mismatch * fps:
            raise InputError(f"video {vid!r}: {len(scores[vid])} snippets x {fps} = {len(scores[vid]) * fps} "
                             f"score frames but the ground truth {key!r} has {labels.shape[0]} frames "
                             f"({abs(delta) / fps:.1f} snippets apart, more than max_mismatch={max_mismatch}); "
                             f"check --frames-per-snippet and that the GT belongs to these features")
        padded += delta > 0
        trimmed += delta < 0
        worst = max(worst, abs(delta))
        rows.append((vid, s, labels))
    used = set(match.values())
    counts = {"videos_padded": int(padded), "videos_trimmed": int(trimmed),
              "videos_adjusted": int(padded + trimmed), "max_adjustment_frames": int(worst),
              "gt_videos_not_scored": int(sum(1 for k in gt if k not in used))}
    return rows, counts


# -- grouped metrics ----------------------------------------------------------------------------
def _cat(rows, k):
    return np.concatenate([r[k] for r in rows]) if rows else np.zeros(0)


def video_level(rows) -> Tuple[Optional[float], Optional[float]]:
    """(AUC, AP) of the per-video maximum frame score against the per-video label."""
    y = np.array([int(r[2].any()) for r in rows])
    s = np.array([float(r[1].max()) if r[1].size else -math.inf for r in rows])
    return roc_auc(y, s), average_precision(y, s)


def per_class_auc(rows) -> Dict[str, Dict[str, object]]:
    """UCF-Crime: {class: {"auc", "videos"}} for every anomaly class among the rows, each AUC pooled
    over that class's videos plus all normal videos."""
    classes: Dict[str, List] = {}
    normal = []
    for r in rows:
        c = ucf_class(r[0])
        if c == "Normal":
            normal.append(r)
        elif c is not None:
            classes.setdefault(c, []).append(r)
    out = {}
    for c in sorted(classes):
        part = classes[c] + normal
        out[c] = {"auc": roc_auc(_cat(part, 2), _cat(part, 1)), "videos": len(classes[c]),
                  "normal_videos": len(normal)}
    return out


def evaluate(scores: Mapping[str, np.ndarray], gt: Mapping[str, np.ndarray], fps: int = FRAMES_PER_SNIPPET,
             max_mismatch: Optional[int] = 2, far_threshold: float = 0.5,
             dataset: str = "auto") -> Dict[str, object]:
    """Every metric of the module docstring for snippet ``scores`` by video id against frame labels
    ``gt`` by name. ``dataset`` ('auto' guesses from the names) picks the headline metric
    (``headline``) and whether per-class AUCs are computed (UCF-Crime)."""
    if dataset not in DATASETS:
        raise InputError(f"dataset={dataset!r} is invalid: choose one of {', '.join(DATASETS)}")
    threshold = float(far_threshold)
    if not math.isfinite(threshold):
        raise InputError(f"far_threshold={far_threshold!r} is invalid: it must be a finite number")
    rows, counts = pooled(scores, gt, fps, max_mismatch)
    if not rows:
        raise InputError("no scored video to evaluate")
    s_all, y_all = _cat(rows, 1), _cat(rows, 2)
    abnormal = [r for r in rows if r[2].any()]
    normal = [r for r in rows if not r[2].any()]
    auc, ap, prauc = _three(y_all, s_all)
    auc_a, ap_a, pr_a = _three(_cat(abnormal, 2), _cat(abnormal, 1)) if abnormal else (None, None, None)
    far = false_alarm_rate(_cat(normal, 2), _cat(normal, 1), threshold) if normal else None
    video_auc, video_ap = video_level(rows)
    name = guess_dataset([r[0] for r in rows]) if dataset == "auto" else dataset
    classes = per_class_auc(rows) if name == "ucf-crime" else {}
    if counts["gt_videos_not_scored"]:
        print(f"warning: {counts['gt_videos_not_scored']} ground-truth videos have no scores and are left out "
              f"of the metrics", file=sys.stderr)
    headline = HEADLINE[name]
    value = {"auc": auc, "pr_auc": prauc}[headline]
    return {"auc": auc, "ap": ap, "pr_auc": prauc,
            "auc_abnormal": auc_a, "ap_abnormal": ap_a, "pr_auc_abnormal": pr_a,
            "far": far, "far_threshold": threshold, "video_auc": video_auc, "video_ap": video_ap,
            "per_class_auc": {c: v["auc"] for c, v in classes.items()},
            "per_class_videos": {c: v["videos"] for c, v in classes.items()},
            "classes": list(classes),
            "dataset": name, "headline": headline, "headline_value": value, "ap_note": AP_NOTE,
            "videos": len(rows), "abnormal_videos": len(abnormal), "normal_videos": len(normal),
            "frames": int(y_all.shape[0]), "abnormal_frames": int(y_all.sum()), **counts,
            "frames_per_snippet": int(fps), "length_rule": LENGTH_RULE}
