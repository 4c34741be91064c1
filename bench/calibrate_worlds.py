"""Calibrate lanp's synthetic worlds on real I3D features, and measure how hard each world is.

Two tables, printed as markdown, and with ``--write docs/worlds.md`` written into that file between its
``<!-- calibration:begin/end -->`` and ``<!-- difficulty:begin/end -->`` markers (and the worlds'
parameters, from the specs, between ``<!-- parameters:begin/end -->``):

1. calibration: the statistics of ``lanp.data.feature_stats`` on the real ShanghaiTech I3D sample
   (``../shared/data/shanghaitech_i3d_sample``: 7 normal videos of one camera, crops averaged) and on
   each realistic world's comparable sample (``calibration_sample``: up to 7 normal training videos of
   the most common camera, cut to 49 snippets; seed 0, the world's defaults), with the documented
   range of each statistic, and the spread of the worlds over ``--seeds`` seeds at D = 128 and 256.
   Without the real sample this part is skipped (a message, exit status 0).
2. difficulty (``--difficulty``, minutes on 2 cores): per world and seed, with lanp's own functions --
   the oracle (the detector trained on the true training snippet labels, weights 1, 50 epochs at
   lr 1e-3 like ``lanp demo``), the trivial distance to the ends (``ends_distance``), LANP (its
   pseudo-labels and weights, the same detector budget), all as test frame-level ROC-AUC
   (``evaluate``); and the training-side view of propagation: the video AUC of std(z), Spearman(length,
   std(z)), the AUC of -z over the snippets of the abnormal training videos, and the precision and
   recall of LANP's pseudo-labels (r = 40 %, N_nor = half the videos).

Usage::

    python bench/calibrate_worlds.py [--real PATH] [--seeds 6] [--difficulty] [--difficulty-seeds 0,1]
                                     [--write docs/worlds.md]
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "shanghaitech_i3d_sample"
SHOWN = ["mean", "zero_fraction", "small_fraction", "dim_mean_q10", "dim_mean_q50", "dim_mean_q90", "dim_std_q50",
         "dim_cv_q50", "pca_1", "pca_10", "pca_50", "acf_1", "acf_2", "acf_3", "acf_4", "acf_5", "acf_6", "acf_7",
         "acf_8", "adjacent_sqdist", "within_sqdist", "between_sqdist", "between_within_ratio", "other_scene_sqdist"]


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "n/a"
    return f"{v:.3f}"


def calibration_table(real_root: Path, seeds: int) -> str:
    from lanp.data.feature_stats import STAT_RANGES, calibration_sample, feature_statistics, load_shanghaitech_sample
    from lanp.data.worlds import WORLDS, generate

    _, real = load_shanghaitech_sample(real_root)
    worlds = [w for w in WORLDS if w != "easy"]
    cols = {"real sample": feature_statistics(real)}
    for w in worlds:
        cols[w] = feature_statistics(*calibration_sample(generate(w, seed=0).train))
    spread = {k: [] for k in SHOWN}
    for w in worlds:
        for seed in range(seeds):
            for dim in (128, 256):
                s = feature_statistics(*calibration_sample(generate(w, seed=seed, train_videos=120, test_videos=5,
                                                                    dim=dim).train))
                for k in SHOWN:
                    spread[k].append(s[k])
    r = cols["real sample"]
    lines = [f"Real: {r['videos']} videos, {r['snippets']} snippets, D = {r['dim']}. Worlds: seed 0, defaults "
             f"(D = 256), the comparable sample of `calibration_sample` (7 normal videos of one camera, <= 49 "
             f"snippets). Spread: min - max over the {len(worlds)} worlds x seeds 0-{seeds - 1} x D = 128, 256, "
             f"with 120 training videos (so other samples than the seed-0 columns).", "",
             "| statistic | documented range | " + " | ".join(cols) + " | worlds' spread |",
             "|---|---|" + "---|" * len(cols) + "---|"]
    for k in SHOWN:
        rng = f"[{STAT_RANGES[k][0]:g}, {STAT_RANGES[k][1]:g}]" if k in STAT_RANGES else "-"
        v = np.array(spread[k], dtype=float)
        lines.append(f"| {k} | {rng} | " + " | ".join(_fmt(c[k]) for c in cols.values())
                     + f" | {_fmt(np.nanmin(v))} - {_fmt(np.nanmax(v))} |")
    lines += ["", "Meanings: " + "; ".join(f"`{k}` {STAT_RANGES[k][2]}" for k in SHOWN if k in STAT_RANGES)
              + "; `other_scene_sqdist` mean squared distance to snippets of normal videos of other scenes "
                "(the real sample has one scene only).", ""]
    return "\n".join(lines)


def _lanp_labels(x, offsets):
    """LANP's pseudo-labels and loss weights (paper defaults), as ``lanp propagate`` computes them."""
    try:
        from lanp.method.options import PropagateConfig
    except ImportError:
        from lanp.runners.file import PropagateConfig
    from lanp.method.ablations import ABLATIONS, ablation_labels
    r = ablation_labels(x, offsets, PropagateConfig(), ABLATIONS["lanp"])
    return r.pseudo_label, r.weight


