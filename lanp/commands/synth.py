"""Write a seeded synthetic dataset (packed features) and its frame-level ground truth (gt.h5).

--world picks one of lanp's synthetic worlds (lanp.data.worlds, docs/worlds.md). The default,
easy, is the original lanp synth data: videos start and end normal, abnormal videos carry strong
interior anomaly segments; datasets drawn with the same --world-seed and different --seed share
scenes and anomaly types (a train/test pair). The other worlds are calibrated on real I3D features
and hard the ways real data is; --out gets their training split and --test-out their test split
(one world, different videos).

Examples:
  lanp synth --out demo.h5
  lanp synth --world subtle --out train.h5 --test-out test.h5
  lanp synth --world scenes --label-length abnormal-longer --out train.h5 --set prior_violation=0.4
"""
from __future__ import annotations

import argparse

from lanp.data.worlds import LABEL_LENGTH, WORLDS


def _world_list() -> str:
    width = max(map(len, WORLDS))
    return "worlds:\n" + "\n".join(f"  {name:<{width}}  {spec.description}" for name, spec in WORLDS.items())


def configure(p: argparse.ArgumentParser) -> None:
    p.epilog = _world_list()
    p.add_argument("--out", required=True, help="output features file (.h5); the training split for worlds "
                                                "other than easy")
    p.add_argument("--gt", help="output ground-truth file (.h5); default <out stem>.gt.h5")
    p.add_argument("--world", default="easy", choices=list(WORLDS),
                   help="synthetic world (default easy, the original lanp synth data)")
    p.add_argument("--test-out", help="also write the world's test split here (features .h5)")
    p.add_argument("--test-gt", help="ground truth of the test split; default <test-out stem>.gt.h5")
    p.add_argument("--videos", type=int, help="videos in --out (default 120 for easy, else the world's)")
    p.add_argument("--test-videos", type=int, help="videos in --test-out (default 60 for easy, else the world's)")
    p.add_argument("--dim", type=int, help="feature size D (default 64 for easy, else the world's: 256)")
    p.add_argument("--min-length", type=int, help="shortest video in snippets (default: the world's; easy 24)")
    p.add_argument("--max-length", type=int, help="longest video in snippets (default: the world's; easy 160)")
    p.add_argument("--abnormal-fraction", type=float, help="share of abnormal videos in [0, 1] "
                                                          "(default: the world's, 0.4)")
    p.add_argument("--label-length", choices=LABEL_LENGTH,
                   help="label-vs-length relation (worlds other than easy; default: the world's)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="replace any field of the world's spec (repeatable), e.g. --set prior_violation=0.4; "
                        "see docs/worlds.md for the fields")
    p.add_argument("--seed", type=int, default=0, help="seed of the videos")
    p.add_argument("--world-seed", type=int, default=0, help="seed of the scenes and anomaly types")


def _overrides(args) -> dict:
    """World-spec fields from the options, with errors that name the option."""
    import ast

    from lanp.kernels import InputError

    out = {}
    for option, name in (("--min-length", "min_length"), ("--max-length", "max_length"),
                         ("--abnormal-fraction", "abnormal_fraction"), ("--label-length", "label_length")):
        value = getattr(args, name)
        if value is not None:
            out[name] = value
    if args.abnormal_fraction is not None and not 0.0 <= args.abnormal_fraction <= 1.0:
        raise InputError(f"--abnormal-fraction {args.abnormal_fraction!r} is invalid: it must be in [0, 1]")
    for option, name in (("--min-length", "min_length"), ("--max-length", "max_length")):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"{option} {value!r} is invalid: it must be an integer >= 1")
    if args.label_length is not None and args.world == "easy":
        raise InputError(f"--label-length is not a parameter of the easy world: choose --world from "
                         f"{', '.join(w for w in WORLDS if w != 'easy')}")
    for item in args.set:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--set {item!r} is invalid: it must be FIELD=VALUE, e.g. prior_violation=0.4")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        out[name.strip()] = value
    for option, value, low in (("--videos", args.videos, 1), ("--test-videos", args.test_videos, 1),
                               ("--dim", args.dim, 2), ("--seed", args.seed, 0), ("--world-seed", args.world_seed, 0)):
        if value is not None and value < low:
            raise InputError(f"{option} {value!r} is invalid: it must be an integer >= {low}")
    return out


def run(args) -> int:
    from pathlib import Path

    from lanp import config_file
    from lanp.data import worlds as W
    from lanp.data.synth import write_synthetic

    overrides = _overrides(args)
    spec = W.world_spec(args.world, **overrides)
    out = Path(args.out)
    gt = Path(args.gt) if args.gt else out.with_name(out.stem + ".gt.h5")
    test_out = Path(args.test_out) if args.test_out else None
    test_gt = (Path(args.test_gt) if args.test_gt else test_out.with_name(test_out.stem + ".gt.h5")) if test_out else None
    from lanp.outputs import check_outputs         # before any work: no directory, device, or one output twice
    check_outputs([("--out", out), ("--gt", gt)] + ([("--test-out", test_out), ("--test-gt", test_gt)] if test_out else []))
    videos = spec.train_videos if args.videos is None else args.videos
    test_videos = spec.test_videos if args.test_videos is None else args.test_videos
    dim = spec.dim if args.dim is None else args.dim
    written = []
    if isinstance(spec, W.EasySpec):
        # the original lanp synth data, bit for bit: one dataset per seed, the test set at seed + 1
        data = W.easy_dataset(spec, videos, dim, args.seed, args.world_seed, "video")
        write_synthetic(data, out, gt, attrs=config_file.output_attrs())
        written.append((out, gt, data))
        if test_out is not None:
            test = W.easy_dataset(spec, test_videos, dim, args.seed + 1, args.world_seed, "test")
            write_synthetic(test, test_out, test_gt, attrs=config_file.output_attrs())
            written.append((test_out, test_gt, test))
    else:
        data = W.generate(args.world, seed=args.seed, world_seed=args.world_seed, train_videos=videos,
                          test_videos=test_videos, dim=dim, **overrides)
        attrs = {"world": args.world, "seed": args.seed, "world_seed": args.world_seed, **config_file.output_attrs()}
        W.write_split(data.train, out, gt, {**attrs, "split": "train"})
        written.append((out, gt, data.train))
        if test_out is not None:
            W.write_split(data.test, test_out, test_gt, {**attrs, "split": "test"})
            written.append((test_out, test_gt, data.test))
    for features, truth, d in written:
        print(f"wrote {features} ({len(d.video_ids)} videos, {int(d.offsets[-1])} snippets, "
              f"{int(d.video_labels.sum())} abnormal) and {truth}")
    return 0
