"""``lanp compare``: LANP, its ablations and baselines end to end on one train / test split.

Every method runs over ``seeds`` seeds (0, 1, ...). Methods of two kinds:

- pseudo-label methods (the LANP ablations of :mod:`lanp.method.ablations`, and ``c2fpl``): training
  pseudo-labels and weights -> a labels file -> :func:`lanp.model.train.train` with one shared
  :class:`lanp.model.train.TrainConfig` (same detector, epochs, lr, batch; the seed varies) -> the test
  set scored by :func:`lanp.model.score.score_features`;
- scorers (``lbr-spr``, ``trivial-ends``, ``iforest``, :mod:`lanp.evaluation.baselines`): score the test
  snippets themselves (``lbr-spr`` trains its autoencoder for the same number of epochs).

Test metrics: frame-level ROC-AUC and AP pooled over all test frames (:func:`lanp.evaluation.metrics.evaluate`),
mean +/- std over seeds. With training ground truth, the precision and recall of each method's
training pseudo-labels over frames (the paper's Table 2; the GT's length rule of lanp.evaluation.metrics). For a
scorer without its own labels (``trivial-ends``, ``iforest``) the pseudo-labels are LANP's rule
(video score std, N_nor, ratio r) applied to the negated training scores; ``lbr-spr``'s are the
snippets its self-paced refinement excluded at the end.

Nothing is selected on the test set: no epoch, no threshold, no hyper-parameter; the test ground
truth is read only to compute the metrics. The whole training and test features are held in memory.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from lanp.config_file import current_config
from lanp.method import labels as L
from lanp.method.ablations import ABLATIONS
from lanp.method.registry import METHOD_DESCRIPTIONS, METHOD_RECIPES, method_recipe
from lanp.runners.memory import label_arrays
from lanp.data.io import FeatureFile, write_h5
from lanp.kernels import InputError
from lanp.method.options import PropagateConfig

BASELINES = ("c2fpl", "lbr-spr", "trivial-ends", "iforest")
CEILINGS = ("oracle",)
REFINED = {"lanp-refine": "lanp", "cross-video-refine": "cross-video"}     # method -> the recipe it refines
FUSED = {"lanp-tri-prior-fused": "lanp-tri-prior"}        # method -> the recipe whose detector is fused
VARIANTS = tuple(m for m in METHOD_RECIPES if m not in ABLATIONS)     # beyond the paper (issue 15)
RECIPE_METHODS = tuple(ABLATIONS) + VARIANTS
METHODS = RECIPE_METHODS + tuple(REFINED) + tuple(FUSED) + BASELINES + CEILINGS
DESCRIPTIONS = {
    "lanp": "LANP: normality prior, W = Wf*Wt, propagation, loss re-weighting",
    "lanp-random-seeds": "ablation: random seed snippets (same count, seeded)",
    "lanp-data-driven-seeds": "ablation: data-driven seeds (least local contrast)",
    "lanp-temporal-only": "ablation: temporal similarity Wt only",
    "lanp-feature-only": "ablation: feature similarity Wf only",
    "lanp-direct": "ablation: direct comparison with the seeds, no propagation",
    "lanp-no-reweight": "ablation: loss re-weighting off (w = 1)",
    "c2fpl": "C2FPL-style: GMM over video norm statistics + top window, same detector",
    "lbr-spr": "LBR-SPR-style: feature-level self-paced autoencoder, reconstruction error",
    "trivial-ends": "trivial: distance to the mean of the first and last snippets",
    "iforest": "trivial: isolation forest over all training snippets",
    "oracle": "ceiling: the same detector trained on the true training snippet labels (weights 1)",
    **METHOD_DESCRIPTIONS,
    "lanp-refine": "lanp, then self-paced refinement: re-label from the detector's training scores, retrain",
    "cross-video-refine": "cross-video, then self-paced refinement: re-label from the detector's training scores",
    "lanp-tri-prior-fused": "the tri prior's detector, its test score fused with an isolation forest's "
                            "(mean of their CDFs over training snippets; lanp score --fuse-forest)",
}


@dataclass
class CompareConfig:
    methods: Sequence[str] = METHODS
    seeds: int = 3
    first_seed: int = 0           # seeds first_seed .. first_seed + seeds - 1 (fresh world draws for a check)
    epochs: int = 300
    lr: float = 1e-4
    propagate: PropagateConfig = field(default_factory=lambda: PropagateConfig(preset="paper"))
    device: str = "cpu"
    frames_per_snippet: int = 16
    c2fpl_window: float = 0.15
    lbr_drop_fraction: float = 0.2
    torch_threads: int = 1        # the detector is small: one intra-op thread is fastest, and far
                                  # faster when other processes share the cores (34 s vs 130 s measured)

    def check(self):
        if isinstance(self.torch_threads, bool) or int(self.torch_threads) != self.torch_threads or self.torch_threads < 1:
            raise InputError(f"torch_threads={self.torch_threads!r} is invalid: it must be an integer >= 1")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise InputError(f"unknown method(s) {', '.join(map(repr, unknown))}: choose from {', '.join(METHODS)}")
        if not self.methods:
            raise InputError("no method to compare")
        if int(self.seeds) < 1:
            raise InputError(f"seeds={self.seeds!r} is invalid: it must be >= 1")
        if int(self.epochs) < 1:
            raise InputError(f"epochs={self.epochs!r} is invalid: it must be >= 1")
        if isinstance(self.first_seed, bool) or int(self.first_seed) != self.first_seed or not 0 <= self.first_seed < 2 ** 31:
            raise InputError(f"first_seed={self.first_seed!r} is invalid: it must be an integer in [0, 2**31)")
        if int(self.seeds) > 10_000:
            raise InputError(f"seeds={self.seeds!r} is invalid: at most 10000 seeds per method")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr={self.lr!r} is invalid: it must be a finite number > 0")
        if int(self.frames_per_snippet) != self.frames_per_snippet or not 1 <= self.frames_per_snippet <= 1_000_000:
            raise InputError(f"frames_per_snippet={self.frames_per_snippet!r} is invalid: it must be an integer "
                             f"in [1, 1000000]")
        from lanp.model.train import resolve_device
        resolve_device(self.device)


def _by_video(values, offsets, ids) -> Dict[str, np.ndarray]:
    return {vid: np.asarray(values[offsets[v]:offsets[v + 1]]) for v, vid in enumerate(ids)}


def pseudo_label_quality(pseudo: np.ndarray, offsets, ids, gt, fps: int = 16) -> dict:
    """Frame-level precision and recall of snippet pseudo-labels against ground truth."""
    from lanp.evaluation.metrics import pooled

    rows, _ = pooled(_by_video(pseudo.astype(np.float64), offsets, ids), gt, fps, max_mismatch=None)
    p = np.concatenate([r[1] for r in rows]) > 0.5
    y = np.concatenate([r[2] for r in rows]) > 0
    tp = float(np.sum(p & y))
    return {"precision": tp / p.sum() if p.sum() else None, "recall": tp / y.sum() if y.sum() else None}


def labels_from_scores(scores: np.ndarray, offsets, config: PropagateConfig):
    """LANP's labelling rule on the normality -scores (for scorers without pseudo-labels):
    (pseudo-labels (N,), video scores std (V,), video_abnormal (V,))."""
    z = -np.asarray(scores, dtype=np.float64)
    n_normal = L.resolve_n_normal(len(offsets) - 1, config.n_normal, config.normal_fraction)
    video_score = L.video_std(z, offsets)
    abnormal = L.split_videos(video_score, n_normal)
    return L.pseudo_labels(z, offsets, abnormal, config.abnormal_ratio), video_score, abnormal


def snippet_labels_from_gt(gt, offsets, ids, fps: int = 16):
    """(snippet labels (N,) uint8, video labels (V,) uint8) from frame-level ground truth: a snippet
    is abnormal when any of its ``fps`` frames is (snippets past the last frame repeat it)."""
    from lanp.data.groundtruth import match_videos

    match = match_videos(list(ids), gt, "training ground truth")
    out = np.zeros(int(offsets[-1]), dtype=np.uint8)
    for v, vid in enumerate(ids):
        frames = np.asarray(gt[match[vid]]) > 0
        n = int(offsets[v + 1] - offsets[v])
        if frames.size == 0:
            continue
        frames = np.concatenate([frames, np.repeat(frames[-1:], max(0, n * fps - frames.size))])[:n * fps]
        out[offsets[v]:offsets[v + 1]] = frames.reshape(n, fps).any(axis=1)
    return out, np.maximum.reduceat(out, np.asarray(offsets[:-1], dtype=np.int64)).astype(np.uint8)


def _train_and_score(train_path, test_path, work: Path, name: str, seed: int, pseudo, weight,
                     train_offsets, train_ids, config: CompareConfig, also_train: bool = False):
    """Train the detector on (pseudo, weight) and score the test file (and, with ``also_train``,
    the training file too: returns (test scores, training scores))."""
    from lanp.model.score import score_features
    from lanp.model.train import TrainConfig, load_checkpoint, train

    work.mkdir(parents=True, exist_ok=True)
    labels_path, model_path = work / f"{name}.seed{seed}.labels.h5", work / f"{name}.seed{seed}.pt"
    write_h5(labels_path, {"pseudo_label": pseudo.astype(np.uint8), "weight": weight.astype(np.float32),
                           "offsets": train_offsets, "video_ids": train_ids}, {"method": name, "seed": seed})
    train(train_path, labels_path, model_path, TrainConfig(epochs=config.epochs, lr=config.lr, seed=seed),
          device=config.device, quiet=True)
    model, _ = load_checkpoint(model_path, config.device)
    with FeatureFile(test_path) as ff:
        test_scores = score_features(model, ff, config.device)
    if not also_train:
        return test_scores
    with FeatureFile(train_path) as ff:
        return test_scores, score_features(model, ff, config.device)


REFINE_ROUNDS = 2          # retrainings after the first (a training-only stop may end it sooner)
REFINE_STOP = 0.01         # stop when fewer than 1 % of the training snippets change label


def refined(name: str, seed: int, data: dict, config: CompareConfig, work: Path, labels, ratio: float) -> dict:
    """Self-paced refinement of a recipe's labels, on training data only.

    Round 0 trains on the recipe's pseudo-labels. Each later round re-labels the training snippets
    from the detector's own training scores s: the videos the recipe called abnormal keep their
    floor(r L) highest-s snippets as pseudo-abnormal (``ratio``: the recipe's r), and every weight
    becomes w = exp(-|s - y_hat|), so the snippets the detector disputes most count least (the
    suspicious ones are dropped gradually, as in self-paced learning). It stops after
    REFINE_ROUNDS retrainings, or sooner when fewer than REFINE_STOP of the labels change. The test
    scores are the last round's; nothing looks at the test set before then."""
    from lanp.method import labels as L

    _, otr, idtr = data["train"]
    pseudo, weight = labels.pseudo_label, labels.weight
    rounds = 0
    for rounds in range(REFINE_ROUNDS + 1):
        test_scores, train_scores = _train_and_score(data["train_path"], data["test_path"], work, f"{name}.r{rounds}",
                                                     seed, pseudo, weight, otr, idtr, config, also_train=True)
        if rounds == REFINE_ROUNDS:
            break
        new = L.pseudo_labels(-train_scores.astype(np.float64), otr, labels.video_abnormal, ratio)
        change = float(np.mean(new != pseudo))
        pseudo, weight = new, np.exp(-np.abs(train_scores - new)).astype(np.float32)
        if change < REFINE_STOP:
            test_scores = _train_and_score(data["train_path"], data["test_path"], work, f"{name}.r{rounds + 1}",
                                           seed, pseudo, weight, otr, idtr, config)
            break
    return {"test_scores": test_scores, "pseudo": pseudo, "video_score": labels.video_score,
            "video_abnormal": labels.video_abnormal, "refine_rounds": rounds}


def run_method(name: str, seed: int, data: dict, config: CompareConfig, work: Path, cache: dict) -> dict:
    """One method, one seed: {'test_scores', 'pseudo' (or None), 'video_score' and 'video_abnormal'
    (the training split it made, or None)}."""
    pc = config.propagate
    xtr, otr, idtr = data["train"]
    xte, ote, _ = data["test"]
    none = {"video_score": None, "video_abnormal": None}
    if name in REFINED:
        recipe = method_recipe(REFINED[name], pc, seed)
        key = (REFINED[name], None)
        if key not in cache:
            cache[key] = label_arrays(recipe, xtr, otr, idtr, data["train_path"])
        return refined(name, seed, data, config, work, cache[key], recipe.abnormal_ratio)
    if name in FUSED:                  # the recipe's detector (trained as that method is), fused at test time
        from lanp.model.fusion import fit_fusion
        base = FUSED[name]
        if (base, None) not in cache:
            cache[(base, None)] = label_arrays(method_recipe(base, pc, seed), xtr, otr, idtr, data["train_path"])
        labels = cache[(base, None)]
        test_scores, train_scores = _train_and_score(data["train_path"], data["test_path"], work, name, seed,
                                                     labels.pseudo_label, labels.weight, otr, idtr, config,
                                                     also_train=True)
        fused, _ = fit_fusion(xtr, otr, train_scores).fuse(test_scores, xte)
        return {"test_scores": fused, "pseudo": labels.pseudo_label, "video_score": labels.video_score,
                "video_abnormal": labels.video_abnormal}
    if name in RECIPE_METHODS:
        key = (name, seed if name in ABLATIONS and ABLATIONS[name].seeds == "random" else None)
        if key not in cache:
            cache[key] = label_arrays(method_recipe(name, pc, seed), xtr, otr, idtr, data["train_path"])
        labels = cache[key]
        scores = _train_and_score(data["train_path"], data["test_path"], work, name, seed, labels.pseudo_label,
                                  labels.weight, otr, idtr, config)
        return {"test_scores": scores, "pseudo": labels.pseudo_label, "video_score": labels.video_score,
                "video_abnormal": labels.video_abnormal}
    if name == "oracle":
        if data.get("train_snippet_labels") is None:
            raise InputError("method 'oracle' needs the training ground truth (--train-gt)")
        truth = data["train_snippet_labels"]
        scores = _train_and_score(data["train_path"], data["test_path"], work, name, seed, truth,
                                  np.ones(truth.shape[0], np.float32), otr, idtr, config)
        return {"test_scores": scores, "pseudo": truth, **none}
    if name == "c2fpl":
        from lanp.evaluation.baselines import c2fpl_labels
        pseudo, abnormal = c2fpl_labels(xtr, otr, config.c2fpl_window, seed=seed)
        scores = _train_and_score(data["train_path"], data["test_path"], work, name, seed, pseudo,
                                  np.ones(pseudo.shape[0], np.float32), otr, idtr, config)
        return {"test_scores": scores, "pseudo": pseudo, "video_score": None, "video_abnormal": abnormal}
    if name == "lbr-spr":
        from lanp.evaluation.baselines import lbr_spr
        scores, pseudo, _ = lbr_spr(xtr, xte, epochs=config.epochs, drop_fraction=config.lbr_drop_fraction,
                                    seed=seed, device=config.device)
        return {"test_scores": scores, "pseudo": pseudo, **none}
    if name == "trivial-ends":
        from lanp.evaluation.baselines import ends_distance
        normalize = pc.normalize == "l2"
        pseudo, video_score, abnormal = labels_from_scores(ends_distance(xtr, otr, normalize), otr, pc)
        return {"test_scores": ends_distance(xte, ote, normalize), "pseudo": pseudo,
                "video_score": video_score, "video_abnormal": abnormal}
    if name == "iforest":
        from lanp.evaluation.baselines import isolation_forest
        train_scores, test_scores = isolation_forest(xtr, xte, seed=seed)
        pseudo, video_score, abnormal = labels_from_scores(train_scores, otr, pc)
        return {"test_scores": test_scores, "pseudo": pseudo, "video_score": video_score, "video_abnormal": abnormal}
    raise InputError(f"unknown method {name!r}: choose from {', '.join(METHODS)}")


def split_quality(video_score, video_abnormal, truth, lengths) -> dict:
    """How a method's training split matches the true video labels: accuracy of video_abnormal,
    the video AUC of its score, and Spearman(length, score)."""
    from lanp.evaluation.metrics import roc_auc
    from lanp.method.diagnostics import length_score_spearman

    out = {"split_accuracy": None, "split_video_auc": None, "length_score_spearman": None}
    truth = np.asarray(truth) > 0
    if video_abnormal is not None:
        out["split_accuracy"] = float(np.mean(np.asarray(video_abnormal, dtype=bool) == truth))
    if video_score is not None:
        out["split_video_auc"] = roc_auc(truth.astype(np.float64), np.asarray(video_score, dtype=np.float64))
        rho = length_score_spearman(lengths, video_score)
        out["length_score_spearman"] = None if math.isnan(rho) else rho
    return out


RUN_KEYS = ("auc", "ap", "pr_auc", "auc_abnormal", "precision", "recall", "split_accuracy", "split_video_auc",
            "length_score_spearman")


def evaluate_methods(data: dict, gt_test, gt_train, config: CompareConfig, work: Path, log, seeds=None) -> list:
    """Every method of ``config`` over ``seeds`` (default 0..config.seeds-1) on one split: one row
    per method with its runs and mean +/- std of every metric (test frame AUC/AP, pseudo-label
    precision/recall and the split's quality where the training truth is known)."""
    from lanp.evaluation.metrics import evaluate

    import torch

    torch.set_num_threads(max(1, int(config.torch_threads)))      # every method's torch work
    fps = config.frames_per_snippet
    _, ote, idte = data["test"]
    _, otr, idtr = data["train"]
    cache: dict = {}
    rows = []
    methods = list(dict.fromkeys(config.methods))
    seeds = list(range(int(config.first_seed), int(config.first_seed) + int(config.seeds))) if seeds is None else list(seeds)
    for k, name in enumerate(methods, 1):
        runs = []
        for seed in seeds:
            t0 = time.perf_counter()
            r = run_method(name, seed, data, config, work, cache)
            metrics = evaluate(_by_video(r["test_scores"], ote, idte), gt_test, fps=fps)
            run = {"seed": seed, "auc": metrics["auc"], "ap": metrics["ap"], "pr_auc": metrics.get("pr_auc"),
                   "auc_abnormal": metrics["auc_abnormal"]}
            if gt_train is not None and r["pseudo"] is not None:
                run.update(pseudo_label_quality(r["pseudo"], otr, idtr, gt_train, fps))
            if data.get("train_video_labels") is not None:
                run.update(split_quality(r["video_score"], r["video_abnormal"], data["train_video_labels"],
                                         np.diff(otr)))
            run["seconds"] = time.perf_counter() - t0
            runs.append(run)
            pr = (f", pseudo-labels P {run['precision']:.3f} R {run['recall']:.3f}"
                  if run.get("precision") is not None and run.get("recall") is not None else "")
            log(f"[{k}/{len(methods)}] {name} seed {seed}: AUC {run['auc']:.4f} AP {run['ap']:.4f}{pr} "
                f"({run['seconds']:.1f} s)")
        row = {"method": name, "description": DESCRIPTIONS[name], "runs": runs}
        for key in RUN_KEYS:
            row[key] = _stats([r.get(key) for r in runs])
        rows.append(row)
    return rows


def read_split(path):
    with FeatureFile(path) as ff:
        x = np.concatenate([ff.read(v0, v1)[0] for v0, v1 in ff.chunks()], axis=0)
        bad = ~np.isfinite(x)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            v = int(np.searchsorted(ff.offsets, row, side="right")) - 1
            raise InputError(f"features file {ff.path!r}: video {ff.video_ids[v]!r}, snippet "
                             f"{row - int(ff.offsets[v])} holds {float(x[row, col])} (feature {col}): every "
                             f"feature must be finite")
        return x, ff.offsets.copy(), list(ff.video_ids)


def _stats(values: List[Optional[float]]) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None}
    return {"mean": float(np.mean(v)), "std": float(np.std(v))}


