"""The file runner: any recipe over one feature file, chunk by chunk, and the labels file it writes.

Pass 1 reads videos in chunks of bounded size (z is kept: 4 or 8 bytes per snippet, plus one row
per video for the normal list); the global step runs on the per-video arrays; pass 2 re-reads the
features for the loss weights. The output is written atomically.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import lanp
from lanp import config_file
from lanp.data.io import CHUNK_BYTES, FeatureFile, write_h5
from lanp.method.recipe import Recipe
from lanp.method.registry import as_recipe
from lanp.method.results import Labels
from lanp.runners import passes


def default_output_path(features_path) -> Path:
    p = Path(features_path)
    return p.with_name(p.stem + ".labels.h5")


def label_file(features_path, recipe, progress: bool = True, chunk_bytes: int = CHUNK_BYTES) -> Labels:
    """Labels of ``recipe`` (a Recipe, or a PropagateConfig for its preset's recipe, or a callable
    recipe(source) that builds it from the open file, e.g. :func:`lanp.runners.fewshot.fewshot_recipe`) for every video
    of ``features_path``; nothing is written."""
    with FeatureFile(features_path) as ff:
        if callable(recipe) and not isinstance(recipe, Recipe):
            recipe = recipe(ff)
        return passes.run(as_recipe(recipe), ff, progress, chunk_bytes)


def write_labels(path, labels: Labels, features_path, extra_attrs=None) -> None:
    """Write the labels file (packed, input order) atomically: every option and decision as
    attributes, plus the backend, the lanp version, the input path and the CG statistics; the
    datasets a recipe adds (``labels.extra``: few-shot runs' abnormality, label_source, video_human)
    beside the others."""
    attrs = dict(labels.attrs)
    attrs.update({"backend": labels.backend, "lanp_version": lanp.__version__,
                  "features": str(features_path), "cg_not_converged": int((~labels.cg_converged).sum()),
                  "cg_iterations_max": int(labels.cg_iterations.max()),
                  "cg_residual_max": float(np.max(labels.cg_residual))})
    attrs.update(config_file.output_attrs())        # the resolved command configuration (CLI runs)
    attrs.update(extra_attrs or {})
    write_h5(path, {
        "normality": labels.normality, "pseudo_label": labels.pseudo_label, "weight": labels.weight,
        "offsets": labels.offsets, "video_ids": labels.video_ids, "video_score": labels.video_score,
        "video_abnormal": labels.video_abnormal, "cg_iterations": labels.cg_iterations,
        "cg_residual": labels.cg_residual, **labels.extra,
    }, attrs, what="labels file", inputs=[("--features", features_path)])
