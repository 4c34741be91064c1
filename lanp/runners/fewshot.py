"""The few-shot recipe for a runner source (issue 16): in-domain labels, or cross-domain
prototypes from another source aligned into the target's space."""
from __future__ import annotations

import numpy as np

from lanp.data.io import CHUNK_BYTES
from lanp.method.options import RANKING_PRESETS
from lanp.method.recipe import Recipe
from lanp.runners import passes


def confident_normal_rows(recipe: Recipe, source, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """(n, D) float64: every snippet of the normal list M of a label-free first pass of ``recipe``
    over ``source`` (the target's confident normal videos of the cross-domain path)."""
    recipe.check(source.lengths, source.video_ids, source.path)
    recipe.check_dataset(source.num_videos)
    recipe = passes.gather_context(recipe, source, chunk_bytes)
    first = passes.first_pass(recipe, source, chunk_bytes=chunk_bytes)
    decision = recipe.decide(first, source.video_ids, source.path)
    return np.concatenate([np.asarray(source.read(int(v), int(v) + 1, dtype=np.float64, reuse=False)[0],
                                      dtype=np.float64) for v in decision.normal_list])


def fewshot_recipe(config, target, human=None, source=None, adapt: str = "coral", settings=None,
                   chunk_bytes: int = CHUNK_BYTES, ranking=None):
    """The :class:`lanp.method.fewshot.FewShotRecipe` of ``config`` for the videos of ``target`` (a
    runner source: a feature file, an ArraySource); with preset 'dual-prior' or 'tri-prior' that
    preset's recipe with the human labels (in-domain only), its settings ``ranking`` (None: the
    defaults). In-domain: ``human`` names target videos.
    Cross-domain (``source`` given, another runner source): ``human`` names SOURCE videos; their
    spans, aligned into the target's space by ``adapt`` (coral | whiten | none, fitted on the
    target's confident normal snippets from a label-free first pass), become prototypes, and the
    target has no labelled video."""
    from lanp.data.human_labels import HumanLabels
    from lanp.method.fewshot import FewShotRecipe, check_source_labels, source_prototypes
    from lanp.method.registry import preset_recipe

    human = human if human is not None else HumanLabels.empty()
    if config.preset in RANKING_PRESETS:       # human labels over the dataset ranking (no transfer)
        from lanp.method.dualprior import DualPriorRecipe
        from lanp.method.triprior import TriPriorRecipe
        if source is not None:
            raise ValueError(f"cross-domain labels (source=, --source-features) need the in-video few-shot recipe: "
                             f"use preset 'recommended', 'tail-adjusted' or 'paper' with them, not {config.preset!r}")
        kind = DualPriorRecipe if config.preset == "dual-prior" else TriPriorRecipe
        return kind(config, ranking, human=human, video_ids=target.video_ids, lengths=target.lengths)
    if ranking is not None:
        raise ValueError(f"ranking settings apply to preset 'dual-prior' or 'tri-prior'; few-shot preset "
                         f"{config.preset!r} builds on the in-video recipe")
    if source is None:
        return FewShotRecipe(config, human, target.video_ids, target.lengths, settings)
    check_source_labels(human, source.video_ids, source.lengths)       # before the label-free pass
    normal = confident_normal_rows(preset_recipe(config), target, chunk_bytes)
    prototypes, attrs = source_prototypes(source, human, normal, adapt)
    return FewShotRecipe(config, HumanLabels.empty(human.source), target.video_ids, target.lengths, settings,
                         prototypes=prototypes, source_attrs=attrs)
