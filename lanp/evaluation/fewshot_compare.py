"""``lanp compare --shots``: few-shot LANP against its baselines on paired label draws (issue 16, item 6).

For each world (or the given files) and seed s, the labels are drawn from the TRAINING split and its
ground truth only (:mod:`lanp.evaluation.fewshot_draws`: K abnormal + K normal videos per draw,
nested over K, seed s), and every method gets the same draws (paired). Rows:

- ``lanp``: no labels (``lanp propagate --preset P`` then ``lanp train``), P = ``preset``
  (tail-adjusted by default, or paper: the in-video recipes the two-class few-shot recipe builds
  on; or tri-prior, the default's, or dual-prior, whose few-shot forms fix the labelled snippets and
  rank the rest; 0 shots equals P exactly); one run per seed, paired with every draw of that seed;
- ``lanp-fewshot``: the draw written as a labels CSV, ``lanp propagate --labels-file`` (the few-shot
  recipe: two classes, prototype transfer), then ``lanp train`` on the labels file it wrote (the
  human labels it carries, ``--human-weight``, ``--mil-weight``);
- ``lanp-hard-overrides``: plain lanp's pseudo-labels with the human labels written over them and
  no second solve (:func:`hard_overrides`), trained the same way: what propagating the labels adds;
- ``mil``, ``span-classifier``, ``prototype``: the baselines of
  :mod:`lanp.evaluation.fewshot_baselines` on the same labelled videos (``mil`` with as many
  optimizer steps as the lanp rows' detector, :func:`_baseline_epochs`; its own Adagrad lr).

Metrics per (method, shots, draw, seed), from :func:`lanp.evaluation.metrics.evaluate`: test frame
AUC and AP pooled over all test frames, frame AUC on the abnormal test videos only, video AUC (each
test video's max snippet score); with the training truth, each labels file's snippet-level
pseudo-label precision / recall (also on the videos without a human label) and split accuracy
(:func:`label_quality`, never used for anything but the report). Tables: mean ± std over draws and seeds; every run's values in
compare.json; a paired comparison of ``lanp-fewshot`` with each other row (mean ± std of the
per-draw differences, wins / ties / losses). The episodic protocol (:mod:`lanp.evaluation.episodes`)
runs on the TEST split for every K > 0: the pooled features themselves, and each method's video
score (its max snippet score), accuracy mean ± std over all episodes of all draws.

Shots 0 is the few-shot path with an empty labels file: it must equal ``lanp`` exactly.

Cross-domain (``source``): the labels are drawn from the SOURCE world's (or file's) training split;
``lanp-fewshot-<adapt>`` runs ``lanp propagate --features target --labels-file source.csv
--source-features source --adapt <adapt>`` on the target for each adaptation (none = the
no-adaptation control); the baselines train on the labelled source videos and score the target test
split; there is no hard-override row (the labels name no target video). The source world is drawn with the target's world seed (the same feature map and anomaly
classes, its own spec), its training ids prefixed ``source_``.

Nothing is selected on the test set: the test ground truth computes the metrics only, and a labelled
video that is also a test video is refused.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from lanp.kernels import InputError
from lanp.method.options import RANKING_PRESETS

FEWSHOT_METHODS = ("lanp", "lanp-fewshot", "lanp-hard-overrides", "mil", "span-classifier", "prototype")
BASELINE_FUNCTIONS = {"mil": "mil_sultani", "span-classifier": "span_classifier", "prototype": "nearest_prototype"}
ADAPTS = ("none", "coral", "whiten")
FEWSHOT_BASES = ("tail-adjusted", "paper", *RANKING_PRESETS)   # presets few-shot lanp builds on (fewshot, dualprior)
METRICS = ("auc", "ap", "auc_abnormal", "video_auc")
QUALITY = ("pseudo_precision", "pseudo_recall", "unlabelled_precision", "unlabelled_recall", "split_accuracy")
DESCRIPTIONS = {
    "lanp": "no labels: the default preset, propagate + train",
    "lanp-fewshot": "the few-shot recipe (lanp propagate --labels-file) + lanp train with the human labels",
    "lanp-hard-overrides": "plain lanp pseudo-labels with the human labels written over them, no second solve",
    "mil": "Sultani-style MIL ranking on the labelled videos (fewshot_baselines.mil_sultani)",
    "span-classifier": "a classifier on the labelled spans vs labelled-normal snippets",
    "prototype": "distance to prototypes of labelled anomalies vs labelled normals",
}


@dataclass
class FewShotConfig:
    """Options of a few-shot comparison (module docstring). ``seeds``: data and training seeds
    0..seeds-1; ``epochs``/``lr``: every detector's budget; ``adapt``: the cross-domain variants."""
    methods: Sequence[str] = FEWSHOT_METHODS
    shots: Sequence[int] = (1, 2, 5, 10)
    draws: int = 10
    label_kind: str = "span"
    seeds: int = 1
    epochs: int = 300
    lr: float = 1e-4
    normal_fraction: Optional[float] = None
    preset: str = "tail-adjusted"
    human_weight: float = 1.0
    mil_weight: float = 0.0
    adapt: Sequence[str] = ("none", "coral")
    episodes: int = 100
    queries: int = 5
    device: str = "cpu"
    frames_per_snippet: int = 16
    torch_threads: int = 1

    def check(self) -> "FewShotConfig":
        self.methods = list(dict.fromkeys(self.methods))
        unknown = [m for m in self.methods if m not in FEWSHOT_METHODS]
        if unknown or not self.methods:
            raise InputError(f"few-shot method(s) {', '.join(map(repr, unknown)) or '(none)'}: choose from "
                             f"{', '.join(FEWSHOT_METHODS)}")
        self.shots = sorted({int(k) for k in self.shots})
        if not self.shots or self.shots[0] < 0 or any(int(k) != k for k in self.shots):
            raise InputError(f"--shots {self.shots!r} is invalid: give integers >= 0, e.g. 1,2,5,10")
        if self.preset not in FEWSHOT_BASES:
            raise InputError(f"--preset {self.preset!r} is invalid for the few-shot comparison: choose "
                             f"{', '.join(FEWSHOT_BASES)} (the recipes few-shot lanp builds on)")
        if self.label_kind not in ("video", "span"):
            raise InputError(f"--label-kind {self.label_kind!r} is invalid: choose video or span")
        for name, low in (("draws", 1), ("seeds", 1), ("epochs", 1), ("episodes", 1), ("queries", 1),
                          ("torch_threads", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < low:
                raise InputError(f"{name}={value!r} is invalid: it must be an integer >= {low}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr={self.lr!r} is invalid: it must be a finite number > 0")
        self.adapt = list(dict.fromkeys(self.adapt))
        bad = [a for a in self.adapt if a not in ADAPTS]
        if bad or not self.adapt:
            raise InputError(f"--adapt {','.join(bad) or '(none)'} is invalid: choose from {', '.join(ADAPTS)}")
        return self


# -- running lanp's own commands ----------------------------------------------------------------

def run_command(name: str, argv: Sequence[str]) -> None:
    """Run ``lanp <name> argv`` in this process through the command's own parser and run function
    (the CLI path, without re-installing the signal handlers of the running command); its stdout
    is swallowed. A failure raises (InputError as the command raised it)."""
    from lanp import cli, config_file, outputs

    parser = cli._parser_for(name, prog=f"lanp {name}")
    args = config_file.parse_args(parser, list(argv), tuple(cli.COMMANDS))
    with contextlib.redirect_stdout(io.StringIO()):
        with outputs.transaction() if name in cli.TRANSACTIONAL else contextlib.nullcontext():
            code = int(args._run(args) or 0)
    if code:
        raise RuntimeError(f"lanp {name} {' '.join(map(str, argv))} ended with exit code {code}")


def _propagate(features, out, config: FewShotConfig, extra=()) -> Path:
    argv = ["--features", str(features), "--out", str(out), "--preset", config.preset, "--quiet", *map(str, extra)]
    if config.normal_fraction is not None:
        argv += ["--normal-fraction", str(config.normal_fraction)]
    run_command("propagate", argv)
    return Path(out)


def _train_and_score(train_path, labels_path, test_path, model_path, seed: int, config: FewShotConfig) -> np.ndarray:
    """``lanp train`` on a labels file, then the test snippets' scores (N_test,)."""
    from lanp.data.io import FeatureFile
    from lanp.model.score import score_features
    from lanp.model.train import load_checkpoint

    run_command("train", ["--features", str(train_path), "--labels", str(labels_path), "--out", str(model_path),
                          "--epochs", str(config.epochs), "--lr", repr(float(config.lr)), "--seed", str(seed),
                          "--device", config.device, "--human-weight", repr(float(config.human_weight)),
                          "--mil-weight", repr(float(config.mil_weight)), "--quiet"])
    model, _ = load_checkpoint(model_path, config.device)
    with FeatureFile(test_path) as ff:
        return score_features(model, ff, config.device)


def hard_overrides(labels_path, human, out_path) -> Path:
    """Plain lanp's labels file with the human labels written over it, no second solve.

    Labelled normal videos: every snippet pseudo-label 0, weight 1, label_source 1. Labelled spans:
    pseudo-label 1, weight 1, label_source 1. The other snippets of a labelled abnormal video keep
    lanp's pseudo-label and weight (label_source 0), except when lanp's split called the video
    normal: then its floor(r L) lowest-normality snippets become pseudo-abnormal (lanp's own rule for
    an abnormal video, r = the file's abnormal_ratio), weights kept. Unlabelled videos unchanged.
    Writes pseudo_label, weight, offsets, video_ids, label_source, video_human, video_abnormal (lanp's
    split with the labelled videos at their label) and the attribute human_video_ids (what ``lanp
    train`` reads)."""
    from lanp.data.io import read_h5, write_h5
    from lanp.method import labels as L

    data, attrs = read_h5(labels_path, "labels")
    ids, offsets = list(data["video_ids"]), np.asarray(data["offsets"], np.int64)
    pseudo = np.asarray(data["pseudo_label"], np.uint8).copy()
    weight = np.asarray(data["weight"], np.float32).copy()
    snippet, video = human.snippet_arrays(ids, offsets)
    source = np.zeros(pseudo.shape[0], np.uint8)
    flip = (video == 1) & ~np.asarray(data["video_abnormal"], bool)
    if flip.any():
        ratio = float(attrs.get("abnormal_ratio", 0.4))
        forced = L.pseudo_labels(np.asarray(data["normality"], np.float64), offsets, flip, ratio)
        in_flip = np.repeat(flip, np.diff(offsets))
        pseudo[in_flip] = forced[in_flip]
    human_rows = snippet >= 0
    pseudo[human_rows] = snippet[human_rows].astype(np.uint8)
    weight[human_rows] = 1.0
    source[human_rows] = 1
    split = np.where(video >= 0, video == 1, np.asarray(data["video_abnormal"], bool)).astype(np.uint8)
    write_h5(out_path, {"pseudo_label": pseudo, "weight": weight, "offsets": offsets, "video_ids": ids,
                        "label_source": source, "video_human": video, "video_abnormal": split},
             {"method": "lanp-hard-overrides", "human_labels": str(human.source),
              "human_video_ids": json.dumps(list(human.kinds))})
    return Path(out_path)


def _check_disjoint(human, test_ids, test_path) -> None:
    from lanp.data.human_labels import check_disjoint

    check_disjoint(human, test_ids, test_path)


def label_quality(labels_path, truth: Optional[np.ndarray]) -> dict:
    """Snippet-level precision and recall of a labels file's training pseudo-labels against the
    true training snippet labels (N,), overall and on the videos without a human label
    (``video_human`` -1: the same snippets for every method of one draw), and the accuracy of its
    video split; {} without the truth."""
    from lanp.data.io import read_h5

    if truth is None:
        return {}
    data, _ = read_h5(labels_path, "labels")
    offsets = np.asarray(data["offsets"], np.int64)
    p = np.asarray(data["pseudo_label"]) > 0
    y = np.asarray(truth) > 0
    human = np.asarray(data.get("video_human", np.full(offsets.shape[0] - 1, -1, np.int8)))
    free = np.repeat(human < 0, np.diff(offsets))
    ratio = lambda a, b: float(a.sum() / b.sum()) if b.sum() else None        # noqa: E731
    out = {"pseudo_precision": ratio(p & y, p), "pseudo_recall": ratio(p & y, y),
           "unlabelled_precision": ratio(p & y & free, p & free), "unlabelled_recall": ratio(p & y & free, y & free)}
    if "video_abnormal" in data:
        video_truth = np.maximum.reduceat(y, offsets[:-1]) & (np.diff(offsets) > 0)
        out["split_accuracy"] = float(np.mean((np.asarray(data["video_abnormal"]) > 0) == video_truth))
    return out


def _baseline_epochs(name: str, human, train_videos: int, config: FewShotConfig) -> int:
    """The baselines' epochs: ``mil`` gets as many optimizer steps as the detector of the lanp rows
    (epochs x ceil(V_train / 30) batches of 30 videos; a MIL epoch is ceil(max(|A|, |B|) / 30)
    batches of the labelled bags), the others ``config.epochs`` (which they do not use)."""
    if name != "mil":
        return int(config.epochs)
    kinds = list(human.kinds.values())
    bags = max(kinds.count("abnormal_video"), kinds.count("normal_video"), 1)
    return int(config.epochs) * math.ceil(train_videos / 30) // math.ceil(bags / 30)


def _baseline(name: str):
    try:
        from lanp.evaluation import fewshot_baselines
    except ImportError:
        raise InputError(f"method {name!r} needs lanp.evaluation.fewshot_baselines, which this lanp lacks") from None
    return getattr(fewshot_baselines, BASELINE_FUNCTIONS[name])


# -- one split ----------------------------------------------------------------------------------

def _metrics(scores, data, gt_test, fps) -> dict:
    from lanp.evaluation.metrics import evaluate

    _, ote, idte = data["test"]
    by_video = {vid: np.asarray(scores[ote[v]:ote[v + 1]]) for v, vid in enumerate(idte)}
    m = evaluate(by_video, gt_test, fps=fps)
    return {k: m[k] for k in METRICS}


def _episodes(scores, data, test_video_labels, shots: Sequence[int], config: FewShotConfig, seed: int) -> dict:
    from lanp.evaluation.episodes import run_episodes

    _, ote, _ = data["test"]
    video_score = np.maximum.reduceat(np.asarray(scores, np.float64), ote[:-1])
    out = {}
    for k in shots:
        if k > 0:
            r = run_episodes(video_labels=test_video_labels, video_scores=video_score, shots=k,
                             queries=config.queries, episodes=config.episodes, seed=seed)
            out[str(k)] = r["accuracies"]
    return out


def run_split(data: dict, gt_test, draws: Dict[int, list], config: FewShotConfig, work: Path, seed: int, log,
              source: Optional[dict] = None) -> List[dict]:
    """Every method of ``config`` on one split at training seed ``seed``: one run dict per
    (method, shots, draw). ``draws``: shots -> labellings of the training split (of ``source``'s
    training split in cross-domain mode, whose dict is like ``data``)."""
    from lanp.evaluation.compare import snippet_labels_from_gt
    from lanp.evaluation.fewshot_draws import write_draw_csv

    import torch

    torch.set_num_threads(int(config.torch_threads))
    fps = config.frames_per_snippet
    work.mkdir(parents=True, exist_ok=True)
    _, ote, idte = data["test"]
    _, test_video_labels = snippet_labels_from_gt(gt_test, ote, idte, fps)
    for k, labellings in draws.items():
        for human in labellings:
            _check_disjoint(human, idte, data["test_path"])
    runs: List[dict] = []
    positive = [k for k in draws if k > 0]

    def record(method, shots, draw, scores, t0, **extra):
        run = {"method": method, "shots": shots, "draw": draw, "seed": seed, **_metrics(scores, data, gt_test, fps),
               "episodes": _episodes(scores, data, test_video_labels, [shots] if shots else positive, config, seed),
               "seconds": time.perf_counter() - t0, **extra}
        runs.append(run)
        log(f"  {method} shots {shots} draw {draw}: AUC {run['auc']:.4f} AP {run['ap']:.4f} "
            f"video AUC {run['video_auc']:.4f} ({run['seconds']:.1f} s)")
        return run

    t0 = time.perf_counter()
    plain = _propagate(data["train_path"], work / "lanp.labels.h5", config)
    truth = data.get("train_snippet_labels")
    if "lanp" in config.methods:
        record("lanp", 0, None, _train_and_score(data["train_path"], plain, data["test_path"], work / "lanp.pt",
                                                 seed, config), t0, **label_quality(plain, truth))
    fewshot_names = ([f"lanp-fewshot-{a}" for a in config.adapt] if source is not None else ["lanp-fewshot"])
    for k in sorted(draws):
        for d, human in enumerate(draws[k]):
            csv_path = work / f"labels.k{k}.d{d}.csv"
            write_draw_csv(csv_path, human)
            tag = f"k{k}.d{d}"
            if "lanp-fewshot" in config.methods:
                for name in fewshot_names:
                    t0 = time.perf_counter()
                    extra = ["--labels-file", csv_path]
                    if source is not None:
                        extra += ["--source-features", source["train_path"], "--adapt", name.rsplit("-", 1)[1]]
                    lab = _propagate(data["train_path"], work / f"{name}.{tag}.labels.h5", config, extra)
                    record(name, k, d, _train_and_score(data["train_path"], lab, data["test_path"],
                                                        work / f"{name}.{tag}.pt", seed, config), t0,
                           labelled=sorted(human.kinds), **label_quality(lab, truth))
            if k == 0:
                continue
            if "lanp-hard-overrides" in config.methods and source is None:
                t0 = time.perf_counter()
                lab = hard_overrides(plain, human, work / f"hard.{tag}.labels.h5")
                record("lanp-hard-overrides", k, d, _train_and_score(data["train_path"], lab, data["test_path"],
                                                                     work / f"hard.{tag}.pt", seed, config), t0,
                       labelled=sorted(human.kinds), **label_quality(lab, truth))
            base = source if source is not None else data
            xtr, otr, idtr = base["train"]
            for name in BASELINE_FUNCTIONS:
                if name in config.methods:
                    t0 = time.perf_counter()
                    device = {"device": config.device} if name == "mil" else {}
                    scores = _baseline(name)(xtr, otr, idtr, human, data["test"][0], seed=seed,
                                             epochs=_baseline_epochs(name, human, len(data["train"][2]), config),
                                             **device)
                    record(name, k, d, np.asarray(scores, np.float64), t0, labelled=sorted(human.kinds))
    return runs


# -- tables ---------------------------------------------------------------------------------------

def _stats(values) -> dict:
    v = [x for x in values if x is not None]
    return {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)} if v else {"mean": None, "std": None, "n": 0}


def summarize(runs: List[dict]) -> List[dict]:
    """One row per (method, shots): mean ± std over draws and seeds of every metric, and the
    episodic accuracy at that K pooled over all episodes of all its runs (``lanp``: one row per K
    of the episodes it ran, its metrics repeated)."""
    rows = []
    keys = list(dict.fromkeys((r["method"], r["shots"]) for r in runs))
    for method, shots in keys:
        part = [r for r in runs if r["method"] == method and r["shots"] == shots]
        row = {"method": method, "shots": shots, "runs": len(part)}
        for m in METRICS + QUALITY:
            row[m] = _stats([r.get(m) for r in part])
        row["episodes"] = {k: _stats([a for r in part for a in r["episodes"].get(k, [])])
                           for k in dict.fromkeys(k for r in part for k in r["episodes"])}
        rows.append(row)
    return rows


def paired(runs: List[dict], reference: str = "lanp-fewshot", metric: str = "auc") -> List[dict]:
    """``reference`` against every other method at every K > 0: the per-(seed, draw) differences
    reference - other (the no-label ``lanp`` run of a seed pairs with every draw of that seed),
    their mean ± std, and wins / ties / losses of the reference."""
    out = []
    ref_names = sorted({r["method"] for r in runs if r["method"].startswith(reference)})
    for ref_name in ref_names:
        ref = {(r["seed"], r["shots"], r["draw"]): r[metric] for r in runs if r["method"] == ref_name}
        for k in sorted({s for (_, s, _) in ref if s > 0}):
            for other in dict.fromkeys(r["method"] for r in runs):
                if other == ref_name:
                    continue
                diffs = []
                for (seed, shots, draw), value in ref.items():
                    if shots != k:
                        continue
                    match = [r[metric] for r in runs if r["method"] == other and r["seed"] == seed
                             and (r["shots"], r["draw"]) in ((k, draw), (0, None))]
                    if match and value is not None and match[0] is not None:
                        diffs.append(value - match[0])
                if diffs:
                    d = np.asarray(diffs)
                    out.append({"method": ref_name, "against": other, "shots": k, "metric": metric,
                                "mean_difference": float(d.mean()), "std_difference": float(d.std()),
                                "wins": int((d > 0).sum()), "ties": int((d == 0).sum()), "losses": int((d < 0).sum()),
                                "pairs": int(d.size), "differences": [float(x) for x in d]})
    return out


def _pm(s: dict, scale: float = 100.0, digits: int = 1) -> str:
    if not s or s.get("mean") is None:
        return "-"
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def tables(name: str, result: dict) -> List[str]:
    lines = [f"## {name}", "", "| method | shots | runs | frame AUC (%) | frame AP (%) | AUC abnormal videos (%) "
             "| video AUC (%) | pseudo-label P / R (%) | P / R unlabelled videos (%) | split acc. (%) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["table"]:
        pr = lambda a, b: "-" if r[a]["mean"] is None else f"{r[a]['mean'] * 100:.1f} / {r[b]['mean'] * 100:.1f}"  # noqa: E731
        lines.append(f"| {r['method']} | {r['shots']} | {r['runs']} | {_pm(r['auc'])} | {_pm(r['ap'])} | "
                     f"{_pm(r['auc_abnormal'])} | {_pm(r['video_auc'])} | {pr('pseudo_precision', 'pseudo_recall')} | "
                     f"{pr('unlabelled_precision', 'unlabelled_recall')} | {_pm(r['split_accuracy'])} |")
    if result["paired"]:
        lines += ["", "Paired, per (seed, draw): reference − other (points), wins / ties / losses of the reference.", "",
                  "| reference | against | shots | metric | mean ± std difference | W / T / L |", "|---|---|---|---|---|---|"]
        for p in result["paired"]:
            lines.append(f"| {p['method']} | {p['against']} | {p['shots']} | {p['metric']} | "
                         f"{p['mean_difference'] * 100:+.1f} ± {p['std_difference'] * 100:.1f} | "
                         f"{p['wins']} / {p['ties']} / {p['losses']} |")
    if any(r["episodes"] for r in result["table"]) or result.get("episodes_features"):
        lines += ["", "Episodic protocol (test split, 2-way K-shot, nearest prototype; accuracy % mean ± std over "
                  "episodes):", "", "| embedding | K | accuracy (%) |", "|---|---|---|"]
        for k, s in result.get("episodes_features", {}).items():
            lines.append(f"| pooled features (mean) | {k} | {_pm(s)} |")
        for r in result["table"]:
            for k, s in r["episodes"].items():
                lines.append(f"| {r['method']} video score (shots {r['shots']}) | {k} | {_pm(s)} |")
    return lines + [""]


def summary(results: Dict[str, dict]) -> dict:
    """Across worlds: per (method, shots) the mean over worlds of the mean test AUC, AP and video
    AUC; per paired comparison (AUC) the differences pooled over worlds (mean ± std, wins / ties /
    losses) and the number of worlds whose mean difference is > 0."""
    rows = {}
    for result in results.values():
        for r in result["table"]:
            row = rows.setdefault((r["method"], r["shots"]), {"method": r["method"], "shots": r["shots"], "worlds": 0,
                                                              **{m: [] for m in ("auc", "ap", "video_auc")}})
            row["worlds"] += 1
            for m in ("auc", "ap", "video_auc"):
                if r[m]["mean"] is not None:
                    row[m].append(r[m]["mean"])
    table = [{**row, **{m: float(np.mean(row[m])) if row[m] else None for m in ("auc", "ap", "video_auc")}}
             for row in rows.values()]
    pairs = {}
    for result in results.values():
        for p in result["paired"]:
            if p["metric"] != "auc":
                continue
            q = pairs.setdefault((p["method"], p["against"], p["shots"]),
                                 {"method": p["method"], "against": p["against"], "shots": p["shots"],
                                  "differences": [], "worlds": 0, "worlds_ahead": 0})
            q["differences"] += p["differences"]
            q["worlds"] += 1
            q["worlds_ahead"] += int(p["mean_difference"] > 0)
    for q in pairs.values():
        d = np.asarray(q["differences"])
        q.update(mean_difference=float(d.mean()), std_difference=float(d.std()), wins=int((d > 0).sum()),
                 ties=int((d == 0).sum()), losses=int((d < 0).sum()))
    return {"table": table, "paired": list(pairs.values())}


def summary_lines(payload: dict) -> List[str]:
    if len(payload["results"]) < 2:
        return []
    s = summary(payload["results"])
    lines = ["## Summary over worlds", "", "| method | shots | worlds | test AUC (%) | test AP (%) | video AUC (%) |",
             "|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else f"{v * 100:.1f}"          # noqa: E731
    for r in s["table"]:
        lines.append(f"| {r['method']} | {r['shots']} | {r['worlds']} | {f(r['auc'])} | {f(r['ap'])} | "
                     f"{f(r['video_auc'])} |")
    lines += ["", "Paired test AUC differences pooled over worlds (points); worlds ahead = worlds whose mean "
              "difference is > 0.", "", "| reference | against | shots | mean ± std | W / T / L | worlds ahead |",
              "|---|---|---|---|---|---|"]
    for q in s["paired"]:
        lines.append(f"| {q['method']} | {q['against']} | {q['shots']} | {q['mean_difference'] * 100:+.1f} ± "
                     f"{q['std_difference'] * 100:.1f} | {q['wins']} / {q['ties']} / {q['losses']} | "
                     f"{q['worlds_ahead']} / {q['worlds']} |")
    return lines + [""]


def markdown(payload: dict) -> str:
    s = payload["settings"]
    head = (f"worlds {', '.join(payload['worlds'])}" if payload.get("worlds") else f"train `{payload['train']}`")
    if payload.get("source"):
        head += f"; labels from source {payload['source']}"
    lines = ["# lanp compare: few-shot", "",
             f"{head}; shots {', '.join(map(str, s['shots']))}, {s['draws']} draw(s), {s['label_kind']} labels, "
             f"{s['seeds']} seed(s), {s['epochs']} epochs, lr {s['lr']:g}; mean ± std over draws and seeds; frame "
             f"metrics pooled over all test frames; labels drawn from the training split only.", ""]
    lines += summary_lines(payload)
    for name, result in payload["results"].items():
        lines += tables(name, result)
    return "\n".join(lines)


def _feature_episodes(data, gt_test, shots, config: FewShotConfig, seed: int) -> dict:
    from lanp.evaluation.compare import snippet_labels_from_gt
    from lanp.evaluation.episodes import run_episodes

    xte, ote, idte = data["test"]
    _, y = snippet_labels_from_gt(gt_test, ote, idte, config.frames_per_snippet)
    return {str(k): run_episodes(xte, ote, y, shots=k, queries=config.queries, episodes=config.episodes,
                                 seed=seed)["accuracies"] for k in shots if k > 0}


def _result(runs: List[dict], feature_episodes: Dict[str, list]) -> dict:
    return {"runs": runs, "table": summarize(runs), "paired": paired(runs) + paired(runs, metric="ap"),
            "episodes_features": {k: _stats(v) for k, v in feature_episodes.items()}}


def _settings(config: FewShotConfig, **extra) -> dict:
    return {**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in asdict(config).items()}, **extra}


def _source_split(world: str, seed: int, work: Path, train_videos, test_videos, dim) -> dict:
    """The source world's training split (ids prefixed ``source_``), drawn with the target's world seed."""
    from lanp.data.worlds import generate, write_split
    from lanp.evaluation.compare import read_split

    drawn = generate(world, seed=seed, train_videos=train_videos, test_videos=test_videos, dim=dim)
    split = replace(drawn.train, video_ids=[f"source_{v}" for v in drawn.train.video_ids])
    work.mkdir(parents=True, exist_ok=True)
    path = work / "source.train.h5"
    write_split(split, path, work / "source.train.gt.h5", attrs={"world": world, "seed": seed})
    return {"train": read_split(path), "train_path": str(path), "snippet_labels": split.snippet_labels}


def run_fewshot_worlds(worlds: Sequence[str], out_dir, config: FewShotConfig, *, source_world: Optional[str] = None,
                       train_videos=None, test_videos=None, dim=None, log=None) -> dict:
    """Few-shot comparison on every world (module docstring); compare.json and compare.md in ``out_dir``."""
    from lanp.config_file import current_config
    from lanp.data.worlds import WORLDS
    from lanp.evaluation.fewshot_draws import draw_series
    from lanp.evaluation.worlds_compare import _gt, world_split
    from lanp.outputs import check_output

    config.check()
    lanp_config = current_config()
    worlds = list(dict.fromkeys(worlds))
    unknown = [w for w in worlds + ([source_world] if source_world else []) if w not in WORLDS]
    if unknown or not worlds:
        raise InputError(f"world(s) {','.join(unknown) or '(none)'}: choose from {', '.join(WORLDS)}")
    log = log or (lambda message: print(message, flush=True))
    out = check_output(out_dir, "--out", folder=True)
    t_all = time.perf_counter()
    results = {}
    for world in worlds:
        runs, feature_eps = [], {}
        for seed in range(int(config.seeds)):
            log(f"== world {world}, seed {seed}" + (f", labels from {source_world}" if source_world else ""))
            work = out / "worlds" / world / f"seed{seed}"
            data = world_split(world, seed, work, train_videos, test_videos, dim)
            gt_test = _gt(data, "test", config.frames_per_snippet)
            source = None
            if source_world:
                source = _source_split(source_world, seed, work / "source", train_videos, test_videos, dim)
                ids, offsets, y = source["train"][2], source["train"][1], source["snippet_labels"]
            else:
                ids, offsets, y = data["train"][2], data["train"][1], data["train_snippet_labels"]
            draws = draw_series(ids, offsets, y, config.shots, config.draws, config.label_kind, seed)
            runs += run_split(data, gt_test, draws, config, work / "runs", seed, log, source=source)
            for k, acc in _feature_episodes(data, gt_test, config.shots, config, seed).items():
                feature_eps.setdefault(k, []).extend(acc)
        results[world if not source_world else f"{source_world} -> {world}"] = _result(runs, feature_eps)
    payload = {"mode": "few-shot", "worlds": worlds, "source": source_world,
               "settings": _settings(config, train_videos=train_videos, test_videos=test_videos, dim=dim),
               "results": results, "summary": summary(results), "seconds": time.perf_counter() - t_all,
               "lanp_config": lanp_config}
    _write(payload, out)
    log(f"wrote {out / 'compare.md'}, {out / 'compare.json'} ({payload['seconds']:.1f} s in all)")
    return payload


def run_fewshot_files(train_path, test_path, test_gt, train_gt, out_dir, config: FewShotConfig, *,
                      labels_file=None, source_train=None, source_gt=None, test_gt_list=None, train_gt_list=None,
                      log=None) -> dict:
    """Few-shot comparison on feature files: draws from ``train_gt`` (or ``source_gt`` with
    ``source_train``), or the one labelling of ``labels_file``."""
    from lanp.config_file import current_config
    from lanp.data.groundtruth import read_groundtruth
    from lanp.evaluation.compare import read_split, snippet_labels_from_gt
    from lanp.evaluation.fewshot_draws import draw_series
    from lanp.outputs import check_output

    config.check()
    lanp_config = current_config()
    log = log or (lambda message: print(message, flush=True))
    out = check_output(out_dir, "--out", folder=True)
    t_all = time.perf_counter()
    fps = config.frames_per_snippet
    data = {"train": read_split(train_path), "test": read_split(test_path), "train_path": str(train_path),
            "test_path": str(test_path)}

    def gt_of(path, split, list_path=None):
        _, o, ids = split
        return read_groundtruth(path, lengths={v: int(o[i + 1] - o[i]) for i, v in enumerate(ids)},
                                list_path=list_path, fps=fps)

    gt_test = gt_of(test_gt, data["test"], test_gt_list)
    if train_gt is not None:               # only for the pseudo-label report
        data["train_snippet_labels"] = snippet_labels_from_gt(gt_of(train_gt, data["train"], train_gt_list),
                                                              data["train"][1], data["train"][2], fps)[0]
    source = None
    if source_train is not None:
        source = {"train": read_split(source_train), "train_path": str(source_train)}
    base = source or data
    labelled_split = base["train"]
    if labels_file is not None:
        from lanp.data.human_labels import read_labels_file

        _, o, ids = labelled_split
        human = read_labels_file(labels_file, ids, np.diff(o), frames_per_snippet=fps)
        shots = len(human.abnormal_ids)
        draws = {shots: [human]}
        config = replace(config, shots=[shots], draws=1)
    else:
        gt_path = source_gt if source is not None else train_gt
        if gt_path is None:
            raise InputError("--shots needs the training ground truth to draw labels from: give --train-gt "
                             "(or --source-gt with --source-train), or a --labels-file")
        gt = gt_of(gt_path, labelled_split, None if source is not None else train_gt_list)
        y, _ = snippet_labels_from_gt(gt, labelled_split[1], labelled_split[2], fps)
        draws = None
    runs, feature_eps = [], {}
    for seed in range(int(config.seeds)):
        log(f"== seed {seed}")
        seed_draws = draws or draw_series(labelled_split[2], labelled_split[1], y, config.shots, config.draws,
                                          config.label_kind, seed)
        runs += run_split(data, gt_test, seed_draws, config, out / "runs" / f"seed{seed}", seed, log, source=source)
        for k, acc in _feature_episodes(data, gt_test, sorted(seed_draws), config, seed).items():
            feature_eps.setdefault(k, []).extend(acc)
    payload = {"mode": "few-shot", "worlds": None, "train": str(train_path), "test": str(test_path),
               "source": None if source_train is None else str(source_train),
               "labels_file": None if labels_file is None else str(labels_file),
               "settings": _settings(config), "results": {"files": _result(runs, feature_eps)},
               "seconds": time.perf_counter() - t_all, "lanp_config": lanp_config}
    _write(payload, out)
    log(f"wrote {out / 'compare.md'}, {out / 'compare.json'} ({payload['seconds']:.1f} s in all)")
    return payload


def _write(payload: dict, out: Path) -> None:
    from lanp.outputs import atomic_file, transaction

    out.mkdir(parents=True, exist_ok=True)
    with transaction():
        with atomic_file(out / "compare.json") as f:
            f.write(json.dumps(payload, indent=2).encode("utf-8"))
        with atomic_file(out / "compare.md") as f:
            f.write(markdown(payload).encode("utf-8"))
