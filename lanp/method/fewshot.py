"""Few-shot lanp (issue 16): a handful of human-labelled videos or anomaly spans as a second class.

Propagation is linear in y, so on the base recipe's graph (same options, same S_v per video) two
right-hand sides give two classes:

    z_nor = (I - alpha S_v)^-1 y_nor,   y_nor = 1 at the prior's seeds (0, -1), or at every snippet
                                        of a labelled normal video (at the prior's seeds outside
                                        the labelled spans of a labelled abnormal video);
    z_abn = (I - alpha S_v)^-1 y_abn,   y_abn = 1 at the snippets of labelled spans, plus the
                                        prototype transfer below in the other videos.

Each is normalised by its seeds, z_hat = z / c_v with c_v = (y_v . z_v) / (y_v . y_v) (the mean of z
at its seeds when y is 0/1, so "1 = as normal (abnormal) as a seed"; a seed of strength t sits near
t), and combined into the abnormality

    a_i = z_hat_abn,i / (z_hat_nor,i + z_hat_abn,i + eps)  in [0, 1]   (videos with abnormal seeds),
    a_i = clip(1 - z_hat_nor,i, 0, 1)                                  (videos without any).

Transfer across videos: every labelled span gives a prototype p_k, the mean of its L2-normalised
snippet rows (across domains: source rows aligned into the target's space first,
:mod:`lanp.method.adapt`). A snippet's similarity s_i = max_k cos(x_i, p_k); the threshold tau is
the ``tau_quantile`` quantile of s over rows believed normal (the prior's seed snippets of the
unlabelled videos and every snippet of the labelled normal videos); in each video that is neither
labelled normal nor labelled with spans, the at most ceil(f L) highest-s snippets with s > tau are
abnormal seeds of strength y_i = (s_i - tau) / (1 - tau) in z_abn. "s > tau" means s > tau + 1e-9
(``TIE_MARGIN``): tau is often exactly the similarity of one of the normal rows (a seed snippet of an
eligible video), and that row's s, recomputed in another block or runner, lands a rounding error
(~D ulps) above or below it; a seed however weak switches its video to the two-class formula, so
rounding would decide between two different abnormalities. Within the margin a row is a tie with the
threshold and is not transferred.

The rest is the base recipe with the labels fixed:

- video scores: the base recipe's, from the prior-seed z of every video (so unlabelled videos are
  ranked exactly as in plain lanp); split: labelled videos fixed at their label, N_nor (count,
  fraction, Otsu or GMM) over the unlabelled videos only;
- normal list M: the max(1, floor(h N_nor)) lowest-score unlabelled normal videos, then every
  labelled normal video;
- pseudo-labels: labelled spans 1 (weight 1, label_source 1); labelled normal videos 0 (weight 1,
  label_source 1); in the other abnormal videos (labelled abnormal without spans included, with
  label_source 0) the floor(r L) snippets of highest a (where a video has no abnormal seed: of
  lowest z_nor, the same order, ties to the earlier snippet as in the paper); loss weights of the
  method's snippets as the paper's, w = exp(-|d - y_hat|).

With no labels (``HumanLabels.empty()``) nothing differs from the base recipe: y_abn = 0
everywhere, the labels file's datasets equal plain lanp's bit for bit (tests/method/test_fewshot.py).
The labelled rows and prototypes travel through the recipe's context pass, so the in-memory, file
and sharded runners compute the same labels. The first-pass z of this recipe holds four columns
(z_nor, a, label_source, the pseudo-label ranking key) in float32; :meth:`outputs` turns them into
the labels file's ``normality``, ``abnormality``, ``label_source`` and ``video_human``.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Optional, Sequence

import numpy as np

from lanp.data.human_labels import HumanLabels
from lanp.kernels import InputError, pack_seeds, propagate, video_name
from lanp.method import labels as L
from lanp.method.options import PropagateConfig
from lanp.method.recipe import Recipe
from lanp.method.results import FirstPass

FEWSHOT_PRESETS = ("recommended", "tail-adjusted", "paper")   # recommended: the in-video tail-adjusted base
Z_NOR, ABNORMALITY, LABEL_SOURCE, KEY = range(4)
TIE_MARGIN = 1e-9   # s within this of tau is a tie (not above): far above the ~D * 1e-16 rounding of a cosine,
                    # far below any similarity difference that means something


@dataclass(frozen=True)
class FewShotSettings:
    """The constants of the few-shot recipe (module docstring)."""

    transfer: bool = True          # prototypes of labelled spans seed similar snippets of other videos
    tau_quantile: float = 0.95     # tau = this quantile of the prototype similarity of normal rows
    transfer_fraction: float = 0.1  # at most ceil(f L) transferred seeds per video
    eps: float = 1e-9

    def __post_init__(self):
        if not 0.0 <= self.tau_quantile <= 1.0:
            raise ValueError(f"tau_quantile={self.tau_quantile!r} is invalid: it must be in [0, 1]")
        if not 0.0 < self.transfer_fraction <= 1.0:
            raise ValueError(f"transfer_fraction={self.transfer_fraction!r} is invalid: it must be in (0, 1]")
        if not self.eps > 0:
            raise ValueError(f"eps={self.eps!r} is invalid: it must be > 0")

    def attrs(self) -> dict:
        return {f"fewshot_{k}": (int(v) if isinstance(v, bool) else v) for k, v in asdict(self).items()}


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norm > 0, norm, 1.0)


def span_prototypes(x, offsets, spans_by_video) -> np.ndarray:
    """(k, D) float64: the mean of the L2-normalised rows of every span; ``spans_by_video`` maps a
    local video to its [start, end) snippet spans."""
    rows = [unit(x[int(offsets[v]) + s:int(offsets[v]) + e]).mean(axis=0)
            for v, spans in spans_by_video.items() for s, e in spans]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), x.shape[1])


def max_similarity(x, prototypes, block: int = 65536) -> np.ndarray:
    """s_i = max_k cos(x_i, p_k) (n,) float64 (a zero row: 0); ``prototypes`` are unit rows."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for a in range(0, x.shape[0], block):
        out[a:a + block] = (unit(x[a:a + block]) @ prototypes.T).max(axis=1)
    return out


