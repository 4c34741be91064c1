"""Paired few-shot label draws for ``lanp compare --shots`` (issue 16, item 6).

A draw of K shots labels K abnormal and K normal TRAINING videos, picked with the training split's
own ground truth (never the test split's): with ``label_kind="video"`` the abnormal videos are
labelled ``abnormal_video`` (no spans); with ``"span"`` each also gets its true anomalous snippet
runs as spans [start, end) (start inclusive, end exclusive, in snippets). Every method of a
comparison receives the same draws (paired).

Nesting: draw d orders the abnormal and the normal training videos once, by a permutation drawn
from the generator ``default_rng([seed, d])``; K shots take the first K of each order. So the draw
d with 5 shots contains the draw d with 1 shot, and a curve over shots is paired too. Shots 0 is
the empty labelling.

API::

    series = draw_series(ids, offsets, snippet_labels, shots=[1, 5], draws=3, label_kind="span", seed=0)
    series[5][0]          # HumanLabels of draw 0 with 5 shots
    write_draw_csv("few.csv", series[5][0])   # the labels file ``lanp propagate --labels-file`` reads
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from lanp.data.human_labels import HumanLabels, write_labels_csv
from lanp.kernels import InputError

LABEL_KINDS = ("video", "span")


def snippet_runs(labels: np.ndarray) -> Tuple[Tuple[int, int], ...]:
    """The runs of consecutive non-zero entries of a (L,) label vector as [start, end) pairs."""
    y = np.concatenate([[0], (np.asarray(labels) > 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(y))
    return tuple((int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2]))


def _check(video_ids, offsets, snippet_labels):
    offsets = np.asarray(offsets, dtype=np.int64)
    ids = list(video_ids)
    if offsets.ndim != 1 or offsets.shape[0] != len(ids) + 1:
        raise InputError(f"offsets have {offsets.shape[0]} entries for {len(ids)} videos: expected V + 1")
    y = np.asarray(snippet_labels)
    if y.shape != (int(offsets[-1]),):
        raise InputError(f"training ground truth has {y.shape} snippet labels for {int(offsets[-1])} snippets")
    return ids, offsets, y


def video_orders(video_ids, offsets, snippet_labels, draw: int, seed: int = 0):
    """(abnormal ids, normal ids) of the training videos in draw ``draw``'s random order."""
    ids, offsets, y = _check(video_ids, offsets, snippet_labels)
    abnormal = np.maximum.reduceat(y > 0, offsets[:-1]) if len(ids) else np.zeros(0, bool)
    abnormal &= np.diff(offsets) > 0
    rng = np.random.default_rng([int(seed), int(draw)])
    a = [ids[v] for v in np.flatnonzero(abnormal)]
    n = [ids[v] for v in np.flatnonzero(~abnormal)]
    return [a[i] for i in rng.permutation(len(a))], [n[i] for i in rng.permutation(len(n))]


def draw_labels(video_ids: Sequence[str], offsets, snippet_labels, shots: int, draws: int,
                label_kind: str = "span", seed: int = 0) -> list:
    """``draws`` labellings of ``shots`` abnormal + ``shots`` normal training videos (module
    docstring). ``snippet_labels`` (N,) is the training split's true snippet labels (1 abnormal)."""
    if label_kind not in LABEL_KINDS:
        raise InputError(f"label_kind={label_kind!r} is invalid: choose video or span")
    if isinstance(shots, bool) or int(shots) != shots or shots < 0:
        raise InputError(f"shots={shots!r} is invalid: it must be an integer >= 0")
    if isinstance(draws, bool) or int(draws) != draws or draws < 1:
        raise InputError(f"draws={draws!r} is invalid: it must be an integer >= 1")
    ids, offsets, y = _check(video_ids, offsets, snippet_labels)
    index = {vid: v for v, vid in enumerate(ids)}
    out = []
    for d in range(int(draws)):
        abnormal, normal = video_orders(ids, offsets, y, d, seed)
        if shots > min(len(abnormal), len(normal)):
            raise InputError(f"shots={shots} is invalid: the training split has {len(abnormal)} abnormal and "
                             f"{len(normal)} normal videos (at most {min(len(abnormal), len(normal))} shots)")
        kinds: Dict[str, str] = {}
        spans: Dict[str, tuple] = {}
        for vid in abnormal[:shots]:
            kinds[vid] = "abnormal_video"
            if label_kind == "span":
                v = index[vid]
                spans[vid] = snippet_runs(y[offsets[v]:offsets[v + 1]])
        for vid in normal[:shots]:
            kinds[vid] = "normal_video"
        out.append(HumanLabels(kinds, spans, f"draw {d}, {shots} shots, {label_kind} labels, seed {seed}"))
    return out


def draw_series(video_ids, offsets, snippet_labels, shots: Sequence[int], draws: int, label_kind: str = "span",
                seed: int = 0) -> Dict[int, List]:
    """shots K -> the list of ``draws`` labellings (nested across K for the same draw index)."""
    return {int(k): draw_labels(video_ids, offsets, snippet_labels, int(k), draws, label_kind, seed) for k in shots}


def write_draw_csv(path, labels: HumanLabels) -> None:
    """Write a labelling as the labels CSV ``lanp propagate --labels-file`` reads (header, one
    ``abnormal_span`` row per span), atomically."""
    write_labels_csv(path, labels)
