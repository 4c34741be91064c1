"""Frame-level ground-truth readers. Every reader returns ``{video name: (frames,) uint8 labels}``.

Formats (``read_groundtruth`` picks one from the path):
- lanp gt.h5 (``.h5``/``.hdf5``): ``frame_labels`` + ``frame_offsets`` + ``video_ids``, or
  ``snippet_labels`` + ``offsets`` + ``video_ids`` (each snippet label repeated ``fps`` times).
- RTFM concatenated ``gt-*.npy`` (any other ``.npy``) with its ``.list`` (``list_path``): one label per
  frame, videos joined in list order, each taking fps * T entries where T is the video's snippet count,
  taken from the scores file (``lengths``). The total must match exactly. Consecutive lines naming
  one video (a line per crop file) count once; a video listed twice elsewhere is an error.
- a folder of per-video ``.npy`` files (``<video>.npy`` or ``<video>_gt.npy``, e.g. PEL's
  ``<video>__9_gt.npy`` or RTFM's ``test_frame_mask/<video>.npy``), one label per frame.
- UCF-Crime ``Temporal_Anomaly_Annotation*.txt`` (a ``.txt`` whose second field is a class name):
  ``video.mp4 class s1 e1 s2 e2 [frames]``; frame i is abnormal when s <= i < e for an interval
  (0-based, end excluded; -1 = no interval). The frame count comes from the 7th column, else
  ``frame_counts`` (e.g. a LANP split CSV ``video,label,frames`` read by ``read_frame_counts``),
  else fps * T from the scores file.
- XD-Violence ``annotations.txt`` (a ``.txt`` whose second field is a number): one line per
  violent video, ``name[.mp4] s1 e1 [s2 e2 ...]`` (frame numbers, any number of pairs); frame i is
  abnormal when s <= i < e, as for UCF-Crime. Videos the file does not list are normal (the
  ``label_A`` videos). The frame count is ``frame_counts``, else fps * T from the scores file (the
  field's convention: its gt.npy gives each video 16 * T frames), else the last annotated frame;
  intervals past the end are clipped.

Names are matched, never positions: ``canonical_name`` drops folders (``/`` or ``\\``), the extension
and the suffixes ``_gt``, ``__<crop>``, ``_i3d``, so ``G:\\UCF_Test\\Abuse028_x264_i3d.npy``,
``Abuse028_x264__9_gt.npy`` and ``Abuse028_x264.mp4`` all name ``Abuse028_x264`` (and XD-Violence's
``<video>__3.npy`` / ``<video>__vggish.npy`` name ``<video>``).
Files are read with ``np.load(allow_pickle=False)``: a pickled file is refused with an error.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np

from lanp.kernels import InputError

FRAMES_PER_SNIPPET = 16
_SUFFIXES = re.compile(r"(_gt|__\d+|_i3d|_rgb|__?vggish)$", re.IGNORECASE)
_EXTENSIONS = (".npy", ".mp4", ".avi", ".mkv", ".h5")


def canonical_name(name: str) -> str:
    """Base name without folders, extension and the _gt / __<crop> / _i3d suffixes."""
    base = re.split(r"[\\/]", str(name).strip())[-1]
    for ext in _EXTENSIONS:
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
            break
    previous = None
    while previous != base:
        previous, base = base, _SUFFIXES.sub("", base)
    return base


def load_npy(path) -> np.ndarray:
    """np.load without unpickling; a pickled (object) array is refused with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ground-truth file {str(path)!r} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(f"ground-truth file {str(path)!r} holds pickled Python objects; lanp never "
                             f"unpickles files from others (allow_pickle=False): save it as a plain numeric "
                             f"array") from None
        raise InputError(f"ground-truth file {str(path)!r} cannot be read as .npy: {exc}") from None
    except OSError as exc:
        raise InputError(f"ground-truth file {str(path)!r} cannot be read as .npy: {exc}") from None


MAX_FRAMES = 10 ** 9            # frames of one video (a day at 30 fps is 2.6e6)
MAX_FPS = 10_000                # frames per snippet


