"""Write a seeded synthetic dataset (packed features) and its frame-level ground truth (gt.h5).

Videos start and end normal; abnormal videos carry interior anomaly segments. Datasets drawn with
the same --world-seed and different --seed share scenes and anomaly types (a train/test pair).
"""
from __future__ import annotations

import argparse


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output features file (.h5)")
    p.add_argument("--gt", help="output ground-truth file (.h5); default <out stem>.gt.h5")
    p.add_argument("--videos", type=int, default=120)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--min-length", type=int, default=24)
    p.add_argument("--max-length", type=int, default=160)
    p.add_argument("--abnormal-fraction", type=float, default=0.4)
    p.add_argument("--seed", type=int, default=0, help="seed of the videos")
    p.add_argument("--world-seed", type=int, default=0, help="seed of the scenes and anomaly types")


def run(args) -> int:
    from pathlib import Path

    from lanp.data.synth import make_synthetic, write_synthetic
    data = make_synthetic(num_videos=args.videos, dim=args.dim, min_length=args.min_length,
                          max_length=args.max_length, abnormal_fraction=args.abnormal_fraction,
                          seed=args.seed, world_seed=args.world_seed)
    out = Path(args.out)
    gt = Path(args.gt) if args.gt else out.with_name(out.stem + ".gt.h5")
    write_synthetic(data, out, gt)
    print(f"wrote {out} ({len(data.video_ids)} videos, {int(data.offsets[-1])} snippets, "
          f"{int(data.video_labels.sum())} abnormal) and {gt}")
    return 0
