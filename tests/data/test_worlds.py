"""The synthetic worlds of lanp.data.worlds: realistic statistics, reproducible seeds, the label-vs-length
parameter, clear errors for bad options, and the easy world (today's lanp synth) unchanged bit for bit."""
import hashlib
import time

import h5py
import numpy as np
import pytest

from lanp.cli import main
from lanp.data import worlds as W
from lanp.data.feature_stats import (STAT_RANGES, autocorrelation, calibration_sample, feature_statistics,
                                     out_of_range)
from lanp.data.synth import make_synthetic
from lanp.kernels import InputError

REALISTIC = [name for name in W.WORLDS if name != "easy"]

# sha256 of make_synthetic's arrays, and of the files `lanp synth` wrote, taken at b02f13d (before worlds)
EASY_ARRAYS = {
    "default": ({}, "f2e2fcc1117b812679ebc735a5de45de94b2ded5d1a402c57fa2efcc5941efc1"),
    "small": (dict(num_videos=6, dim=8), "65749b489525dd65b7277f2657c0de77cdc65e59994fff9ba5fa1c6366214123"),
    "cli": (dict(num_videos=20, dim=16, min_length=5, max_length=40, abnormal_fraction=0.5, seed=3, world_seed=2),
            "6729a2ed14a8c81e2de76c937fc1221d5cee0ecf48938dc8d722cb53d0d1f091"),
    "demo_train": (dict(num_videos=120, seed=0, world_seed=0, prefix="train"),
                   "0a4acd88ab634cfd30114ddabbc0d05bedc87a5ef18adbd5d6b2e17da2f16062"),
    "demo_test": (dict(num_videos=60, seed=1, world_seed=0, prefix="test"),
                  "6ae06f4ed7632353ec51a4f2b5ab5435400b7a96160752d60624bedfbe1c3965"),
}
EASY_FILES = {
    "s.h5": "2864fc494a966ea1ad62aa04cbd4105aea3fd1e24844ceae0bfd0e2b13472caf",
    "s.gt.h5": "c9196fd9eb3f36ea9707660753c4629546b2407f2d821a8e7686f92876382f74",
    "t.h5": "3c13730caded611a935097cd0ecb992ae4f01a2d880a6b329904d743808970ec",
    "t.gt.h5": "43d2770eb76ff8238850b05c687760176b1561d8303008d1d796c3a782c091d4",
}
EASY_CLI = {"s": ["--videos", "6", "--dim", "8"],
            "t": ["--videos", "20", "--dim", "16", "--min-length", "5", "--max-length", "40",
                  "--abnormal-fraction", "0.5", "--seed", "3", "--world-seed", "2"]}


def array_digest(d) -> str:
    h = hashlib.sha256()
    for a in (d.features, d.offsets, d.snippet_labels, d.video_labels):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update("\n".join(d.video_ids).encode())
    return h.hexdigest()


