"""HDF5 feature files in (packed or grouped layout) and atomic outputs.

Packed layout:  features (N, D) or (N, C, D) float16/32/64, offsets (V+1,) int64, video_ids (V,) str.
Grouped layout: one dataset per video, (L, D) or (L, C, D), at the root or under /videos (nested
groups allowed; the id is the dataset's path below that group).
C crops are averaged when read with crops="mean".
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import h5py
import numpy as np

from lanp.kernels import InputError
from lanp.kernels import check_packed

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


def _decode_ids(dataset) -> List[str]:
    return [str(s) for s in dataset.asstr()[()]]


class FeatureFile:
    """Read-only view of a feature file. Use as a context manager.

    Attributes: path, layout ('packed'|'grouped'), video_ids (list of V str), lengths (V,) int64,
    offsets (V+1,) int64, dim (D), crops (C or None), dtype (storage dtype).
    """

    def __init__(self, path):
        self.path = str(path)
        self._file = open_h5(path, "features")
        try:
            if "features" in self._file and isinstance(self._file["features"], h5py.Dataset):
                self._open_packed()
            else:
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
        offsets = np.asarray(f["offsets"][()])
        if offsets.ndim != 1 or offsets.shape[0] < 2 or not np.issubdtype(offsets.dtype, np.integer):
            raise InputError(f"{self.path}: dataset 'offsets' must be (V+1,) integers with V >= 1, "
                             f"got {offsets.dtype} {offsets.shape}")
        self.offsets = offsets.astype(np.int64)
        V = self.offsets.shape[0] - 1
        if "video_ids" in f:
            self.video_ids = _decode_ids(f["video_ids"])
            if len(self.video_ids) != V:
                raise InputError(f"{self.path}: 'video_ids' has {len(self.video_ids)} entries but "
                                 f"'offsets' describes {V} videos")
        else:
            self.video_ids = [f"video_{v:06d}" for v in range(V)]
        check_packed(_ShapeOnly(shape), self.offsets, self.video_ids, where=self.path)
        self.lengths = np.diff(self.offsets)
        self.dim = int(shape[-1])
        self.crops = int(shape[1]) if len(shape) == 3 else None
        self.dtype = self._features.dtype
        self._datasets = None
        self._buffer = None

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
             reuse: bool = False) -> Tuple[np.ndarray, np.ndarray]:
        """Features of videos v0..v1-1 as (n, D) (crops='mean') or (n, C, D) (crops='keep'), and
        their local offsets (v1-v0+1,).

        reuse=True (packed layout): the rows are read into one buffer that this object keeps for
        every such read, so a chunked pass does not allocate (and page-fault) a fresh array per
        chunk, about 0.2 s per 256 MB here; the array returned is then valid only until the next
        read(reuse=True)."""
        if crops not in ("mean", "keep"):
            raise ValueError(f"crops={crops!r} is invalid: choose mean or keep")
        if self.layout == "packed":
            a, b = int(self.offsets[v0]), int(self.offsets[v1])
            if reuse:
                raw = self._reusable_rows(b - a)
                self._features.read_direct(raw, np.s_[a:b])
            else:
                raw = self._features[a:b]
        else:
            raw = np.concatenate([ds[()] for ds in self._datasets[v0:v1]], axis=0)
        if raw.ndim == 3 and crops == "mean":
            x = raw.mean(axis=1, dtype=np.float64).astype(dtype, copy=False)
        else:
            x = np.asarray(raw, dtype=dtype)
        return np.ascontiguousarray(x), self.offsets[v0:v1 + 1] - self.offsets[v0]

    def _reusable_rows(self, rows: int) -> np.ndarray:
        """A C-contiguous (rows, ...) view of the kept read buffer (grown when too small)."""
        shape = self._features.shape
        if self._buffer is None or self._buffer.shape[0] < rows:
            self._buffer = None                     # free the old one before the larger exists
            self._buffer = np.empty((rows,) + tuple(shape[1:]), dtype=self._features.dtype)
        return self._buffer[:rows]

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


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Nothing is left behind on an error or Ctrl-C (the temporary file is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_h5(path, datasets: dict, attrs: Optional[dict] = None, compression: Optional[str] = None) -> None:
    """Write datasets (name -> array; lists of str become utf-8 strings) and attributes atomically."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, value in datasets.items():
                if isinstance(value, (list, tuple)) and (not value or isinstance(value[0], str)):
                    f.create_dataset(name, data=np.array(value, dtype=object), dtype=h5py.string_dtype())
                else:
                    value = np.asarray(value)
                    f.create_dataset(name, data=value, compression=compression if value.ndim else None)
            for key, value in (attrs or {}).items():
                f.attrs[key] = "" if value is None else value


def read_h5(path, what: str = "file", required: tuple = ()) -> Tuple[dict, dict]:
    """All datasets (strings decoded) and attributes of a flat HDF5 file."""
    with open_h5(path, what) as f:
        missing = [name for name in required if name not in f]
        if missing:
            raise InputError(f"{what} file {str(path)!r} lacks dataset(s) {', '.join(missing)}")
        data = {}
        for name, ds in f.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            data[name] = _decode_ids(ds) if h5py.check_string_dtype(ds.dtype) else ds[()]
        return data, dict(f.attrs)
