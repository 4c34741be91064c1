"""The dual normality prior (issue 15): normality inside each video and across videos, ranked over
the whole dataset.

Two normalities per snippet i of video v, both "1 = like the normal prior":

- inside the video, the paper's propagation calibrated by the video's own seeds,
  zn_i = z_i / mean(z at v's seeds), z = (I - alpha S_v)^-1 y (the paper's graph and solver);
- across videos, the similarity to the nearest seed snippet of another video (normal events recur
  across videos, anomalies rarely do: :mod:`lanp.method.crossvideo`),
  n_i = max over anchors a of other videos of cos(x_i, a).

Neither is comparable across videos by its raw value alone, so each is turned into its rank over
every snippet of the dataset, F_z and F_n (the dataset's empirical CDFs), and the abnormality is
their mean:

    a_i = 1 - (F_z(zn_i) + F_n(n_i)) / 2                       in [0, 1]

The pseudo-abnormal snippets are the share q (``abnormal_share``, default 0.15) of the dataset's
snippets with the largest a, wherever they are: a_i > tau, tau the (1 - q) quantile of a. There is
no video split before the labels (with the true video split this selection trained detectors to
90 % test AUC on the hard worlds, with a split by any video score we tried to 77-80 %: the split
was the weak step, docs/compare.md). Loss weights are 1 (the paper's exp(-|d - y_hat|) cost 5
points here, 20 on length-biased-long). The video score is the share of a video's snippets above
tau, so video_abnormal (a score > 0) marks the videos that hold pseudo-abnormal snippets.

Every runner computes the same labels (in memory, one file, sharded): the first pass keeps
(zn, n) per snippet and, per video, histograms of zn on [0, 4] and of u = 1 - n on [0, 2]
(``HIST_BINS`` bins each, equal in log(v + f): 0.4-0.6 % wide relative to v above the floor f, so a
term that crowds into a sliver is still ranked; in lanp's scene worlds u sits in [5e-4, 2e-3], where
the earlier equal bins of width 1e-3 put 34-58 % of the snippets in one bin. The floors, f = 1e-3
for zn and 1e-5 for u, keep the bins near 0 wider than what the float32 solve and cosine resolve: zn
below 1e-6 differs by up to 175 % between float32 and float64 runs. Out-of-range values go in the
end bins), from which the global step builds F_z and F_n (piecewise linear inside a bin), and a
sample of at most ``SAMPLE`` evenly spaced snippets per video (all of a shorter video), from which
it estimates tau (each sampled snippet weighted by L_v / m_v) and the video scores. The second pass applies a_i > tau to every snippet
exactly. The cost over the paper is the cross-video recipe's anchor search (2V anchors).

Human labels (few-shot, ``human=``; ``lanp propagate --preset dual-prior --labels-file``): the
snippets of labelled normal videos are pseudo-normal and the labelled spans pseudo-abnormal
(label_source 1); F_z, F_n and tau come from the unlabelled snippets only, which are labelled by
the rule above; a labelled abnormal video without spans keeps the rule's labels (the video is
marked abnormal). No second solve and no transfer to other videos (the in-video few-shot recipe,
:mod:`lanp.method.fewshot`, has those). Empty labels give the dual prior exactly.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Optional, Sequence, Tuple

import numpy as np

from lanp.kernels import InputError, pack_seeds
from lanp.method import diagnostics
from lanp.method import labels as L
from lanp.method.crossvideo import CrossVideoRecipe, CrossVideoSettings
from lanp.method.options import RECOMMENDED, PropagateConfig
from lanp.method.recipe import PRIOR_VIOLATION, Recipe
from lanp.method.results import Decision, FirstPass

HIST_BINS = 2048
SAMPLE = 64


@dataclass(frozen=True)
class DualPriorSettings:
    """The constants of the dual prior: ``abnormal_share`` q of the dataset's snippets labelled
    pseudo-abnormal; the cross-video anchors and search as :class:`CrossVideoSettings`."""

    abnormal_share: float = 0.15
    crossvideo: CrossVideoSettings = CrossVideoSettings()

    def __post_init__(self):
        q = self.abnormal_share
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q < 1.0:
            raise ValueError(f"abnormal_share={q!r} is invalid: it must be a number in the open interval (0, 1)")

    def attrs(self) -> dict:
        return {"dual_abnormal_share": float(self.abnormal_share), **self.crossvideo.attrs()}


def seed_means(z: np.ndarray, offsets: np.ndarray, seeds) -> np.ndarray:
    """(V,) float64: mean of z at each video's seed snippets (``seeds`` as the kernels take them)."""
    positions, seed_offsets = pack_seeds(seeds, np.diff(offsets))
    rows = np.repeat(np.asarray(offsets[:-1], np.int64), np.diff(seed_offsets)) + positions
    sums = np.add.reduceat(np.asarray(z, np.float64)[rows], seed_offsets[:-1])
    return sums / np.diff(seed_offsets)