def run_compare(train_path, test_path, test_gt, out_dir, config: Optional[CompareConfig] = None,
                train_gt=None, test_gt_list=None, train_gt_list=None, log=None) -> dict:
    """Run every method over every seed; write compare.json, compare.md and compare.png to
    ``out_dir`` (models and labels under ``out_dir/runs``). Returns the JSON payload."""
    from lanp.data.groundtruth import read_groundtruth

    from lanp.outputs import check_output

    config = config or CompareConfig()
    config.check()
    log = log or (lambda message: print(message, flush=True))
    out = check_output(out_dir, "--out", folder=True)
    t_all = time.perf_counter()
    data = {"train": read_split(train_path), "test": read_split(test_path),
            "train_path": str(train_path), "test_path": str(test_path)}
    fps = config.frames_per_snippet
    if data["train"][0].shape[1] != data["test"][0].shape[1]:
        raise InputError(f"training features {str(train_path)!r} have D = {data['train'][0].shape[1]} but test "
                         f"features {str(test_path)!r} have D = {data['test'][0].shape[1]}: one detector cannot "
                         f"score both")
    L.resolve_n_normal(len(data["train"][2]), config.propagate.n_normal, config.propagate.normal_fraction)

    def gt_of(path, split, list_path):
        x, o, ids = data[split]
        lengths = {vid: int(o[v + 1] - o[v]) for v, vid in enumerate(ids)}
        return read_groundtruth(path, lengths=lengths, list_path=list_path, fps=fps)

    gt_test = gt_of(test_gt, "test", test_gt_list)
    frames = np.concatenate([np.asarray(g).ravel() for g in gt_test.values()]) if gt_test else np.zeros(0)
    if frames.size == 0 or frames.min() == frames.max():
        raise InputError(f"test ground truth {str(test_gt)!r} has only one class "
                         f"({'no frames' if frames.size == 0 else ('all abnormal' if frames.min() > 0 else 'all normal')}): "
                         f"frame AUC and AP are undefined; give the test set's ground truth with normal and "
                         f"abnormal frames")
    gt_train = gt_of(train_gt, "train", train_gt_list) if train_gt is not None else None
    if gt_train is not None:
        _, otr, idtr = data["train"]
        data["train_snippet_labels"], data["train_video_labels"] = snippet_labels_from_gt(gt_train, otr, idtr, fps)
    elif "oracle" in config.methods:
        raise InputError("method 'oracle' needs the training ground truth: give --train-gt (or drop oracle "
                         "from --methods)")
    out.mkdir(parents=True, exist_ok=True)
    rows = evaluate_methods(data, gt_test, gt_train, config, out / "runs", log)
    payload = {
        "train": str(train_path), "test": str(test_path), "test_gt": str(test_gt),
        "train_gt": None if train_gt is None else str(train_gt),
        "settings": settings(config), "train_videos": len(data["train"][2]), "test_videos": len(data["test"][2]),
        "seconds": time.perf_counter() - t_all, "rows": rows, "lanp_config": current_config(),
    }
    write_outputs(payload, out, markdown_table(payload), bar_chart)
    log(f"wrote {out / 'compare.md'}, {out / 'compare.json'}, {out / 'compare.png'} "
        f"({payload['seconds']:.1f} s in all)")
    return payload


