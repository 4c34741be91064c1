"""The fixed inputs and command lines behind the golden labels files (tests/golden/*.h5).

The golden files were written by ``python tests/golden/make_golden.py`` from main *before* the
redesign of the method layer (issue 13); test_golden.py reruns every case and compares every
dataset and attribute, so any behaviour change of ``lanp-propagate`` shows.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
INPUT = HERE / "input.h5"
SHARDS = (HERE / "shard_a.h5", HERE / "shard_b.h5")
SPLIT = 7                                  # videos in shard_a; the rest go to shard_b

# attributes that name the machine or the run, not the result
VOLATILE_ATTRS = ("features", "lanp_version", "dist_run_key", "lanp_config")

# options added after the golden files were written: each must appear with this value (its default,
# which keeps the golden behaviour) in every new output, and nowhere in the golden files
NEW_OPTION_DEFAULTS = {"normal_split": "count"}

# name -> extra lanp-propagate options (the input is INPUT; 'sharded' cases take SHARDS)
CASES = {
    "paper": ["--preset", "paper"],
    "window": ["--preset", "paper", "--window", "3"],
    "terms-feature": ["--preset", "paper", "--terms", "feature"],
    "terms-temporal": ["--preset", "paper", "--terms", "temporal"],
    "raw-rms": ["--preset", "paper", "--distance", "rms", "--normalize", "none", "--sigma", "2.0"],
    "length-adjusted": ["--preset", "paper", "--video-score", "std-length-adjusted"],
    "n-normal": ["--preset", "paper", "--n-normal", "4", "--abnormal-ratio", "0.3", "--confident-fraction", "0.5"],
    "official-ucf": ["--preset", "official-ucf"],
    "official-sht": ["--preset", "official-sht"],
    "official-ucf-adjusted": ["--preset", "official-ucf", "--video-score", "std-length-adjusted"],
}
SHARDED_CASES = {
    "sharded-paper": ["--preset", "paper"],
    "sharded-official-sht": ["--preset", "official-sht"],
}


def make_inputs() -> None:
    """Seeded features with the structure the method sees: normal ends, an abnormal middle in some
    videos, lengths from 3 to 40 (one of 1 for the edge case), D = 12, non-negative."""
    rng = np.random.default_rng(20261201)
    lengths = [12, 30, 5, 40, 1, 18, 25, 3, 33, 9, 22, 16]
    rows = []
    for v, n in enumerate(lengths):
        base = rng.gamma(2.0, 0.2, size=12)
        x = base + 0.05 * rng.normal(size=(n, 12))
        if v % 3 == 1 and n > 6:
            a, b = n // 3, 2 * n // 3
            x[a:b] += rng.gamma(2.0, 0.3, size=12)
        rows.append(np.abs(x).astype(np.float32))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = [f"vid_{v:02d}" for v in range(len(lengths))]
    _write(INPUT, np.concatenate(rows), offsets, ids)
    _write(SHARDS[0], np.concatenate(rows[:SPLIT]), offsets[:SPLIT + 1], ids[:SPLIT])
    _write(SHARDS[1], np.concatenate(rows[SPLIT:]), offsets[SPLIT:] - offsets[SPLIT], ids[SPLIT:])


def _write(path, x, offsets, ids) -> None:
    with h5py.File(path, "w") as f:
        f["features"] = x
        f["offsets"] = offsets
        f.create_dataset("video_ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())


def run_case(name: str, out_dir) -> list:
    """Run one case with ``lanp.cli.propagate_main``; returns the labels files it wrote."""
    from lanp.cli import propagate_main

    out_dir = Path(out_dir)
    if name in CASES:
        out = out_dir / f"{name}.labels.h5"
        code = propagate_main(["--features", str(INPUT), "--out", str(out), "--quiet", *CASES[name]])
        outs = [out]
    else:
        target = out_dir / name
        code = propagate_main(["--features", *map(str, SHARDS), "--out", str(target), "--quiet",
                               *SHARDED_CASES[name]])
        outs = [target / f"{p.stem}.labels.h5" for p in SHARDS]
    if code != 0:
        raise RuntimeError(f"golden case {name!r} exited {code}")
    return outs


def read_labels(path) -> tuple:
    """(datasets, attributes) of a labels file, strings decoded, volatile attributes dropped."""
    with h5py.File(path, "r") as f:
        data = {k: (list(f[k].asstr()[()]) if h5py.check_string_dtype(f[k].dtype) else f[k][()]) for k in f}
        attrs = {k: v for k, v in f.attrs.items() if k not in VOLATILE_ATTRS}
    return data, attrs


def golden_path(name: str, output) -> Path:
    return HERE / "expected" / (f"{name}.labels.h5" if name in CASES else f"{name}__{Path(output).name}")