def _train_and_score(work: Path, name: str, split, test_path: Path, labels, weights, seed: int) -> np.ndarray:
    from lanp.data.io import FeatureFile, write_h5
    from lanp.model.score import score_features
    from lanp.model.train import TrainConfig, load_checkpoint, train

    labels_path, model_path = work / f"{name}.labels.h5", work / f"{name}.pt"
    write_h5(labels_path, {"pseudo_label": np.asarray(labels, np.uint8), "weight": np.asarray(weights, np.float32),
                           "offsets": split.offsets, "video_ids": split.video_ids})
    train(work / "train.h5", labels_path, model_path, TrainConfig(epochs=50, lr=1e-3, seed=seed), quiet=True)
    model, _ = load_checkpoint(model_path)
    with FeatureFile(test_path) as ff:
        return score_features(model, ff)


def difficulty(world: str, seed: int) -> dict:
    """The issue's done-when numbers for one world and seed (see the module docstring)."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from lanp.data.worlds import generate, write_split
    from lanp.evaluation.baselines import ends_distance
    from lanp.evaluation.metrics import evaluate
    from lanp.kernels import propagate
    from lanp.method import labels as L

    t0 = time.perf_counter()
    data = generate(world, seed=seed)
    tr, te = data.train, data.test
    gt = {vid: np.repeat(te.snippet_labels[te.offsets[v]:te.offsets[v + 1]], 16) for v, vid in enumerate(te.video_ids)}
    auc = lambda s: evaluate({vid: s[te.offsets[v]:te.offsets[v + 1]] for v, vid in enumerate(te.video_ids)}, gt)["auc"]
    out = {"world": world, "seed": seed, "dim": data.dim, "train_videos": len(tr.video_ids),
           "test_videos": len(te.video_ids), "abnormal_snippets": float(tr.snippet_labels.mean())}
    z = propagate(tr.features, tr.offsets, alpha=0.99, sigma=0.1, normalize=True, warn=False).z.astype(np.float64)
    score = (getattr(L, "video_std", None) or L.video_scores)(z, tr.offsets)     # std(z) per video
    out["video_auc_std_z"] = float(roc_auc_score(tr.video_labels, score))
    out["spearman_length_std_z"] = float(spearmanr(np.diff(tr.offsets), score)[0])
    abnormal = np.repeat(tr.video_labels.astype(bool), np.diff(tr.offsets))
    out["auc_neg_z"] = float(roc_auc_score(tr.snippet_labels[abnormal], -z[abnormal]))
    pseudo, weights = _lanp_labels(tr.features, tr.offsets)
    tp = float(np.sum((pseudo == 1) & (tr.snippet_labels == 1)))
    out["pseudo_precision"] = tp / max(float(pseudo.sum()), 1.0)
    out["pseudo_recall"] = tp / max(float(tr.snippet_labels.sum()), 1.0)
    out["trivial_ends"] = auc(ends_distance(te.features, te.offsets, True))
    with tempfile.TemporaryDirectory(prefix=f"worlds-{world}-") as tmp:
        work = Path(tmp)
        write_split(tr, work / "train.h5")
        write_split(te, work / "test.h5")
        out["oracle"] = auc(_train_and_score(work, "oracle", tr, work / "test.h5", tr.snippet_labels,
                                             np.ones(tr.snippet_labels.shape[0]), seed))
        out["lanp"] = auc(_train_and_score(work, "lanp", tr, work / "test.h5", pseudo, weights, seed))
    out["seconds"] = time.perf_counter() - t0
    return out


def difficulty_table(rows) -> str:
    keys = [("oracle", "oracle AUC"), ("trivial_ends", "trivial-ends AUC"), ("gap", "oracle - ends"),
            ("lanp", "LANP AUC"), ("video_auc_std_z", "video AUC of std(z)"),
            ("spearman_length_std_z", "Spearman(length, std z)"), ("auc_neg_z", "AUC of -z (abnormal train videos)"),
            ("pseudo_precision", "pseudo-label P"), ("pseudo_recall", "pseudo-label R")]
    lines = ["| world | seed | " + " | ".join(k[1] for k in keys) + " |", "|---|---|" + "---|" * len(keys)]
    for r in rows:
        r = {**r, "gap": r["oracle"] - r["trivial_ends"]}
        lines.append(f"| {r['world']} | {r['seed']} | " + " | ".join(_fmt(r[k]) for k, _ in keys) + " |")
    return "\n".join(lines) + "\n"


def parameters_table() -> str:
    """Every field of the world specs: its value in each world and its meaning (from the specs)."""
    from dataclasses import fields

    from lanp.data.worlds import WORLDS, EasySpec, WorldSpec

    realistic = {name: spec for name, spec in WORLDS.items() if isinstance(spec, WorldSpec)}
    show = lambda v: "`" + (", ".join(f"{x:g}" for x in v) if isinstance(v, tuple) else
                            f"{v:g}" if isinstance(v, float) else str(v)) + "`"
    lines = ["Realistic worlds (`WorldSpec`; its defaults are `scenes`):", "",
             "| field | " + " | ".join(realistic) + " | meaning |", "|---|" + "---|" * (len(realistic) + 1)]
    for f in fields(WorldSpec):
        if f.name == "description":
            continue
        values = [getattr(spec, f.name) for spec in realistic.values()]
        lines.append(f"| `{f.name}` | " + " | ".join(show(v) for v in values) + f" | {f.metadata['doc']} |")
    lines += ["", "`easy` (`EasySpec`, the arguments of `lanp.data.synth.make_synthetic`):", "",
              "| field | easy | meaning |", "|---|---|---|"]
    for f in fields(EasySpec):
        if f.name != "description":
            lines.append(f"| `{f.name}` | {show(getattr(WORLDS['easy'], f.name))} | {f.metadata['doc']} |")
    return "\n".join(lines) + "\n"


def write_section(path: Path, tag: str, text: str) -> None:
    doc = path.read_text()
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path} has no {begin} ... {end} section")
    path.write_text(pattern.sub(lambda _: f"{begin}\n{text}{end}", doc))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", type=Path, default=REAL, help=f"the real sample folder (default {REAL})")
    p.add_argument("--seeds", type=int, default=6, help="seeds for the worlds' spread (default 6)")
    p.add_argument("--difficulty", action="store_true", help="also train the oracle and LANP on every world")
    p.add_argument("--difficulty-seeds", default="0", help="comma-separated seeds for --difficulty (default 0)")
    p.add_argument("--worlds", help="comma-separated worlds for --difficulty (default all)")
    p.add_argument("--write", type=Path, help="write the tables into this markdown file's marked sections")
    args = p.parse_args(argv)
    if args.write:
        write_section(args.write, "parameters", parameters_table())

    if (args.real / "sample.list").is_file():
        table = calibration_table(args.real, args.seeds)
        print(table)
        if args.write:
            write_section(args.write, "calibration", table)
    else:
        print(f"skipped the calibration: the real sample {args.real} is not here (it lives in ../shared)")
    if args.difficulty:
        from lanp.data.worlds import WORLDS
        worlds = args.worlds.split(",") if args.worlds else list(WORLDS)
        rows = []
        for world in worlds:
            for seed in (int(s) for s in args.difficulty_seeds.split(",")):
                rows.append(difficulty(world, seed))
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
        table = difficulty_table(rows)
        print(table)
        if args.write:
            write_section(args.write, "difficulty", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
