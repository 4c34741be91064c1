"""Train the LANP detector on propagated pseudo-labels (weighted BCE, paper eq. 9).

A labels file from a few-shot run (lanp propagate --labels-file) carries human labels; they are used
without further options: every batch holds labelled videos, --human-weight scales the loss weight of
the human-labelled snippets, --mil-weight adds a multiple-instance ranking term on the labelled
abnormal vs normal videos (details: docs/fewshot_training.md).

Example:
  lanp train --features train.h5 --labels train.labels.h5 --out model.pt --epochs 300 --device cpu
"""
from __future__ import annotations

import time


def configure(parser):
    parser.add_argument("--features", required=True, help="training feature file (packed or grouped HDF5)")
    parser.add_argument("--labels", required=True, help="labels file written by lanp propagate for these features")
    parser.add_argument("--out", required=True, help="checkpoint to write (written atomically)")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--batch-videos", type=int, default=30, help="videos per mini-batch (default 30)")
    parser.add_argument("--snippets", type=int, default=32, help="snippets sampled per video (default 32)")
    parser.add_argument("--lr", type=float, default=1e-4, help="RMSprop learning rate (default 1e-4)")
    parser.add_argument("--momentum", type=float, default=0.6, help="RMSprop momentum (default 0.6)")
    parser.add_argument("--random-offsets", action="store_true",
                        help="draw a random snippet inside each of the 32 segments every epoch")
    parser.add_argument("--val-fraction", type=float, default=0.0,
                        help="hold out this fraction of the TRAINING videos; keep the epoch with the lowest "
                             "validation loss on their pseudo-labels (default 0: keep the last epoch)")
    parser.add_argument("--human-weight", type=float, default=1.0,
                        help="multiplies the loss weight of human-labelled snippets (label_source 1) of a "
                             "few-shot labels file (default 1; >= 0)")
    parser.add_argument("--mil-weight", type=float, default=0.0,
                        help="weight of a multiple-instance ranking hinge max(0, 1 - max s(abnormal) + max "
                             "s(normal)) over the batch's human abnormal x normal video pairs (default 0: off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--max-memory-gb", type=float, default=4.0,
                        help="load features into memory up to this size, else stream them from the file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from lanp.model.train import TrainConfig, train

    config = TrainConfig(epochs=args.epochs, batch_videos=args.batch_videos, snippets=args.snippets,
                         lr=args.lr, momentum=args.momentum, random_offsets=args.random_offsets,
                         seed=args.seed, val_fraction=args.val_fraction, human_weight=args.human_weight,
                         mil_weight=args.mil_weight)
    t0 = time.perf_counter()
    s = train(args.features, args.labels, args.out, config, device=args.device, quiet=args.quiet,
              max_memory_gb=args.max_memory_gb)
    held = f" ({s['val_videos']} held out for validation)" if s["val_videos"] else ""
    h = s["human_videos_trained"]
    if h["abnormal"] or h["normal"]:
        held += (f"; human labels: {h['abnormal']} abnormal + {h['normal']} normal videos (one of each kind in "
                 f"every batch), "
                 f"{s['human_snippets']} snippets at weight x{config.human_weight:g}"
                 f"{f', MIL weight {config.mil_weight:g}' if config.mil_weight else ''}")
    elif config.mil_weight or config.human_weight != 1.0:
        held += "; note: the labels file holds no human labels, so --human-weight and --mil-weight do nothing"
    print(f"trained {config.epochs} epochs on {s['train_videos']} videos{held} in "
          f"{time.perf_counter() - t0:.1f} s: loss {s['first_loss']:.4f} -> {s['final_loss']:.4f}; "
          f"kept epoch {s['epoch']} ({s['selected']}); wrote {s['out']}")
    return 0