def settings(config: CompareConfig) -> dict:
    return {"seeds": int(config.seeds), "first_seed": int(config.first_seed), "epochs": int(config.epochs), "lr": config.lr,
            "device": config.device, "frames_per_snippet": config.frames_per_snippet,
            "c2fpl_window": config.c2fpl_window, "lbr_drop_fraction": config.lbr_drop_fraction,
            "torch_threads": config.torch_threads,
            "propagate": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config.propagate).items()}}


def write_outputs(payload: dict, out: Path, markdown: str, chart) -> None:
    """compare.json, compare.md and compare.png, written atomically and together: renamed into place
    only when all three were written (a failed chart leaves the previous json and md as they were)."""
    from lanp.outputs import atomic_file, transaction

    with transaction():
        with atomic_file(out / "compare.json") as f:
            f.write(json.dumps(payload, indent=2).encode("utf-8"))
        with atomic_file(out / "compare.md") as f:
            f.write(markdown.encode("utf-8"))
        chart(payload, out / "compare.png")


def _pm(s: dict, digits: int = 4, scale: float = 1.0) -> str:
    if s["mean"] is None:
        return "-"
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def oracle_gap(rows) -> dict:
    """method -> oracle mean AUC minus the method's mean AUC (empty without an oracle row)."""
    oracle = next((r for r in rows if r["method"] == "oracle" and r["auc"]["mean"] is not None), None)
    if oracle is None:
        return {}
    return {r["method"]: oracle["auc"]["mean"] - r["auc"]["mean"] for r in rows if r["auc"]["mean"] is not None}


