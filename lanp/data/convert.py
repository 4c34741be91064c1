"""Convert de-facto UVAD feature formats into lanp's packed HDF5 layout, streaming.

Sources (each yields videos in the source's own order, with the source's ids):

- ``rtfm``:   a ``.list`` text file of per-video ``.npy`` paths (RTFM style). Paths from other
  machines (absolute, Windows ``G:\\...``, CRLF line ends) are resolved against ``root``: first
  the path as written, then ``root/<path as written>`` (relative paths), then ``root/<base name>``,
  then a unique file of that base name anywhere below ``root``.
- ``c2fpl``:  one concatenated array (N, D) or (N, C, D) plus a (V, 2) integer array of
  [from, to) row ranges (C2FPL style); ids from an optional names file, else ``video_000000``...
- ``split``:  LANP split files (``name,label,frames`` per line) and a folder of ``<name><suffix>``.
- ``folder``: every ``*.npy`` of a folder, in sorted name order.
- ``xd``:     XD-Violence style (a ``.list`` or a folder): one file per crop, ``<video>__<c>.npy``
  of shape (T, D) (the 5-crop I3D features: ``__0`` the centre, ``__1``..``__4`` the corners),
  grouped into one (T, C, D) video per name in first-seen order, crops in index order; or
  VGGish audio files ``<video>__vggish.npy`` (T, 128), one per video. ``audio=`` (a list or
  folder of VGGish files) appends each video's audio to its visual features (visual first, as
  the field concatenates them: 1024 + 128 = 1152 per crop, the audio repeated on every crop);
  visual and audio lengths may differ by one snippet (the longer is cut to the shorter), more
  is an error.

Per-video arrays are (T, D) or (T, C, D). They are opened with ``np.load(mmap_mode='r',
allow_pickle=False)`` and copied in row blocks, so memory stays bounded by ``block_bytes`` whatever
the dataset size. Output: ``features`` (N, D) (``crops='mean'``: the C crops averaged in float64)
or (N, C, D) (``crops='keep'``), ``offsets`` (V+1,) int64, ``video_ids`` (V,) utf-8, written
atomically (nothing is left behind on error or Ctrl-C).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import h5py
import numpy as np
from tqdm import tqdm

from lanp.outputs import atomic_file, check_output, checkpoint, h5_file
from lanp.kernels import InputError

FORMATS = ("rtfm", "c2fpl", "split", "folder", "xd")
STORAGE_DTYPES = ("float16", "float32", "float64")
COMPRESSIONS = ("none", "gzip", "lzf")
BLOCK_BYTES = 64 * 1024 ** 2


@dataclass
class VideoSource:
    """One video: its id, where it comes from (for messages) and a loader returning an array-like
    (a read-only memmap) of shape (T, D) or (T, C, D)."""

    video_id: str
    origin: str
    load: Callable[[], np.ndarray]


@dataclass
class ConvertSummary:
    out: str
    videos: int
    snippets: int
    shape: tuple
    dtype: str
    attrs: Dict[str, object] = field(default_factory=dict)


# -- reading .npy safely --------------------------------------------------------------------------
def load_npy(path, what: str = "feature file") -> np.ndarray:
    """Memory-map one .npy (never unpickles); clear errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {str(path)!r} does not exist")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        text = str(exc)
        if "pickle" in text.lower() or "object" in text.lower():
            raise InputError(f"{what} {str(path)!r} holds a pickled (object) array, which lanp will not "
                             f"load (allow_pickle=False): re-save it as a plain numeric array") from None
        raise InputError(f"{what} {str(path)!r} is not a readable .npy array: {exc}") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{what} {str(path)!r} is not a readable .npy array (truncated?): {exc}") from None
    if isinstance(arr, np.lib.npyio.NpzFile):  # pragma: no cover - np.load of a .npz
        raise InputError(f"{what} {str(path)!r} is an .npz archive; give the .npy arrays")
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{what} {str(path)!r} has dtype {arr.dtype}; expected a numeric (float) array")
    return arr


def _npy_source(video_id: str, path: Path) -> VideoSource:
    return VideoSource(video_id, str(path), lambda p=path: load_npy(p))


def _strip_suffix(name: str, suffix: str) -> str:
    if suffix and name.endswith(suffix) and len(name) > len(suffix):
        return name[:-len(suffix)]
    return name[:-4] if name.endswith(".npy") else name


