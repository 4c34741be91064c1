"""Sharded propagation on dask (lanp.runners.sharded): 4 shards on an in-process 2-worker LocalCluster
equal the single-process run over their concatenation exactly; failed runs resume without
recomputing finished shards; input/output rules and the missing-extra error."""
import os
import sys

import h5py
import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import lanp.runners.sharded as D
from lanp.cli import propagate_main
from lanp.data.io import write_h5
from lanp.kernels import InputError
from lanp.method.options import PropagateConfig
from lanp.method.registry import preset_recipe
from lanp.data.synth import make_synthetic, write_synthetic

BOUNDS = (0, 9, 21, 22, 36)          # 4 uneven shards, one of a single video
DATASETS = ("normality", "pseudo_label", "weight", "video_ids", "video_score", "video_abnormal",
            "cg_iterations", "cg_residual")
PER_FILE_ATTRS = ("features", "cg_not_converged", "cg_iterations_max", "cg_residual_max", "lanp_config")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as c:
        yield c.scheduler_address


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sharded")
    ds = make_synthetic(num_videos=BOUNDS[-1], dim=16, min_length=4, max_length=50, seed=7)
    write_synthetic(ds, d / "all.h5")
    (d / "shards").mkdir()
    for i in range(4):
        a, b = BOUNDS[i], BOUNDS[i + 1]
        s0, s1 = ds.offsets[a], ds.offsets[b]
        write_h5(d / "shards" / f"part{i}.h5", {"features": ds.features[s0:s1],
                                                 "offsets": ds.offsets[a:b + 1] - s0,
                                                 "video_ids": ds.video_ids[a:b]})
    return d


def read(path):
    with h5py.File(path, "r") as f:
        return ({k: (f[k].asstr()[()].tolist() if h5py.check_string_dtype(f[k].dtype) else f[k][()]) for k in f},
                dict(f.attrs))


def single(data, tmp_path, *options):
    out = tmp_path / "single.labels.h5"
    assert propagate_main(["--features", str(data / "all.h5"), "--out", str(out), "--quiet", *options]) == 0
    return read(out)


def assert_equals_single(out_dir, expected):
    ds, attrs = expected
    parts = [read(out_dir / f"part{i}.labels.h5") for i in range(4)]
    for name in DATASETS:
        got = [p[0][name] for p in parts]
        got = sum(got, []) if name == "video_ids" else np.concatenate(got)
        np.testing.assert_array_equal(got, ds[name], err_msg=name)
    sizes = np.cumsum([0] + [int(p[0]["offsets"][-1]) for p in parts])
    offsets = np.concatenate([[0]] + [p[0]["offsets"][1:] + sizes[i] for i, p in enumerate(parts)])
    np.testing.assert_array_equal(offsets, ds["offsets"])
    for i, (pds, pattrs) in enumerate(parts):
        assert set(pds) == set(ds)                                   # the single-file layout
        for key, value in attrs.items():
            if key not in PER_FILE_ATTRS and key != "lanp_version":
                np.testing.assert_array_equal(np.asarray(pattrs[key]), np.asarray(value), err_msg=key)
        assert pattrs["dist_shard_index"] == i and pattrs["dist_num_shards"] == 4
        assert pattrs["dist_total_videos"] == len(ds["video_ids"])
        assert pattrs["cg_iterations_max"] == pds["cg_iterations"].max()


@pytest.mark.filterwarnings("ignore::lanp.kernels.ConvergenceWarning")     # the presets' capped CG
@pytest.mark.parametrize("options", [(), ("--window", "5", "--video-score", "std-length-adjusted",
                                           "--dtype", "float64", "--n-normal", "11", "--preset", "tail-adjusted"),
                                     ("--preset", "official-ucf"),
                                     ("--preset", "official-sht", "--video-score", "std-length-adjusted")],
                         ids=["paper", "banded-adjusted-f64", "official-ucf", "official-sht-adjusted"])
def test_four_shards_on_two_workers_equal_single_process(cluster, data, tmp_path, options, capsys):
    expected = single(data, tmp_path, *options)
    out_dir = tmp_path / "labels"
    assert propagate_main(["--features", str(data / "shards" / "*.h5"), "--out", str(out_dir),
                           "--scheduler", cluster, "--quiet", *options]) == 0
    text = capsys.readouterr().out
    assert "shards 4, videos 36" in text and "shards propagated 4, reused 0" in text
    assert_equals_single(out_dir, expected)
    assert not (out_dir / D.WORK_DIR).exists()                       # work files removed on success


class Hook:
    """Counts the shards each stage computes; raises once on ``fail`` = (stage, stem)."""

    def __init__(self, fail=None):
        self.fail, self.calls = fail, []

    def __call__(self, stage, path):
        stem = os.path.basename(path).split(".")[0]
        self.calls.append((stage, stem))
        if (stage, stem) == self.fail:
            self.fail = None
            raise RuntimeError(f"injected failure in {stage} of {stem}")

    def computed(self, stage):
        return sorted(stem for s, stem in self.calls if s == stage)