def method_table(rows, with_pr: bool, with_split: bool) -> list:
    """Markdown lines of one table: a row per method, mean ± std over seeds."""
    gap = oracle_gap(rows)
    head = "| method | test AUC (%) | test AP (%) |"
    sep = "|---|---|---|"
    if gap:
        head, sep = head + " gap to oracle (points) |", sep + "---|"
    if with_pr:
        head, sep = head + " pseudo-label precision (%) | pseudo-label recall (%) |", sep + "---|---|"
    if with_split:
        head, sep = head + " split accuracy (%) | split video AUC (%) | Spearman(length, score) |", sep + "---|---|---|"
    lines = [head, sep]
    for row in rows:
        line = f"| {row['method']} | {_pm(row['auc'], 2, 100)} | {_pm(row['ap'], 2, 100)} |"
        if gap:
            line += f" {gap[row['method']] * 100:+.2f} |" if row["method"] in gap else " - |"
        if with_pr:
            line += f" {_pm(row['precision'], 2, 100)} | {_pm(row['recall'], 2, 100)} |"
        if with_split:
            line += (f" {_pm(row['split_accuracy'], 2, 100)} | {_pm(row['split_video_auc'], 2, 100)} |"
                     f" {_pm(row['length_score_spearman'], 2)} |")
        lines.append(line)
    return lines


