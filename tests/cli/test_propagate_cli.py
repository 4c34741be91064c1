"""lanp-propagate end to end: files in both layouts, the output contract, and every bad input."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import lanp.kernels as K
from lanp.cli import main, propagate_main
from lanp.data.io import atomic_path, write_h5
from lanp.method.options import PropagateConfig
from lanp.runners.file import label_file as run_propagation
from lanp.data.synth import make_synthetic, write_synthetic


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    data = make_synthetic(num_videos=24, dim=16, min_length=5, max_length=60, seed=1)
    write_synthetic(data, d / "demo.h5", d / "demo.gt.h5")
    return d, data


def read_all(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


def test_cli_writes_the_documented_labels_file(demo, capsys):
    d, data = demo
    assert propagate_main(["--features", str(d / "demo.h5"), "--quiet", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    assert "videos 24" in out and "CG iterations min/median/max" in out and "demo.labels.h5" in out
    ds, attrs = read_all(d / "demo.labels.h5")
    N, V = int(data.offsets[-1]), len(data.video_ids)
    expected = {"normality": (np.float32, (N,)), "pseudo_label": (np.uint8, (N,)),
                "weight": (np.float32, (N,)), "offsets": (np.int64, (V + 1,)),
                "video_score": (np.float32, (V,)), "video_abnormal": (np.bool_, (V,)),
                "cg_iterations": (np.int32, (V,)), "cg_residual": (np.float32, (V,))}
    for name, (dtype, shape) in expected.items():
        assert ds[name].dtype == dtype and ds[name].shape == shape, name
    assert [s.decode() for s in ds["video_ids"]] == data.video_ids
    # z is the kernel's propagation of the same features
    z = K.propagate(data.features, data.offsets).z
    np.testing.assert_allclose(ds["normality"], z, rtol=1e-6)
    # the rules, checked per video with plain numpy
    lengths = np.diff(data.offsets)
    for v in range(V):
        a, b = data.offsets[v], data.offsets[v + 1]
        assert ds["video_score"][v] == pytest.approx(np.std(ds["normality"][a:b].astype(np.float64)), rel=1e-5)
        want = int(np.floor(0.4 * lengths[v])) if ds["video_abnormal"][v] else 0
        assert ds["pseudo_label"][a:b].sum() == want
    assert (~ds["video_abnormal"]).sum() == 12
    assert np.all((ds["weight"] > 0) & (ds["weight"] <= 1))
    assert np.all(ds["cg_residual"] <= 1e-5)
    for key in ("alpha", "sigma", "distance", "normalize", "window", "seeds", "tol", "maxiter",
                "backend", "lanp_version", "abnormal_ratio", "confident_fraction", "n_normal"):
        assert key in attrs, key
    assert attrs["backend"] == "cpu" and attrs["alpha"] == 0.99


def test_tail_adjusted_is_the_paper_with_a_length_free_video_score(demo, tmp_path):
    """--preset tail-adjusted: the paper's graph, z and rules, ranked by seed-low-tail-length-adjusted."""
    from lanp.method.video_scores import video_scores
    d, data = demo
    assert propagate_main(["--features", str(d / "demo.h5"), "--out", str(tmp_path / "r.h5"), "--quiet",
                           "--preset", "tail-adjusted"]) == 0
    assert propagate_main(["--features", str(d / "demo.h5"), "--out", str(tmp_path / "p.h5"), "--quiet",
                           "--preset", "paper"]) == 0
    rec, rec_attrs = read_all(tmp_path / "r.h5")
    paper, _ = read_all(tmp_path / "p.h5")
    assert rec_attrs["preset"] == "tail-adjusted" and rec_attrs["video_score"] == "seed-low-tail-length-adjusted"
    np.testing.assert_array_equal(rec["normality"], paper["normality"])           # the same propagation
    want, _ = video_scores(rec["normality"], data.offsets, "seed-low-tail-length-adjusted")
    np.testing.assert_allclose(rec["video_score"], want.astype(np.float32), rtol=1e-6, atol=1e-7)
    assert (~rec["video_abnormal"]).sum() == 12                                   # N_nor = V / 2 as before


