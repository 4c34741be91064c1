"""Every recipe by name: the presets of ``lanp propagate`` and the methods of ``lanp compare``."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Dict, Optional

from lanp.method.ablations import ABLATIONS, AblationRecipe
from lanp.method.crossvideo import CrossVideoRecipe
from lanp.method.dualprior import DualPriorRecipe, DualPriorSettings
from lanp.method.joint import JointGraphRecipe, JointSettings
from lanp.method.official import PRESETS as OFFICIAL_PRESETS
from lanp.method.official import OfficialRecipe
from lanp.method.options import RECOMMENDED, PropagateConfig
from lanp.method.recipe import Recipe
from lanp.method.triprior import TriPriorRecipe, TriPriorSettings


def preset_name(config: PropagateConfig) -> str:
    """``config.preset``, with 'recommended' resolved to what it stands for (:data:`RECOMMENDED`)."""
    return RECOMMENDED if config.preset == "recommended" else config.preset


def preset_recipe(config: PropagateConfig, ranking=None) -> Recipe:
    """The recipe of ``config.preset`` ('recommended' stands for :data:`RECOMMENDED`); ``ranking``:
    the settings of a ranking preset (:class:`DualPriorSettings` for 'dual-prior',
    :class:`TriPriorSettings` for 'tri-prior'; None: its defaults), refused for any other preset."""
    preset = preset_name(config)
    expected = {"dual-prior": DualPriorSettings, "tri-prior": TriPriorSettings}.get(preset)
    if ranking is not None and not (expected and isinstance(ranking, expected)):
        raise ValueError(f"ranking settings of type {type(ranking).__name__} do not fit preset {preset!r}: "
                         f"dual-prior takes DualPriorSettings, tri-prior TriPriorSettings, other presets none")
    if preset in ("paper", "tail-adjusted"):          # one recipe; the presets differ in the score
        return Recipe(config)
    if preset == "dual-prior":
        return DualPriorRecipe(config, ranking)
    if preset == "tri-prior":
        return TriPriorRecipe(config, ranking)
    if config.preset == "cross-video":
        return CrossVideoRecipe(config)
    return OfficialRecipe(config, OFFICIAL_PRESETS[config.preset])


def as_recipe(recipe_or_config) -> Recipe:
    """A Recipe as it is; a PropagateConfig as its preset's recipe; None as the paper's."""
    if isinstance(recipe_or_config, Recipe):
        return recipe_or_config
    if recipe_or_config is None or isinstance(recipe_or_config, PropagateConfig):
        return preset_recipe(recipe_or_config or PropagateConfig())
    raise TypeError(f"expected a Recipe or a PropagateConfig, got {type(recipe_or_config).__name__}")


# compare method name -> factory(config, seed) of its recipe
METHOD_RECIPES: Dict[str, Callable[[PropagateConfig, int], Recipe]] = {
    name: (lambda config, seed, _a=ablation: AblationRecipe(config, replace(_a, rng_seed=seed)))
    for name, ablation in ABLATIONS.items()
}


METHOD_RECIPES.update({
    "lanp-length-adjusted": lambda config, seed: Recipe(replace(config, video_score="std-length-adjusted")),
    "lanp-seed-low-tail": lambda config, seed: Recipe(replace(config, video_score="seed-low-tail")),
    "lanp-share-below": lambda config, seed: Recipe(replace(config, video_score="share-below")),
    "lanp-otsu": lambda config, seed: Recipe(replace(config, video_score="seed-low-tail", normal_split="otsu")),
    "lanp-tail-adjusted": lambda config, seed: Recipe(replace(config, video_score="seed-low-tail-length-adjusted")),
    "lanp-tail-adjusted-otsu": lambda config, seed: Recipe(replace(config, video_score="seed-low-tail-length-adjusted",
                                                                   normal_split="otsu")),
    "cross-video": lambda config, seed: CrossVideoRecipe(config),
    "cross-video-otsu": lambda config, seed: CrossVideoRecipe(replace(config, normal_split="otsu")),
    "lanp-dual-prior": lambda config, seed: DualPriorRecipe(config),
    "lanp-tri-prior": lambda config, seed: TriPriorRecipe(config),
    "joint-graph": lambda config, seed: JointGraphRecipe(config),
    "joint-graph-adjusted": lambda config, seed: JointGraphRecipe(config, JointSettings(
        video_score="seed-low-tail-length-adjusted")),
})

METHOD_DESCRIPTIONS = {
    "lanp-length-adjusted": "video score: log std(z) minus its robust fit on log length",
    "lanp-seed-low-tail": "video score: 1 - q10 of z calibrated by the video's seeds",
    "lanp-share-below": "video score: share of snippets under the dataset's 10 % quantile of seed-calibrated z",
    "lanp-otsu": "seed-low-tail score, N_nor by an Otsu cut of the video scores",
    "lanp-tail-adjusted": "video score: seed-low-tail minus its robust fit on log length (length-free)",
    "lanp-tail-adjusted-otsu": "tail-adjusted score, N_nor by an Otsu cut of the video scores",
    "cross-video": "normality = similarity to the nearest seed snippet of another video; low-tail score, r = 0.2",
    "cross-video-otsu": "cross-video, N_nor by an Otsu cut of the video scores",
    "lanp-dual-prior": "dual prior: mean dataset rank of in-video z (seed-calibrated) and cross-video similarity; top 15 % pseudo-abnormal",
    "lanp-tri-prior": "tri prior: the dual prior's two ranks and an isolation forest's, averaged; top 15 % pseudo-abnormal",
    "joint-graph": "one CG over all videos: a 5-neighbour temporal band + edges to the 3 nearest seeds of other videos",
    "joint-graph-adjusted": "joint-graph with the length-free seed-low-tail-length-adjusted video score",
}


def method_recipe(name: str, config: Optional[PropagateConfig] = None, seed: int = 0) -> Recipe:
    if name not in METHOD_RECIPES:
        raise ValueError(f"method={name!r} has no recipe: choose one of {', '.join(METHOD_RECIPES)}")
    return METHOD_RECIPES[name](config or PropagateConfig(preset="paper"), seed)