def markdown_table(payload: dict) -> str:
    s = payload["settings"]
    with_pr = payload["train_gt"] is not None
    lines = ["# lanp compare", "",
             f"train `{payload['train']}` ({payload['train_videos']} videos), test `{payload['test']}` "
             f"({payload['test_videos']} videos); {s['seeds']} seed(s), {s['epochs']} epochs, lr {s['lr']:g}; "
             f"mean ± std over seeds; frame-level metrics pooled over all test frames.", "",
             *method_table(payload["rows"], with_pr, with_pr)]
    lines += ["", *(f"- `{row['method']}`: {row['description']}" for row in payload["rows"]), ""]
    return "\n".join(lines)


def bar_chart(payload: dict, path) -> Path:
    """Test AUC mean +/- std per method (Agg)."""
    from lanp.evaluation.plots import _figure, _save

    rows = payload["rows"]
    names = [r["method"] for r in rows]
    mean = [r["auc"]["mean"] or 0.0 for r in rows]
    std = [r["auc"]["std"] or 0.0 for r in rows]
    fig = _figure((max(5.0, 0.7 * len(rows) + 2), 3.8))
    ax = fig.add_subplot(1, 1, 1)
    colors = ["tab:blue" if n == "lanp" else "tab:cyan" if n.startswith("lanp") else "tab:grey" for n in names]
    ax.bar(np.arange(len(rows)), mean, yerr=std, color=colors, capsize=3)
    ax.axhline(0.5, color="black", lw=0.8, ls="--", label="chance")
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    low = min([m - s for m, s in zip(mean, std)] + [0.5])
    ax.set_ylim(max(0.0, math.floor(low * 10) / 10 - 0.05), 1.0)
    ax.set_ylabel("test frame-level AUC")
    ax.set_title(f"lanp compare ({payload['settings']['seeds']} seeds, {payload['settings']['epochs']} epochs)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
