"""The public in-memory API: ``lanp.label`` for other UVAD code (no files, no CLI)."""
from __future__ import annotations

from dataclasses import fields
from typing import Optional, Sequence

from lanp.method.options import RANKING_PRESETS, PropagateConfig
from lanp.method.recipe import Recipe
from lanp.method.registry import preset_name, preset_recipe
from lanp.method.results import Labels
from lanp.runners import passes
from lanp.runners.memory import ArraySource

OPTIONS = tuple(f.name for f in fields(PropagateConfig) if f.name != "preset")


def label(features, offsets=None, *, preset: str = "recommended", video_ids: Optional[Sequence[str]] = None,
          recipe: Optional[Recipe] = None, human=None, source=None, adapt: str = "coral",
          **options) -> Labels:
    """Normality, pseudo-labels and loss weights of every video, in memory.

    features: packed (N, D) or (N, C, D) snippet features with ``offsets`` (V+1,) (video v owns
        rows offsets[v]:offsets[v+1]); or, with ``offsets=None``, a list of per-video (L, D) or
        (L, C, D) arrays. C crops are averaged (in float64) as when read from a file.
    preset: 'recommended' (the default, today 'tri-prior': normality inside and across videos and an
        isolation forest's rarity, ranked over the dataset, the top 15 % of snippets pseudo-abnormal,
        :mod:`lanp.method.triprior`) | 'dual-prior' (the same without the forest) | 'paper' (the paper bit for bit) | 'tail-adjusted' (the paper's recipe with a length-free
        video score) | 'official-ucf' | 'official-sht' | 'cross-video'.
    options: any option of :class:`lanp.method.options.PropagateConfig` (alpha, sigma, window,
        seeds, n_normal, video_score, ...), as ``lanp propagate`` takes them.
    recipe: a :class:`lanp.method.recipe.Recipe` to run instead of the preset's (options unused).
    human: a :class:`lanp.data.human_labels.HumanLabels` (a few labelled videos or spans): few-shot
        lanp (:mod:`lanp.method.fewshot`, built on the in-video recipe: presets recommended, which
        means tail-adjusted there, tail-adjusted and paper) with its extra outputs ``abnormality``,
        ``label_source``, ``video_human``; empty labels give that base's numbers exactly.
    source: ``(source_features, source_offsets, source_ids)``: cross-domain few-shot, ``human``
        names these SOURCE videos; their spans, aligned into the target's space by ``adapt``
        ('coral' | 'whiten' | 'none', fitted on the target's confident normal snippets), seed the
        most similar snippets of ``features`` (docs/fewshot.md).

    Returns a :class:`lanp.method.results.Labels`: normality (N,), pseudo_label (N,) uint8,
    weight (N,) float32, video_score (V,), video_abnormal (V,) bool, cg_iterations,
    cg_residual, cg_converged (V,), offsets, video_ids, attrs: the numbers ``lanp-propagate``
    writes for the same features and options.

    >>> import numpy as np, lanp
    >>> rng = np.random.default_rng(0)
    >>> videos = [np.abs(rng.normal(1.0, 0.05, size=(n, 8))).astype(np.float32) for n in (12, 20, 16, 9)]
    >>> out = lanp.label(videos, video_ids=["a", "b", "c", "d"])
    >>> out = lanp.label(videos, preset="dual-prior")
    >>> out.normality.shape, out.pseudo_label.dtype, out.attrs["recipe"]
    ((57,), dtype('uint8'), 'dual-prior')
    >>> bool(0.1 < out.pseudo_label.mean() < 0.2)      # about 15 % of the snippets
    True
    >>> paper = lanp.label(videos, preset="paper")
    >>> int(paper.pseudo_label[paper.offsets[1]:paper.offsets[2]].sum()) in (0, 8)    # floor(0.4 * 20)
    True
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}: choose from {', '.join(OPTIONS)}")
    if recipe is not None and options:
        raise ValueError(f"options {', '.join(sorted(options))} are not used with recipe=: set them on the recipe")
    if recipe is not None and (human is not None or source is not None):
        raise ValueError("human= and source= build the few-shot recipe: give them without recipe=")
    if source is not None and human is None:
        raise ValueError("source= (cross-domain few-shot) needs human=: the labels of the source videos")
    if offsets is None:
        target = ArraySource.from_videos(features, video_ids)
    else:
        target = ArraySource(features, offsets, video_ids)
    if recipe is None:
        config = PropagateConfig(preset=preset, **options)
        if human is None:
            if "video_score" in options and preset_name(config) in RANKING_PRESETS:
                from lanp.method.dualprior import check_split_options
                check_split_options(config, preset_name(config), video_score_given=True)
            recipe = preset_recipe(config)
        else:
            from lanp.runners.fewshot import fewshot_recipe
            if source is not None:
                if len(source) != 3:
                    raise ValueError("source must be (source_features, source_offsets, source_ids)")
                source = ArraySource(source[0], source[1], source[2], path="source features")
            recipe = fewshot_recipe(config, target, human, source, adapt)
    return passes.run(recipe, target)
