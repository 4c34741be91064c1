"""Normality propagation over a feature file: writes normal magnitudes, pseudo-labels and loss
weights (a packed labels file, in the input's video order).

Defaults follow the paper (sqeuclidean, sigma 0.1, alpha 0.99, seeds first and last snippet) on
L2-normalised features; --normalize none keeps raw features.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from lanp.kernels import DISTANCES, ConvergenceWarning, backend_names
from lanp.method import video_scores
from lanp.method.anchor_search import SEARCHES
from lanp.method.options import PRESETS, RANKING_PRESETS
from lanp.method.splits import SPLITS


def _seeds(text: str):
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,-1")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, nargs="+", action="extend",
                   help="input feature file(s) (.h5, packed or grouped layout) or a quoted glob; several "
                        "files are propagated as one dataset (the concatenation in order), sharded on dask")
    p.add_argument("--out", help="output labels file (default: <features stem>.labels.h5); with several "
                                 "inputs a directory receiving one <input stem>.labels.h5 per input")
    g = p.add_argument_group("graph")
    g.add_argument("--alpha", type=float, default=0.99, help="propagation strength in (0, 1) (default 0.99)")
    g.add_argument("--sigma", type=float, default=0.1, help="Gaussian width, > 0 (default 0.1)")
    g.add_argument("--distance", choices=DISTANCES, default="sqeuclidean")
    g.add_argument("--normalize", choices=("l2", "none"), default="l2",
                   help="L2-normalise snippets before the distance (default l2)")
    g.add_argument("--window", type=int, default=None, help="banded graph of half-width K (default dense)")
    g.add_argument("--temporal-scale", type=float, default=None,
                   help="fixed s in exp(-|i-j|/s), in snippets (default s = L)")
    g.add_argument("--terms", choices=("both", "feature", "temporal"), default="both",
                   help="W = Wf * Wt (both, the paper), Wf alone (feature) or Wt alone (temporal)")
    g.add_argument("--seeds", type=_seeds, default=(0, -1), help="seed snippets, e.g. 0,-1 or 0,1,-2,-1")
    lab = p.add_argument_group("pseudo-labels")
    split = lab.add_mutually_exclusive_group()
    split.add_argument("--n-normal", type=int, default=None, help="number of normal videos N_nor")
    split.add_argument("--normal-fraction", type=float, default=None,
                       help="N_nor as a fraction of the videos (default 0.5)")
    lab.add_argument("--normal-split", choices=SPLITS, default="count",
                     help="how many videos are normal: count (--n-normal / --normal-fraction, the paper), or "
                          "from the video scores by an Otsu cut (otsu) or a two-Gaussian mixture (gmm)")
    lab.add_argument("--abnormal-ratio", type=float, default=0.4, help="r: share of snippets labelled 1 (0.4)")
    lab.add_argument("--confident-fraction", type=float, default=0.1, help="h: normal list size / N_nor (0.1)")
    s = p.add_argument_group("solver")
    s.add_argument("--tol", type=float, default=1e-6, help="CG relative residual (default 1e-6)")
    s.add_argument("--maxiter", type=int, default=1000, help="CG iteration cap (default 1000)")
    s.add_argument("--backend", choices=backend_names(), default="auto")
    s.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    d = p.add_argument_group("preset and video score")
    d.add_argument("--preset", choices=PRESETS, default="recommended",
                   help="recommended (default; today tri-prior), tri-prior (normality inside each video, "
                        "across videos and an isolation forest's rarity, ranked over the whole dataset: the top "
                        "15 %% of snippets pseudo-abnormal; won across the synthetic worlds, docs/compare.md), "
                        "dual-prior (the same without the forest; the default before), tail-adjusted (the paper's recipe with "
                        "the length-free seed-low-tail-length-adjusted video score; the default before; few-shot "
                        "runs build on it), paper (the options above with the "
                        "paper's std(z) score: the paper bit for bit), the public code's rules for UCF-Crime / "
                        "ShanghaiTech (fix graph, solver, split and weights; docs/presets.md), or cross-video "
                        "(normality from the seed snippets of the other videos; docs/compare.md)")
    d.add_argument("--video-score", choices=video_scores.names(), default=None,
                   help="how videos are ranked for the split (default: the preset's, std for paper): " + "; ".join(
                       f"{s}: {video_scores.get(s).description}" for s in video_scores.names()).replace("%", "%%"))
    r = p.add_argument_group("ranking presets (tri-prior, the default, and dual-prior; docs/presets.md)")
    r.add_argument("--abnormal-share", type=float, default=None,
                   help="q: the share of the dataset's snippets labelled pseudo-abnormal, in (0, 1) (default 0.15)")
    r.add_argument("--anchor-search", choices=SEARCHES, default=None,
                   help="how the nearest seed snippet of another video is found: projected (default; candidates "
                        "from a 64-d PCA projection, every similarity exact in full D) or exact (full D)")
    r.add_argument("--forest-trees", type=int, default=None,
                   help="tri-prior: trees of the isolation forest (default 100)")
    r.add_argument("--forest-per-video", type=int, default=None,
                   help="tri-prior: evenly spaced snippets per video the forest is fit on (default 8)")
    r.add_argument("--forest-seed", type=int, default=None, help="tri-prior: the forest's random seed (default 0)")
    dist = p.add_argument_group("sharded runs (dask; pip install 'lanp[dist]')")
    dist.add_argument("--scheduler", default=None,
                      help="dask scheduler address, e.g. tcp://host:8786 (default: local worker processes); "
                           "paths must be the same on every worker")
    dist.add_argument("--resume", action="store_true",
                      help="reuse the finished shards of an interrupted run (work files in <out>/.lanp-work)")
    few = p.add_argument_group("few-shot labels (docs/fewshot.md)")
    few.add_argument("--labels-file", default=None,
                     help="human labels: a CSV video_id,kind[,start,end] (kind normal_video | abnormal_video | "
                          "abnormal_span, spans [start, end)) or a UCF-Crime Temporal_Anomaly_Annotation.txt subset; "
                          "labelled videos are fixed and labelled spans seed a second, abnormal class")
    few.add_argument("--span-units", choices=("snippet", "frame"), default="snippet",
                     help="units of the CSV spans (default snippet; frame: 16 frames a snippet, a span covers "
                          "the snippets its frames touch)")
    few.add_argument("--source-features", default=None,
                     help="cross-domain: the feature file the --labels-file videos come from (the source "
                          "domain); their spans, aligned into --features' space, seed its similar snippets")
    few.add_argument("--adapt", choices=("coral", "whiten", "none"), default=None,
                     help="feature alignment of the source rows with --source-features (default coral), "
                          "fitted on the target's confident normal snippets")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args):
    from lanp.method.options import PropagateConfig
    return PropagateConfig(alpha=args.alpha, sigma=args.sigma, distance=args.distance,
                           normalize=args.normalize, window=args.window,
                           temporal_scale=args.temporal_scale, terms=args.terms, seeds=args.seeds, n_normal=args.n_normal,
                           normal_fraction=args.normal_fraction, abnormal_ratio=args.abnormal_ratio,
                           confident_fraction=args.confident_fraction, tol=args.tol, maxiter=args.maxiter,
                           backend=args.backend, dtype=args.dtype, preset=args.preset,
                           video_score=args.video_score, normal_split=args.normal_split)


# argparse dest -> (option, the presets it applies to, the settings field it sets)
RANKING_OPTIONS = {"abnormal_share": ("--abnormal-share", RANKING_PRESETS, "abnormal_share"),
                   "anchor_search": ("--anchor-search", RANKING_PRESETS, "anchor_search"),
                   "forest_trees": ("--forest-trees", ("tri-prior",), "trees"),
                   "forest_per_video": ("--forest-per-video", ("tri-prior",), "per_video"),
                   "forest_seed": ("--forest-seed", ("tri-prior",), "forest_seed")}


def ranking_settings(args):
    """The ranking preset's settings from --abnormal-share, --anchor-search and the --forest-*
    options (None when none is given); InputError for one given with a preset it does not apply to
    (a few-shot run of 'recommended' builds on the in-video recipe) or with a bad value."""
    from dataclasses import replace
    from lanp.kernels import InputError
    from lanp.method.crossvideo import CrossVideoSettings
    from lanp.method.dualprior import DualPriorSettings
    from lanp.method.registry import preset_name
    from lanp.method.triprior import TriPriorSettings

    given = {k: getattr(args, k) for k in RANKING_OPTIONS if getattr(args, k, None) is not None}
    if not given:
        return None
    preset = args.preset if args.labels_file is not None else preset_name(config_from_args(args))
    for key, value in given.items():
        flag, presets, _ = RANKING_OPTIONS[key]
        if preset not in presets:
            few = " (a few-shot run of 'recommended' builds on the in-video recipe)" if preset == "recommended" else ""
            raise InputError(f"{flag} {value} applies to --preset {' or '.join(presets)}, not --preset "
                             f"{args.preset}{few}")
    try:
        search = CrossVideoSettings(anchor_search=given.get("anchor_search", CrossVideoSettings.anchor_search))
        dual = DualPriorSettings(crossvideo=search)
        if "abnormal_share" in given:
            dual = replace(dual, abnormal_share=given["abnormal_share"])
        if preset == "dual-prior":
            return dual
        tri = TriPriorSettings(dual=dual)
        for key in ("forest_trees", "forest_per_video", "forest_seed"):
            if key in given:
                tri = replace(tri, **{RANKING_OPTIONS[key][2]: given[key]})
        return tri
    except ValueError as exc:                    # the settings name the field: say which option set it
        name = str(exc).split("=")[0]
        flag = next((f for f, _, field in RANKING_OPTIONS.values() if field == name), "a ranking option")
        raise InputError(f"{flag}: {exc}") from None


def summary_lines(out, path) -> list:
    it = out.cg_iterations
    return [
        f"videos {len(out.video_ids)}, snippets {int(out.offsets[-1])}, "
        f"abnormal videos {int(out.video_abnormal.sum())}, pseudo-abnormal snippets {int(out.pseudo_label.sum())}",
        f"time {out.seconds:.2f} s (kernel {out.kernel_seconds:.3f} s, backend {out.backend})",
        f"CG iterations min/median/max {int(it.min())}/{int(np.median(it))}/{int(it.max())}, "
        f"max true residual {float(np.max(out.cg_residual)):.2e}, "
        f"videos not converged {int((~out.cg_converged).sum())}",
        f"wrote {path}",
    ]


def check_fewshot_args(args, sharded: bool) -> None:
    """Refuse few-shot options that do not go together, before any work."""
    from lanp.kernels import InputError
    if args.source_features is not None and args.labels_file is None:
        raise InputError("--source-features needs --labels-file: the labels of the source videos")
    if args.adapt is not None and args.source_features is None:
        raise InputError(f"--adapt {args.adapt} needs --source-features (it aligns the source domain's rows)")
    if args.labels_file is not None and args.preset not in ("recommended", "tail-adjusted", "paper", *RANKING_PRESETS):
        raise InputError(f"--labels-file works with --preset recommended (few-shot builds on the in-video "
                         f"tail-adjusted recipe), tail-adjusted, paper, dual-prior or tri-prior, not --preset "
                         f"{args.preset}")
    if args.source_features is not None and args.preset in RANKING_PRESETS:
        raise InputError(f"--source-features needs the in-video few-shot recipe: use --preset recommended, "
                         f"tail-adjusted or paper with it, not --preset {args.preset}")
    if args.source_features is not None and sharded:
        raise InputError("--source-features works with one --features file (no --scheduler / --resume)")
    if args.labels_file is None and args.video_score is not None:
        from lanp.method.dualprior import check_split_options
        from lanp.method.registry import preset_name
        config = config_from_args(args)
        if preset_name(config) in RANKING_PRESETS:                 # they rank snippets, not videos
            check_split_options(config, preset_name(config), video_score_given=True)


def fewshot_builder(args, ranking=None):
    """None without --labels-file; else recipe(target source) -> the few-shot recipe, the labels
    read against the target's videos (or, with --source-features, the source's); ``ranking``: the
    ranking preset's settings from :func:`ranking_settings` (None: its defaults)."""
    if args.labels_file is None:
        return None
    from lanp.data.human_labels import read_labels_file
    from lanp.data.io import FeatureFile
    from lanp.runners.fewshot import fewshot_recipe

    config = config_from_args(args)

    def build(target):
        if args.source_features is None:
            human = read_labels_file(args.labels_file, target.video_ids, target.lengths, args.span_units)
            return fewshot_recipe(config, target, human, ranking=ranking)
        with FeatureFile(args.source_features) as source:
            if source.dim != target.dim:
                from lanp.kernels import InputError
                raise InputError(f"--source-features {args.source_features!r} has feature size D = {source.dim} but "
                                 f"--features has D = {target.dim}: the domains must share the feature extractor")
            human = read_labels_file(args.labels_file, source.video_ids, source.lengths, args.span_units)
            return fewshot_recipe(config, target, human, source, args.adapt or "coral")
    return build


