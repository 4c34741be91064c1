"""Plot one video's anomaly score over frames with its ground-truth anomalies shaded, or (--roc) the
frame-level ROC curve over all scored videos. PNG/PDF/SVG by the --out extension (Agg backend).

Examples:
  lanp plot --scores scores.h5 --gt test.gt.h5 --video test_0003 --out test_0003.png
  lanp plot --scores scores.h5 --gt test.gt.h5 --roc --out roc.png
"""
from __future__ import annotations

from lanp.commands.evaluate import add_gt_arguments


def configure(parser):
    parser.add_argument("--scores", required=True, help="scores file written by lanp score")
    add_gt_arguments(parser)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--video", help="video id to plot")
    what.add_argument("--roc", action="store_true", help="plot the pooled frame-level ROC curve instead")
    parser.add_argument("--out", required=True, help="figure file (.png, .pdf, .svg)")


def run(args) -> int:
    import numpy as np

    from lanp.commands.evaluate import load_gt
    from lanp.kernels import InputError
    from lanp.evaluation.metrics import pooled
    from lanp.evaluation.plots import plot_roc, plot_video
    from lanp.model.score import read_scores

    scores = read_scores(args.scores)
    gt = load_gt(args, scores)
    if args.roc:
        rows, _ = pooled(scores, gt, args.frames_per_snippet, max_mismatch=None)
        y = np.concatenate([r[2] for r in rows])
        if y.min() == y.max():
            raise InputError(f"ground truth {args.gt!r} has only one class over the scored videos: no ROC curve")
        out = plot_roc(y, np.concatenate([r[1] for r in rows]), args.out)
    else:
        if args.video not in scores:
            raise InputError(f"scores file {args.scores!r} has no video {args.video!r} "
                             f"(it has {len(scores)}, e.g. {', '.join(list(scores)[:3])})")
        (vid, s, y), = pooled({args.video: scores[args.video]}, gt, args.frames_per_snippet, max_mismatch=None)[0]
        out = plot_video(s, y, args.out, title=vid)
    print(f"wrote {out}")
    return 0
