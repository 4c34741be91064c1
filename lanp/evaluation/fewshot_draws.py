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

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from lanp.kernels import InputError

LABEL_KINDS = ("video", "span")


def _human_labels_class():
    """M's HumanLabels (lanp.data.human_labels), or a stand-in of the same fields until it exists."""
    try:
        from lanp.data.human_labels import HumanLabels
        return HumanLabels
    except ImportError:          # pragma: no cover - only before lanp.data.human_labels lands
        return _DrawnLabels


@dataclass(frozen=True)
class _DrawnLabels:
    kinds: dict
    spans: dict
    source: str = "drawn"

    def __len__(self):
        return len(self.kinds)


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
    cls = _human_labels_class()
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
        out.append(cls(kinds=kinds, spans=spans, source=f"draw {d}, {shots} shots, {label_kind} labels, seed {seed}"))
    return out


def draw_series(video_ids, offsets, snippet_labels, shots: Sequence[int], draws: int, label_kind: str = "span",
                seed: int = 0) -> Dict[int, List]:
    """shots K -> the list of ``draws`` labellings (nested across K for the same draw index)."""
    return {int(k): draw_labels(video_ids, offsets, snippet_labels, int(k), draws, label_kind, seed) for k in shots}


def csv_rows(labels) -> List[Tuple]:
    """The labels file rows ``video_id,kind[,start,end]`` of a labelling, one row per span."""
    rows = []
    for vid, kind in labels.kinds.items():
        spans = labels.spans.get(vid, ())
        if kind == "abnormal_video" and spans:
            rows.extend((vid, "abnormal_span", int(a), int(b)) for a, b in spans)
        else:
            rows.append((vid, kind))
    return rows


def write_draw_csv(path, labels) -> None:
    """Write a labelling as the labels CSV (M's ``write_labels_csv`` when it exists, the same rows
    otherwise), atomically."""
    try:
        from lanp.data.human_labels import write_labels_csv
    except ImportError:          # pragma: no cover - only before lanp.data.human_labels lands
        write_labels_csv = None
    if write_labels_csv is not None:
        write_labels_csv(path, labels)
        return
    from lanp.outputs import atomic_file

    text = "".join(",".join(str(c) for c in row) + "\n" for row in csv_rows(labels))
    with atomic_file(path) as f:
        f.write(text.encode("utf-8"))
