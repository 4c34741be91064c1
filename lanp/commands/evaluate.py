"""Frame-level metrics of a scores file against ground truth, as papers report them (definitions in
docs/evaluation.md): ROC-AUC; AP twice -- `ap` (step interpolation, scikit-learn's
average_precision_score) and `pr_auc` (trapezoid area under the PR curve, what the public code of
RTFM, PEL4VAD, XDVioDet and LANP computes and papers print as "AP"); the false alarm rate on normal
videos at --far-threshold; video-level AUC / AP (max score per video); the same frame metrics on
the abnormal videos only; and on UCF-Crime the per-class AUC (each class's videos + all normal
videos). The headline is AUC for UCF-Crime and ShanghaiTech, AP (pr_auc) for XD-Violence.

Ground truth (--gt): a lanp gt.h5; an RTFM gt-*.npy with --gt-list; a folder of per-video .npy
(<video>.npy or <video>_gt.npy); a UCF-Crime Temporal_Anomaly_Annotation*.txt (frame counts from
its 7th column, else --frame-counts, else 16 x the scored snippet count); or an XD-Violence
annotations.txt (name start end [start end ...]; unlisted videos are normal). Videos are matched
by name. Length rule: snippet scores are repeated per frame, then padded with the last score or
trimmed to the ground truth's frame count; the videos adjusted are counted in the output.

A scores file from a model trained on human labels (few-shot) names the labelled training videos;
evaluating a test set that holds any of them is refused (error, exit 2).

--export-gt rtfm gt.npy writes the frame labels aligned to the scores file (16 x T frames per
video, in its order: the RTFM gt-*.npy) and --export-list the matching .list.

Examples:
  lanp evaluate --scores scores.h5 --gt test.gt.h5 --json
  lanp evaluate --scores scores.h5 --gt Temporal_Anomaly_Annotation_New.txt --export-gt rtfm gt-ucf.npy --export-list ucf-test.list
"""
from __future__ import annotations

import json


def add_gt_arguments(parser):
    parser.add_argument("--gt", required=True, help="ground truth: gt.h5, RTFM gt .npy, folder of .npy, or a "
                                                    "UCF-Crime / XD-Violence annotation .txt")
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
    from lanp.data.groundtruth import EXPORT_FORMATS
    from lanp.evaluation.metrics import DATASETS

    parser.add_argument("--scores", required=True, help="scores file written by lanp score")
    add_gt_arguments(parser)
    parser.add_argument("--max-mismatch", type=int, default=2,
                        help="largest score/GT length difference in snippets before it is an error "
                             "(default 2; -1: no limit)")
    parser.add_argument("--far-threshold", type=float, default=0.5,
                        help="score at or above which a frame of a normal video is a false alarm (default 0.5)")
    parser.add_argument("--dataset", choices=DATASETS, default="auto",
                        help="picks the headline metric and per-class AUCs (default auto: from the video names)")
    parser.add_argument("--export-gt", nargs=2, metavar=("FORMAT", "PATH"),
                        help=f"also write the ground truth aligned to the scores file; FORMAT: "
                             f"{', '.join(EXPORT_FORMATS)} (concatenated frame labels, 16 x T per video, in order)")
    parser.add_argument("--export-list", metavar="PATH",
                        help="with --export-gt: also write the video ids in that order, one per line (.list)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _fmt(x):
    return "n/a" if x is None else f"{x:.4f}"


def table(r: dict) -> str:
    """The human-readable report of an evaluate() result."""
    head = {"auc": "ROC-AUC", "pr_auc": "AP (pr_auc)"}[r["headline"]]
    lines = [f"dataset {r['dataset']}: headline {head} = {_fmt(r['headline_value'])}",
             "",
             f"  {'metric':<40} {'all videos':>10} {'abnormal only':>14}",
             f"  {'frame ROC-AUC':<40} {_fmt(r['auc']):>10} {_fmt(r['auc_abnormal']):>14}",
             f"  {'frame AP, pr_auc (trapezoid; papers)':<40} {_fmt(r['pr_auc']):>10} {_fmt(r['pr_auc_abnormal']):>14}",
             f"  {'frame AP, ap (step; scikit-learn)':<40} {_fmt(r['ap']):>10} {_fmt(r['ap_abnormal']):>14}",
             f"  {'video ROC-AUC (max score)':<40} {_fmt(r['video_auc']):>10}",
             f"  {'video AP (max score)':<40} {_fmt(r['video_ap']):>10}",
             f"  {'false alarm rate @ ' + format(r['far_threshold'], 'g') + ' (normal videos)':<40} "
             f"{_fmt(r['far']):>10}"]
    if r["classes"]:
        lines += ["", f"per-class frame ROC-AUC (each class's videos + all {r['normal_videos']} normal videos), "
                      f"{len(r['classes'])} classes: {', '.join(r['classes'])}"]
        lines += [f"  {c:<20} {_fmt(r['per_class_auc'][c])}  ({r['per_class_videos'][c]} videos)" for c in r["classes"]]
    lines += ["",
              f"{r['videos']} videos ({r['abnormal_videos']} abnormal), {r['frames']} frames "
              f"({r['abnormal_frames']} abnormal); lengths adjusted in {r['videos_adjusted']} videos "
              f"({r['videos_padded']} padded, {r['videos_trimmed']} trimmed, at most {r['max_adjustment_frames']} frames)",
              f"note: {r['ap_note']}"]
    return "\n".join(lines)


def run(args) -> int:
    import sys

    from lanp import config_file
    from lanp.data.groundtruth import aligned_labels, export_groundtruth
    from lanp.evaluation.metrics import evaluate
    from lanp.kernels import InputError
    from lanp.model.score import read_scores, refuse_human_videos

    from lanp.outputs import check_outputs
    if args.export_list and not args.export_gt:
        raise InputError("--export-list needs --export-gt FORMAT PATH")
    if args.export_gt:
        inputs = [("--scores", args.scores), ("--gt", args.gt), ("--gt-list", args.gt_list),
                  ("--frame-counts", args.frame_counts)]
        check_outputs([("--export-gt", args.export_gt[1])] +
                      ([("--export-list", args.export_list)] if args.export_list else []), inputs)
    scores = read_scores(args.scores)
    refuse_human_videos(args.scores, list(scores))
    gt = load_gt(args, scores)
    max_mismatch = None if args.max_mismatch < 0 else args.max_mismatch
    r = evaluate(scores, gt, fps=args.frames_per_snippet, max_mismatch=max_mismatch,
                 far_threshold=args.far_threshold, dataset=args.dataset)
    if args.export_gt:
        fmt, path = args.export_gt
        labels, adjusted = aligned_labels({vid: len(s) for vid, s in scores.items()}, gt,
                                          args.frames_per_snippet, max_mismatch)
        e = export_groundtruth(fmt, path, labels, args.export_list)
        r["export"] = {**e, "format": fmt, "videos_adjusted": adjusted}
        listed = f" and {e['list']}" if e["list"] else ""
        print(f"wrote {e['out']}{listed}: {e['videos']} videos, {e['frames']} frames "
              f"({e['abnormal_frames']} abnormal), {adjusted} videos padded or trimmed to {args.frames_per_snippet} x T",
              file=sys.stderr if args.json else sys.stdout)
    r["config"] = config_file.current_config()
    print(json.dumps(r, indent=2) if args.json else table(r))
    return 0