@dataclass(frozen=True)
class Bins:
    """``count`` bins of [0, hi] for a term's histogram, equal in t(v) = log(v + floor) when
    ``floor`` > 0 (fine near 0, relative width (hi / floor)^(1/count) - 1 above floor), else
    equal in v. position(v) = count (t(v) - t(0)) / (t(hi) - t(0)), clipped to [0, count]; NaN
    counts as hi."""

    hi: float
    floor: float = 0.0
    count: int = HIST_BINS

    def position(self, values: np.ndarray) -> np.ndarray:
        v = np.clip(np.nan_to_num(np.asarray(values, np.float64), nan=self.hi), 0.0, self.hi)
        if self.floor > 0.0:
            t = np.log1p(v / self.floor) / np.log1p(self.hi / self.floor)
        else:
            t = v / self.hi
        return t * self.count

    def index(self, values: np.ndarray) -> np.ndarray:
        return np.minimum(np.floor(self.position(values)).astype(np.int64), self.count - 1)

    def describe(self) -> str:
        kind = f"log(v + {self.floor:g})" if self.floor > 0.0 else "v"
        return f"{self.count} bins of [0, {self.hi:g}] equal in {kind}"


ZN_BINS = Bins(hi=4.0, floor=1e-3)        # zn = z / seed mean: near 0 the most abnormal, real data reaches 2.3
U_BINS = Bins(hi=2.0, floor=1e-5)         # u = 1 - cosine to the nearest anchor, in [0, 2]


def video_histograms(values: np.ndarray, offsets: np.ndarray, bins: Bins, weights=None) -> np.ndarray:
    """(V, bins.count) int64: per-video counts of ``values`` in ``bins`` (values outside [0, hi]
    counted in the end bins); ``weights`` (N,) int: what each value counts (1)."""
    V = offsets.shape[0] - 1
    video = np.repeat(np.arange(V), np.diff(offsets))
    out = np.zeros((V, bins.count), dtype=np.int64)
    np.add.at(out, (video, bins.index(values)), 1 if weights is None else weights)
    return out


def sample_positions(length: int, m: int = SAMPLE) -> np.ndarray:
    """The evenly spaced sample of a video of ``length`` snippets: all of them when length <= m,
    else floor((k + 1/2) length / m) for k < m."""
    if length <= m:
        return np.arange(length)
    return np.floor((np.arange(m) + 0.5) * length / m).astype(np.int64)


