"""Compare LANP, its ablations (the paper's Tables 2-4) and baselines end to end on one split.

Each method runs over --seeds seeds with the same detector and training budget; writes
compare.md, compare.json and compare.png (test frame-level AUC mean +/- std, AP, and with
--train-gt the precision and recall of each method's training pseudo-labels). Nothing is selected
on the test set. Methods: lanp, lanp-random-seeds, lanp-data-driven-seeds, lanp-temporal-only,
lanp-feature-only, lanp-direct, lanp-no-reweight, c2fpl, lbr-spr, trivial-ends, iforest
(baselines are lanp's feature-level re-implementations; see lanp.evaluation.baselines).

With --worlds, every method runs on fresh draws of lanp's synthetic worlds (lanp synth --world):
one table per world, a summary with each method's mean rank and gap to the oracle, and a
methods x worlds heat map.

Examples:
  lanp compare --train train.h5 --test test.h5 --gt test.gt.h5 --train-gt train.gt.h5 --epochs 50 --lr 1e-3
  lanp compare --worlds scenes,subtle,length-biased-long --seeds 2 --epochs 50 --lr 1e-3
"""
from __future__ import annotations


def configure(parser):
    from lanp.evaluation.compare import METHODS

    parser.add_argument("--train", help="training feature file (packed or grouped HDF5)")
    parser.add_argument("--test", help="test feature file")
    parser.add_argument("--gt", help="test ground truth (any format lanp evaluate reads)")
    w = parser.add_argument_group("synthetic worlds (instead of --train/--test/--gt)")
    w.add_argument("--worlds", type=_world_list, default=None,
                   help="comma-separated world names (see lanp synth --help), e.g. scenes,subtle")
    w.add_argument("--train-videos", type=int, default=None, help="training videos per draw (default: the world's)")
    w.add_argument("--test-videos", type=int, default=None, help="test videos per draw (default: the world's)")
    w.add_argument("--dim", type=int, default=None, help="feature size D (default: the world's)")
    parser.add_argument("--gt-list", help="the .list of an RTFM concatenated test gt .npy")
    parser.add_argument("--train-gt", help="training ground truth: adds pseudo-label precision / recall "
                                           "(never used for training)")
    parser.add_argument("--train-gt-list", help="the .list of an RTFM concatenated training gt .npy")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), metavar="METHOD",
                        help=f"methods to run (default all): {', '.join(METHODS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method: 0..N-1 (default 3)")
    parser.add_argument("--epochs", type=int, default=300, help="training epochs of every method (default 300)")
    parser.add_argument("--lr", type=float, default=1e-4, help="detector learning rate (default 1e-4, the paper)")
    parser.add_argument("--frames-per-snippet", type=int, default=16)
    parser.add_argument("--normal-fraction", type=float, default=None,
                        help="share of training videos labelled normal (default 0.5)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads for the (small) detectors (default 1: fastest here)")
    parser.add_argument("--out", default="compare", help="output folder (default ./compare)")


def _world_list(text: str):
    return [w.strip() for w in text.split(",") if w.strip()]


def run(args) -> int:
    from lanp.evaluation.compare import CompareConfig, run_compare
    from lanp.kernels import InputError
    from lanp.method.options import PropagateConfig

    config = CompareConfig(methods=args.methods, seeds=args.seeds, epochs=args.epochs, lr=args.lr,
                           device=args.device, frames_per_snippet=args.frames_per_snippet,
                           torch_threads=args.torch_threads,
                           propagate=PropagateConfig(preset="paper", normal_fraction=args.normal_fraction))
    if args.worlds is not None:
        if args.train or args.test or args.gt or args.train_gt:
            raise InputError("--worlds draws its own data: give either --worlds or --train/--test/--gt, not both")
        from lanp.evaluation.worlds_compare import markdown, run_worlds
        payload = run_worlds(args.worlds, args.out, config, train_videos=args.train_videos,
                             test_videos=args.test_videos, dim=args.dim)
        print(markdown(payload))
        return 0
    missing = [f"--{k}" for k in ("train", "test", "gt") if getattr(args, k) is None]
    if missing:
        raise InputError(f"{', '.join(missing)} missing: give --train, --test and --gt (or --worlds)")
    payload = run_compare(args.train, args.test, args.gt, args.out, config, train_gt=args.train_gt,
                          test_gt_list=args.gt_list, train_gt_list=args.train_gt_list)
    from lanp.evaluation.compare import markdown_table
    print(markdown_table(payload))
    return 0