def fewshot_lines(out) -> list:
    if "human_labels" not in out.attrs:
        return []
    a = out.attrs
    tau = a.get("fewshot_tau")
    return [f"human labels {a['human_labels']}: {a['human_normal_videos']} normal, {a['human_abnormal_videos']} "
            f"abnormal videos, {a['human_spans']} spans; prototypes {a.get('fewshot_num_prototypes', 0)}"
            + ("" if tau is None or tau != tau else f", transfer threshold tau {tau:.4f}")
            + (f"; source {a['fewshot_source']} (adapt {a['fewshot_adapt']})" if "fewshot_source" in a else "")]


def run(args) -> int:
    from lanp.runners.sharded import expand_inputs, output_paths
    from lanp.method.registry import preset_recipe
    from lanp.runners.file import label_file, write_labels
    from lanp.outputs import check_output
    config = config_from_args(args)
    inputs = expand_inputs(args.features)
    outputs = output_paths(inputs, args.out)
    named_inputs = [("--features", p) for p in inputs]
    as_folder = args.out is not None and (len(inputs) > 1 or Path(args.out).is_dir()
                                          or str(args.out).endswith(("/", os.sep)))
    if as_folder:
        check_output(args.out, "--out", named_inputs, folder=True)
    for out in outputs:
        check_output(out, "output" if as_folder else "--out", named_inputs)
    sharded = len(inputs) > 1 or bool(args.scheduler) or bool(args.resume)
    check_fewshot_args(args, sharded)
    ranking = ranking_settings(args)                 # before any work: a bad value is refused first
    if sharded:
        return _run_sharded(args, config, inputs, outputs, ranking)
    features = args.features[0] if Path(args.features[0]) == inputs[0] else str(inputs[0])   # as typed, or the glob's match
    out_path = outputs[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        recipe = fewshot_builder(args, ranking) or preset_recipe(config, ranking)
        out = label_file(features, recipe, progress=not args.quiet)
    write_labels(out_path, out, features)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print("\n".join(summary_lines(out, out_path) + fewshot_lines(out)))
    if "diag_length_score_spearman" in out.attrs:
        from lanp.method.diagnostics import format_lines
        print("\n".join(format_lines(out.attrs)))
    return 0


def _run_sharded(args, config, inputs, outputs, ranking=None) -> int:
    """Several inputs, --scheduler or --resume: lanp.runners.sharded (one task per shard)."""
    from lanp.method.registry import preset_recipe
    from lanp.runners.sharded import run_sharded, summary_lines as sharded_lines
    recipe = config if ranking is None else preset_recipe(config, ranking)
    build = fewshot_builder(args, ranking)
    if build is not None:                      # the labels are matched to the shards' videos, in order
        recipe = build(_ShardedVideos(inputs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        out = run_sharded(inputs, outputs, recipe, scheduler=args.scheduler, resume=args.resume,
                          progress=not args.quiet)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print("\n".join(sharded_lines(out)))
    if "diag_length_score_spearman" in out.attrs:
        from lanp.method.diagnostics import format_lines
        print("\n".join(format_lines(out.attrs)))
    return 0


class _ShardedVideos:
    """The video ids and lengths of several shards as one dataset (headers only)."""

    def __init__(self, inputs):
        from lanp.data.io import FeatureFile
        ids, lengths = [], []
        for p in inputs:
            with FeatureFile(p) as ff:
                ids.extend(ff.video_ids)
                lengths.append(np.asarray(ff.lengths))
        self.video_ids, self.lengths = ids, np.concatenate(lengths)
