"""Compare LANP, its ablations (the paper's Tables 2-4) and baselines end to end on one split.

Each method runs over --seeds seeds with the same detector and training budget; writes
compare.md, compare.json and compare.png (test frame-level AUC mean +/- std, AP, and with
--train-gt the precision and recall of each method's training pseudo-labels). Nothing is selected
on the test set. Methods: lanp, lanp-random-seeds, lanp-data-driven-seeds, lanp-temporal-only,
lanp-feature-only, lanp-direct, lanp-no-reweight, c2fpl, lbr-spr, trivial-ends, iforest
(baselines are lanp's feature-level re-implementations; see lanp.evaluation.baselines), and the
variants beyond the paper, among them lanp-tri-prior (the default) and lanp-tri-prior-fused
(--methods lists every one; docs/compare.md says what each changes).

With --worlds, every method runs on fresh draws of lanp's synthetic worlds (lanp synth --world):
one table per world, a summary with each method's mean rank and gap to the oracle, and a
methods x worlds heat map.

With --shots, the few-shot comparison (lanp.evaluation.fewshot_compare): K abnormal + K normal
training videos labelled per draw (from the training split and its ground truth only; the same
draws for every method), rows lanp, lanp-fewshot, lanp-hard-overrides, mil, span-classifier,
prototype; frame AUC/AP, AUC on abnormal videos, video AUC, mean ± std over draws, every draw in
compare.json, a paired comparison, and the episodic 2-way K-shot protocol on the test split. With
--source-world (or --source-train/--source-gt) the labels come from another world's training split
and lanp-fewshot runs with --source-features and each --adapt.

Examples:
  lanp compare --train train.h5 --test test.h5 --gt test.gt.h5 --train-gt train.gt.h5 --epochs 50 --lr 1e-3
  lanp compare --worlds scenes,subtle,length-biased-long --seeds 2 --epochs 50 --lr 1e-3
  lanp compare --worlds subtle --shots 1,5 --draws 3 --label-kind span --seeds 1 --epochs 50 --lr 1e-3
  lanp compare --source-world scenes --worlds subtle --shots 5 --draws 2 --adapt none,coral
"""
from __future__ import annotations


def configure(parser):
    from lanp.evaluation.compare import METHODS
    from lanp.evaluation.fewshot_compare import FEWSHOT_BASES, FEWSHOT_METHODS

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
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help=f"methods to run (default all): {', '.join(METHODS)}; with --shots: "
                             f"{', '.join(FEWSHOT_METHODS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method: 0..N-1 (default 3)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="start the seeds here: first..first+N-1 (default 0); with --worlds, fresh world draws "
                             "never looked at while choosing a method")
    f = parser.add_argument_group("few-shot (issue 16)")
    f.add_argument("--shots", type=_int_list, default=None,
                   help="comma-separated K: K abnormal + K normal labelled training videos per draw, e.g. 1,2,5,10 "
                        "(0 = the few-shot path with no labels, equal to lanp)")
    f.add_argument("--draws", type=int, default=10, help="label draws per K and seed (default 10)")
    f.add_argument("--label-kind", choices=("video", "span"), default="span",
                   help="abnormal videos labelled as whole videos or by their true anomalous spans (default span)")
    f.add_argument("--labels-file", default=None,
                   help="one fixed labelling (labels CSV or UCF-Crime annotation subset) instead of draws (files only)")
    f.add_argument("--source-world", default=None, help="cross-domain: draw the labels from this world's training split")
    f.add_argument("--source-train", default=None, help="cross-domain on files: the source training features")
    f.add_argument("--source-gt", default=None, help="cross-domain on files: the source training ground truth")
    f.add_argument("--adapt", type=_world_list, default=["none", "coral"],
                   help="cross-domain feature adaptations to report, comma-separated from none,coral,whiten "
                        "(default none,coral)")
    f.add_argument("--preset", default=None, choices=FEWSHOT_BASES,
                   help="preset of every lanp row's propagate (default tail-adjusted: the in-video recipe the "
                        "two-class few-shot lanp builds on; tri-prior (the default's) or dual-prior: labelled "
                        "snippets fixed and the rest ranked; --shots 0 equals the preset)")
    f.add_argument("--human-weight", type=float, default=1.0, help="lanp train --human-weight (default 1)")
    f.add_argument("--mil-weight", type=float, default=0.0, help="lanp train --mil-weight (default 0: off)")
    f.add_argument("--episodes", type=int, default=100, help="episodes of the episodic protocol per K (default 100)")
    f.add_argument("--queries", type=int, default=5, help="queries per class and episode (default 5)")
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