def base_name(path_text: str) -> str:
    """Last component of a POSIX or Windows path."""
    return path_text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _text_lines(path, what: str) -> List[str]:
    from lanp.data.io import read_text_lines
    return read_text_lines(path, what)                 # UTF-8, CRLF ok; a binary file is an InputError


class _Resolver:
    """Find a listed file: as written, root/as-written, root/base name, unique base name below root."""

    def __init__(self, root: Path, list_path: str):
        self.root = root
        self.list_path = list_path
        self._index: Optional[Dict[str, List[Path]]] = None

    def __call__(self, text: str, line_no: int) -> Path:
        posix = text.replace("\\", "/")
        candidates = [Path(text)] if os.path.isabs(text) else []
        if not os.path.isabs(posix) and ":" not in posix.split("/", 1)[0]:
            candidates.append(self.root / posix)
        name = base_name(text)
        candidates.append(self.root / name)
        for c in candidates:
            if c.is_file():
                return c
        if self._index is None:
            self._index = {}
            for dirpath, _, files in os.walk(self.root):
                for f in files:
                    self._index.setdefault(f, []).append(Path(dirpath) / f)
        found = self._index.get(name, [])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InputError(f"{self.list_path}, line {line_no}: {text!r}: base name {name!r} is ambiguous "
                             f"below root {str(self.root)!r}: {', '.join(map(str, found[:3]))}")
        raise InputError(f"{self.list_path}, line {line_no}: feature file {text!r} not found (looked for "
                         f"{name!r} in and below root {str(self.root)!r}; set --root)")


# -- sources --------------------------------------------------------------------------------------
def rtfm_sources(list_path, root=None, suffix: str = ".npy") -> List[VideoSource]:
    """RTFM ``.list``: one path per line (POSIX or Windows, LF or CRLF). Ids are the base names
    without ``suffix`` (default ``.npy``; e.g. ``_i3d.npy`` gives ``01_002`` for ``01_002_i3d.npy``)."""
    root = Path(root) if root is not None else Path(list_path).resolve().parent
    resolve = _Resolver(root, str(list_path))
    sources = []
    for line_no, text in enumerate(_text_lines(list_path, "list file"), 1):
        path = resolve(text, line_no)
        sources.append(_npy_source(_strip_suffix(base_name(text), suffix), path))
    if not sources:
        raise InputError(f"list file {str(list_path)!r} names no files")
    return sources


def split_sources(split_path, root, suffix: str = ".npy") -> List[VideoSource]:
    """LANP split file (``name,label,frames`` per line) + folder ``root`` of ``<name><suffix>``."""
    root = Path(root)
    sources = []
    for line_no, text in enumerate(_text_lines(split_path, "split file"), 1):
        fields = [f.strip() for f in text.split(",")]
        if len(fields) != 3 or not fields[0]:
            raise InputError(f"split file {str(split_path)!r}, line {line_no}: expected 'name,label,frames', "
                             f"got {text!r}")
        path = root / (fields[0] + suffix)
        if not path.is_file():
            raise InputError(f"split file {str(split_path)!r}, line {line_no}: video {fields[0]!r}: feature "
                             f"file {str(path)!r} does not exist")
        sources.append(_npy_source(fields[0], path))
    if not sources:
        raise InputError(f"split file {str(split_path)!r} names no videos")
    return sources