def seed_normaliser(y, z, offsets) -> np.ndarray:
    """c_v = (y_v . z_v) / (y_v . y_v) per video (V,) float64; 1 where y_v = 0 (z_v = 0 there)."""
    starts = offsets[:-1]
    yy = np.add.reduceat(y * y, starts) if y.size else np.zeros(0)
    yz = np.add.reduceat(y * z, starts) if y.size else np.zeros(0)
    return np.where(yy > 0, yz / np.where(yy > 0, yy, 1.0), 1.0)


def combine(z_nor, z_abn, has_abnormal, eps) -> np.ndarray:
    """a = z_abn / (z_nor + z_abn + eps) where ``has_abnormal`` (per snippet), else clip(1 - z_nor, 0, 1);
    both normalised by their seeds."""
    two = z_abn / (np.maximum(z_nor, 0) + np.maximum(z_abn, 0) + eps)
    return np.where(has_abnormal, np.clip(two, 0.0, 1.0), np.clip(1.0 - z_nor, 0.0, 1.0))


def transfer_seeds(similarity, offsets, eligible, tau: float, fraction: float) -> np.ndarray:
    """y (n,) float64: in each eligible video the at most ceil(f L) highest-similarity snippets with
    s > tau + TIE_MARGIN get y = (s - tau) / (1 - tau) (ties: the earlier snippet); 0 elsewhere."""
    y = np.zeros(similarity.shape[0], dtype=np.float64)
    if tau >= 1.0:
        return y
    for v in np.flatnonzero(eligible):
        a, b = int(offsets[v]), int(offsets[v + 1])
        s = similarity[a:b]
        top = np.argsort(-s, kind="stable")[:int(math.ceil(fraction * (b - a)))]
        top = top[s[top] > tau + TIE_MARGIN]
        y[a + top] = (s[top] - tau) / (1.0 - tau)
    return y


def _subset(x, offsets, videos):
    """(rows, offsets, row index) of the listed local videos, in order."""
    index = np.concatenate([np.arange(offsets[v], offsets[v + 1]) for v in videos]) if len(videos) else \
        np.zeros(0, dtype=np.int64)
    lengths = np.diff(offsets)[videos]
    return x[index], np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), index


def _kernel_takes_y() -> bool:
    try:
        return "y" in inspect.signature(propagate).parameters
    except (TypeError, ValueError):                     # pragma: no cover
        return False


