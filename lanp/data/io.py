"""HDF5 feature files in (packed or grouped layout) and atomic outputs.

Packed layout:  features (N, D) or (N, C, D) float16/32/64, offsets (V+1,) int64, video_ids (V,) str.
Grouped layout: one dataset per video, (L, D) or (L, C, D), at the root or under /videos (nested
groups allowed; the id is the dataset's path below that group).
C crops are averaged when read with crops="mean".
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import h5py
import numpy as np

from lanp.kernels import InputError
from lanp.kernels import check_packed
from lanp.outputs import atomic_file, atomic_path, h5_file  # noqa: F401  (atomic_path: re-exported)

CHUNK_BYTES = 256 * 1024 ** 2


def open_h5(path, what: str = "features") -> h5py.File:
    """Open an HDF5 file for reading with clear errors for missing, truncated or non-HDF5 files."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} file {str(path)!r} does not exist")
    if path.is_dir():
        raise InputError(f"{what} file {str(path)!r} is a directory")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{what} file {str(path)!r} cannot be read as HDF5 (truncated or not an "
                         f"HDF5 file?): {exc}") from None


def read_text_lines(path, what: str) -> List[str]:
    """The non-empty lines of a UTF-8 text file (BOM and CRLF accepted), stripped. A missing file, a
    folder or a binary file is an InputError naming it (and the first byte that is not text)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise InputError(f"{what} {str(path)!r} is not a file")
    raw = path.read_bytes()
    nul = raw.find(b"\0")
    try:
        if nul >= 0:
            raise UnicodeDecodeError("utf-8", raw, nul, nul + 1, "NUL byte")
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{what} {str(path)!r} is not a UTF-8 text file: byte {exc.start} (line {line}) is "
                         f"0x{raw[exc.start]:02x}; expected one entry per line (is it a binary file, e.g. "
                         f"an .npy or .h5?)") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _decode_ids(dataset, where: str = "") -> List[str]:
    """A 1-D string dataset as a list of str; anything else is an InputError naming it."""
    label = f"{where}: dataset {dataset.name.lstrip('/')!r}" if where else f"dataset {dataset.name!r}"
    if dataset.ndim != 1 or h5py.check_string_dtype(dataset.dtype) is None:
        raise InputError(f"{label} must be a 1-D dataset of strings (one id per video), got {dataset.dtype} "
                         f"{dataset.shape}")
    try:
        return [str(s) for s in dataset.asstr()[()]]
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{label} cannot be read as UTF-8 strings: {exc}") from None


def unique_ids(ids, where: str) -> None:
    """Refuse a video id that appears twice (one of the two would be dropped downstream)."""
    first = {}
    for v, vid in enumerate(ids):
        if vid in first:
            raise InputError(f"{where}: video id {vid!r} appears twice (videos {first[vid]} and {v}); every "
                             f"video must have its own id")
        first[vid] = v


_FEATURE_KINDS = "fiu"
_LANP_OUTPUTS = {"normality": "a labels file (lanp propagate)", "pseudo_label": "a labels file (lanp propagate)",
                 "score": "a scores file (lanp score)", "frame_labels": "a ground-truth file",
                 "snippet_labels": "a ground-truth file"}


def _check_feature_dtype(dataset, where: str, what: str) -> None:
    kind = dataset.dtype.kind
    if kind == "c":
        raise InputError(f"{where}: {what} is complex ({dataset.dtype}); features must be real numbers "
                         f"(float16/32/64)")
    if kind not in _FEATURE_KINDS:
        text = "strings" if h5py.check_string_dtype(dataset.dtype) is not None else f"of type {dataset.dtype}"
        raise InputError(f"{where}: {what} holds {text}, not numbers; features must be float16/32/64 arrays")


def _check_links(group, where: str) -> None:
    """Refuse soft or external links that lead nowhere (h5py would skip or fail on them later)."""
    for name in group:
        link = group.get(name, getlink=True)
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
            try:
                group[name]
            except (KeyError, OSError):
                target = link.path if isinstance(link, h5py.SoftLink) else f"{link.filename}:{link.path}"
                raise InputError(f"{where}: {name!r} is a {type(link).__name__} to {target!r}, which does not "
                                 f"exist (dangling link)") from None


class FeatureFile:
    """Read-only view of a feature file. Use as a context manager.

    Attributes: path, layout ('packed'|'grouped'), video_ids (list of V str), lengths (V,) int64,
    offsets (V+1,) int64, dim (D), crops (C or None), dtype (storage dtype).
    """

    prefetch = True          # lanp.runners.passes reads the next chunk on a thread (two buffers)

    def __init__(self, path):
        self.path = str(path)
        self._file = open_h5(path, "features")
        try:
            _check_links(self._file, self.path)
            if "features" in self._file and isinstance(self._file["features"], h5py.Dataset):
                self._open_packed()
            else:
                for name, kind in _LANP_OUTPUTS.items():
                    if name in self._file and "offsets" in self._file:
                        raise InputError(f"{self.path} is {kind}, not a features file: it has {name!r} and "
                                         f"'offsets' but no 'features' dataset (give the feature file the "
                                         f"{kind.split(' (')[0][2:]} was computed from)")
                self._open_grouped()
        except Exception:
            self._file.close()
            raise

    # -- layouts ---------------------------------------------------------------------------
    def _open_packed(self):
        f = self._file
        self.layout = "packed"
        self._features = f["features"]
        if "offsets" not in f:
            raise InputError(f"{self.path}: packed layout has 'features' but no 'offsets' dataset")
        shape = self._features.shape
        if len(shape) not in (2, 3):
            raise InputError(f"{self.path}: dataset 'features' must be (N, D) or (N, C, D), got {shape}")
        _check_feature_dtype(self._features, self.path, "dataset 'features'")
        offsets = np.asarray(f["offsets"][()])
        if offsets.ndim != 1 or offsets.shape[0] < 2 or not np.issubdtype(offsets.dtype, np.integer):
            raise InputError(f"{self.path}: dataset 'offsets' must be (V+1,) integers with V >= 1, "
                             f"got {offsets.dtype} {offsets.shape}")
        self.offsets = offsets.astype(np.int64)
        V = self.offsets.shape[0] - 1
        if "video_ids" in f:
            self.video_ids = _decode_ids(f["video_ids"], self.path)
            if len(self.video_ids) != V:
                raise InputError(f"{self.path}: 'video_ids' has {len(self.video_ids)} entries but "
                                 f"'offsets' describes {V} videos")
            unique_ids(self.video_ids, self.path)
        else:
            self.video_ids = [f"video_{v:06d}" for v in range(V)]
        check_packed(_ShapeOnly(shape), self.offsets, self.video_ids, where=self.path)
        self.lengths = np.diff(self.offsets)
        self.dim = int(shape[-1])
        self.crops = int(shape[1]) if len(shape) == 3 else None
        self.dtype = self._features.dtype
        self._datasets = None
        self._buffers = {}

    def _open_grouped(self):
        f = self._file
        self.layout = "grouped"
        root = f["videos"] if "videos" in f and isinstance(f["videos"], h5py.Group) else f
        found: List[Tuple[str, h5py.Dataset]] = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                found.append((name, obj))

        root.visititems(visit)
        if not found:
            raise InputError(f"{self.path}: no feature datasets found (expected a packed 'features' + "
                             f"'offsets' pair, or one (L, D) dataset per video)")
        first_name, first = found[0]
        if first.ndim not in (2, 3):
            raise InputError(f"{self.path}: video {first_name!r} has shape {first.shape}; expected (L, D) or (L, C, D)")
        self.dim = int(first.shape[-1])
        self.crops = int(first.shape[1]) if first.ndim == 3 else None
        for name, ds in found:
            _check_feature_dtype(ds, self.path, f"video {name!r}")
            if ds.ndim != first.ndim or ds.shape[-1] != self.dim or (ds.ndim == 3 and ds.shape[1] != self.crops):
                raise InputError(f"{self.path}: video {name!r} has shape {ds.shape} but video "
                                 f"{first_name!r} has {first.shape}: mixed feature sizes")
            if ds.shape[0] == 0:
                raise InputError(f"{self.path}: video {name!r} is empty (L = 0)")
        self.video_ids = [name for name, _ in found]
        self._datasets = [ds for _, ds in found]
        self.lengths = np.array([ds.shape[0] for ds in self._datasets], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.dtype = first.dtype
        self._features = None

    # -- reading ---------------------------------------------------------------------------
    @property
    def num_videos(self) -> int:
        return len(self.video_ids)

    @property
    def num_snippets(self) -> int:
        return int(self.offsets[-1])

    def read(self, v0: int, v1: int, dtype=np.float32, crops: str = "mean",
             reuse: bool = False, buffer: int = 0) -> Tuple[np.ndarray, np.ndarray]:
        """Features of videos v0..v1-1 as (n, D) (crops='mean') or (n, C, D) (crops='keep'), and
        their local offsets (v1-v0+1,).

        reuse=True (packed layout): the rows are read into one buffer that this object keeps for
        every such read, so a chunked pass does not allocate (and page-fault) a fresh array per
        chunk, about 0.2 s per 256 MB here; the array returned is then valid only until the next
        read(reuse=True) with the same ``buffer`` (a small integer: a reader that prefetches the
        next chunk while the last one is in use alternates between buffers 0 and 1)."""
        if crops not in ("mean", "keep"):
            raise ValueError(f"crops={crops!r} is invalid: choose mean or keep")
        try:
            if self.layout == "packed":
                a, b = int(self.offsets[v0]), int(self.offsets[v1])
                if reuse:
                    raw = self._reusable_rows(b - a, buffer)
                    self._features.read_direct(raw, np.s_[a:b])
                else:
                    raw = self._features[a:b]
            else:
                raw = np.concatenate([ds[()] for ds in self._datasets[v0:v1]], axis=0)
        except OSError as exc:                  # a damaged chunk, a missing filter or external file
            videos = (f"video {self.video_ids[v0]!r}" if v1 - v0 == 1 else
                      f"videos {self.video_ids[v0]!r} .. {self.video_ids[v1 - 1]!r} (#{v0}-#{v1 - 1})")
            raise InputError(f"features file {self.path!r}: {videos} cannot be read "
                             f"({str(exc).splitlines()[0]}): the file is damaged, needs an HDF5 filter "
                             f"that is not installed, or its external data is missing") from None
        if raw.ndim == 3 and crops == "mean":
            x = raw.mean(axis=1, dtype=np.float64).astype(dtype, copy=False)
        else:
            x = np.asarray(raw, dtype=dtype)
        return np.ascontiguousarray(x), self.offsets[v0:v1 + 1] - self.offsets[v0]

    def _reusable_rows(self, rows: int, buffer: int = 0) -> np.ndarray:
        """A C-contiguous (rows, ...) view of kept read buffer number ``buffer`` (grown when too small)."""
        shape = self._features.shape
        kept = self._buffers.get(buffer)
        if kept is None or kept.shape[0] < rows:
            self._buffers.pop(buffer, None)         # free the old one before the larger exists
            del kept
            kept = self._buffers[buffer] = np.empty((rows,) + tuple(shape[1:]), dtype=self._features.dtype)
        return kept[:rows]

    def chunks(self, max_bytes: int = CHUNK_BYTES, itemsize: int = 4) -> Iterator[Tuple[int, int]]:
        """Consecutive video ranges [v0, v1) of at most ``max_bytes`` of features (one video at least)."""
        row = self.dim * itemsize * (self.crops or 1)
        V = self.num_videos
        v0 = 0
        while v0 < V:
            limit = self.offsets[v0] + max(1, max_bytes // row)
            v1 = int(np.searchsorted(self.offsets, limit, side="right")) - 1
            v1 = min(max(v1, v0 + 1), V)
            yield v0, v1
            v0 = v1

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _ShapeOnly:
    """Stand-in with the shape of the on-disk features, for offset checks without reading data."""

    def __init__(self, shape):
        self.shape = (shape[0], shape[-1])
        self.ndim = 2


def write_h5(path, datasets: dict, attrs: Optional[dict] = None, compression: Optional[str] = None,
             what: str = "output", inputs=()) -> None:
    """Write datasets (name -> array; lists of str become utf-8 strings) and attributes atomically
    (:func:`lanp.outputs.atomic_file`: ``path`` is checked against ``inputs``, a full disk or a
    signal leaves it unchanged)."""
    with atomic_file(path, what, inputs) as out:
        with h5_file(out) as f:
            for name, value in datasets.items():
                if isinstance(value, (list, tuple)) and (not value or isinstance(value[0], str)):
                    f.create_dataset(name, data=np.array(value, dtype=object), dtype=h5py.string_dtype())
                else:
                    value = np.asarray(value)
                    f.create_dataset(name, data=value, compression=compression if value.ndim else None)
                out.check()
            for key, value in (attrs or {}).items():
                f.attrs[key] = "" if value is None else value


def read_h5(path, what: str = "file", required: tuple = ()) -> Tuple[dict, dict]:
    """All datasets (strings decoded) and attributes of a flat HDF5 file."""
    with open_h5(path, what) as f:
        missing = [name for name in required if name not in f]
        if missing:
            raise InputError(f"{what} file {str(path)!r} lacks dataset(s) {', '.join(missing)}")
        _check_links(f, f"{what} file {str(path)!r}")
        data = {}
        for name, ds in f.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            try:
                if name == "video_ids":
                    data[name] = _decode_ids(ds, f"{what} file {str(path)!r}")
                    unique_ids(data[name], f"{what} file {str(path)!r}")
                elif h5py.check_string_dtype(ds.dtype):
                    data[name] = _decode_ids(ds, f"{what} file {str(path)!r}")
                else:
                    data[name] = ds[()]
            except OSError as exc:
                raise InputError(f"{what} file {str(path)!r}: dataset {name!r} cannot be read "
                                 f"({str(exc).splitlines()[0]}): the file is damaged or needs a missing "
                                 f"HDF5 filter") from None
        return data, dict(f.attrs)