def folder_sources(folder, suffix: str = ".npy") -> List[VideoSource]:
    """Every ``*.npy`` directly in ``folder``, sorted by name; ids are the names without ``suffix``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"feature folder {str(folder)!r} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(".npy"))
    if not files:
        raise InputError(f"feature folder {str(folder)!r} holds no .npy files")
    return [_npy_source(_strip_suffix(p.name, suffix), p) for p in files]


def c2fpl_sources(array_path, ranges_path, names_path=None) -> List[VideoSource]:
    """C2FPL: one (N, D) or (N, C, D) array and a (V, 2) array of [from, to) row ranges."""
    data = load_npy(array_path, "feature array")
    ranges = np.asarray(load_npy(ranges_path, "ranges file"))
    if ranges.ndim != 2 or ranges.shape[1] != 2 or ranges.shape[0] < 1:
        raise InputError(f"ranges file {str(ranges_path)!r} must be a (V, 2) array of [from, to) rows, "
                         f"got shape {ranges.shape}")
    if ranges.dtype.kind not in "iu":
        if not np.all(ranges == np.round(ranges)):
            raise InputError(f"ranges file {str(ranges_path)!r} holds non-integer values")
    ranges = ranges.astype(np.int64)
    V, N = ranges.shape[0], data.shape[0]
    if names_path is not None:
        ids = _text_lines(names_path, "names file")
        if len(ids) != V:
            raise InputError(f"names file {str(names_path)!r} has {len(ids)} names but ranges file "
                             f"{str(ranges_path)!r} has {V} rows")
    else:
        ids = [f"video_{v:06d}" for v in range(V)]
    sources = []
    for v, (a, b) in enumerate(ranges):
        if not 0 <= a < b <= N:
            why = "is empty" if a == b else f"is outside the array's {N} rows or reversed"
            raise InputError(f"ranges file {str(ranges_path)!r}, row {v} (video {ids[v]!r}): "
                             f"[{a}, {b}) {why}")
        sources.append(VideoSource(ids[v], f"{array_path}[{a}:{b}]",
                                   lambda a=int(a), b=int(b): data[a:b]))
    _check_tiling(ranges, N, ids, str(ranges_path), str(array_path))
    return sources


def _check_tiling(ranges: np.ndarray, N: int, ids, ranges_path: str, array_path: str) -> None:
    """The [from, to) rows, in any order, must cover the array's N rows once: no overlap, no gap."""
    order = np.argsort(ranges[:, 0], kind="stable")
    end, prev = 0, None
    for v in order:
        a, b = int(ranges[v, 0]), int(ranges[v, 1])
        if a < end:
            raise InputError(f"ranges file {ranges_path!r}, row {v} (video {ids[v]!r}): [{a}, {b}) overlaps row "
                             f"{prev} (video {ids[prev]!r}) [{int(ranges[prev, 0])}, {end}): two videos would "
                             f"share snippets")
        if a > end:
            raise InputError(f"ranges file {ranges_path!r}: rows [{end}, {a}) of the feature array {array_path!r} "
                             f"are in no video (the next range is row {v}, video {ids[v]!r}); the ranges must "
                             f"cover the array without gaps")
        end, prev = b, int(v)
    if end != N:
        raise InputError(f"ranges file {ranges_path!r}: rows [{end}, {N}) of the feature array {array_path!r} "
                         f"are in no video (wrong ranges, or the array of another split?)")


# -- XD-Violence: a file per crop, VGGish audio -----------------------------------------------------
_CROP_FILE = re.compile(r"^(?P<video>.+?)__(?P<crop>\d+)\.npy$")
_AUDIO_FILE = re.compile(r"^(?P<video>.+?)__?vggish\.npy$", re.IGNORECASE)