@pytest.mark.filterwarnings("ignore::lanp.kernels.ConvergenceWarning")     # the presets' capped CG
@pytest.mark.parametrize("options", [(), ("--preset", "official-sht")], ids=["paper", "official-sht"])
@pytest.mark.parametrize("stage", ["propagate", "labels"])
def test_failed_run_resumes_without_recomputing_finished_shards(cluster, data, tmp_path, monkeypatch, stage,
                                                                options, capsys):
    expected = single(data, tmp_path, *options)
    out_dir = tmp_path / "labels"
    args = ["--features", str(data / "shards" / "part*.h5"), "--out", str(out_dir), "--scheduler", cluster,
            "--quiet", *options]
    hook = Hook(fail=(stage, "part2"))
    monkeypatch.setattr(D, "_shard_hook", hook)
    assert propagate_main(args) == 2
    assert "injected failure" in capsys.readouterr().err
    assert hook.computed("propagate") == ["part0", "part1", "part2", "part3"]
    work = sorted(p.name for p in (out_dir / D.WORK_DIR).iterdir())
    if stage == "propagate":                     # the other shards finished and saved their z
        assert work == ["part0.z.h5", "part1.z.h5", "part3.z.h5"] and not list(out_dir.glob("*.labels.h5"))
    else:
        assert work == ["part0.z.h5", "part1.z.h5", "part2.z.h5", "part3.z.h5"]
        assert sorted(p.name for p in out_dir.glob("*.labels.h5")) == [
            "part0.labels.h5", "part1.labels.h5", "part3.labels.h5"]
    assert not [p for p in out_dir.rglob("*") if ".tmp-" in p.name]  # atomic writes: no partial files

    hook = Hook()
    monkeypatch.setattr(D, "_shard_hook", hook)
    assert propagate_main(args + ["--resume"]) == 0
    if stage == "propagate":
        assert hook.computed("propagate") == ["part2"]
        assert hook.computed("labels") == ["part0", "part1", "part2", "part3"]
    else:
        assert hook.computed("propagate") == []
        assert hook.computed("labels") == ["part2"]
    assert_equals_single(out_dir, expected)


def test_resume_ignores_work_of_other_options_or_inputs(cluster, data, tmp_path, monkeypatch):
    out_dir = tmp_path / "labels"
    args = ["--features", str(data / "shards" / "part*.h5"), "--out", str(out_dir), "--scheduler", cluster,
            "--quiet"]
    monkeypatch.setattr(D, "_shard_hook", Hook(fail=("labels", "part0")))
    assert propagate_main(args + ["--alpha", "0.9"]) == 2
    hook = Hook()
    monkeypatch.setattr(D, "_shard_hook", hook)
    assert propagate_main(args + ["--resume"]) == 0                  # alpha 0.99: nothing reusable
    assert hook.computed("propagate") == ["part0", "part1", "part2", "part3"]
    assert hook.computed("labels") == ["part0", "part1", "part2", "part3"]
    assert_equals_single(out_dir, single(data, tmp_path))


def test_keys_follow_file_identity_and_pass1_options(tmp_path):
    f = tmp_path / "x.h5"
    write_h5(f, {"features": np.ones((3, 4), np.float32), "offsets": np.array([0, 3])})
    def key(**options):           # the in-video recipe (the dual prior refuses the split options)
        return D.shard_key(f, preset_recipe(PropagateConfig(**{"preset": "tail-adjusted", **options})))
    base = key()
    assert key() == base
    assert key(n_normal=1) == base                                       # a pass-2 option
    assert key(sigma=0.2) != base
    assert key(terms="feature") != base
    assert key(video_score="std-length-adjusted") != base                # its statistics are pass 1's
    assert key(preset="official-sht") != key(preset="official-ucf")
    assert key(preset="official-sht", sigma=0.5) == key(preset="official-sht")   # the preset fixes sigma
    os.utime(f, ns=(1, 1))
    assert key() != base


def test_every_option_is_keyed_by_the_pass_it_changes():
    """A new PropagateConfig field must be sorted into pass 1 (the work-file key) or pass 2, or a
    resumed run could reuse z computed with other options."""
    from dataclasses import fields
    pass1 = set(preset_recipe(PropagateConfig(preset="tail-adjusted")).pass1_key()) - {"recipe"}
    pass2 = {"n_normal", "normal_fraction", "confident_fraction", "preset", "normal_split"}
    assert {f.name for f in fields(PropagateConfig)} == pass1 | pass2
    assert not pass2 & pass1


def test_inputs_and_outputs(tmp_path):
    for name in ("b.h5", "a.h5", "c.h5"):
        (tmp_path / name).write_bytes(b"")
    got = D.expand_inputs([str(tmp_path / "c.h5"), str(tmp_path / "[ab].h5")])
    assert [p.name for p in got] == ["c.h5", "a.h5", "b.h5"]
    assert [p.name for p in D.output_paths(got, tmp_path / "out")] == ["c.labels.h5", "a.labels.h5",
                                                                        "b.labels.h5"]
    with pytest.raises(InputError, match="matches no file"):
        D.expand_inputs([str(tmp_path / "*.npy")])
    with pytest.raises(InputError, match="given twice"):
        D.expand_inputs([str(tmp_path / "a.h5"), str(tmp_path / "*.h5")])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="share the stem"):
        D.output_paths([tmp_path / "a.h5", tmp_path / "sub" / "a.h5"], tmp_path / "out")
    with pytest.raises(ValueError, match="give --out DIR"):
        D.output_paths(got, None)
    with pytest.raises(ValueError, match="must be a directory"):
        D.output_paths(got, tmp_path / "a.h5")
    assert D.output_paths([tmp_path / "a.h5"], None) == [tmp_path / "a.labels.h5"]
    assert D.output_paths([tmp_path / "a.h5"], tmp_path / "sub") == [tmp_path / "sub" / "a.labels.h5"]


def test_missing_extra_is_a_clear_error(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert propagate_main(["--features", str(data / "shards" / "*.h5"), "--out", str(tmp_path), "--quiet"]) == 2
    assert "pip install 'lanp[dist]'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.labels.h5"))