def test_the_default_preset_is_the_tri_prior(demo, tmp_path):
    """No --preset: the tri prior, the same numbers as --preset tri-prior; its in-video normality
    is the paper's z over its seeds' mean, and the dual prior's as well."""
    d, data = demo
    assert propagate_main(["--features", str(d / "demo.h5"), "--out", str(tmp_path / "r.h5"), "--quiet"]) == 0
    for preset in ("tri-prior", "dual-prior"):
        assert propagate_main(["--features", str(d / "demo.h5"), "--out", str(tmp_path / f"{preset}.h5"), "--quiet",
                               "--preset", preset]) == 0
    rec, attrs = read_all(tmp_path / "r.h5")
    tri, _ = read_all(tmp_path / "tri-prior.h5")
    dual, _ = read_all(tmp_path / "dual-prior.h5")
    assert attrs["recipe"] == "tri-prior" and attrs["preset"] == "recommended"
    for name in ("normality", "pseudo_label", "weight", "video_score", "video_abnormal", "isolation_score"):
        np.testing.assert_array_equal(rec[name], tri[name], err_msg=name)
    np.testing.assert_array_equal(rec["in_video_normality"], dual["in_video_normality"])
    assert not np.array_equal(rec["pseudo_label"], dual["pseudo_label"])
    z = np.asarray(K.propagate(data.features, data.offsets).z, np.float64)
    seeds = np.repeat(0.5 * (z[data.offsets[:-1]] + z[data.offsets[1:] - 1]), np.diff(data.offsets))
    np.testing.assert_allclose(rec["in_video_normality"], z / seeds, rtol=1e-6)
    assert 0.12 <= rec["pseudo_label"].mean() <= 0.18


def test_chunked_run_equals_single_chunk(demo):
    d, _ = demo
    config = PropagateConfig(window=7)
    whole = run_propagation(d / "demo.h5", config, progress=False)
    chunked = run_propagation(d / "demo.h5", config, progress=False, chunk_bytes=16 * 4 * 50)
    for name in ("normality", "pseudo_label", "weight", "video_score", "video_abnormal", "cg_iterations"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name), err_msg=name)


def test_grouped_layout_with_crops_equals_packed_mean(tmp_path):
    rng = np.random.default_rng(4)
    lengths = [7, 3, 12]
    crops = [rng.normal(size=(L, 5, 8)).astype(np.float32) + 2.0 for L in lengths]
    with h5py.File(tmp_path / "grouped.h5", "w") as f:
        for i, c in enumerate(crops):
            f.create_dataset(f"videos/cam{i}/clip", data=c)
    # the reader's mean: over the crops in float64, rounded to float32 (so the packed file holds
    # the same bits, and every output must be equal: the ranking presets' dataset ranks move by a
    # whole snippet's share when a value crosses a bin edge, so a last-bit change could show)
    mean = np.concatenate([c.mean(axis=1, dtype=np.float64) for c in crops]).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    write_h5(tmp_path / "packed.h5", {"features": mean, "offsets": offsets,
                                      "video_ids": ["cam0/clip", "cam1/clip", "cam2/clip"]})
    for preset in ("paper", "recommended", "dual-prior"):
        a = run_propagation(tmp_path / "grouped.h5", PropagateConfig(preset=preset), progress=False)
        b = run_propagation(tmp_path / "packed.h5", PropagateConfig(preset=preset), progress=False)
        assert a.video_ids == ["cam0/clip", "cam1/clip", "cam2/clip"]
        np.testing.assert_array_equal(a.normality, b.normality, err_msg=preset)
        np.testing.assert_array_equal(a.pseudo_label, b.pseudo_label, err_msg=preset)
    # and the float32 mean the reader does not take differs in the last bits only
    naive = np.concatenate([c.mean(axis=1) for c in crops])
    np.testing.assert_allclose(naive, mean, rtol=1e-6)


def test_console_script_and_synth(tmp_path):
    bindir = os.path.dirname(sys.executable)
    run = lambda *cmd: subprocess.run([os.path.join(bindir, cmd[0]), *cmd[1:]], cwd=tmp_path,
                                      capture_output=True, text=True, timeout=300)
    r = run("lanp", "synth", "--out", "s.h5", "--videos", "6", "--dim", "8")
    assert r.returncode == 0, r.stderr
    r = run("lanp-propagate", "--features", "s.h5", "--out", "out/s.labels.h5", "--window", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "s.labels.h5").exists() and "videos 6" in r.stdout
    r = run("lanp", "propagate", "--features", "s.h5", "--alpha", "1.5")
    assert r.returncode == 2 and "alpha=1.5 is invalid" in r.stderr


def _features(path, x, offsets, ids=None):
    ids = ids or [f"v{i}" for i in range(len(offsets) - 1)]
    write_h5(path, {"features": x, "offsets": np.asarray(offsets, dtype=np.int64), "video_ids": ids})
    return path