class FewShotRecipe(Recipe):
    """Few-shot lanp (module docstring) over the base recipe of ``config`` (presets recommended and
    paper). ``human``: the labels of this dataset (ids of ``video_ids``, spans in snippets, checked
    against ``lengths``); ``prototypes``: extra (k, D) prototype rows (e.g. aligned source-domain
    spans, :func:`lanp.method.fewshot.source_prototypes`), with ``source_attrs`` describing them."""

    name = "few-shot"
    needs_context = True

    def __init__(self, config: Optional[PropagateConfig] = None, human: Optional[HumanLabels] = None,
                 video_ids: Sequence[str] = (), lengths=None, settings: Optional[FewShotSettings] = None,
                 prototypes: Optional[np.ndarray] = None, source_attrs: Optional[dict] = None):
        config = config or PropagateConfig()
        if config.preset not in FEWSHOT_PRESETS:
            raise ValueError(f"preset={config.preset!r} is invalid with human labels: few-shot lanp runs on "
                             f"the presets {' and '.join(FEWSHOT_PRESETS)}")
        super().__init__(config)
        self.human = human if human is not None else HumanLabels.empty()
        self.video_ids = list(video_ids)
        self.lengths = np.asarray(lengths if lengths is not None else [], dtype=np.int64)
        if self.lengths.shape != (len(self.video_ids),):
            raise ValueError(f"lengths must give one snippet count per video id ({len(self.video_ids)}), got "
                             f"shape {self.lengths.shape}")
        self.human.check(self.video_ids, self.lengths)
        self.settings = settings or FewShotSettings()
        index = {vid: v for v, vid in enumerate(self.video_ids)}
        self.video_human = np.full(len(self.video_ids), -1, dtype=np.int8)
        for vid, kind in self.human.kinds.items():
            self.video_human[index[vid]] = 0 if kind == "normal_video" else 1
        self.spans = {index[vid]: tuple(spans) for vid, spans in self.human.spans.items() if spans}
        self.extra_prototypes = (np.zeros((0, 0)) if prototypes is None else unit(prototypes))
        self.source_attrs = dict(source_attrs or {})
        self.prototypes: Optional[np.ndarray] = None     # set by with_context
        self.tau: Optional[float] = None

    # -- context: prototypes and the rows believed normal ------------------------------------
    def context_rows(self, x: np.ndarray, offsets: np.ndarray, first_video: int):
        """(rows (m, D) float64 unit, global video (m,)): a labelled-span video gives one prototype
        per span; a labelled normal video every snippet; an unlabelled video its prior seeds
        (distinct); a labelled abnormal video without spans nothing."""
        V = offsets.shape[0] - 1
        human = self.video_human[first_video:first_video + V]
        rows, videos = [], []
        local_spans = {v - first_video: s for v, s in self.spans.items() if first_video <= v < first_video + V}
        if local_spans:
            rows.append(span_prototypes(x, offsets, local_spans))
            videos.append(np.asarray([v + first_video for v, spans in local_spans.items() for _ in spans]))
        for v in np.flatnonzero(human == 0):
            rows.append(unit(x[offsets[v]:offsets[v + 1]]))
            videos.append(np.full(int(offsets[v + 1] - offsets[v]), v + first_video))
        free = np.flatnonzero(human == -1)
        if free.size:
            positions, seed_offsets = pack_seeds(self.config.seeds, np.diff(offsets)[free])
            video = np.repeat(free, np.diff(seed_offsets))
            video, local = np.unique(np.stack([video, positions], axis=1), axis=0).T
            rows.append(unit(x[offsets[video] + local]))
            videos.append(video + first_video)
        D = x.shape[1]
        return (np.concatenate(rows) if rows else np.zeros((0, D)),
                np.concatenate(videos).astype(np.int64) if videos else np.zeros(0, dtype=np.int64))

    def with_context(self, rows: np.ndarray, videos: np.ndarray) -> "FewShotRecipe":
        out = FewShotRecipe(self.config, self.human, self.video_ids, self.lengths, self.settings,
                            self.extra_prototypes if self.extra_prototypes.size else None, self.source_attrs)
        rows = np.asarray(rows, dtype=np.float64)
        videos = np.asarray(videos, dtype=np.int64)
        is_prototype = self.video_human[videos] == 1 if videos.size else np.zeros(0, bool)
        protos = rows[is_prototype]
        if self.extra_prototypes.size:
            protos = np.concatenate([protos.reshape(-1, self.extra_prototypes.shape[1]), self.extra_prototypes])
        out.prototypes = protos
        normal = rows[~is_prototype]
        if protos.shape[0] and normal.shape[0] and self.settings.transfer:
            out.tau = float(np.quantile(max_similarity(normal, protos), self.settings.tau_quantile))
        return out

    def _context_digest(self) -> str:
        h = hashlib.sha256(json.dumps({"kinds": self.human.kinds, "spans": {k: list(v) for k, v in self.human.spans.items()},
                                       "ids": self.video_ids}, sort_keys=True).encode())
        for a in (self.prototypes, self.extra_prototypes):
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr(self.tau).encode())
        return h.hexdigest()[:32]

    # -- identity -------------------------------------------------------------------------------
    def pass1_key(self) -> dict:
        return {**super().pass1_key(), "recipe": self.name, "settings": asdict(self.settings),
                "context": self._context_digest()}

    def run_key(self) -> dict:
        return {**super().run_key(), "recipe": self.name, "settings": asdict(self.settings),
                "context": self._context_digest()}

    def attrs(self) -> dict:
        ids = list(self.human.kinds)
        return {**super().attrs(), "recipe": self.name, **self.settings.attrs(),
                "human_labels": self.human.source, "human_video_ids": json.dumps(ids),
                "human_normal_videos": int((self.video_human == 0).sum()),
                "human_abnormal_videos": int((self.video_human == 1).sum()),
                "human_spans": int(sum(len(s) for s in self.spans.values())),
                "fewshot_num_prototypes": int(0 if self.prototypes is None else self.prototypes.shape[0]),
                "fewshot_tau": float("nan") if self.tau is None else self.tau, **self.source_attrs}

    # -- checks -------------------------------------------------------------------------------
    def check_dataset(self, num_videos: int) -> None:
        if num_videos != len(self.video_ids):
            raise ValueError(f"the few-shot recipe was built for {len(self.video_ids)} videos, the data has "
                             f"{num_videos}")
        free = int((self.video_human == -1).sum())
        if free:
            self.n_normal(free)
        elif not (self.video_human == 0).any():
            raise InputError(f"{self.human.source}: every video is labelled abnormal: the normal list needs a "
                             f"normal video")

    def _check_ids(self, video_ids, first_video: int, where: str) -> None:
        mine = self.video_ids[first_video:first_video + len(video_ids)]
        if list(video_ids) != mine:
            bad = next(i for i, (a, b) in enumerate(zip(list(video_ids) + [None] * len(mine), mine)) if a != b)
            raise InputError(f"{where}: video {first_video + bad} is {list(video_ids)[bad]!r} but the few-shot labels "
                             f"were matched to {mine[bad]!r}: build the recipe with the features' own video ids")

    # -- pass 1 ---------------------------------------------------------------------------------
    def _solve(self, x, offsets, y, video_ids, where):
        """z (n,) float64 of (I - alpha S) z = y on the videos of ``x`` (the base recipe's graph).
        Until the kernels take ``y``: seeds at y > 0 and z scaled by the mean y there (exact for
        a 0/1 y)."""
        kwargs = self.config.kernel_kwargs()
        kwargs.pop("seeds")
        if _kernel_takes_y():
            r = propagate(x, offsets, y=np.ascontiguousarray(y, dtype=np.float64), video_ids=video_ids,
                          where=where, warn=False, **kwargs)
            return np.asarray(r.z, dtype=np.float64), r
        seeds = [np.flatnonzero(y[a:b] > 0) for a, b in zip(offsets[:-1], offsets[1:])]
        r = propagate(x, offsets, seeds=seeds, video_ids=video_ids, where=where, warn=False, **kwargs)
        strength = np.array([y[a:b][y[a:b] > 0].mean() for a, b in zip(offsets[:-1], offsets[1:])])
        return np.asarray(r.z, dtype=np.float64) * np.repeat(strength, np.diff(offsets)), r

    def _resolve(self, x, offsets, videos, y_full, video_ids, where):
        """z (n,) float64 of y_full solved on the listed local videos (0 elsewhere), and the results."""
        z = np.zeros(x.shape[0], dtype=np.float64)
        videos = [v for v in videos if (y_full[offsets[v]:offsets[v + 1]] > 0).any()]   # z_v = 0 for y_v = 0
        if not videos:
            return z, None
        xs, os_, index = _subset(x, offsets, videos)
        ids = [video_ids[v] for v in videos] if video_ids is not None else None
        zs, r = self._solve(xs, os_, y_full[index], ids, where)
        z[index] = zs
        return z, r

    def first_pass(self, x: np.ndarray, offsets: np.ndarray, video_ids, where: str,
                   first_video: int = 0) -> FirstPass:
        """The base first pass (plain z, its video statistics) plus z_nor, z_abn and a."""
        self._check_ids(video_ids, first_video, where)
        if self.prototypes is None:
            raise RuntimeError("the few-shot recipe needs its context: run it through a runner (lanp.label, "
                               "lanp.runners), which gathers it first")
        base = super().first_pass(x, offsets, video_ids, where, first_video)
        t0 = time.perf_counter()
        V, n = offsets.shape[0] - 1, x.shape[0]
        lengths = np.diff(offsets)
        human = self.video_human[first_video:first_video + V]
        spans = {v - first_video: s for v, s in self.spans.items() if first_video <= v < first_video + V}
        in_span = np.zeros(n, dtype=bool)
        for v, vs in spans.items():
            for s, e in vs:
                in_span[offsets[v] + s:offsets[v] + e] = True
        # z_nor: the plain z, solved again where the labels change y_nor
        positions, seed_offsets = pack_seeds(self.config.seeds, lengths)
        y_nor = np.zeros(n, dtype=np.float64)
        y_nor[np.repeat(offsets[:-1], np.diff(seed_offsets)) + positions] = 1.0
        for v in np.flatnonzero(human == 0):
            y_nor[offsets[v]:offsets[v + 1]] = 1.0
        y_nor[in_span] = 0.0
        changed = [v for v in range(V) if human[v] == 0 or (v in spans and in_span[offsets[v]:offsets[v + 1]][
            positions[seed_offsets[v]:seed_offsets[v + 1]]].any())]
        z_nor = np.asarray(base.z, dtype=np.float64)
        z_new, _ = self._resolve(x, offsets, changed, y_nor, video_ids, where)
        if changed:
            _, _, index = _subset(x, offsets, changed)
            z_nor[index] = z_new[index]
        # z_abn: labelled spans, and the prototypes' transfer
        y_abn = in_span.astype(np.float64)
        eligible = (human == -1) | ((human == 1) & ~np.isin(np.arange(V), list(spans)))
        if self.tau is not None and self.prototypes.shape[0] and eligible.any():
            s = max_similarity(x, self.prototypes)
            y_abn += transfer_seeds(s, offsets, eligible, self.tau, self.settings.transfer_fraction)
        seeded = np.flatnonzero(np.add.reduceat(y_abn, offsets[:-1]) > 0) if n else np.zeros(0, np.int64)
        z_abn, r_abn = self._resolve(x, offsets, seeded, y_abn, video_ids, where)
        has_abnormal = np.zeros(V, dtype=bool)
        has_abnormal[seeded] = True
        c_nor, c_abn = seed_normaliser(y_nor, z_nor, offsets), seed_normaliser(y_abn, z_abn, offsets)
        a = combine(z_nor / np.repeat(c_nor, lengths), z_abn / np.repeat(c_abn, lengths),
                    np.repeat(has_abnormal, lengths), self.settings.eps)
        z_nor32 = z_nor.astype(self.z_dtype)
        key = np.where(np.repeat(has_abnormal, lengths), -a.astype(self.z_dtype), z_nor32)
        source = (np.repeat(human == 0, lengths) | in_span).astype(self.z_dtype)
        z = np.stack([z_nor32, a.astype(self.z_dtype), source, key.astype(self.z_dtype)], axis=1)
        stats = dict(base.stats)
        stats["video_human"] = human.copy()
        abn_iter = np.zeros(V, dtype=np.int32)
        abn_res = np.zeros(V, dtype=np.float64)
        if r_abn is not None:
            abn_iter[seeded] = np.asarray(r_abn.iterations)
            abn_res[seeded] = np.asarray(r_abn.residual)
        stats["abnormal_iterations"], stats["abnormal_residual"] = abn_iter, abn_res
        return replace(base, z=z, stats=stats, kernel_seconds=base.kernel_seconds + time.perf_counter() - t0)

    # -- global step ------------------------------------------------------------------------------
    def split(self, scores: np.ndarray) -> np.ndarray:
        """Labelled videos fixed; the base split over the unlabelled videos' scores."""
        free = np.flatnonzero(self.video_human == -1)
        abnormal = self.video_human == 1
        if free.size:
            abnormal[free] = super().split(scores[free])
        return abnormal

    def normal_list(self, scores: np.ndarray, abnormal: np.ndarray) -> np.ndarray:
        """The base list over the unlabelled videos, then every labelled normal video."""
        free = np.flatnonzero(self.video_human == -1)
        listed = free[super().normal_list(scores[free], abnormal[free])] if free.size else np.zeros(0, np.int64)
        return np.concatenate([listed, np.flatnonzero(self.video_human == 0)]).astype(np.int64)

    def warn(self, first: FirstPass, video_ids, where: str) -> None:
        super().warn(first, video_ids, where)
        from lanp.kernels import warn_unconverged
        res = first.stats["abnormal_residual"]
        converged = ~(res > self.config.tol)
        warn_unconverged(converged, res, self.config.tol, self.config.maxiter, video_ids,
                         f"{where} (abnormality solve)", stacklevel=3)

    # -- pass 2 -----------------------------------------------------------------------------------
    def second_pass(self, x, z, offsets, abnormal, decision):
        """Top r of a in the abnormal videos (lowest z_nor where a video has no abnormal seed),
        labelled spans 1; human snippets weight 1."""
        source = z[:, LABEL_SOURCE] > 0
        pseudo = L.pseudo_labels(z[:, KEY], offsets, abnormal, self.abnormal_ratio)
        lengths = np.diff(offsets)
        spans_video = np.repeat(np.asarray(abnormal, bool) & (np.add.reduceat(source.astype(np.int64), offsets[:-1]) > 0)
                                if x.shape[0] else np.zeros(0, bool), lengths)
        pseudo = np.where(spans_video, source, pseudo).astype(np.uint8)
        weight = self.weights(x, pseudo, decision.means)
        weight[source] = 1.0
        return pseudo, weight

    def outputs(self, first: FirstPass, decision=None) -> dict:
        """normality (z_nor), abnormality (N,) float32, label_source (N,) uint8, video_human (V,) int8."""
        z = first.z
        return {"normality": np.asarray(z[:, Z_NOR], dtype=np.float32),
                "abnormality": np.asarray(z[:, ABNORMALITY], dtype=np.float32),
                "label_source": np.asarray(z[:, LABEL_SOURCE], dtype=np.uint8),
                "video_human": np.asarray(first.stats["video_human"], dtype=np.int8)}