def _int_list(text: str):
    import argparse

    try:
        return [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 1,2,5,10") from None


FEWSHOT_ONLY = ("labels_file", "source_world", "source_train", "source_gt", "preset")


def run_fewshot(args) -> int:
    from lanp.evaluation.fewshot_compare import FEWSHOT_METHODS, FewShotConfig, markdown, run_fewshot_files, \
        run_fewshot_worlds
    from lanp.kernels import InputError

    if args.first_seed != 0:
        raise InputError(f"--first-seed {args.first_seed}: the few-shot comparison (--shots, --labels-file) runs "
                         f"seeds 0..N-1 only; drop --first-seed")
    config = FewShotConfig(methods=args.methods or list(FEWSHOT_METHODS), shots=args.shots or [1], draws=args.draws,
                           label_kind=args.label_kind, seeds=args.seeds, epochs=args.epochs, lr=args.lr,
                           normal_fraction=args.normal_fraction, preset=args.preset or "tail-adjusted",
                           human_weight=args.human_weight,
                           mil_weight=args.mil_weight, adapt=args.adapt, episodes=args.episodes,
                           queries=args.queries, device=args.device, frames_per_snippet=args.frames_per_snippet,
                           torch_threads=args.torch_threads)
    if args.worlds is not None:
        if args.train or args.test or args.gt or args.train_gt or args.labels_file or args.source_train:
            raise InputError("--worlds draws its own data: give either --worlds (and --source-world) or "
                             "--train/--test/--gt (and --labels-file, --source-train), not both")
        payload = run_fewshot_worlds(args.worlds, args.out, config, source_world=args.source_world,
                                     train_videos=args.train_videos, test_videos=args.test_videos, dim=args.dim)
    else:
        if args.source_world:
            raise InputError("--source-world needs --worlds (the target worlds); on files give --source-train "
                             "and --source-gt")
        missing = [f"--{k}" for k in ("train", "test", "gt") if getattr(args, k) is None]
        if missing:
            raise InputError(f"{', '.join(missing)} missing: give --train, --test and --gt (or --worlds)")
        if (args.source_train is None) != (args.source_gt is None) and args.labels_file is None:
            raise InputError("--source-train and --source-gt go together (or give --labels-file naming source videos)")
        payload = run_fewshot_files(args.train, args.test, args.gt, args.train_gt, args.out, config,
                                    labels_file=args.labels_file, source_train=args.source_train,
                                    source_gt=args.source_gt, test_gt_list=args.gt_list,
                                    train_gt_list=args.train_gt_list)
    print(markdown(payload))
    return 0


def run(args) -> int:
    from lanp.evaluation.compare import METHODS, CompareConfig, run_compare
    from lanp.kernels import InputError
    from lanp.method.options import PropagateConfig

    if args.shots is not None or args.labels_file is not None:
        return run_fewshot(args)
    given = [f"--{k.replace('_', '-')}" for k in FEWSHOT_ONLY if getattr(args, k) is not None]
    if given:
        raise InputError(f"{', '.join(given)} belong to the few-shot comparison: give --shots too")
    config = CompareConfig(methods=args.methods or list(METHODS), seeds=args.seeds, epochs=args.epochs, lr=args.lr,
                           first_seed=args.first_seed, device=args.device, frames_per_snippet=args.frames_per_snippet,
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