def _listed_files(source, root, what: str):
    """[(base name, path, origin)] of a .list (resolved as for rtfm) or of a folder's *.npy, in order."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.name.endswith(".npy"))
        if not files:
            raise InputError(f"{what} folder {str(source)!r} holds no .npy files")
        return [(p.name, p, str(p)) for p in files]
    resolve = _Resolver(Path(root) if root is not None else source.resolve().parent, str(source))
    out = []
    for line_no, text in enumerate(_text_lines(source, f"{what} list"), 1):
        out.append((base_name(text), resolve(text, line_no), f"{source}, line {line_no}"))
    if not out:
        raise InputError(f"{what} list {str(source)!r} names no files")
    return out


def _group_crops(entries, what: str):
    """{video: [(crop index or None, path, origin)]} in first-seen order."""
    videos: Dict[str, list] = {}
    for name, path, origin in entries:
        m = _CROP_FILE.match(name)
        audio = _AUDIO_FILE.match(name)
        if m:
            video, crop = m.group("video"), int(m.group("crop"))
        elif audio:
            video, crop = audio.group("video"), None
        else:
            video, crop = name[:-4] if name.endswith(".npy") else name, None
        parts = videos.setdefault(video, [])
        if (crop is None) != all(c is None for c, _, _ in parts) and parts:
            raise InputError(f"{what} {origin}: video {video!r} mixes per-crop files (<video>__<c>.npy) with a "
                             f"whole-video file ({parts[0][2]})")
        if any(c == crop for c, _, _ in parts):
            kind = f"crop {crop}" if crop is not None else "its file"
            raise InputError(f"{what} {origin}: video {video!r} has {kind} twice (also {parts[0][2]})")
        parts.append((crop, path, origin))
    return videos


class _StackedCrops:
    """(T, C, D) view over C per-crop (T, D) memmaps, read in row slices."""

    def __init__(self, video_id: str, parts):
        self.crops = [load_npy(p) for _, p, _ in parts]
        first = self.crops[0]
        for (c, p, _), a in zip(parts, self.crops):
            if a.ndim != 2 or a.shape != first.shape:
                raise InputError(f"video {video_id!r}: crop file {str(p)!r} has shape {a.shape} but crop "
                                 f"{parts[0][0]} ({str(parts[0][1])}) has {first.shape}; every crop must be (T, D) "
                                 f"of one shape")
        self.shape = (first.shape[0], len(self.crops), first.shape[1])
        self.ndim = 3
        self.dtype = np.result_type(*self.crops)

    def __getitem__(self, rows):
        return np.stack([np.asarray(a[rows]) for a in self.crops], axis=1)


class _WithAudio:
    """Visual (T, D) or (T, C, D) features with the audio (Ta, Da) appended to every row (and crop)."""

    def __init__(self, video_id: str, visual, audio, audio_path):
        if audio.ndim != 2:
            raise InputError(f"video {video_id!r}: audio file {str(audio_path)!r} has shape {audio.shape}; "
                             f"expected (T, D) VGGish features")
        tv, ta = visual.shape[0], audio.shape[0]
        if abs(tv - ta) > 1:
            raise InputError(f"video {video_id!r}: the visual features have {tv} snippets but the audio "
                             f"{str(audio_path)!r} has {ta}; they may differ by one snippet at most")
        self.visual, self.audio = visual, audio
        n = min(tv, ta)
        self.shape = (n, *visual.shape[1:-1], visual.shape[-1] + audio.shape[1])
        self.ndim = len(self.shape)
        self.dtype = np.result_type(visual.dtype, audio.dtype)

    def __getitem__(self, rows):
        a, b, _ = rows.indices(self.shape[0])
        v = np.asarray(self.visual[a:b])
        s = np.asarray(self.audio[a:b])
        if v.ndim == 3:
            s = np.broadcast_to(s[:, None, :], (s.shape[0], v.shape[1], s.shape[1]))
        return np.concatenate([v, s], axis=-1).astype(self.dtype, copy=False)


def xd_sources(source, root=None, audio=None, audio_root=None) -> List[VideoSource]:
    """XD-Violence features (see the module docstring): ``source`` a .list or folder of per-crop
    ``<video>__<c>.npy`` (or VGGish ``<video>__vggish.npy``) files; ``audio`` an optional .list or
    folder of VGGish files to append to each video."""
    videos = _group_crops(_listed_files(source, root, "feature"), "feature")
    audio_files = None
    if audio is not None:
        audio_videos = _group_crops(_listed_files(audio, audio_root, "audio"), "audio")
        audio_files = {}
        for video, parts in audio_videos.items():
            if parts[0][0] is not None:
                raise InputError(f"audio {parts[0][2]}: video {video!r} has per-crop files; audio features "
                                 f"are one (T, 128) file per video")
            audio_files[video] = parts[0][1]
        missing = [v for v in videos if v not in audio_files]
        if missing:
            raise InputError(f"audio {str(audio)!r} has no file for {len(missing)} of the {len(videos)} videos, "
                             f"first {missing[0]!r}")

    def loader(video_id, parts):
        def load():
            if parts[0][0] is None:
                visual = load_npy(parts[0][1])
            else:
                visual = _StackedCrops(video_id, sorted(parts, key=lambda p: p[0]))
            if audio_files is None:
                return visual
            return _WithAudio(video_id, visual, load_npy(audio_files[video_id], "audio file"),
                              audio_files[video_id])
        return load

    return [VideoSource(video, parts[0][2] if len(parts) == 1 else f"{parts[0][2]} (+{len(parts) - 1} crop files)",
                        loader(video, parts)) for video, parts in videos.items()]


def _looks_xd(names) -> bool:
    names = list(names)
    if not names:
        return False
    if all(_AUDIO_FILE.match(n) for n in names):
        return True
    crops = [_CROP_FILE.match(n) for n in names]
    if not all(crops):
        return False
    stems = [m.group("video") for m in crops]
    return len(set(stems)) < len(stems)          # several crop files of one video


# -- writing --------------------------------------------------------------------------------------
def _check_shapes(sources: Sequence[VideoSource]):
    """Pass 1 (headers only): per-video lengths and the common (C, D). Returns (lengths, C, D)."""
    lengths = np.empty(len(sources), dtype=np.int64)
    ref = None
    seen: Dict[str, str] = {}
    for v, src in enumerate(sources):
        if src.video_id in seen:
            raise InputError(f"video id {src.video_id!r} appears twice ({seen[src.video_id]} and {src.origin})")
        seen[src.video_id] = src.origin
        arr = src.load()
        if arr.ndim not in (2, 3):
            raise InputError(f"video {src.video_id!r} ({src.origin}) has shape {arr.shape}; expected (T, D) "
                             f"or (T, C, D)")
        if arr.shape[0] == 0 or arr.shape[-1] == 0 or (arr.ndim == 3 and arr.shape[1] == 0):
            raise InputError(f"video {src.video_id!r} ({src.origin}) is empty: shape {arr.shape}")
        tail = arr.shape[1:]
        if ref is None:
            ref = (tail, src)
        elif tail != ref[0]:
            raise InputError(f"video {src.video_id!r} ({src.origin}) has shape {arr.shape} but video "
                             f"{ref[1].video_id!r} ({ref[1].origin}) has (T, {', '.join(map(str, ref[0]))}): "
                             f"mismatched feature size")
        lengths[v] = arr.shape[0]
        del arr
    tail = ref[0]
    C = tail[0] if len(tail) == 2 else None
    return lengths, C, tail[-1]


def convert(sources: Sequence[VideoSource], out, *, crops: str = "mean", dtype: str = "float32",
            chunk_rows: Optional[int] = None, compression: str = "none",
            compression_level: Optional[int] = None, attrs: Optional[dict] = None,
            quiet: bool = False, block_bytes: int = BLOCK_BYTES, inputs=()) -> ConvertSummary:
    """Write ``sources`` to ``out`` in the packed layout, streaming (see the module docstring).

    crops: 'mean' (average C crops, stored (N, D)) or 'keep' (stored (N, C, D)); (T, D) inputs
    are stored as they are. dtype: storage dtype (float16 allowed: values beyond +-65504 are an
    error). chunk_rows: HDF5 chunk height in snippets (default: about 1 MiB per chunk).
    compression: none | gzip (level 0-9) | lzf. inputs: (label, path) pairs ``out`` must not be
    (the source list, ranges, ...); every per-video source file is checked too.
    """
    if crops not in ("mean", "keep"):
        raise ValueError(f"crops={crops!r} is invalid: choose mean or keep")
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype={dtype!r} is invalid: choose one of {', '.join(STORAGE_DTYPES)}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression={compression!r} is invalid: choose one of {', '.join(COMPRESSIONS)}")
    if chunk_rows is not None and (int(chunk_rows) != chunk_rows or chunk_rows < 1):
        raise ValueError(f"chunk_rows={chunk_rows!r} is invalid: it must be an integer >= 1")
    if not sources:
        raise InputError("no videos to convert")
    inputs = list(inputs) + [("source file", s.origin) for s in sources if os.path.isfile(s.origin)]
    check_output(out, "--out", inputs)
    lengths, C, D = _check_shapes(sources)
    keep = crops == "keep" and C is not None
    row_shape = (C, D) if keep else (D,)
    store = np.dtype(dtype)
    N = int(lengths.sum())
    row_bytes = int(np.prod(row_shape)) * store.itemsize
    if chunk_rows is None:
        chunk_rows = max(1, min(N, (1 << 20) // row_bytes))
    chunk_rows = int(min(chunk_rows, N))
    source_row_bytes = int(np.prod(row_shape)) * 8 * (C if (C and not keep) else 1)
    block = max(1, block_bytes // max(1, source_row_bytes))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    kwargs = {}
    if compression != "none":
        kwargs["compression"] = compression
        if compression == "gzip" and compression_level is not None:
            kwargs["compression_opts"] = int(compression_level)
    with atomic_file(out, "--out", inputs) as tmp:
        with h5_file(tmp) as f:
            feats = f.create_dataset("features", shape=(N, *row_shape), dtype=store,
                                     chunks=(chunk_rows, *row_shape), **kwargs)
            bar = tqdm(total=len(sources), unit="video", desc="convert", disable=quiet)
            for v, src in enumerate(sources):
                arr = src.load()
                L = int(lengths[v])
                if arr.shape[0] != L:
                    raise InputError(f"video {src.video_id!r} ({src.origin}) changed length while converting")
                for r0 in range(0, L, block):
                    r1 = min(L, r0 + block)
                    part = np.asarray(arr[r0:r1])
                    if part.ndim == 3 and not keep:
                        part = part.mean(axis=1, dtype=np.float64)
                    with np.errstate(over="ignore", invalid="ignore"):
                        cast = part.astype(store)
                    bad = ~np.isfinite(cast)
                    if bad.any():
                        row = int(np.argwhere(bad)[0][0]) + r0
                        orig = np.asarray(part[row - r0]).ravel()
                        why = ("has a NaN or Inf value" if not np.all(np.isfinite(orig))
                               else f"has a value too large for {dtype} (max {np.finfo(store).max:g})")
                        raise InputError(f"video {src.video_id!r} ({src.origin}), snippet {row} {why}")
                    feats[offsets[v] + r0:offsets[v] + r1] = cast
                    tmp.check()                       # a full disk stops the conversion here
                del arr
                bar.update(1)
                checkpoint()
            bar.close()
            f.create_dataset("offsets", data=offsets)
            f.create_dataset("video_ids", data=np.array([s.video_id for s in sources], dtype=object),
                             dtype=h5py.string_dtype())
            all_attrs = {"crops": "keep" if keep else ("mean" if C is not None else "none"),
                         "source_crops": 0 if C is None else int(C), "storage_dtype": dtype}
            all_attrs.update(attrs or {})
            try:
                from lanp import __version__
                all_attrs.setdefault("lanp_version", __version__)
            except ImportError:  # pragma: no cover
                pass
            for key, value in all_attrs.items():
                f.attrs[key] = "" if value is None else value
    return ConvertSummary(str(out), len(sources), N, (N, *row_shape), dtype, all_attrs)


def sources_for(fmt: str, source, *, root=None, ranges=None, names=None, suffix=None, audio=None,
                audio_root=None) -> List[VideoSource]:
    """The video sources of ``source`` read as format ``fmt`` (one of FORMATS, or 'auto')."""
    if fmt == "auto":
        fmt = detect_format(source, ranges=ranges, root=root)
    if audio is not None and fmt != "xd":
        raise ValueError(f"audio features (--audio) are appended only with the xd format, not {fmt!r}")
    if fmt == "xd":
        return xd_sources(source, root, audio, audio_root)
    if fmt == "rtfm":
        return rtfm_sources(source, root, suffix or ".npy")
    if fmt == "split":
        if root is None:
            raise ValueError("the split format needs --root, the folder of <name><suffix> feature files")
        return split_sources(source, root, suffix or ".npy")
    if fmt == "folder":
        return folder_sources(source, suffix or ".npy")
    if fmt == "c2fpl":
        if ranges is None:
            raise ValueError("the c2fpl format needs --ranges, a (V, 2) .npy of [from, to) rows")
        return c2fpl_sources(source, ranges, names)
    raise ValueError(f"format={fmt!r} is invalid: choose auto or one of {', '.join(FORMATS)}")


def detect_format(source, ranges=None, root=None) -> str:
    """folder -> xd when its files are per-crop <video>__<c>.npy (several per video) or VGGish
    files, else folder; .npy with ranges -> c2fpl; a text file whose first line has two commas ->
    split; a list whose first two files are crops of one video (or VGGish files) -> xd; any other
    text file -> rtfm."""
    p = Path(source)
    if p.is_dir():
        return "xd" if _looks_xd(q.name for q in p.iterdir() if q.name.endswith(".npy")) else "folder"
    if ranges is not None or p.suffix == ".npy":
        return "c2fpl"
    if not p.is_file():
        raise InputError(f"source {str(source)!r} does not exist")
    lines = _text_lines(p, "source file")
    if lines and lines[0].count(",") == 2 and not lines[0].lower().endswith(".npy"):
        return "split"
    if _looks_xd(base_name(line) for line in lines[:2]):
        return "xd"
    return "rtfm"
