"""Score every snippet of a feature file with a trained detector (whole videos at once; crops averaged).

Example:
  lanp score --model model.pt --features test.h5 --out scores.h5
"""
from __future__ import annotations


def configure(parser):
    parser.add_argument("--model", required=True, help="checkpoint written by lanp train")
    parser.add_argument("--features", required=True, help="feature file to score (packed or grouped HDF5)")
    parser.add_argument("--out", required=True, help="scores file to write (atomically)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from lanp.model.score import score_file

    s = score_file(args.model, args.features, args.out, device=args.device, quiet=args.quiet)
    crops = f", {s['crops']} crops averaged" if s["crops"] else ""
    print(f"scored {s['videos']} videos, {s['snippets']} snippets{crops}; wrote {s['out']}")
    return 0
