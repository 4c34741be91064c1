"""Ablations of LANP (the paper's Tables 2-4) on in-memory packed features.

Each :class:`Ablation` changes exactly one named part of the method; everything else is the core
path (``lanp.kernels`` for the graph and the solver, ``lanp.method.labels`` / ``lanp.method.diagnostics`` for the
video scores, the normal/abnormal split, the pseudo-labels and the loss weights):

- ``seeds``: ``prior`` (the normality prior: ``PropagateConfig.seeds``, default first and last
  snippet) | ``random`` (per video, as many distinct random positions as the prior marks, seeded
  RNG) | ``data-driven`` (per video, the same number of snippets with the least local contrast:
  the smallest mean distance to their temporal neighbours, on the same (L2-normalised) features the
  graph uses; ties go to the earlier snippet).
- ``similarity``: ``both`` (W = Wf * Wt, the default) | ``temporal`` (W = Wt = exp(-|i-j|/s)
  only) | ``feature`` (W = Wf only): the kernels' graph with ``terms`` set, on any backend.
- ``normality``: ``propagation`` (z = (I - alpha S)^-1 y) | ``direct`` (no propagation:
  z_i = max over seed snippets s of W_is, with W_ss = 1 at the seed itself, W of the chosen
  similarity, computed in float64 from the log affinity).
- ``reweight``: True (w_q = exp(-|d_q - yhat_q|), the paper) | False (every weight 1).

Every propagation variant is one fused ``lanp.kernels.propagate`` call (``terms`` for the graph,
one seed list per video for random and data-driven seeds), so the ablations run the kernels'
graph and CG on every backend.

Each ablation is an :class:`AblationRecipe`, which any runner drives; with the default
:class:`Ablation` it is the paper recipe exactly: z, pseudo-labels and weights are identical to
``lanp-propagate``'s (tested).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import List, Optional, Sequence

import numpy as np

from lanp.kernels import Graph, Propagation, propagate, similarity
from lanp.method.options import PropagateConfig
from lanp.method.recipe import Recipe

SEED_MODES = ("prior", "random", "data-driven")
SIMILARITIES = ("both", "temporal", "feature")
NORMALITIES = ("propagation", "direct")


@dataclass(frozen=True)
class Ablation:
    """One variant of LANP; the defaults are the method itself."""

    seeds: str = "prior"
    similarity: str = "both"
    normality: str = "propagation"
    reweight: bool = True
    rng_seed: int = 0            # only used by seeds='random'

    def __post_init__(self):
        for name, allowed in (("seeds", SEED_MODES), ("similarity", SIMILARITIES), ("normality", NORMALITIES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: choose one of {', '.join(allowed)}")

    @property
    def is_default(self) -> bool:
        return replace(self, rng_seed=0) == Ablation()

    def describe(self) -> str:
        return (f"seeds={self.seeds}, similarity={self.similarity}, normality={self.normality}, "
                f"reweight={'on' if self.reweight else 'off'}")


# method name -> the ablation (Tables 2, 3 and 4 of the paper)
ABLATIONS = {
    "lanp": Ablation(),
    "lanp-random-seeds": Ablation(seeds="random"),
    "lanp-data-driven-seeds": Ablation(seeds="data-driven"),
    "lanp-temporal-only": Ablation(similarity="temporal"),
    "lanp-feature-only": Ablation(similarity="feature"),
    "lanp-direct": Ablation(normality="direct"),
    "lanp-no-reweight": Ablation(reweight=False),
}


# -- seeds --------------------------------------------------------------------------------------

def prior_positions(seeds: Sequence[int], length: int) -> np.ndarray:
    """Distinct local positions of ``seeds`` (negative counts from the end) in a video of ``length``."""
    return np.unique([s if s >= 0 else length + s for s in seeds]).astype(np.int64)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def graph_rows(x: np.ndarray, config: PropagateConfig) -> np.ndarray:
    """Float64 rows as the graph sees them: unit rows for normalize='l2' or cosine, else raw."""
    if config.normalize == "l2" or config.distance == "cosine":
        return _unit(x)
    return np.asarray(x, dtype=np.float64)


def local_contrast(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(N,) mean Euclidean distance of each snippet to its temporal neighbours in its video
    (0 for a video of one snippet)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    step = np.linalg.norm(x[1:] - x[:-1], axis=1) if n > 1 else np.zeros(0)
    starts = np.zeros(n, dtype=bool)
    starts[offsets[:-1]] = True
    valid = ~starts[1:]                      # step k joins rows k and k+1 of one video
    total, count = np.zeros(n), np.zeros(n)
    total[:-1] += np.where(valid, step, 0.0)
    count[:-1] += valid
    total[1:] += np.where(valid, step, 0.0)
    count[1:] += valid
    return np.divide(total, count, out=np.zeros(n), where=count > 0)


def seed_lists(x: np.ndarray, offsets: np.ndarray, config: PropagateConfig, ablation: Ablation,
               first_video: int = 0) -> List[np.ndarray]:
    """Per video, the sorted local seed positions of ``ablation.seeds`` (same count as the prior).

    Random seeds of video v come from a generator seeded with (rng_seed, first_video + v): the
    draw of a video does not depend on which other videos share its chunk or shard."""
    lengths = np.diff(offsets)
    prior = [prior_positions(config.seeds, int(n)) for n in lengths]
    if ablation.seeds == "prior":
        return prior
    if ablation.seeds == "random":
        return [np.sort(np.random.default_rng([ablation.rng_seed, first_video + v]).choice(
                    int(n), size=p.size, replace=False)).astype(np.int64)
                for v, (n, p) in enumerate(zip(lengths, prior))]
    contrast = local_contrast(graph_rows(x, config), offsets)
    out = []
    for v, p in enumerate(prior):
        c = contrast[offsets[v]:offsets[v + 1]]
        out.append(np.sort(np.argsort(c, kind="stable")[:p.size]).astype(np.int64))
    return out


# -- graphs -------------------------------------------------------------------------------------

def _log_affinity(d2, dt, length: int, dim: int, config: PropagateConfig, feature: bool, temporal: bool):
    """log W for squared distances ``d2`` at time gaps ``dt`` (arrays of one shape), float64."""
    a = np.zeros(np.shape(d2))
    if feature:
        d2 = np.maximum(d2, 0.0)
        with np.errstate(divide="ignore"):
            if config.distance == "cosine":
                a = np.log(np.maximum(1.0 - 0.5 * d2, 0.0))
            elif config.distance == "rms":
                a = -np.sqrt(d2 / dim) / (2.0 * config.sigma ** 2)
            else:
                a = -d2 / (2.0 * config.sigma ** 2)
    if temporal:
        s = float(length if config.temporal_scale is None else config.temporal_scale)
        a = a - np.abs(dt) / s
    return a


def graph_variant(x: np.ndarray, offsets: np.ndarray, config: PropagateConfig, similarity_mode: str) -> Graph:
    """S of every video for ``similarity_mode`` in 'both' | 'temporal' | 'feature': the kernels'
    graph (``lanp.kernels.similarity`` with ``terms``), dense or band ``window``, on the configured
    backend."""
    if similarity_mode not in SIMILARITIES:
        raise ValueError(f"similarity={similarity_mode!r} is invalid: choose one of {', '.join(SIMILARITIES)}")
    g = config.graph_params()
    terms = g.terms if similarity_mode == "both" else similarity_mode
    return similarity(x, offsets, sigma=g.sigma, distance=g.distance, normalize=g.normalize, window=g.window,
                      temporal_scale=g.temporal_scale, terms=terms, dtype=config.dtype, backend=config.backend)


def direct_normality(x: np.ndarray, offsets: np.ndarray, seeds: Sequence[np.ndarray], config: PropagateConfig,
                     similarity_mode: str = "both") -> np.ndarray:
    """z_i = max over seed snippets s of W_is (float64; W_ss = 1 at the seed itself): normality as
    similarity to the seed snippets alone, without propagation, W of ``similarity_mode``."""
    rows = graph_rows(x, config)
    D = x.shape[1]
    z = np.empty(rows.shape[0])
    feature = similarity_mode in ("both", "feature")
    temporal = similarity_mode in ("both", "temporal")
    for v in range(offsets.shape[0] - 1):
        xv = rows[offsets[v]:offsets[v + 1]]
        n = xv.shape[0]
        s = np.asarray(seeds[v], dtype=np.int64)
        d2 = np.sum((xv[:, None, :] - xv[s][None, :, :]) ** 2, axis=2) if feature else np.zeros((n, s.size))
        a = _log_affinity(d2, np.arange(n)[:, None] - s[None, :], n, D, config, feature, temporal)
        a[s, np.arange(s.size)] = 0.0
        z[offsets[v]:offsets[v + 1]] = np.exp(np.max(a, axis=1))
    return z


# -- the recipe --------------------------------------------------------------------------------

class AblationRecipe(Recipe):
    """The paper's recipe with one part changed by an :class:`Ablation` (the default ablation is
    the paper recipe exactly). Seeds, similarity and normality change :meth:`normality`; reweight
    off makes every weight 1."""

    def __init__(self, config: Optional[PropagateConfig] = None, ablation: Optional[Ablation] = None):
        super().__init__(config or PropagateConfig(preset="paper"))
        if self.config.preset != "paper":
            raise ValueError(f"preset={self.config.preset!r}: ablations run on the paper preset only")
        self.ablation = ablation or Ablation()
        self.name = "paper" if self.ablation.is_default else f"paper-ablation({self.ablation.describe()})"
        if self.ablation.normality == "direct":
            self.z_dtype = np.float64

    def pass1_key(self) -> dict:
        return {**super().pass1_key(), "ablation": asdict(self.ablation)}

    def run_key(self) -> dict:
        return {**super().run_key(), "ablation": asdict(self.ablation)}

    def seeds(self, x: np.ndarray, offsets: np.ndarray, first_video: int) -> List[np.ndarray]:
        """Per video, the sorted local seed positions of the ablation (see :func:`seed_lists`)."""
        return seed_lists(x, offsets, self.config, self.ablation, first_video)

    def normality(self, x, offsets, video_ids, where, first_video):
        a = self.ablation
        if a.normality == "direct":
            seeds = self.seeds(x, offsets, first_video)
            z = direct_normality(x, offsets, seeds, self.config, a.similarity)
            V = offsets.shape[0] - 1
            return Propagation(z, np.zeros(V, np.int32), np.zeros(V), np.ones(V, bool), "direct")
        kwargs = self.config.kernel_kwargs()           # the default ablation is the core path exactly
        if a.seeds != "prior":
            kwargs["seeds"] = self.seeds(x, offsets, first_video)
        if a.similarity != "both":
            kwargs["terms"] = a.similarity
        return propagate(x, offsets, video_ids=video_ids, where=where, warn=False, **kwargs)

    def weights(self, x, pseudo, means) -> np.ndarray:
        if self.ablation.reweight:
            return super().weights(x, pseudo, means)
        return np.ones(pseudo.shape[0], dtype=np.float32)
