"""Human labels for few-shot runs (issue 16): a few videos or anomaly spans marked by a person.

A labels file is either

- a CSV with rows ``video_id,kind[,start,end]`` (a header row ``video_id,kind,start,end`` is
  optional; ``#`` starts a comment line). ``kind`` is ``normal_video`` (every snippet normal),
  ``abnormal_video`` (the video holds an anomaly somewhere) or ``abnormal_span`` (snippets
  [start, end) are abnormal: start inclusive, end exclusive; one row per span, a video may have
  several; its video is abnormal). Spans are in snippets, or in frames with
  ``span_units="frame"`` (``frames_per_snippet`` frames a snippet, 16 as elsewhere in lanp): a frame
  span [fs, fe) becomes the snippets it touches, [fs // f, ceil(fe / f)); or
- a subset of UCF-Crime's ``Temporal_Anomaly_Annotation.txt`` (``Name.mp4  Class  s1 e1 s2 e2``,
  frames, -1 -1 for no second span), read by :func:`lanp.data.groundtruth.read_ucf_annotations`:
  a video with no abnormal frame (class Normal, -1 -1 -1 -1) is ``normal_video``, every other
  video's runs of abnormal frames are its spans (frames, whatever ``span_units`` says).

Video names are matched to the features' ids exactly, else by
:func:`lanp.data.groundtruth.canonical_name` (``Abuse028_x264.mp4`` names ``Abuse028_x264``).
Refused with an :class:`lanp.kernels.InputError` naming the file, the line, the video and the value:
an id not in the features, a span outside its video (start < 0, start >= end, or past its L
snippets; in frames, more than one snippet past 16 L frames, the tail of the last snippet being
allowed and clipped), a video labelled both ``normal_video`` and ``abnormal_*``, a malformed line.
:func:`check_disjoint` refuses a labelled video that is also in a test file.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from lanp.data.groundtruth import FRAMES_PER_SNIPPET, canonical_name, check_fps
from lanp.kernels import InputError

KINDS = ("normal_video", "abnormal_video", "abnormal_span")
SPAN_UNITS = ("snippet", "frame")
HEADER = ("video_id", "kind", "start", "end")

Span = Tuple[int, int]


@dataclass(frozen=True)
class HumanLabels:
    """Labelled videos of one feature set.

    kinds: video id -> "normal_video" | "abnormal_video" (a video with spans is "abnormal_video");
    spans: video id -> sorted distinct [start, end) snippet spans (abnormal videos with spans only);
    source: where the labels came from (the labels file's path), for messages and attributes.
    ``len(labels)`` is the number of labelled videos.
    """

    kinds: Dict[str, str] = field(default_factory=dict)
    spans: Dict[str, Tuple[Span, ...]] = field(default_factory=dict)
    source: str = "human labels"

    @classmethod
    def empty(cls, source: str = "no labels") -> "HumanLabels":
        return cls({}, {}, source)

    def __len__(self) -> int:
        return len(self.kinds)

    @property
    def normal_ids(self):
        return [v for v, k in self.kinds.items() if k == "normal_video"]

    @property
    def abnormal_ids(self):
        return [v for v, k in self.kinds.items() if k == "abnormal_video"]

    def check(self, video_ids: Sequence[str], lengths) -> None:
        """Refuse labels that do not fit the features: an unknown id, a bad kind, a span outside
        its video (for labels built in code; :func:`read_labels_file` checks as it reads)."""
        index = {vid: v for v, vid in enumerate(video_ids)}
        for vid, kind in self.kinds.items():
            if vid not in index:
                raise InputError(f"{self.source}: video {vid!r} is not in the features ({len(index)} videos)")
            if kind not in ("normal_video", "abnormal_video"):
                raise InputError(f"{self.source}: video {vid!r} has kind {kind!r}: choose normal_video or "
                                 f"abnormal_video")
        for vid, spans in self.spans.items():
            if self.kinds.get(vid) != "abnormal_video":
                raise InputError(f"{self.source}: video {vid!r} has spans but is not labelled abnormal_video")
            L = int(lengths[index[vid]])
            for s, e in spans:
                _check_span(s, e, L, f"{self.source}: video {vid!r}", "snippet")

    def snippet_arrays(self, video_ids: Sequence[str], offsets) -> Tuple[np.ndarray, np.ndarray]:
        """(label (N,) int8: -1 unlabelled, 0 human normal, 1 human abnormal (inside a span);
        video_human (V,) int8: -1 unlabelled, 0 labelled normal, 1 labelled abnormal).
        The snippets of an abnormal video outside its spans (or of one without spans) are -1."""
        offsets = np.asarray(offsets, dtype=np.int64)
        label = np.full(int(offsets[-1]), -1, dtype=np.int8)
        video = np.full(len(video_ids), -1, dtype=np.int8)
        for v, vid in enumerate(video_ids):
            kind = self.kinds.get(vid)
            if kind is None:
                continue
            a, b = int(offsets[v]), int(offsets[v + 1])
            if kind == "normal_video":
                video[v], label[a:b] = 0, 0
            else:
                video[v] = 1
                for s, e in self.spans.get(vid, ()):
                    label[a + s:a + e] = 1
        return label, video


def _check_span(s: int, e: int, L: int, where: str, units: str, fps: int = FRAMES_PER_SNIPPET) -> None:
    """Refuse [s, e) unless 0 <= s < e and it lies in a video of L snippets (frames: s < f L and
    e <= f (L + 1), the last snippet's tail allowed)."""
    if s < 0 or e <= s:
        raise InputError(f"{where}: span [{s}, {e}) is invalid: it must satisfy 0 <= start < end (start "
                         f"inclusive, end exclusive, in {units}s)")
    limit = L if units == "snippet" else fps * (L + 1)
    if (units == "snippet" and e > L) or (units == "frame" and (s >= fps * L or e > limit)):
        size = f"{L} snippets" if units == "snippet" else f"{L} snippets = {fps * L} frames"
        raise InputError(f"{where}: span [{s}, {e}) lies outside the video's {size} (span units: {units}"
                         f"{'; --span-units frame if the file gives frames' if units == 'snippet' else ''})")


def _to_snippets(s: int, e: int, L: int, units: str, fps: int) -> Span:
    if units == "snippet":
        return s, e
    return s // fps, min(L, -(-e // fps))             # the snippets the frames touch


class _Matcher:
    """Label-file names -> feature ids: exact, else by canonical name (unique)."""

    def __init__(self, video_ids: Sequence[str]):
        self.exact = {vid: v for v, vid in enumerate(video_ids)}
        self.canon: Dict[str, list] = {}
        for vid in video_ids:
            self.canon.setdefault(canonical_name(vid), []).append(vid)

    def find(self, name: str, where: str) -> str:
        if name in self.exact:
            return name
        found = self.canon.get(canonical_name(name), [])
        if len(found) == 1:
            return found[0]
        if found:
            raise InputError(f"{where}: video {name!r} matches {len(found)} feature ids ({', '.join(found[:3])}): "
                             f"use the exact id")
        raise InputError(f"{where}: video {name!r} is not in the features ({len(self.exact)} videos; names "
                         f"compared exactly and as {canonical_name(name)!r})")


class _Builder:
    """Collects rows, refusing conflicting kinds."""

    def __init__(self, source: str):
        self.source = source
        self.kinds: Dict[str, str] = {}
        self.first_line: Dict[str, int] = {}
        self.spans: Dict[str, set] = {}

    def add(self, vid: str, kind: str, line: int, where: str, span: Optional[Span] = None) -> None:
        video_kind = "normal_video" if kind == "normal_video" else "abnormal_video"
        old = self.kinds.get(vid)
        if old is not None and old != video_kind:
            raise InputError(f"{where}: kind {kind!r} conflicts with line {self.first_line[vid]}, which labels "
                             f"video {vid!r} {old}: a video is either normal or abnormal")
        self.kinds.setdefault(vid, video_kind)
        self.first_line.setdefault(vid, line)
        if span is not None:
            self.spans.setdefault(vid, set()).add(span)

    def labels(self) -> HumanLabels:
        return HumanLabels(dict(self.kinds), {v: tuple(sorted(s)) for v, s in self.spans.items()}, self.source)


def _numbered_lines(path: Path):
    """(line number, text) of every non-blank, non-comment line (numbers count every line)."""
    from lanp.data.io import read_text_lines

    read_text_lines(path, "labels file")                 # missing, folder, binary: refused there
    text = path.read_bytes().decode("utf-8-sig")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")]


def _is_ucf(lines) -> bool:
    """A UCF-Crime annotation: whitespace-separated 'name class s1 e1 s2 e2 [frames]', no commas."""
    if not lines:
        return False
    fields = lines[0][1].split()
    return "," not in lines[0][1] and len(fields) in (6, 7) and not fields[1].lstrip("-").isdigit()


def _int(text: str, what: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{where}: {what} {text!r} is not an integer") from None


def _read_csv(path: Path, lines, match: _Matcher, lengths, units: str, fps: int) -> HumanLabels:
    build = _Builder(str(path))
    for k, (n, text) in enumerate(lines):
        row = [f.strip() for f in next(csv.reader([text]))]
        if k == 0 and tuple(r.lower() for r in row) in (HEADER, HEADER[:2]):
            continue                                      # the optional header
        where = f"labels file {str(path)!r} line {n}"
        if len(row) not in (2, 4) or not row[0]:
            raise InputError(f"{where}: expected 'video_id,kind' or 'video_id,abnormal_span,start,end', got "
                             f"{text!r}")
        name, kind = row[0], row[1]
        if kind not in KINDS:
            raise InputError(f"{where} (video {name!r}): kind {kind!r} is invalid: choose one of {', '.join(KINDS)}")
        if (kind == "abnormal_span") != (len(row) == 4):
            raise InputError(f"{where} (video {name!r}): {'kind abnormal_span needs start,end' if kind == 'abnormal_span' else f'kind {kind} takes no start,end'}"
                             f", got {text!r}")
        vid = match.find(name, where)
        where = f"{where} (video {vid!r})"
        span = None
        if kind == "abnormal_span":
            s, e = _int(row[2], "start", where), _int(row[3], "end", where)
            L = int(lengths[match.exact[vid]])
            _check_span(s, e, L, where, units, fps)
            span = _to_snippets(s, e, L, units, fps)
        build.add(vid, kind, n, where, span)
    return build.labels()


def _read_ucf(path: Path, lines, match: _Matcher, lengths, fps: int) -> HumanLabels:
    """Through :func:`lanp.data.groundtruth.read_ucf_annotations` (frame labels per video), after
    matching every name to the features here (so an unknown id is named as such)."""
    from lanp.data.groundtruth import read_ucf_annotations

    ids = {}
    for n, text in lines:
        fields = text.split()
        where = f"labels file {str(path)!r} line {n}"
        if len(fields) not in (6, 7) or "," in text:
            raise InputError(f"{where}: expected a UCF-Crime annotation line 'video class s1 e1 s2 e2', got {text!r}")
        ids[canonical_name(fields[0])] = (match.find(fields[0], where), n)
    by_name = {vid: int(lengths[match.exact[vid]]) for vid, _ in ids.values()}
    frames = read_ucf_annotations(path, lengths=by_name, fps=fps)
    build = _Builder(str(path))
    for name, labels in frames.items():
        vid, n = ids[name]
        where = f"labels file {str(path)!r} line {n} (video {vid!r})"
        L = by_name[vid]
        if not labels.any():
            build.add(vid, "normal_video", n, where)
            continue
        edges = np.flatnonzero(np.diff(np.concatenate([[0], labels.astype(np.int8), [0]])))
        for s, e in zip(edges[0::2], edges[1::2]):
            _check_span(int(s), int(e), L, where, "frame", fps)
            build.add(vid, "abnormal_span", n, where, _to_snippets(int(s), int(e), L, "frame", fps))
    return build.labels()


def read_labels_file(path, video_ids: Sequence[str], lengths, span_units: str = "snippet",
                     frames_per_snippet: int = FRAMES_PER_SNIPPET) -> HumanLabels:
    """The human labels of ``path`` (CSV or UCF-Crime annotation, see the module docstring) for
    the features with ``video_ids`` (V,) and snippet ``lengths`` (V,); spans come back in snippets."""
    if span_units not in SPAN_UNITS:
        raise InputError(f"span_units={span_units!r} is invalid: choose snippet or frame")
    fps = check_fps(frames_per_snippet)
    path = Path(path)
    lines = _numbered_lines(path)
    match = _Matcher(list(video_ids))
    if _is_ucf(lines):
        return _read_ucf(path, lines, match, np.asarray(lengths), fps)
    return _read_csv(path, lines, match, np.asarray(lengths), span_units, fps)


def check_disjoint(labels: HumanLabels, test_ids: Sequence[str], test_path) -> None:
    """Refuse a labelled video that is also a test video (names compared as canonical names)."""
    test = {canonical_name(t): t for t in test_ids}
    for vid in labels.kinds:
        if canonical_name(vid) in test:
            raise InputError(f"video {vid!r} is labelled in {labels.source!r} and is also a test video "
                             f"({test[canonical_name(vid)]!r} in {str(test_path)!r}): training labels must not "
                             f"come from the test set")


def labels_rows(labels: HumanLabels):
    """The CSV rows (video_id, kind[, start, end]) of ``labels``, spans in snippets."""
    rows = []
    for vid, kind in labels.kinds.items():
        spans = labels.spans.get(vid, ())
        if not spans:
            rows.append((vid, kind))
        rows.extend((vid, "abnormal_span", s, e) for s, e in spans)
    return rows


def write_labels_csv(path, labels: HumanLabels) -> None:
    """Write ``labels`` as a labels CSV (header, spans in snippets), atomically."""
    import io

    from lanp.outputs import atomic_file

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(labels_rows(labels))
    with atomic_file(path, "labels CSV") as f:
        f.write(text.getvalue().encode("utf-8"))


def labels_from_mapping(kinds: Mapping[str, str], spans: Optional[Mapping[str, Sequence[Span]]] = None,
                        source: str = "human labels") -> HumanLabels:
    """HumanLabels from plain mappings (e.g. a draw of training videos), spans sorted and distinct."""
    spans = {v: tuple(sorted({(int(s), int(e)) for s, e in sp})) for v, sp in (spans or {}).items() if sp}
    return HumanLabels(dict(kinds), spans, source)


def parse_id_list(raw, where: str) -> list:
    """The labelled video ids of a ``human_video_ids`` attribute (a JSON list of str, as bytes or
    str); an InputError naming ``where`` (the file and what wrote it) when it is anything else."""
    raw = raw.decode() if isinstance(raw, bytes) else raw
    try:
        ids = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        ids = None
    if not isinstance(ids, list) or not all(isinstance(v, str) for v in ids):
        raise InputError(f"{where}: attribute 'human_video_ids' = {str(raw)[:80]!r} is invalid: it must be a "
                         f"JSON list of video ids")
    return ids
