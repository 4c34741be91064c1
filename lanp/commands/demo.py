"""Run the whole method on a small seeded synthetic dataset: synth -> propagate -> train -> score ->
evaluate -> plot. Prints the frame-level AUC and where the figures are (about half a minute on 2 CPU cores).

Example:
  lanp demo --workdir lanp_demo
"""
from __future__ import annotations


def configure(parser):
    parser.add_argument("--workdir", default="lanp_demo", help="folder for the demo's files (default ./lanp_demo)")
    parser.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--progress", action="store_true", help="show progress bars")


def run(args) -> int:
    from lanp.evaluation.demo import run_demo

    run_demo(args.workdir, epochs=args.epochs, seed=args.seed, device=args.device, quiet=not args.progress)
    return 0