def file_digest(path) -> str:
    """Every dataset (bytes or decoded strings) and attribute, in name order, but the resolved
    command configuration (``lanp_config``: provenance with this run's paths, added later)."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for k in sorted(f):
            h.update(k.encode())
            value = f[k][()]
            h.update("\n".join(x.decode() for x in value).encode() if f[k].dtype.kind == "O"
                     else np.ascontiguousarray(value).tobytes())
        for k in sorted(f.attrs):
            if k != "lanp_config":
                h.update(f"{k}={f.attrs[k]}".encode())
    return h.hexdigest()


def split_digest(split) -> str:
    h = hashlib.sha256()
    for name in ("features", "offsets", "snippet_labels", "video_labels", "video_classes", "snippet_classes",
                 "video_scenes", "snippet_scenes", "rare_events", "prior_violation"):
        h.update(np.ascontiguousarray(getattr(split, name)).tobytes())
    h.update("\n".join(split.video_ids).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def worlds():
    """Every realistic world at its defaults (160 + 80 videos, D = 256), seed 0."""
    return {name: W.generate(name, seed=0) for name in REALISTIC}


# ---------------------------------------------------------------- easy: today's lanp synth, unchanged

@pytest.mark.parametrize("case", sorted(EASY_ARRAYS))
def test_make_synthetic_unchanged(case):
    kwargs, digest = EASY_ARRAYS[case]
    assert array_digest(make_synthetic(**kwargs)) == digest, case


def test_easy_world_is_the_demo_data():
    data = W.generate("easy", seed=0)
    assert data.dim == 64 and len(data.train.video_ids) == 120 and len(data.test.video_ids) == 60
    assert array_digest(data.train) == EASY_ARRAYS["demo_train"][1]
    assert array_digest(data.test) == EASY_ARRAYS["demo_test"][1]


@pytest.mark.parametrize("world", [[], ["--world", "easy"]], ids=["default", "world-easy"])
def test_lanp_synth_files_unchanged(tmp_path, capsys, world):
    for stem, args in EASY_CLI.items():
        assert main(["synth", "--out", str(tmp_path / f"{stem}.h5"), *args, *world]) == 0
    for name, digest in EASY_FILES.items():
        assert file_digest(tmp_path / name) == digest, name
        with h5py.File(tmp_path / name, "r") as f:
            assert '"command": "synth"' in f.attrs["lanp_config"], name          # the run's provenance


# ---------------------------------------------------------------- realistic statistics

def test_documented_ranges_hold_a_real_sample_like_value():
    # the ranges are the documented ones in docs/worlds.md: every one has a meaning and lo <= hi
    for name, (lo, hi, meaning) in STAT_RANGES.items():
        assert lo <= hi and meaning, name


@pytest.mark.parametrize("name", REALISTIC)
def test_world_statistics_in_documented_ranges(worlds, name):
    same, other = calibration_sample(worlds[name].train)
    stats = feature_statistics(same, other)
    assert not out_of_range(stats), (name, "seed 0", out_of_range(stats))
    # another scene is farther away than another video of the same camera
    assert stats["other_scene_sqdist"] > stats["between_sqdist"] > stats["within_sqdist"], name


@pytest.mark.parametrize("name", REALISTIC)
def test_world_statistics_hold_for_other_seeds(name):
    for seed in (1, 2):
        data = W.generate(name, seed=seed, train_videos=120, test_videos=10, dim=128)
        stats = feature_statistics(*calibration_sample(data.train))
        assert not out_of_range(stats), (name, f"seed {seed}", out_of_range(stats))


def test_autocorrelation_of_an_ar1_process():
    rng = np.random.default_rng(11)
    phi, videos = 0.7, []
    for _ in range(20):
        x = np.zeros((400, 8))
        e = rng.normal(size=x.shape)
        for t in range(1, 400):
            x[t] = phi * x[t - 1] + e[t]
        videos.append(x)
    acf = autocorrelation(videos, 4)
    np.testing.assert_allclose(acf, phi ** np.arange(1, 5), atol=0.04)


def test_statistics_of_a_known_sample():
    rng = np.random.default_rng(5)
    videos = [np.abs(rng.normal(size=(40, 32))) for _ in range(3)]
    s = feature_statistics(videos)
    assert s["min"] >= 0 and s["videos"] == 3 and s["snippets"] == 120 and s["dim"] == 32
    assert 0 < s["pca_1"] < s["pca_10"] <= s["pca_50"] <= 1 + 1e-12
    assert abs(s["acf_1"]) < 0.15                               # white noise
    assert np.isnan(s["other_scene_sqdist"])
    assert s["between_within_ratio"] == pytest.approx(1.0, abs=0.05)   # i.i.d. videos


# ---------------------------------------------------------------- what the worlds are made of

@pytest.mark.parametrize("name", REALISTIC)
def test_splits_layout_and_ground_truth(worlds, name):
    for split in (worlds[name].train, worlds[name].test):
        V, N = len(split.video_ids), int(split.offsets[-1])
        assert split.features.dtype == np.float32 and split.features.shape == (N, 256)
        assert split.offsets.dtype == np.int64 and split.offsets[0] == 0 and np.all(np.diff(split.offsets) >= 1)
        assert split.snippet_labels.dtype == np.uint8 and split.snippet_labels.shape == (N,)
        assert split.video_labels.dtype == np.uint8 and split.video_labels.shape == (V,)
        assert split.features.min() >= 0 and np.all(split.features.max(axis=1) > 0)
        per_video = np.maximum.reduceat(split.snippet_labels, split.offsets[:-1])
        np.testing.assert_array_equal(per_video, split.video_labels)
        assert np.all((split.video_classes >= 0) == (split.video_labels == 1))
        assert np.all((split.snippet_classes >= 0) == (split.snippet_labels == 1))
        lengths = np.diff(split.offsets)
        spec = worlds[name].spec
        assert lengths.min() >= spec.min_length and lengths.max() <= spec.max_length
    train, test = worlds[name].train, worlds[name].test
    assert set(train.video_ids).isdisjoint(test.video_ids)
    # one world: test anomaly classes and scenes are ones the training split has
    assert set(test.video_classes[test.video_classes >= 0]) <= set(train.video_classes[train.video_classes >= 0])
    assert set(test.video_scenes) <= set(range(spec.num_scenes))


def test_realistic_worlds_are_hard_the_ways_real_data_is(worlds):
    for name, data in worlds.items():
        split, spec = data.train, data.spec
        lengths = np.diff(split.offsets)
        starts = split.offsets[:-1]
        normal = split.video_labels == 0
        # cuts: some normal video changes scene within itself; rare events in normal videos
        changes = [np.any(np.diff(split.snippet_scenes[a:b]) != 0) for a, b in zip(starts, split.offsets[1:])]
        assert np.any(np.array(changes) & normal), name
        assert np.any(np.repeat(normal, lengths) & (split.rare_events == 1)), name
        # anomaly classes recur across videos; some anomalies touch the first or last snippet
        classes, counts = np.unique(split.video_classes[~normal], return_counts=True)
        assert counts.max() >= 3, name
        assert 0 < split.prior_violation.sum() < (~normal).sum() or spec.prior_violation == 0, name
        test_violation = spec.prior_violation if spec.test_prior_violation is None else spec.test_prior_violation
        assert (data.test.prior_violation.sum() > 0) == (test_violation > 0), name
        if spec.prior_violation == 0:
            assert not split.prior_violation.any() and np.all(split.snippet_labels[starts] == 0), name
        # durations from one snippet to most of a video
        runs = _runs(split.snippet_labels, split.offsets)
        assert min(r for r, _ in runs) <= 2 and max(r / L for r, L in runs) >= 0.4, name
        # lengths are the scaled real UCF-Crime ones: long-tailed
        assert np.median(lengths) < 0.6 * lengths.max(), name


def _runs(labels, offsets):
    """(run length, video length) of every run of abnormal snippets."""
    out = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        y = np.concatenate([[0], labels[a:b], [0]]).astype(int)
        d = np.diff(y)
        out += [(int(e - s), int(b - a)) for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]
    return out


def test_lengths_rule():
    spec = W.WORLDS["scenes"]
    raw = W.ucf_train_lengths()
    assert raw.shape == (1610,) and np.median(raw) == 138.5 and raw.max() == 61031
    L = W.scaled_lengths(raw, spec)
    assert L.min() == max(spec.min_length, int(np.ceil(raw.min() * spec.length_scale)))
    assert L.max() == spec.max_length
    np.testing.assert_array_equal(L, np.clip(np.ceil(raw * spec.length_scale), spec.min_length, spec.max_length))


# ---------------------------------------------------------------- seeds

@pytest.mark.parametrize("name", ["easy", "scenes"])
def test_same_seed_same_bytes_other_seed_other_data(name):
    kw = dict(train_videos=30, test_videos=10, dim=32)
    a, b = W.generate(name, seed=3, **kw), W.generate(name, seed=3, **kw)
    c = W.generate(name, seed=4, **kw)
    assert split_digest(a.train) == split_digest(b.train) and split_digest(a.test) == split_digest(b.test)
    assert split_digest(a.train) != split_digest(c.train) and split_digest(a.test) != split_digest(c.test)
    assert split_digest(a.train) != split_digest(a.test)


def test_world_seed_fixes_the_world_and_seed_the_videos():
    kw = dict(train_videos=40, test_videos=10, dim=32)
    a = W._World(W.WORLDS["scenes"], 32, np.random.default_rng([5, 7]))
    b = W._World(W.WORLDS["scenes"], 64, np.random.default_rng([5, 7]))
    np.testing.assert_array_equal(a.classes, b.classes)              # latent world independent of dim
    np.testing.assert_array_equal(a.cameras, b.cameras)
    x, y = W.generate("scenes", seed=1, world_seed=5, **kw), W.generate("scenes", seed=2, world_seed=5, **kw)
    assert split_digest(x.train) != split_digest(y.train)


def test_write_split_round_trip(tmp_path, worlds):
    from lanp.data.groundtruth import read_groundtruth
    from lanp.data.io import FeatureFile

    split = worlds["scenes"].test
    W.write_split(split, tmp_path / "test.h5", tmp_path / "test.gt.h5", {"world": "scenes"})
    with FeatureFile(tmp_path / "test.h5") as ff:
        x, _ = ff.read(0, ff.num_videos)
        np.testing.assert_array_equal(ff.offsets, split.offsets)
        assert list(ff.video_ids) == split.video_ids
    np.testing.assert_array_equal(x, split.features)
    gt = read_groundtruth(tmp_path / "test.gt.h5")
    for v, vid in enumerate(split.video_ids):
        np.testing.assert_array_equal(gt[vid], np.repeat(split.snippet_labels[split.offsets[v]:split.offsets[v + 1]], 16))
    with h5py.File(tmp_path / "test.gt.h5", "r") as f:
        np.testing.assert_array_equal(f["snippet_labels"][()], split.snippet_labels)
        np.testing.assert_array_equal(f["video_classes"][()], split.video_classes)
        assert f.attrs["world"] == "scenes"


def test_cli_writes_a_world_train_and_test(tmp_path, capsys):
    assert main(["synth", "--world", "subtle", "--out", str(tmp_path / "tr.h5"), "--test-out",
                 str(tmp_path / "te.h5"), "--videos", "20", "--test-videos", "8", "--dim", "32", "--seed", "2",
                 "--world-seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "tr.h5 (20 videos" in out and "te.h5 (8 videos" in out
    data = W.generate("subtle", seed=2, world_seed=2, train_videos=20, test_videos=8, dim=32)
    with h5py.File(tmp_path / "te.h5", "r") as f:
        np.testing.assert_array_equal(f["features"][()], data.test.features)
    with h5py.File(tmp_path / "tr.gt.h5", "r") as f:
        np.testing.assert_array_equal(f["snippet_labels"][()], data.train.snippet_labels)


def test_a_world_of_200_videos_is_fast():
    t0 = time.perf_counter()
    W.generate("scenes", seed=9, train_videos=150, test_videos=50, dim=256)
    assert time.perf_counter() - t0 < 15.0


# ---------------------------------------------------------------- label vs length

def _length_label_correlation(label_length, seeds=(0, 1, 2)):
    from scipy.stats import spearmanr
    values = []
    for seed in seeds:
        d = W.generate("scenes", seed=seed, train_videos=200, test_videos=10, dim=16, label_length=label_length)
        values.append(spearmanr(np.diff(d.train.offsets), d.train.video_labels)[0])
    return float(np.mean(values))


def test_label_length_relation_does_what_it_says():
    independent = _length_label_correlation("independent")
    longer = _length_label_correlation("abnormal-longer")
    shorter = _length_label_correlation("abnormal-shorter")
    assert abs(independent) < 0.15 and longer > 0.4 and shorter < -0.4, (independent, longer, shorter)


def test_abnormal_longer_hurts_the_std_z_video_split():
    """std(z) ranks videos by length; when abnormal videos are the long ones its split gets worse."""
    from sklearn.metrics import roc_auc_score

    from lanp.kernels import propagate

    def video_auc(name):
        aucs = []
        for seed in (0, 1, 2):
            tr = W.generate(name, seed=seed, test_videos=1, dim=64).train
            z = propagate(tr.features, tr.offsets, warn=False).z.astype(np.float64)
            std_z = [np.std(z[a:b]) for a, b in zip(tr.offsets[:-1], tr.offsets[1:])]   # LANP's video score
            aucs.append(roc_auc_score(tr.video_labels, std_z))
        return float(np.mean(aucs))

    off, on = video_auc("scenes"), video_auc("length-biased-long")
    assert on < off - 0.05, (off, on)


# ---------------------------------------------------------------- bad options

@pytest.mark.parametrize("kwargs, words", [
    (dict(name="nope"), ["world='nope'", "easy", "scenes", "subtle"]),
    (dict(name="scenes", abnormal_fraction=1.5), ["abnormal_fraction=1.5", "[0, 1]"]),
    (dict(name="easy", abnormal_fraction=-0.1), ["abnormal_fraction=-0.1", "[0, 1]"]),
    (dict(name="scenes", label_length="sideways"), ["label_length='sideways'", "independent", "abnormal-longer",
                                                    "abnormal-shorter"]),
    (dict(name="scenes", colour=3), ["'colour'", "prior_violation", "label_length"]),
    (dict(name="scenes", prior_violation="many"), ["prior_violation='many'", "a number"]),
    (dict(name="scenes", anomaly_strength=(2.0, 1.0)), ["anomaly_strength=(2.0, 1.0)", "low <= high"]),
    (dict(name="scenes", min_length=300), ["min_length=300", "max_length=256"]),
    (dict(name="scenes", dim=1), ["dim=1", ">= 2"]),
    (dict(name="scenes", train_videos=0), ["train_videos=0", ">= 1"]),
    (dict(name="scenes", seed=-1), ["seed=-1", ">= 0"]),
    (dict(name="scenes", test_prior_violation=2.0), ["test_prior_violation=2.0", "None or in [0, 1]"]),
    (dict(name="scenes", test_prior_violation="x"), ["test_prior_violation='x'", "None or a number"]),
])
def test_bad_options_are_refused_by_name(kwargs, words):
    kwargs = dict(kwargs)
    with pytest.raises(InputError) as info:
        W.generate(kwargs.pop("name"), **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("args, words", [
    (["--abnormal-fraction", "1.5"], ["--abnormal-fraction 1.5", "[0, 1]"]),
    (["--world", "scenes", "--set", "prior_violation=2"], ["prior_violation=2", "[0, 1]"]),
    (["--world", "scenes", "--set", "nonsense"], ["--set 'nonsense'", "FIELD=VALUE"]),
    (["--videos", "0"], ["--videos 0", ">= 1"]),
    (["--label-length", "abnormal-longer"], ["--label-length", "easy", "scenes"]),
])
def test_cli_bad_options(tmp_path, capsys, args, words):
    assert main(["synth", "--out", str(tmp_path / "x.h5"), *args]) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "x.h5").exists()


def test_cli_unknown_world_lists_the_worlds(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["synth", "--out", str(tmp_path / "x.h5"), "--world", "mars"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--world" in err and "'mars'" in err and all(name in err for name in W.WORLDS)


def test_help_lists_the_worlds(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in W.WORLDS) and "--label-length" in out


def test_every_spec_field_is_documented():
    for name, spec in W.WORLDS.items():
        for field, value, doc in W.describe(spec):
            assert doc, (name, field)
        assert spec.description, name


def test_docs_list_every_world_and_field():
    from dataclasses import fields
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "worlds.md").read_text()
    for name, spec in W.WORLDS.items():
        assert f"`{name}`" in doc, name
        for f in fields(spec):
            assert f.name == "description" or f"`{f.name}`" in doc, (name, f.name)


def test_tiny_feature_sizes_give_valid_snippets():
    data = W.generate("scenes", seed=1, train_videos=20, test_videos=5, dim=2)
    for split in (data.train, data.test):
        assert split.features.shape[1] == 2 and np.all(split.features.max(axis=1) > 0)


def _bench_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "calibrate_worlds.py"
    spec = importlib.util.spec_from_file_location("calibrate_worlds", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_calibration_script_skips_without_the_real_sample(tmp_path, capsys):
    bench = _bench_script()
    doc = tmp_path / "worlds.md"
    doc.write_text("a\n<!-- parameters:begin -->\nold\n<!-- parameters:end -->\nb\n")
    assert bench.main(["--real", str(tmp_path / "absent"), "--write", str(doc)]) == 0
    assert "skipped the calibration" in capsys.readouterr().out
    text = doc.read_text()
    assert "old" not in text and "`prior_violation`" in text and text.startswith("a\n") and text.endswith("b\n")