def check_source_labels(human: HumanLabels, source_ids, source_lengths) -> None:
    """Refuse source labels that cannot give prototypes (no span), or that do not fit the source."""
    human.check(list(source_ids), source_lengths)
    if not any(human.spans.values()):
        raise InputError(f"labels file {human.source!r}: cross-domain labels need at least one abnormal_span "
                         f"row: the prototypes are the labelled spans' snippets")


def source_prototypes(source, human: HumanLabels, target_normal, adapt: str = "coral"):
    """Prototypes of the labelled spans of a SOURCE feature set, aligned into the target's space.

    ``source``: a runner source (:class:`lanp.runners.memory.ArraySource`, a feature file) whose
    videos ``human`` names. The alignment (:func:`lanp.method.adapt.fit_alignment`, ``adapt`` coral
    | whiten | none) is fitted on the source's labelled-normal snippets (its prior seed snippets
    where no video is labelled normal) and ``target_normal`` (n_t, D), the target's confident
    normal snippets. Each span's rows are aligned, L2-normalised and averaged. Returns
    (prototypes (k, D) float64, attrs)."""
    from lanp.method.adapt import fit_alignment

    ids = list(source.video_ids)
    check_source_labels(human, ids, source.lengths)
    index = {vid: v for v, vid in enumerate(ids)}
    spans = {index[v]: s for v, s in human.spans.items() if s}

    def rows(v):
        return np.asarray(source.read(int(v), int(v) + 1, dtype=np.float64, reuse=False)[0], dtype=np.float64)

    normal = [index[v] for v in human.normal_ids]
    if normal:
        reference = np.concatenate([rows(v) for v in normal])
    else:
        positions, seed_offsets = pack_seeds((0, -1), np.asarray(source.lengths))
        reference = np.concatenate([rows(v)[np.unique(positions[seed_offsets[v]:seed_offsets[v + 1]])]
                                    for v in range(len(ids))])
    target_normal = np.asarray(target_normal, dtype=np.float64)
    alignment = fit_alignment(reference, target_normal, method=adapt)
    protos = np.asarray([unit(alignment.apply(rows(v)[s:e])).mean(axis=0) for v, vs in spans.items() for s, e in vs])
    attrs = {"fewshot_source": str(source.path), "fewshot_source_video_ids": json.dumps(list(human.kinds)),
             "fewshot_adapt": adapt, "fewshot_source_normal_rows": int(reference.shape[0]),
             "fewshot_target_normal_rows": int(target_normal.shape[0])}
    return protos, attrs
