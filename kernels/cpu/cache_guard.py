"""Keeps numba's disk cache of lanp's CPU kernels in step with their sources.

numba's cache (``cache=True``) is invalidated when the file that defines a jitted function
changes, but not when a file it calls into changes (numba issues #1833 and #9483, still open):
after an edit to simd.py the cached kernels of tiles.py keep the old vector code, after one to
tiles.py those of graph.py and weights.py keep the old register tiles, and an edit to
../codes.py changes constants that every kernel has compiled in. With an editable install (README's
set-up), a ``git pull`` that touches only simd.py would run stale machine code.

So the sources of every cached kernel are fingerprinted together (with the numba version). When
the fingerprint stored beside the cache differs, lanp's cache files there are removed once and
numba compiles afresh; the new fingerprint is then stored. This touches numba's cache folder
only (never data); a read-only folder is left alone (numba cannot cache there either).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba

# every module with cache=True kernels, and everything those inline or read at compile time
# (paths relative to the kernels/ folder; tests check that no cpu/ module is missing)
SOURCES = ("codes.py", "cpu/cg.py", "cpu/csr.py", "cpu/distances.py", "cpu/flags.py", "cpu/graph.py",
           "cpu/neighbours.py", "cpu/normalise.py", "cpu/official.py", "cpu/packed.py", "cpu/rows.py", "cpu/schedule.py",
           "cpu/simd.py", "cpu/tiles.py", "cpu/weights.py")
FINGERPRINT_FILE = "lanp-kernels.fingerprint"
CACHE_SUFFIXES = (".nbi", ".nbc")


def source_fingerprint(folder) -> str:
    """sha256 over the numba version and the bytes of SOURCES in ``folder`` (a kernels/ tree)."""
    digest = hashlib.sha256(numba.__version__.encode())
    for name in SOURCES:
        digest.update(name.encode() + b"\0")
        digest.update(Path(folder, name).read_bytes())
    return digest.hexdigest()


def cached_kernel_files(cache_dir) -> list:
    """numba's index (.nbi) and data (.nbc) files of the SOURCES modules in ``cache_dir``
    (named '<module>.<function>-<line>.py<version>...')."""
    stems = tuple(Path(name).stem + "." for name in SOURCES if name.startswith("cpu/"))
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return []
    return [Path(cache_dir, n) for n in sorted(names) if n.startswith(stems) and n.endswith(CACHE_SUFFIXES)]


def refresh(cache_dir, fingerprint: str) -> int:
    """Remove lanp's cached kernels in ``cache_dir`` unless the fingerprint stored there equals
    ``fingerprint``, then store it (atomically). Returns how many files were removed."""
    stamp = Path(cache_dir, FINGERPRINT_FILE)
    try:
        if stamp.read_text() == fingerprint:
            return 0
    except OSError:
        pass
    removed = 0
    for path in cached_kernel_files(cache_dir):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError:
            return removed                       # read-only cache: nothing numba could refresh
    tmp = stamp.with_name(f".{stamp.name}.tmp-{os.getpid()}")
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        tmp.write_text(fingerprint)
        os.replace(tmp, stamp)
    except OSError:
        pass
    return removed


def ensure_fresh(dispatcher) -> int:
    """:func:`refresh` the folder where numba caches ``dispatcher`` (a cache=True function of
    this package). Where numba's internals differ from what this expects, nothing is done."""
    cache = getattr(dispatcher, "_cache", None)
    cache_dir = getattr(cache, "_cache_path", None)
    if cache_dir is None:
        return 0
    try:
        fingerprint = source_fingerprint(Path(__file__).resolve().parent.parent)
    except OSError:                             # sources not on disk (e.g. a zipped install)
        return 0
    return refresh(cache_dir, fingerprint)