def _fails(args, capsys, *patterns, out=None):
    assert main(["propagate", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    for p in patterns:
        assert p in err, f"{p!r} not in {err!r}"
    if out is not None:
        assert not out.exists()
        assert not [f for f in os.listdir(out.parent) if ".tmp-" in f]


def test_bad_inputs_fail_clearly_and_write_nothing(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    good = _features(tmp_path / "good.h5", x, [0, 4, 10])
    out = tmp_path / "out.h5"
    o = ["--out", str(out)]
    _fails(["--features", str(tmp_path / "nope.h5"), *o], capsys, "nope.h5", "does not exist", out=out)
    (tmp_path / "trunc.h5").write_bytes(good.read_bytes()[:900])
    _fails(["--features", str(tmp_path / "trunc.h5"), *o], capsys, "trunc.h5", "cannot be read as HDF5", out=out)
    (tmp_path / "text.h5").write_text("not hdf5")
    _fails(["--features", str(tmp_path / "text.h5"), *o], capsys, "cannot be read as HDF5", out=out)
    write_h5(tmp_path / "nooff.h5", {"features": x})
    _fails(["--features", str(tmp_path / "nooff.h5"), *o], capsys, "no 'offsets' dataset", out=out)
    _fails(["--features", str(_features(tmp_path / "mono.h5", x, [0, 6, 4, 10])), *o], capsys,
           "not non-decreasing", "video v1", out=out)
    _fails(["--features", str(_features(tmp_path / "end.h5", x, [0, 4, 9])), *o], capsys,
           "offsets[-1] = 9", "N = 10", out=out)
    _fails(["--features", str(_features(tmp_path / "empty.h5", x, [0, 4, 4, 10])), *o], capsys,
           "video v1 (#1) is empty", out=out)
    bad = x.copy(); bad[6, 2] = np.inf
    _fails(["--features", str(_features(tmp_path / "inf.h5", bad, [0, 4, 10], ["a", "b"])), *o], capsys,
           "video b (#1), snippet 2", "NaN or Inf", out=out)
    bad = x.copy(); bad[1] = 0
    _fails(["--features", str(_features(tmp_path / "zero.h5", bad, [0, 4, 10], ["a", "b"])),
            "--normalize", "none", *o], capsys, "video a (#0), snippet 1", "all-zero", out=out)
    with h5py.File(tmp_path / "mixed.h5", "w") as f:
        f["videos/a"] = x[:4]
        f["videos/b"] = rng.normal(size=(5, 3))
    _fails(["--features", str(tmp_path / "mixed.h5"), *o], capsys, "video 'b'", "mixed feature sizes", out=out)
    g = ["--features", str(good), *o]
    _fails([*g, "--alpha", "0"], capsys, "alpha=0.0 is invalid", "(0, 1)", out=out)
    _fails([*g, "--sigma", "-0.1"], capsys, "sigma=-0.1 is invalid", out=out)
    _fails([*g, "--window", "0"], capsys, "window=0 is invalid", out=out)
    _fails([*g, "--seeds", "0,5"], capsys, "seeds=[0, 5] are out of range for video v0", out=out)
    _fails([*g, "--n-normal", "3", "--preset", "tail-adjusted"], capsys, "n_normal=3 is invalid", "[1, 2]", out=out)
    _fails([*g, "--n-normal", "1"], capsys, "n_normal=1 does not apply to the tri-prior recipe", out=out)
    _fails([*g, "--n-normal", "1", "--preset", "dual-prior"], capsys, "n_normal=1 does not apply to the dual-prior",
           out=out)
    import lanp.kernels.backends as B
    monkeypatch.setattr(B, "available_memory_bytes", lambda: 300)
    _fails(g, capsys, "video v1 (#1) has L = 6", "GB", "--window", out=out)


def test_atomic_path_leaves_nothing_on_interrupt(tmp_path):
    target = tmp_path / "x.h5"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_float64_dtype_and_backend_flag(demo):
    d, _ = demo
    a = run_propagation(d / "demo.h5", PropagateConfig(dtype="float64", tol=1e-12), progress=False)
    b = run_propagation(d / "demo.h5", PropagateConfig(dtype="float32", backend="cpu"), progress=False)
    rel = np.linalg.norm(a.normality - b.normality) / np.linalg.norm(a.normality)
    assert 0 < rel <= 1e-4


@pytest.mark.parametrize("terms", ["feature", "temporal"])
def test_terms_flag_propagates_on_one_factor(demo, tmp_path, terms, capsys):
    d, data = demo
    out = tmp_path / f"{terms}.labels.h5"
    assert propagate_main(["--features", str(d / "demo.h5"), "--out", str(out), "--terms", terms,
                           "--preset", "tail-adjusted", "--quiet"]) == 0
    ds, attrs = read_all(out)
    z = K.propagate(data.features, data.offsets, terms=terms).z
    np.testing.assert_array_equal(ds["normality"], z)
    assert attrs["terms"] == terms
    assert not np.array_equal(z, K.propagate(data.features, data.offsets).z)


def test_bad_terms_value_is_refused(demo, tmp_path, capsys):
    d, _ = demo
    with pytest.raises(SystemExit) as exc:
        propagate_main(["--features", str(d / "demo.h5"), "--out", str(tmp_path / "x.h5"), "--terms", "time"])
    assert exc.value.code == 2 and "invalid choice: 'time'" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(ValueError, match="terms='time' is invalid"):
        PropagateConfig(terms="time")
