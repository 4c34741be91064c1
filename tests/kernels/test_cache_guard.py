"""kernels/cpu/cache_guard: lanp's numba cache files go when any kernel source changes, and only then;
other files in the cache folder stay; the real cache folder carries the current fingerprint."""
import re
import shutil
from pathlib import Path

import pytest

from lanp.kernels.cpu import cache_guard, packed

KERNELS = Path(cache_guard.__file__).resolve().parent.parent      # the kernels/ folder
OURS = ["packed.propagate_packed-842.py311.nbi", "packed.propagate_packed-842.py311.1.nbc",
        "simd.exp_flush-300.py312.nbi", "weights.weight_distance_rows-160.py311.2.nbc"]
THEIRS = ["other.f-1.py311.nbi", "cpu_helpers.g-2.py311.nbc", "cpu.notes.txt"]


def fill(folder):
    for name in OURS + THEIRS:
        (folder / name).write_bytes(b"x")


def test_refresh_removes_only_lanps_cache_files_and_only_when_the_fingerprint_changes(tmp_path):
    fill(tmp_path)
    assert cache_guard.refresh(tmp_path, "a") == len(OURS)          # no fingerprint stored yet
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(THEIRS + [cache_guard.FINGERPRINT_FILE])
    fill(tmp_path)                                                   # numba writes new ones
    assert cache_guard.refresh(tmp_path, "a") == 0                   # same sources: kept
    assert all((tmp_path / n).exists() for n in OURS)
    assert cache_guard.refresh(tmp_path, "b") == len(OURS)          # a source changed
    assert (tmp_path / cache_guard.FINGERPRINT_FILE).read_text() == "b"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_missing_cache_folder_is_created_with_its_fingerprint(tmp_path):
    folder = tmp_path / "not" / "yet"
    assert cache_guard.refresh(folder, "f") == 0
    assert (folder / cache_guard.FINGERPRINT_FILE).read_text() == "f"


@pytest.mark.parametrize("name", cache_guard.SOURCES)
def test_fingerprint_follows_every_source(tmp_path, name):
    for source in cache_guard.SOURCES:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(KERNELS / source, tmp_path / source)
    before = cache_guard.source_fingerprint(tmp_path)
    assert before == cache_guard.source_fingerprint(KERNELS)
    with open(tmp_path / name, "ab") as f:
        f.write(b"\n# an edit\n")
    assert cache_guard.source_fingerprint(tmp_path) != before


def test_the_real_cache_folder_is_stamped_with_the_current_sources():
    folder = Path(packed.solve_slots._cache._cache_path)
    stamp = folder / cache_guard.FINGERPRINT_FILE
    if not stamp.exists():
        pytest.skip(f"numba's cache folder {folder} is not writable here")
    assert stamp.read_text() == cache_guard.source_fingerprint(KERNELS)
    assert cache_guard.ensure_fresh(packed.solve_slots) == 0      # nothing stale to remove


def test_unreadable_sources_leave_the_cache_alone(tmp_path, monkeypatch):
    class Dispatcher:
        class _cache:
            _cache_path = str(tmp_path)
    fill(tmp_path)
    monkeypatch.setattr(cache_guard, "SOURCES", ("no_such_file.py",))
    assert cache_guard.ensure_fresh(Dispatcher) == 0
    assert all((tmp_path / n).exists() for n in OURS)


def test_every_cached_kernel_module_is_fingerprinted():
    """A cpu/ module with cache=True kernels (or one they inline) missing from SOURCES would keep
    stale machine code after an edit."""
    listed = set(cache_guard.SOURCES)
    for path in sorted((KERNELS / "cpu").glob("*.py")):
        text = path.read_text()
        if re.search(r"^@njit\(.*cache=True", text, re.M) or "FASTMATH =" in text:
            assert f"cpu/{path.name}" in listed, path.name
    assert "codes.py" in listed            # constants compiled into every kernel
