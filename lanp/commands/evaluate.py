"""Frame-level ROC-AUC and AP of a scores file against ground truth (pooled over all frames, and
over the abnormal videos only), with scikit-learn.

Ground truth (--gt): a lanp gt.h5; an RTFM gt-*.npy with --gt-list; a folder of per-video .npy
(<video>.npy or <video>_gt.npy); or a UCF-Crime Temporal_Anomaly_Annotation*.txt (frame counts from
its 7th column, else --frame-counts, else 16 x the scored snippet count). Videos are matched by name.
Length rule: snippet scores are repeated per frame, then padded with the last score or trimmed to the
ground truth's frame count; the videos adjusted are counted in the output.

Example:
  lanp evaluate --scores scores.h5 --gt test.gt.h5 --json
"""
from __future__ import annotations

import json


def add_gt_arguments(parser):
    parser.add_argument("--gt", required=True, help="ground truth: gt.h5, RTFM gt .npy, folder of .npy, or annotation .txt")
    parser.add_argument("--gt-list", help="the .list giving the video order of an RTFM concatenated gt .npy")
    parser.add_argument("--frame-counts", help="video,label,frames CSV (LANP split file) for annotation files "
                                               "without a frame-count column")
    parser.add_argument("--frames-per-snippet", type=int, default=16, help="frames per feature row (default 16)")


def load_gt(args, scores):
    from lanp.data.groundtruth import read_groundtruth

    lengths = {vid: len(s) for vid, s in scores.items()}
    return read_groundtruth(args.gt, lengths=lengths, list_path=args.gt_list, frame_counts=args.frame_counts,
                            fps=args.frames_per_snippet)


def configure(parser):
    parser.add_argument("--scores", required=True, help="scores file written by lanp score")
    add_gt_arguments(parser)
    parser.add_argument("--max-mismatch", type=int, default=2,
                        help="largest score/GT length difference in snippets before it is an error "
                             "(default 2; -1: no limit)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _fmt(x):
    return "n/a (one class)" if x is None else f"{x:.4f}"


def run(args) -> int:
    from lanp.evaluation.metrics import evaluate
    from lanp.model.score import read_scores

    scores = read_scores(args.scores)
    gt = load_gt(args, scores)
    r = evaluate(scores, gt, fps=args.frames_per_snippet,
                 max_mismatch=None if args.max_mismatch < 0 else args.max_mismatch)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"frame-level ROC-AUC {_fmt(r['auc'])}  AP {_fmt(r['ap'])}  "
          f"(abnormal videos only: AUC {_fmt(r['auc_abnormal'])}  AP {_fmt(r['ap_abnormal'])})\n"
          f"{r['videos']} videos ({r['abnormal_videos']} abnormal), {r['frames']} frames "
          f"({r['abnormal_frames']} abnormal); lengths adjusted in {r['videos_adjusted']} videos "
          f"({r['videos_padded']} padded, {r['videos_trimmed']} trimmed, at most {r['max_adjustment_frames']} frames)")
    return 0
