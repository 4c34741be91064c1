"""Every recipe by name: the presets of ``lanp propagate`` and the methods of ``lanp compare``."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Dict, Optional

from lanp.method.ablations import ABLATIONS, AblationRecipe
from lanp.method.official import PRESETS as OFFICIAL_PRESETS
from lanp.method.official import OfficialRecipe
from lanp.method.options import PropagateConfig
from lanp.method.recipe import Recipe


def preset_recipe(config: PropagateConfig) -> Recipe:
    """The recipe of ``config.preset``: the paper's, or an official preset's."""
    if config.preset == "paper":
        return Recipe(config)
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


def method_recipe(name: str, config: Optional[PropagateConfig] = None, seed: int = 0) -> Recipe:
    if name not in METHOD_RECIPES:
        raise ValueError(f"method={name!r} has no recipe: choose one of {', '.join(METHOD_RECIPES)}")
    return METHOD_RECIPES[name](config or PropagateConfig(), seed)
