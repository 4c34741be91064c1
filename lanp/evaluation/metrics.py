"""Frame-level evaluation: ROC-AUC and average precision pooled over all frames of all videos
(the field's standard), and the same two on the abnormal videos only (those with any GT frame = 1).

Length rule (one rule for every format): a video's snippet scores are expanded to frames by
repeating each score ``fps`` (16) times; the ground truth's frame count is authoritative; when the
expanded scores are shorter they are padded with the last score, when longer they are trimmed at
the end. Every video so adjusted is counted (``videos_padded``, ``videos_trimmed``); a mismatch of
more than ``max_mismatch`` snippets (default 2) is an error, since it means the GT belongs to other
features (another extraction or frame rate). ``max_mismatch=None`` removes the limit.
"""
from __future__ import annotations

import sys
from typing import Dict, Mapping, Optional

import numpy as np

from lanp.data.groundtruth import FRAMES_PER_SNIPPET, match_videos
from lanp.kernels import InputError

LENGTH_RULE = ("snippet scores repeated fps times per frame; padded with the last score or trimmed at the end "
               "to the ground truth's frame count")


def frame_scores(snippet_scores: np.ndarray, n_frames: int, fps: int = FRAMES_PER_SNIPPET):
    """(frame scores (n_frames,), adjustment in frames: > 0 padded, < 0 trimmed, 0 exact)."""
    s = np.repeat(np.asarray(snippet_scores, dtype=np.float64), fps)
    delta = int(n_frames) - s.shape[0]
    if delta > 0:
        s = np.concatenate([s, np.full(delta, s[-1] if s.size else 0.0)])
    elif delta < 0:
        s = s[:n_frames]
    return s, delta


def _auc_ap(y: np.ndarray, s: np.ndarray):
    from sklearn.metrics import average_precision_score, roc_auc_score

    if y.size == 0 or y.min() == y.max():        # one class only: undefined
        return None, None
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def pooled(scores: Mapping[str, np.ndarray], gt: Mapping[str, np.ndarray], fps: int = FRAMES_PER_SNIPPET,
           max_mismatch: Optional[int] = 2):
    """Per matched video: (score id, frame scores, frame labels), and the adjustment counts."""
    if int(fps) < 1:
        raise InputError(f"frames_per_snippet={fps!r} is invalid: it must be >= 1")
    match = match_videos(list(scores), gt)
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


def evaluate(scores: Mapping[str, np.ndarray], gt: Mapping[str, np.ndarray], fps: int = FRAMES_PER_SNIPPET,
             max_mismatch: Optional[int] = 2) -> Dict[str, object]:
    """Frame-level AUC / AP (all videos and abnormal videos only) of snippet ``scores`` by video id
    against frame labels ``gt`` by name. Metrics are None where only one class is present."""
    rows, counts = pooled(scores, gt, fps, max_mismatch)
    if not rows:
        raise InputError("no scored video to evaluate")
    s_all = np.concatenate([r[1] for r in rows])
    y_all = np.concatenate([r[2] for r in rows])
    abnormal = [r for r in rows if r[2].any()]
    auc, ap = _auc_ap(y_all, s_all)
    if abnormal:
        auc_a, ap_a = _auc_ap(np.concatenate([r[2] for r in abnormal]), np.concatenate([r[1] for r in abnormal]))
    else:
        auc_a = ap_a = None
    if counts["gt_videos_not_scored"]:
        print(f"warning: {counts['gt_videos_not_scored']} ground-truth videos have no scores and are left out "
              f"of the metrics", file=sys.stderr)
    return {"auc": auc, "ap": ap, "auc_abnormal": auc_a, "ap_abnormal": ap_a,
            "videos": len(rows), "abnormal_videos": len(abnormal), "frames": int(y_all.shape[0]),
            "abnormal_frames": int(y_all.sum()), **counts, "frames_per_snippet": int(fps),
            "length_rule": LENGTH_RULE}