def check_fps(fps) -> int:
    """Frames per snippet: an integer in [1, MAX_FPS]."""
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or not 1 <= fps <= MAX_FPS:
        raise InputError(f"frames per snippet = {fps!r} is invalid: it must be an integer in [1, {MAX_FPS}] "
                         f"(16 for I3D / C3D features)")
    return int(fps)


def _frame_count(value, where: str) -> int:
    if not 0 <= int(value) <= MAX_FRAMES:
        raise InputError(f"{where}: frame count {value} is invalid: it must be in [0, {MAX_FRAMES:.0e}]")
    return int(value)


def refuse_duplicate_ids(ids, where: str, verb: str = "listed") -> None:
    """Refuse a video id that appears twice (naming both places): one of them would be dropped."""
    first: Dict[str, int] = {}
    for v, vid in enumerate(ids):
        if vid in first:
            raise InputError(f"{where}: video id {vid!r} appears twice (videos {first[vid]} and {v}); every "
                             f"video must be {verb} once, or one of them would be dropped")
        first[vid] = v


def _as_labels(array: np.ndarray, where: str) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 1:
        raise InputError(f"{where}: frame labels must be 1-D, got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise InputError(f"{where}: frame labels must be numeric, got {a.dtype}")
    bad = ~np.isin(a, (0, 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{where}: frame labels must be 0 or 1; frame {i} is {a[i].item()!r}")
    return a.astype(np.uint8)


def read_lanp_gt(path, fps: int = FRAMES_PER_SNIPPET) -> Dict[str, np.ndarray]:
    from lanp.data.io import read_h5

    data, _ = read_h5(path, "ground-truth")
    if {"frame_labels", "frame_offsets", "video_ids"} <= data.keys():
        labels, offsets = data["frame_labels"], np.asarray(data["frame_offsets"], np.int64)
        repeat = 1
    elif {"snippet_labels", "offsets", "video_ids"} <= data.keys():
        labels, offsets = data["snippet_labels"], np.asarray(data["offsets"], np.int64)
        repeat = fps
    else:
        raise InputError(f"ground-truth file {str(path)!r} has neither frame_labels + frame_offsets + video_ids "
                         f"nor snippet_labels + offsets + video_ids (found: {', '.join(sorted(data))})")
    if not isinstance(data["video_ids"], list):
        raise InputError(f"ground-truth file {str(path)!r}: 'video_ids' must be a 1-D dataset of strings, got "
                         f"{np.asarray(data['video_ids']).dtype} {np.shape(data['video_ids'])}")
    ids = list(data["video_ids"])
    refuse_duplicate_ids(ids, f"ground-truth file {str(path)!r}")
    labels = _as_labels(labels, f"ground-truth file {str(path)!r}")
    if (offsets.shape != (len(ids) + 1,) or offsets[0] != 0 or offsets[-1] != labels.shape[0]
            or np.any(np.diff(offsets) < 0)):
        raise InputError(f"ground-truth file {str(path)!r}: offsets must be (V+1,) = ({len(ids) + 1},), start at 0, "
                         f"not decrease and end at {labels.shape[0]}; got {offsets.shape} ending at "
                         f"{offsets[-1] if offsets.size else None}")
    return {vid: np.repeat(labels[offsets[v]:offsets[v + 1]], repeat) for v, vid in enumerate(ids)}


def read_list(list_path) -> list:
    """Video names of an RTFM-style .list (one path per line, LF or CRLF, / or \\ folders)."""
    from lanp.data.io import read_text_lines
    return [canonical_name(line) for line in read_text_lines(list_path, "list file")]


def _lookup(lengths: Mapping[str, int]) -> Dict[str, int]:
    out = {}
    for name, value in lengths.items():
        out.setdefault(canonical_name(name), int(value))
    return out


def read_rtfm(npy_path, list_path, lengths: Mapping[str, int], fps: int = FRAMES_PER_SNIPPET) -> Dict[str, np.ndarray]:
    """Split a concatenated RTFM GT in list order, fps * T frames per video (T from ``lengths``)."""
    if list_path is None:
        raise InputError(f"ground-truth file {str(npy_path)!r} is a concatenated RTFM-style GT: it needs its "
                         f".list file (--gt-list) to be split into videos")
    gt = _as_labels(load_npy(npy_path), f"ground-truth file {str(npy_path)!r}")
    listed, names, seen = read_list(list_path), [], set()
    for k, name in enumerate(listed, 1):
        if names and name == names[-1]:
            continue                        # one line per crop (XD-Violence's __0 ... __4): one video
        if name in seen:
            raise InputError(f"list {str(list_path)!r} entry {k} names video {name!r} a second time")
        seen.add(name)
        names.append(name)
    by_name = _lookup(lengths or {})
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(f"list {str(list_path)!r} names {len(missing)} video(s) the scores lack, first "
                         f"{missing[0]!r}: a concatenated GT can only be split with every listed video's length")
    frames = np.array([fps * by_name[n] for n in names], dtype=np.int64)
    if frames.sum() != gt.shape[0]:
        raise InputError(f"ground-truth file {str(npy_path)!r} has {gt.shape[0]} frames but the {len(names)} videos "
                         f"of {str(list_path)!r} have {fps} x {frames.sum() // fps} = {frames.sum()} by their "
                         f"snippet counts in the scores (wrong list, or features of another extraction?)")
    ends = np.cumsum(frames)
    return {n: gt[e - f:e] for n, f, e in zip(names, frames, ends)}


def read_npy_folder(folder) -> Dict[str, np.ndarray]:
    folder = Path(folder)
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise InputError(f"ground-truth folder {str(folder)!r} holds no .npy files")
    out, source = {}, {}
    for f in files:
        name = f.name[: -len(".npy")]
        name = name[: -len("_gt")] if name.endswith("_gt") else name
        if name in out:
            raise InputError(f"ground-truth folder {str(folder)!r}: {source[name].name!r} and {f.name!r} are both "
                             f"video {name!r}; keep one")
        out[name], source[name] = _as_labels(load_npy(f), f"ground-truth file {str(f)!r}"), f
    return out


def read_frame_counts(path) -> Dict[str, int]:
    """Frame counts from a CSV ``video,label,frames`` (LANP split files) or from the 7th column of
    ``Temporal_Anomaly_Annotation_New.txt``."""
    from lanp.data.io import read_text_lines

    out = {}
    for n, line in enumerate(read_text_lines(path, "frame-count file"), 1):
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        if not fields:
            continue
        if len(fields) not in (3, 7) or not fields[-1].isdigit():
            raise InputError(f"frame-count file {str(path)!r} line {n}: expected 'video,label,frames' or an "
                             f"annotation row with a frame count, got {line.strip()!r}")
        name = canonical_name(fields[0])
        if name in out:
            raise InputError(f"frame-count file {str(path)!r} line {n}: video {name!r} appears a second time")
        out[name] = _frame_count(fields[-1], f"frame-count file {str(path)!r} line {n} (video {name!r})")
    return out


def read_ucf_annotations(path, frame_counts: Optional[Mapping[str, int]] = None,
                         lengths: Optional[Mapping[str, int]] = None, fps: int = FRAMES_PER_SNIPPET) -> Dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ground-truth file {str(path)!r} does not exist")
    counts = {canonical_name(k): int(v) for k, v in (frame_counts or {}).items()}
    from_scores = {k: fps * v for k, v in _lookup(lengths or {}).items()}
    from lanp.data.io import read_text_lines

    out = {}
    for n, line in enumerate(read_text_lines(path, "annotation file"), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [int(v) for v in fields[2:]]
        except ValueError:
            values = []
        if len(values) not in (4, 5):
            raise InputError(f"annotation file {str(path)!r} line {n}: expected 'video class s1 e1 s2 e2 [frames]', "
                             f"got {line.strip()!r}")
        name = canonical_name(fields[0])
        if name in out:
            raise InputError(f"annotation file {str(path)!r} line {n}: video {name!r} appears a second time")
        frames = values[4] if len(values) == 5 else counts.get(name, from_scores.get(name))
        if frames is None:
            raise InputError(f"annotation file {str(path)!r} has no frame count for video {name!r} (line {n}): "
                             f"give --frame-counts (e.g. a LANP split file video,label,frames)")
        where = f"annotation file {str(path)!r} line {n} (video {name!r})"
        frames = _frame_count(frames, where)
        labels = np.zeros(frames, np.uint8)
        for s, e in (values[0:2], values[2:4]):
            if s == -1 and e == -1:
                continue                                 # UCF-Crime's "no (second) anomaly"
            if s < 0 or e < 0 or s > e:
                raise InputError(f"{where}: interval [{s}, {e}) is invalid: expected 0 <= start <= end, or -1 -1 "
                                 f"for no anomaly")
            if s >= frames or e > frames + fps:
                raise InputError(f"{where}: interval [{s}, {e}) lies past the video's {frames} frames (more than "
                                 f"one snippet of {fps} frames): the annotation belongs to other features, or "
                                 f"the frame count is wrong")
            labels[s:min(e, frames)] = 1
        out[name] = labels
    return out


def read_xd_annotations(path, frame_counts: Optional[Mapping[str, int]] = None,
                        lengths: Optional[Mapping[str, int]] = None, fps: int = FRAMES_PER_SNIPPET) -> Dict[str, np.ndarray]:
    """XD-Violence ``annotations.txt``: ``name s1 e1 [s2 e2 ...]`` per violent video (see the module
    docstring). Every scored video (``lengths``) the file does not list is returned as normal."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ground-truth file {str(path)!r} does not exist")
    counts = {canonical_name(k): int(v) for k, v in (frame_counts or {}).items()}
    from_scores = {k: fps * v for k, v in _lookup(lengths or {}).items()}
    from lanp.data.io import read_text_lines

    out: Dict[str, np.ndarray] = {}
    for n, line in enumerate(read_text_lines(path, "annotation file"), 1):
        fields = line.split()
        if not fields:
            continue
        name = canonical_name(fields[0])
        where = f"annotation file {str(path)!r} line {n} (video {name!r})"
        try:
            values = [int(v) for v in fields[1:]]
        except ValueError:
            raise InputError(f"{where}: expected 'name start end [start end ...]' with integer frame numbers, "
                             f"got {line.strip()!r}") from None
        if not values or len(values) % 2:
            raise InputError(f"{where}: expected pairs of start and end frames after the name, got "
                             f"{len(values)} number(s)")
        pairs = list(zip(values[0::2], values[1::2]))
        for s, e in pairs:
            if s < 0 or e < s:
                raise InputError(f"{where}: interval [{s}, {e}) is invalid: frames must satisfy 0 <= start <= end")
        if name in out:
            raise InputError(f"{where}: the video appears a second time")
        frames = _frame_count(counts.get(name, from_scores.get(name, max(e for _, e in pairs))), where)
        labels = np.zeros(frames, np.uint8)
        for s, e in pairs:
            if s >= frames and frames > 0:
                raise InputError(f"{where}: interval [{s}, {e}) starts after the video's {frames} frames "
                                 f"(fps x snippets from the scores, or --frame-counts): the annotation "
                                 f"belongs to other features")
            labels[s:min(e, frames)] = 1
        out[name] = labels
    if not out:
        raise InputError(f"annotation file {str(path)!r} lists no video")
    for name, frames in from_scores.items():
        if name not in out:
            out[name] = np.zeros(counts.get(name, frames), np.uint8)
    return out


def _is_xd_annotation(path: Path) -> bool:
    """True when the first non-empty line's second field is a number (XD-Violence), not a class."""
    with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            fields = line.split()
            if fields:
                return len(fields) > 1 and fields[1].lstrip("-").isdigit()
    return False


def read_groundtruth(path, *, lengths: Optional[Mapping[str, int]] = None, list_path=None,
                     frame_counts=None, fps: int = FRAMES_PER_SNIPPET) -> Dict[str, np.ndarray]:
    """Read any supported GT (see the module docstring). ``lengths``: snippet counts by video name
    (from the scores file); ``frame_counts``: a mapping or a path for ``read_frame_counts``."""
    path = Path(path)
    fps = check_fps(fps)
    if not path.exists():
        raise InputError(f"ground-truth {str(path)!r} does not exist")
    if path.is_dir():
        return read_npy_folder(path)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return read_lanp_gt(path, fps)
    if suffix == ".npy":
        return read_rtfm(path, list_path, lengths, fps)
    if suffix == ".txt":
        if frame_counts is not None and not isinstance(frame_counts, Mapping):
            frame_counts = read_frame_counts(frame_counts)
        if _is_xd_annotation(path):
            return read_xd_annotations(path, frame_counts, lengths, fps)
        return read_ucf_annotations(path, frame_counts, lengths, fps)
    raise InputError(f"ground-truth {str(path)!r}: unknown format {suffix!r}; expected a lanp gt .h5, an RTFM "
                     f"gt .npy (+ --gt-list), a folder of per-video .npy, or a UCF-Crime / XD-Violence annotation .txt")


def match_videos(score_ids, gt: Mapping[str, np.ndarray], where: str = "ground truth") -> Dict[str, str]:
    """score video id -> GT key, exact name first, else by ``canonical_name``. An unknown id is an error."""
    canon: Dict[str, list] = {}
    for key in gt:
        canon.setdefault(canonical_name(key), []).append(key)
    out = {}
    for vid in score_ids:
        if vid in gt:
            out[vid] = vid
            continue
        keys = canon.get(canonical_name(vid), [])
        if len(keys) != 1:
            problem = "has no video" if not keys else f"has {len(keys)} videos ({', '.join(keys[:3])}) matching"
            raise InputError(f"{where} {problem} {vid!r} (names compared as {canonical_name(vid)!r})")
        out[vid] = keys[0]
    return out


def aligned_labels(lengths: Mapping[str, int], gt: Mapping[str, np.ndarray], fps: int = FRAMES_PER_SNIPPET,
                   max_mismatch: Optional[int] = 2):
    """Frame labels of every video of ``lengths`` (score id -> snippet count T, in order) made exactly
    fps * T long: padded with the video's last label or trimmed at the end, the RTFM gt-*.npy
    convention. Returns ([(id, labels)], videos adjusted). A difference of more than
    ``max_mismatch`` snippets is an error."""
    match = match_videos(list(lengths), gt)
    out, adjusted = [], 0
    for vid, key in match.items():
        g, n = gt[key], fps * int(lengths[vid])
        delta = n - g.shape[0]
        if max_mismatch is not None and abs(delta) > max_mismatch * fps:
            raise InputError(f"video {vid!r}: {lengths[vid]} snippets x {fps} = {n} frames but the ground truth "
                             f"{key!r} has {g.shape[0]} ({abs(delta) / fps:.1f} snippets apart, more than "
                             f"max_mismatch={max_mismatch})")
        if delta > 0:
            g = np.concatenate([g, np.full(delta, g[-1] if g.size else 0, g.dtype)])
        adjusted += delta != 0
        out.append((vid, g[:n]))
    return out, int(adjusted)


EXPORT_FORMATS = ("rtfm",)


def export_groundtruth(fmt: str, path, labels, list_path=None) -> dict:
    """Write aligned labels (from :func:`aligned_labels`) in ``fmt``: 'rtfm' = one concatenated
    float64 .npy of frame labels in video order (RTFM's gt-*.npy); ``list_path``: also a .list of
    the video ids, one per line, in that order. Written atomically."""
    from lanp.outputs import atomic_file

    if fmt not in EXPORT_FORMATS:
        raise InputError(f"export format {fmt!r} is invalid: choose one of {', '.join(EXPORT_FORMATS)}")
    gt = np.concatenate([g for _, g in labels]).astype(np.float64) if labels else np.zeros(0)
    with atomic_file(path, "--export-gt") as f:
        np.save(f, gt, allow_pickle=False)
    if list_path is not None:
        with atomic_file(list_path, "--export-list") as f:
            f.write("".join(f"{vid}\n" for vid, _ in labels).encode("utf-8"))
    return {"out": str(path), "list": None if list_path is None else str(list_path), "videos": len(labels),
            "frames": int(gt.shape[0]), "abnormal_frames": int(gt.sum())}
