"""Score every snippet of a feature file with a trained detector (whole videos at once; crops averaged).

--smooth K (odd, off by default) replaces each score by the centred moving average of K snippets
within its video (cut at the video's ends). It is an inference-time choice: papers that smooth
report it separately, so compare smoothed numbers only with smoothed numbers.

--fuse-forest TRAIN.h5 fuses the detector's score with an isolation forest fit on the model's
training features (lanp.model.fusion): each snippet's score is the mean of the two scores' CDFs over
training snippets, so it depends on nothing else in the scored file.

Example:
  lanp score --model model.pt --features test.h5 --out scores.h5 [--smooth 5] [--fuse-forest train.h5]
"""
from __future__ import annotations


def configure(parser):
    parser.add_argument("--model", required=True, help="checkpoint written by lanp train")
    parser.add_argument("--features", required=True, help="feature file to score (packed or grouped HDF5)")
    parser.add_argument("--out", required=True, help="scores file to write (atomically)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--smooth", type=int, default=0,
                        help="centred moving average over K snippets (odd K >= 3) within each video; "
                             "default 0: off")
    parser.add_argument("--fuse-forest", metavar="TRAIN.h5", default=None,
                        help="the model's training features: the score becomes the mean of the detector's and an "
                             "isolation forest's ranks against those training snippets (the forest fit on 8 "
                             "snippets per training video, 100 trees; docs/compare.md), and detector_score and "
                             "isolation_score are written too")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from lanp import config_file
    from lanp.model.score import score_file

    s = score_file(args.model, args.features, args.out, device=args.device, quiet=args.quiet,
                   smooth=args.smooth, attrs=config_file.output_attrs(), fuse_forest=args.fuse_forest)
    crops = f", {s['crops']} crops averaged" if s["crops"] else ""
    smooth = f", smoothed over {s['smooth']} snippets" if s["smooth"] else ""
    fused = f", fused with an isolation forest of {args.fuse_forest}" if s["fused"] else ""
    print(f"scored {s['videos']} videos, {s['snippets']} snippets{crops}{fused}{smooth}; wrote {s['out']}")
    return 0
