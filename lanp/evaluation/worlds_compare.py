"""``lanp compare --worlds``: every method on every synthetic world and seed, one table per world
and a summary across worlds.

For each world and seed s a fresh train/test split is drawn (:func:`lanp.data.worlds.generate`,
seed s) and every method runs once with training seed s, so the spread over seeds covers both the
data and the training. Per method and world: test frame AUC and AP (mean ± std over seeds), the
gap to the oracle (the same detector trained on the true training labels), the training
pseudo-labels' precision and recall, the split's accuracy, the video AUC of the split score and
Spearman(length, score). Summary: the mean over worlds of each method's mean AUC and gap, and its
mean rank (1 = the best test AUC of the world; the oracle ranks too). Nothing is selected on test
data: the test ground truth only computes the metrics.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from lanp.config_file import current_config
from lanp.evaluation.compare import (RUN_KEYS, CompareConfig, _stats, evaluate_methods, method_table,
                                     oracle_gap, read_split, settings, write_outputs)


def world_split(world: str, seed: int, work: Path, train_videos=None, test_videos=None, dim=None) -> dict:
    """Draw ``world`` at ``seed``, write its files under ``work`` and return compare's data dict."""
    from lanp.data.worlds import generate, write_split

    drawn = generate(world, seed=seed, train_videos=train_videos, test_videos=test_videos, dim=dim)
    work.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, split in (("train", drawn.train), ("test", drawn.test)):
        paths[name], paths[f"{name}_gt"] = work / f"{name}.h5", work / f"{name}.gt.h5"
        write_split(split, paths[name], paths[f"{name}_gt"], attrs={"world": world, "seed": seed})
    return {"train": read_split(paths["train"]), "test": read_split(paths["test"]),
            "train_path": str(paths["train"]), "test_path": str(paths["test"]),
            "train_gt": str(paths["train_gt"]), "test_gt": str(paths["test_gt"]),
            "train_snippet_labels": drawn.train.snippet_labels, "train_video_labels": drawn.train.video_labels}


def _gt(data: dict, split: str, fps: int):
    from lanp.data.groundtruth import read_groundtruth

    _, o, ids = data[split]
    return read_groundtruth(data[f"{split}_gt"], lengths={vid: int(o[v + 1] - o[v]) for v, vid in enumerate(ids)},
                            fps=fps)


def mean_ranks(per_world: dict) -> dict:
    """method -> mean over worlds of its rank by mean test AUC (1 = best; ties share the mean rank)."""
    from lanp.method.diagnostics import average_ranks

    ranks: dict = {}
    for rows in per_world.values():
        scored = [r for r in rows if r["auc"]["mean"] is not None]
        r = average_ranks(-np.array([row["auc"]["mean"] for row in scored]))
        for row, rank in zip(scored, r):
            ranks.setdefault(row["method"], []).append(float(rank))
    return {m: float(np.mean(v)) for m, v in ranks.items()}


def summary_rows(per_world: dict) -> list:
    """One row per method across worlds: mean over worlds of the per-world means."""
    gaps = {w: oracle_gap(rows) for w, rows in per_world.items()}
    ranks = mean_ranks(per_world)
    methods = list(dict.fromkeys(r["method"] for rows in per_world.values() for r in rows))
    out = []
    for m in methods:
        rows = [r for rows in per_world.values() for r in rows if r["method"] == m]
        row = {"method": m, "worlds": len(rows), "mean_rank": ranks.get(m)}
        for key in ("auc", "ap", "precision", "recall", "split_video_auc", "length_score_spearman"):
            vals = [r[key]["mean"] for r in rows if r[key]["mean"] is not None]
            row[key] = float(np.mean(vals)) if vals else None
        g = [gaps[w][m] for w in per_world if m in gaps[w]]
        row["gap"] = float(np.mean(g)) if g else None
        out.append(row)
    return sorted(out, key=lambda r: (r["mean_rank"] is None, r["mean_rank"] or 0.0))


def _fmt(v, scale=100.0, digits=2, sign=False):
    if v is None:
        return "-"
    return f"{v * scale:+.{digits}f}" if sign else f"{v * scale:.{digits}f}"