def sample_rows(offsets: np.ndarray, m: int = SAMPLE) -> np.ndarray:
    """(sum of min(L_v, m),) int64 global rows of every video's :func:`sample_positions`, in video
    order (offsets (V+1,))."""
    offsets = np.asarray(offsets, np.int64)
    parts = [offsets[v] + sample_positions(int(offsets[v + 1] - offsets[v]), m) for v in range(offsets.shape[0] - 1)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


class HistogramCdf:
    """The empirical CDF of a dataset from summed bin counts of ``bins``, linear in the bin's
    position inside a bin: F(v) = (count of bins below v's + fraction of v's bin) / total, in [0, 1]."""

    def __init__(self, counts: np.ndarray, bins: Bins):
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (bins.count,):
            raise ValueError(f"counts of shape {counts.shape} do not fit {bins.describe()}")
        self.bins = bins
        self.total = float(counts.sum())
        self.below = np.concatenate([[0.0], np.cumsum(counts)])[:-1]
        self.counts = counts

    def __call__(self, values: np.ndarray) -> np.ndarray:
        pos = self.bins.position(values)
        i = np.minimum(np.floor(pos).astype(np.int64), self.bins.count - 1)
        return (self.below[i] + self.counts[i] * (pos - i)) / self.total


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value v with (sum of weights of values <= v) >= q * total."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][min(int(np.searchsorted(cum, q * cum[-1])), len(order) - 1)])


# options of the paper's video split that the dual prior has no use for (it splits no videos)
SPLIT_OPTIONS = ("n_normal", "normal_fraction", "normal_split", "abnormal_ratio")


def check_split_options(config: PropagateConfig, recipe: str, video_score_given: bool = False) -> None:
    """ValueError for an option of the paper's video split set on a run of ``recipe`` (the dual or
    tri prior; it would be ignored): they label a share of the dataset's snippets, without a video
    split."""
    defaults = PropagateConfig()
    given = [f"{k}={getattr(config, k)!r}" for k in SPLIT_OPTIONS if getattr(config, k) != getattr(defaults, k)]
    if video_score_given:
        given.append(f"video_score={config.video_score!r}")
    if given:
        raise ValueError(f"{', '.join(given)} does not apply to the {recipe} recipe (preset {recipe!r}"
                         f"{', today the recommended one' if recipe == RECOMMENDED else ''}): it labels the top "
                         f"abnormal_share (--abnormal-share) of the dataset's snippets without a video split; use preset "
                         f"'tail-adjusted' or 'paper' for the paper's split")


class DualPriorRecipe(CrossVideoRecipe):
    """The dual normality prior (see the module docstring); the cross-video recipe's anchors and
    context pass, the paper's in-video propagation."""

    name = "dual-prior"
    TERMS = 2               # normality columns of z before the human-label columns
    TABLES = (("dual_cdf_zn", "dual_hist_zn", ZN_BINS), ("dual_cdf_u", "dual_hist_u", U_BINS))   # (attr, stat, bins) per term

    def __init__(self, config: Optional[PropagateConfig] = None, settings: Optional[DualPriorSettings] = None,
                 human=None, video_ids: Sequence[str] = (), lengths=None):
        check_split_options(config or PropagateConfig(), self.name)
        self.dual = settings or DualPriorSettings()
        super().__init__(config, self.dual.crossvideo)
        self.human = human if human is not None and len(human) else None
        self.video_ids = list(video_ids)
        self.lengths = np.asarray(lengths if lengths is not None else [], dtype=np.int64)
        self.snippet_human = self.video_human = None
        if self.human is not None:
            if self.lengths.shape != (len(self.video_ids),):
                raise ValueError(f"human labels need one length per video id ({len(self.video_ids)}), got "
                                 f"lengths of shape {self.lengths.shape}")
            self.human.check(self.video_ids, self.lengths)
            offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
            self.snippet_human, self.video_human = self.human.snippet_arrays(self.video_ids, offsets)
            self.global_offsets = offsets

    def fresh(self) -> "DualPriorRecipe":
        return type(self)(self.config, self.dual, self.human, self.video_ids,
                          self.lengths if self.human is not None else None)

    def check_dataset(self, num_videos: int) -> None:
        if self.human is not None and num_videos != len(self.video_ids):
            raise ValueError(f"the human labels were resolved for {len(self.video_ids)} videos, the data has "
                             f"{num_videos}")
        super().check_dataset(num_videos)

    # -- identity -------------------------------------------------------------------------
    def pass1_key(self) -> dict:
        return {**super().pass1_key(), "recipe": self.name, "dual": asdict(self.dual),
                "bins": [bins.describe() for _, _, bins in self.TABLES]}

    def run_key(self) -> dict:
        return {**super().run_key(), "recipe": self.name, "dual": asdict(self.dual)}

    def attrs(self) -> dict:
        out = {**super().attrs(), "preset": self.config.preset, "recipe": self.name, **self.dual.attrs(),
               "video_score": "dual-share-above",
               "dual_bins": json.dumps({cdf: bins.describe() for cdf, _, bins in self.TABLES})}   # reads the dual_cdf_* tables
        if self.human is not None:
            out.update({"human_labels": self.human.source, "human_video_ids": json.dumps(list(self.human.kinds)),
                        "human_normal_videos": int((self.video_human == 0).sum()),
                        "human_abnormal_videos": int((self.video_human == 1).sum()),
                        "human_spans": int(sum(len(v) for v in self.human.spans.values()))})
        return out

    @property
    def abnormal_ratio(self) -> float:
        return self.dual.abnormal_share

    # -- pass 1 ---------------------------------------------------------------------------
    def normality(self, x, offsets, video_ids, where, first_video):
        """(n, 2): zn (the in-video propagation over its seeds' mean) and n (the nearest other
        video's seed snippet)."""
        if self.anchors is None:
            raise RuntimeError("the dual-prior recipe needs its anchors: run it through a runner "
                               "(lanp.label, lanp.runners), which gathers them first")
        inside = Recipe.normality(self, x, offsets, video_ids, where, first_video)
        z = np.asarray(inside.z, np.float64)
        scale = np.repeat(seed_means(z, offsets, self.config.seeds), np.diff(offsets))
        zn = np.divide(z, scale, out=np.zeros_like(z), where=scale > 0)
        n = self.anchor_similarity(x, offsets, video_ids, where, first_video)[:, -1]
        n = np.where(np.isfinite(n), n, -1.0)                        # no eligible anchor: least normal
        columns = [zn, n, *self.extra_terms(x)]
        if self.human is not None:                                   # + the snippet's and its video's human label
            a = int(self.global_offsets[first_video])
            columns.append(self.snippet_human[a:a + x.shape[0]])
            columns.append(np.repeat(self.video_human[first_video:first_video + offsets.shape[0] - 1], np.diff(offsets)))
        return replace(inside, z=np.stack(columns, axis=1), backend=f"{inside.backend}+anchors")

    def extra_terms(self, x: np.ndarray) -> list:
        """Further normality columns after (zn, n), one (n,) array each (none here; the tri prior adds one)."""
        return []

    def unlabelled(self, z: np.ndarray) -> np.ndarray:
        """(n,) bool: the rows of z without a human label (all of them without human labels)."""
        k = self.TERMS
        return np.ones(z.shape[0], bool) if z.shape[1] == k else z[:, k] < 0

    def video_stats(self, z: np.ndarray, offsets: np.ndarray) -> dict:
        """Histograms of zn and 1 - n over the unlabelled snippets, the (zn, n) sample of them, and
        the prior violations of zn (and, with human labels, each video's label)."""
        lengths, k = np.diff(offsets), self.TERMS
        free = self.unlabelled(z)
        sample = np.full((lengths.shape[0], SAMPLE, k), np.nan, dtype=np.float32)
        for v in range(lengths.shape[0]):
            rows = offsets[v] + np.flatnonzero(free[offsets[v]:offsets[v + 1]])
            pos = sample_positions(int(rows.size))
            sample[v, :pos.size] = z[rows[pos], :k]
        weights = free.astype(np.int64)
        stats = {"dual_hist_zn": video_histograms(z[:, 0], offsets, ZN_BINS, weights),
                 "dual_hist_u": video_histograms(1.0 - z[:, 1].astype(np.float64), offsets, U_BINS, weights),
                 "dual_sample": sample, "dual_unlabelled": np.add.reduceat(weights, offsets[:-1]) if z.shape[0] else
                 np.zeros(lengths.shape[0], np.int64),
                 PRIOR_VIOLATION: diagnostics.prior_violations(np.ascontiguousarray(z[:, 0]), offsets, 0.4)}
        if z.shape[1] > k:
            stats["video_human"] = z[offsets[:-1], k + 1].astype(np.int8)
        return stats

    # -- global step ----------------------------------------------------------------------
    def abnormality(self, z: np.ndarray, cdf_zn: HistogramCdf, cdf_u: HistogramCdf) -> np.ndarray:
        """a = 1 - (F_z(zn) + F_n(n)) / 2 for rows (zn, n); F_n(n) = 1 - F_u(1 - n)."""
        z = np.asarray(z, np.float64)
        return 1.0 - 0.5 * (cdf_zn(z[:, 0]) + (1.0 - cdf_u(1.0 - z[:, 1])))

    def decide(self, first: FirstPass, video_ids, where: str) -> Decision:
        """F_z and F_n from the summed histograms (kept in the attrs as cumulative tables: what pass 2
        and the outputs use), tau from the weighted sample; video score = the sample's share above tau."""
        cumulative = {}
        for name, stat, _ in self.TABLES:
            counts = first.stats[stat].sum(axis=0)
            if counts.sum() == 0:
                raise InputError(f"{where}: every video is labelled: the dual prior needs unlabelled snippets to rank")
            cumulative[name] = np.concatenate([[0.0], np.cumsum(counts)]) / counts.sum()
        tables = self.tables_from_attrs(cumulative)
        sample = first.stats["dual_sample"]
        free = first.stats["dual_unlabelled"].astype(np.float64)        # unlabelled snippets per video
        taken = np.isfinite(sample[:, :, 0])
        m = taken.sum(axis=1)
        a = np.full(taken.shape, -np.inf)
        a[taken] = self.abnormality(sample[taken], *tables)
        weights = np.broadcast_to((free / np.maximum(m, 1))[:, None], taken.shape)[taken]
        tau = weighted_quantile(a[taken], weights, 1.0 - self.dual.abnormal_share)
        scores = (a > tau).sum(axis=1) / np.maximum(m, 1)
        abnormal = scores > 0
        if "video_human" in first.stats:                            # labelled videos as labelled
            human = first.stats["video_human"]
            scores = np.where(human == 1, 1.0, np.where(human == 0, 0.0, scores))
            abnormal = np.where(human >= 0, human == 1, abnormal)
        listed = np.asarray(L.confident_normal_videos(scores, abnormal, self.config.confident_fraction)
                            if (~abnormal).any() else np.argsort(scores, kind="stable")[:1], dtype=np.int64)
        attrs = {"n_normal": int((~abnormal).sum()), "confident_videos": len(listed), "dual_threshold": float(tau),
                 **cumulative,
                 **diagnostics.diagnose_from_summaries(first.lengths, scores, abnormal, first.iterations,
                                                       first.residual, first.stats[PRIOR_VIOLATION])}
        return Decision(scores, abnormal, listed, first.rows[listed], attrs)

    @classmethod
    def tables_from_attrs(cls, attrs: dict) -> Tuple[HistogramCdf, ...]:
        """F_z and F_u (and the subclasses' further terms) from a decision's cumulative tables (so a
        shard's worker needs nothing else)."""
        return tuple(HistogramCdf(np.diff(np.asarray(attrs[k], np.float64)), bins) for k, _, bins in cls.TABLES)

    # -- pass 2 ---------------------------------------------------------------------------
    def second_pass(self, x, z, offsets, abnormal, decision: Decision):
        """pseudo = a > tau (uint8), weights 1 (float32)."""
        a = self.abnormality(z, *self.tables_from_attrs(decision.attrs))
        pseudo = (a > decision.attrs["dual_threshold"]).astype(np.uint8)
        k = self.TERMS
        if z.shape[1] > k:                                          # human labels win
            labelled = z[:, k] >= 0
            pseudo[labelled] = z[labelled, k].astype(np.uint8)
        return pseudo, np.ones(a.shape[0], np.float32)

    def outputs(self, first: FirstPass, decision: Optional[Decision] = None) -> dict:
        """normality = 1 - a (in [0, 1], higher = more normal); the two normalities as they are."""
        z = np.asarray(first.z)
        out = {"in_video_normality": z[:, 0].astype(np.float32), "cross_video_normality": z[:, 1].astype(np.float32)}
        if decision is not None and "dual_cdf_zn" in decision.attrs:
            out["normality"] = (1.0 - self.abnormality(z, *self.tables_from_attrs(decision.attrs))).astype(np.float32)
        else:
            out["normality"] = z[:, 0].astype(np.float32)
        if z.shape[1] > self.TERMS:
            out.update({"abnormality": (1.0 - out["normality"]).astype(np.float32),
                        "label_source": (z[:, self.TERMS] >= 0).astype(np.uint8),
                        "video_human": np.asarray(first.stats["video_human"], np.int8)})
        return out
