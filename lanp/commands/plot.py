"""Plot one video's anomaly score over frames with its ground-truth anomalies shaded (--video), every
video's (--all: one PNG per video in the --out folder plus index.html, an overview page), or the
pooled frame-level ROC (--roc) or precision-recall (--pr) curve. PNG/PDF/SVG by the --out extension
(Agg backend).

Examples:
  lanp plot --scores scores.h5 --gt test.gt.h5 --video test_0003 --out test_0003.png
  lanp plot --scores scores.h5 --gt test.gt.h5 --all --out figures/
  lanp plot --scores scores.h5 --gt test.gt.h5 --roc --out roc.png
  lanp plot --scores scores.h5 --gt test.gt.h5 --pr --out pr.png
"""
from __future__ import annotations

from lanp.commands.evaluate import add_gt_arguments


def configure(parser):
    parser.add_argument("--scores", required=True, help="scores file written by lanp score")
    add_gt_arguments(parser)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--video", help="video id to plot")
    what.add_argument("--all", action="store_true", help="every video: --out is a folder (PNGs + index.html)")
    what.add_argument("--roc", action="store_true", help="plot the pooled frame-level ROC curve instead")
    what.add_argument("--pr", action="store_true", help="plot the pooled frame-level precision-recall curve")
    parser.add_argument("--out", required=True, help="figure file (.png, .pdf, .svg); with --all a folder")
    parser.add_argument("--max-mismatch", type=int, default=2,
                        help="largest score/GT length difference in snippets before it is an error "
                             "(default 2, as lanp evaluate; -1: no limit)")


def run(args) -> int:
    import numpy as np

    from lanp import config_file
    from lanp.commands.evaluate import load_gt
    from lanp.kernels import InputError
    from lanp.evaluation.metrics import pooled
    from lanp.evaluation.plots import plot_all, plot_pr, plot_roc, plot_video
    from lanp.model.score import read_scores

    from lanp.outputs import check_output
    inputs = [("--scores", args.scores), ("--gt", args.gt), ("--gt-list", args.gt_list),
              ("--frame-counts", args.frame_counts)]
    check_output(args.out, "--out", inputs, folder=bool(args.all))
    if not args.all:
        from lanp.evaluation.plots import figure_format
        figure_format(args.out)
    scores = read_scores(args.scores)
    gt = load_gt(args, scores)
    max_mismatch = None if args.max_mismatch < 0 else args.max_mismatch
    if args.roc or args.pr:
        rows, _ = pooled(scores, gt, args.frames_per_snippet, max_mismatch=max_mismatch)
        y = np.concatenate([r[2] for r in rows])
        if y.min() == y.max():
            curve = "ROC" if args.roc else "precision-recall"
            raise InputError(f"ground truth {args.gt!r} has only one class over the scored videos: no {curve} curve")
        plot = plot_roc if args.roc else plot_pr
        out = plot(y, np.concatenate([r[1] for r in rows]), args.out)
    elif args.all:
        rows, _ = pooled(scores, gt, args.frames_per_snippet, max_mismatch=max_mismatch)
        r = plot_all(rows, args.out, config=config_file.current_config(), title=f"lanp scores: {args.scores}")
        print(f"wrote {r['videos']} figures and {r['index']}")
        return 0
    else:
        if args.video not in scores:
            raise InputError(f"scores file {args.scores!r} has no video {args.video!r} "
                             f"(it has {len(scores)}, e.g. {', '.join(list(scores)[:3])})")
        (vid, s, y), = pooled({args.video: scores[args.video]}, gt, args.frames_per_snippet, max_mismatch=max_mismatch)[0]
        out = plot_video(s, y, args.out, title=vid)
    print(f"wrote {out}")
    return 0