def markdown(payload: dict) -> str:
    s = payload["settings"]
    lines = ["# lanp compare across worlds", "",
             f"worlds {', '.join(payload['worlds'])}; {s['seeds']} seed(s) per world"
             f"{' from seed ' + str(s['first_seed']) if s.get('first_seed') else ''} (a fresh draw of the world and "
             f"a training seed each), {s['epochs']} epochs, lr {s['lr']:g}; mean ± std over seeds; frame-level "
             f"metrics pooled over all test frames; nothing selected on test data.", "",
             "## Summary (mean over worlds)", "",
             "| method | mean rank | test AUC (%) | gap to oracle (points) | pseudo-label P (%) | pseudo-label R (%) "
             "| split video AUC (%) | Spearman(length, score) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in payload["summary"]:
        rank = "-" if r["mean_rank"] is None else f"{r['mean_rank']:.2f}"
        lines.append(f"| {r['method']} | {rank} | {_fmt(r['auc'])} | {_fmt(r['gap'], sign=True)} | "
                     f"{_fmt(r['precision'])} | {_fmt(r['recall'])} | {_fmt(r['split_video_auc'])} | "
                     f"{_fmt(r['length_score_spearman'], 1.0)} |")
    for world, rows in payload["per_world"].items():
        lines += ["", f"## {world}", "", *method_table(rows, True, True)]
    lines.append("")
    return "\n".join(lines)


def heatmap(payload: dict, path):
    """Methods x worlds, mean test AUC (Agg)."""
    from lanp.evaluation.plots import _figure, _save

    worlds = payload["worlds"]
    methods = [r["method"] for r in payload["summary"]]
    grid = np.full((len(methods), len(worlds)), np.nan)
    for j, w in enumerate(worlds):
        for row in payload["per_world"][w]:
            if row["auc"]["mean"] is not None:
                grid[methods.index(row["method"]), j] = row["auc"]["mean"]
    fig = _figure((1.6 * len(worlds) + 3.0, 0.38 * len(methods) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(grid, vmin=0.3, vmax=1.0, cmap="viridis", aspect="auto")
    for i in range(len(methods)):
        for j in range(len(worlds)):
            if not math.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j] * 100:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < 0.7 else "black")
    ax.set_xticks(range(len(worlds)))
    ax.set_xticklabels(worlds, rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(len(methods)))
    ax.set_yticklabels(methods, fontsize=8)
    ax.set_title("test frame AUC (%), mean over seeds; methods by mean rank")
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _save(fig, path)


def run_worlds(worlds: Sequence[str], out_dir, config: Optional[CompareConfig] = None, *,
               train_videos: Optional[int] = None, test_videos: Optional[int] = None, dim: Optional[int] = None,
               log=None) -> dict:
    """Run every method of ``config`` on every world and seed; write compare.json/.md/.png to ``out_dir``."""
    from lanp.data.worlds import WORLDS
    from lanp.kernels import InputError

    config = config or CompareConfig()
    config.check()
    worlds = list(dict.fromkeys(worlds))
    unknown = [w for w in worlds if w not in WORLDS]
    if unknown or not worlds:
        raise InputError(f"--worlds {','.join(unknown) or '(none)'}: choose from {', '.join(WORLDS)}")
    from lanp.outputs import check_output

    log = log or (lambda message: print(message, flush=True))
    out = check_output(out_dir, "--out", folder=True)      # before any work: a folder we may write
    t_all = time.perf_counter()
    fps = config.frames_per_snippet
    per_world = {}
    for world in worlds:
        runs: dict = {}
        for seed in range(int(config.first_seed), int(config.first_seed) + int(config.seeds)):
            log(f"== world {world}, seed {seed}")
            data = world_split(world, seed, out / "worlds" / world / f"seed{seed}", train_videos, test_videos, dim)
            rows = evaluate_methods(data, _gt(data, "test", fps), _gt(data, "train", fps), config,
                                    out / "worlds" / world / f"seed{seed}" / "runs", log, seeds=[seed])
            for row in rows:
                runs.setdefault(row["method"], {"method": row["method"], "description": row["description"],
                                                "runs": []})["runs"].extend(row["runs"])
        per_world[world] = []
        for row in runs.values():
            for key in RUN_KEYS:
                row[key] = _stats([r.get(key) for r in row["runs"]])
            per_world[world].append(row)
    payload = {"worlds": worlds, "settings": {**settings(config), "train_videos": train_videos,
                                              "test_videos": test_videos, "dim": dim},
               "per_world": per_world, "summary": summary_rows(per_world), "seconds": time.perf_counter() - t_all,
               "lanp_config": current_config()}
    write_outputs(payload, out, markdown(payload), heatmap)
    log(f"wrote {out / 'compare.md'}, {out / 'compare.json'}, {out / 'compare.png'} ({payload['seconds']:.1f} s in all)")
    return payload



