"""Every bad input an ``error:`` line (issue 18, items 6-8 and 11-15): NaN through training and
scoring, duplicated video ids, damaged or unusual HDF5, extreme but parseable values, inputs that
were accepted without a word, and messages that name the file, the video, the snippet and the value.
Each case runs the command line in-process and checks exit code 2, one ``error:`` line, the words
that must be in it, and that nothing was written."""
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lanp.cli import main
from lanp.data.synth import make_synthetic, write_synthetic
from shared import labelled_files  # noqa: E402


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    labelled_files(d, num_videos=12, max_length=24, seed=5)
    return d


def packed(path, features, offsets, ids=None, **extra):
    with h5py.File(path, "w") as f:
        f["features"] = features
        f["offsets"] = np.asarray(offsets, np.int64)
        if ids is not None:
            f["video_ids"] = ids
        for k, v in extra.items():
            f[k] = v
    return path


def features_of(d):
    with h5py.File(d / "f.h5", "r") as f:
        return f["features"][()], f["offsets"][()], [s.decode() for s in f["video_ids"][()]]


def fails(argv, capsys, *words, out=None):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    if out is not None:
        assert not Path(out).exists()
    return err


def propagate(path, out, *extra):
    return ["propagate", "--features", str(path), "--out", str(out), "--quiet", *extra]


# -- 6: the official presets check their rows -------------------------------------------------------
@pytest.mark.parametrize("preset", ["official-ucf", "official-sht"])
@pytest.mark.parametrize("value, word", [(np.nan, "nan"), (np.inf, "inf"), (0.0, "all-zero")])
def test_official_presets_refuse_nan_inf_and_zero_rows(d, tmp_path, capsys, preset, value, word):
    x, o, ids = features_of(d)
    x = x.copy()
    if value == 0.0:
        x[int(o[2]) + 3] = 0.0
    else:
        x[int(o[2]) + 3, 5] = value
    f = packed(tmp_path / "x.h5", x, o, ids)
    fails(propagate(f, tmp_path / "l.h5", "--preset", preset), capsys, ids[2], "snippet 3", word,
          out=tmp_path / "l.h5")


# -- 7: NaN through training and scoring -----------------------------------------------------------
def test_nan_features_are_refused_by_train_score_and_compare(d, tmp_path, capsys):
    x, o, ids = features_of(d)
    x = x.copy()
    x[int(o[1]) + 2, 0] = np.nan
    f = packed(tmp_path / "nan.h5", x, o, ids)
    fails(["score", "--model", str(d / "m.pt"), "--features", str(f), "--out", str(tmp_path / "s.h5"), "--quiet"],
          capsys,
          ids[1], "snippet 2", "nan", out=tmp_path / "s.h5")
    fails(["compare", "--train", str(f), "--test", str(d / "f.h5"), "--gt", str(d / "f.gt.h5"), "--out",
           str(tmp_path / "cmp"), "--methods", "trivial-ends", "--seeds", "1"], capsys, ids[1], "snippet 2", "nan",
          out=tmp_path / "cmp")
    # train reads the labels of the finite features file for the same videos
    fails(["train", "--features", str(f), "--labels", str(d / "f.labels.h5"), "--out", str(tmp_path / "m.pt"),
           "--epochs", "1", "--snippets", "64"], capsys, ids[1], "NaN or Inf", out=tmp_path / "m.pt")


def test_a_checkpoint_with_nan_weights_or_bad_hyper_parameters_is_refused(d, tmp_path, capsys):
    ckpt = torch.load(d / "m.pt", weights_only=True)
    name = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][name] = ckpt["state_dict"][name].clone()
    ckpt["state_dict"][name].view(-1)[0] = float("nan")
    torch.save(ckpt, tmp_path / "nan.pt")
    fails(["score", "--model", str(tmp_path / "nan.pt"), "--features", str(d / "f.h5"), "--out",
           str(tmp_path / "s.h5"), "--quiet"], capsys, "nan.pt", name, "NaN", out=tmp_path / "s.h5")
    ckpt = torch.load(d / "m.pt", weights_only=True)
    ckpt["hparams"] = [1, 2]
    torch.save(ckpt, tmp_path / "list.pt")
    fails(["score", "--model", str(tmp_path / "list.pt"), "--features", str(d / "f.h5"), "--out",
           str(tmp_path / "s.h5")], capsys, "'hparams' is a list")
    ckpt = torch.load(d / "m.pt", weights_only=True)
    ckpt["hparams"]["hidden"] = 2 ** 40
    torch.save(ckpt, tmp_path / "huge.pt")
    fails(["score", "--model", str(tmp_path / "huge.pt"), "--features", str(d / "f.h5"), "--out",
           str(tmp_path / "s.h5")], capsys, "hparams.hidden")


def test_training_stops_at_the_first_non_finite_loss(d, tmp_path, capsys):
    base = ["train", "--features", str(d / "f.h5"), "--labels", str(d / "f.labels.h5"), "--out",
            str(tmp_path / "m.pt"), "--quiet"]
    fails(base + ["--lr", "inf"], capsys, "lr=inf", out=tmp_path / "m.pt")
    fails(base + ["--lr", "1e30", "--epochs", "5", "--batch-videos", "2"], capsys, "training diverged", "epoch",
          out=tmp_path / "m.pt")
    fails(base + ["--max-memory-gb", "inf"], capsys, "max_memory_gb=inf")


def test_nan_scores_are_refused_when_read(d, tmp_path, capsys):
    with h5py.File(d / "s.h5", "r") as f:
        s, o, ids = f["score"][()], f["offsets"][()], f["video_ids"][()]
    s = s.copy()
    s[int(o[3]) + 1] = np.nan
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["score"], f["offsets"], f["video_ids"] = s, o, ids
    fails(["evaluate", "--scores", str(tmp_path / "s.h5"), "--gt", str(d / "f.gt.h5")], capsys,
          ids[3].decode(), "snippet 1", "nan")


# -- 8: duplicated video ids -----------------------------------------------------------------------
def test_duplicated_video_ids_are_refused_by_every_reader(d, tmp_path, capsys):
    x, o, ids = features_of(d)
    dup = ids[:]
    dup[4] = dup[1]
    f = packed(tmp_path / "dup.h5", x, o, dup)
    fails(propagate(f, tmp_path / "l.h5"), capsys, "dup.h5", f"{ids[1]!r} appears twice", "videos 1 and 4")
    for name, required in (("f.labels.h5", "--labels"), ("f.gt.h5", "--gt")):
        with h5py.File(d / name, "r") as src, h5py.File(tmp_path / name, "w") as out:
            for k in src:
                out[k] = src[k][()]
            del out["video_ids"]
            out["video_ids"] = np.array(dup, dtype=object).astype("S")
        if required == "--labels":
            argv = ["train", "--features", str(d / "f.h5"), "--labels", str(tmp_path / name), "--out",
                    str(tmp_path / "m.pt"), "--epochs", "1"]
        else:
            argv = ["evaluate", "--scores", str(d / "s.h5"), "--gt", str(tmp_path / name)]
        fails(argv, capsys, name, "appears twice")
    folder = tmp_path / "gt"
    folder.mkdir()
    np.save(folder / "a.npy", np.zeros(16))
    np.save(folder / "a_gt.npy", np.zeros(16))
    fails(["evaluate", "--scores", str(d / "s.h5"), "--gt", str(folder)], capsys, "'a.npy' and 'a_gt.npy'")
    (tmp_path / "counts.csv").write_text("a,0,10\nb,0,10\na,1,12\n")
    (tmp_path / "ann.txt").write_text("a Normal -1 -1 -1 -1\n")
    fails(["evaluate", "--scores", str(d / "s.h5"), "--gt", str(tmp_path / "ann.txt"), "--frame-counts",
           str(tmp_path / "counts.csv")], capsys, "line 3", "second time")


# -- 11: damaged or unusual HDF5 -------------------------------------------------------------------
def test_a_corrupted_gzip_chunk_names_the_file_and_the_videos(d, tmp_path, capsys):
    x, o, ids = features_of(d)
    with h5py.File(tmp_path / "z.h5", "w") as f:
        f.create_dataset("features", data=x, chunks=(int(o[-1]), x.shape[1]), compression="gzip")
        f["offsets"], f["video_ids"] = o, ids
        chunk = f["features"].id.get_chunk_info(0)
        offset, size = chunk.byte_offset, chunk.size
    raw = bytearray((tmp_path / "z.h5").read_bytes())
    rng = np.random.default_rng(11)
    for i in rng.integers(offset + size // 4, offset + size - 8, 16):
        raw[i] ^= 0xFF
    (tmp_path / "z.h5").write_bytes(bytes(raw))
    fails(propagate(tmp_path / "z.h5", tmp_path / "l.h5"), capsys, "z.h5", "cannot be read", "damaged",
          out=tmp_path / "l.h5")


def test_an_unknown_filter_and_missing_external_data(d, tmp_path, capsys):
    x, o, ids = features_of(d)
    with h5py.File(tmp_path / "filter.h5", "w") as f:
        ds = f.create_dataset("features", shape=x.shape, dtype=x.dtype, chunks=x.shape, compression=32999,
                              allow_unknown_filter=True)
        ds.id.write_direct_chunk((0, 0), x.tobytes())
        f["offsets"], f["video_ids"] = o, ids
    fails(propagate(tmp_path / "filter.h5", tmp_path / "l.h5"), capsys, "filter.h5", "filter")
    raw = tmp_path / "raw.bin"
    raw.write_bytes(x.tobytes())
    with h5py.File(tmp_path / "ext.h5", "w") as f:
        f.create_dataset("features", shape=x.shape, dtype=x.dtype, external=[(str(raw), 0, x.nbytes)])
        f["offsets"], f["video_ids"] = o, ids
    raw.unlink()
    fails(propagate(tmp_path / "ext.h5", tmp_path / "l.h5"), capsys, "ext.h5", "external data is missing")


def test_dangling_links_integer_ids_and_2d_ids(d, tmp_path, capsys):
    x, o, ids = features_of(d)
    with h5py.File(tmp_path / "soft.h5", "w") as f:
        f["features"] = h5py.SoftLink("/nowhere")
        f["offsets"] = o
    fails(propagate(tmp_path / "soft.h5", tmp_path / "l.h5"), capsys, "'features'", "SoftLink", "dangling")
    with h5py.File(tmp_path / "ext.h5", "w") as f:
        f["features"] = h5py.ExternalLink(str(tmp_path / "missing.h5"), "/features")
        f["offsets"] = o
    fails(propagate(tmp_path / "ext.h5", tmp_path / "l.h5"), capsys, "ExternalLink", "missing.h5")
    packed(tmp_path / "int.h5", x, o, np.arange(len(ids)))
    fails(propagate(tmp_path / "int.h5", tmp_path / "l.h5"), capsys, "'video_ids'", "strings", "int64")
    packed(tmp_path / "2d.h5", x, o, np.array([ids, ids], dtype=object).astype("S"))
    fails(propagate(tmp_path / "2d.h5", tmp_path / "l.h5"), capsys, "'video_ids'", "1-D")


# -- 12: extreme but parseable values --------------------------------------------------------------
@pytest.mark.parametrize("option, value, word", [
    ("--sigma", "1e-200", "sigma=1e-200"), ("--sigma", "1e200", "sigma=1e+200"),
    ("--window", str(2 ** 62), "window="), ("--seeds", str(2 ** 70), "seed 1180591620717411303424"),
    ("--tol", "10", "tol=10.0"), ("--n-normal", "1000", "n_normal=1000")])
def test_extreme_propagate_options(d, tmp_path, capsys, option, value, word):
    fails(propagate(d / "f.h5", tmp_path / "l.h5", option, value), capsys, word, out=tmp_path / "l.h5")
    if option == "--n-normal":
        fails(propagate(d / "f.h5", tmp_path / "l.h5", option, value, "--preset", "official-ucf"), capsys, word)


def test_extreme_ground_truth_values(d, tmp_path, capsys):
    fails(["evaluate", "--scores", str(d / "s.h5"), "--gt", str(d / "f.gt.h5"), "--frames-per-snippet",
           str(10 ** 9)], capsys, "frames per snippet")
    (tmp_path / "ann.txt").write_text("video_0000 Normal -1 -1 -1 -1 1000000000000\n")
    fails(["evaluate", "--scores", str(d / "s.h5"), "--gt", str(tmp_path / "ann.txt")], capsys,
          "frame count 1000000000000")


def test_compare_with_a_single_class_test_ground_truth_or_other_feature_sizes(d, tmp_path, capsys):
    with h5py.File(d / "f.gt.h5", "r") as src, h5py.File(tmp_path / "normal.gt.h5", "w") as out:
        for k in src:
            out[k] = src[k][()]
        del out["frame_labels"]
        out["frame_labels"] = np.zeros_like(src["frame_labels"][()])
    base = ["compare", "--train", str(d / "f.h5"), "--test", str(d / "f.h5"), "--methods", "trivial-ends",
            "--seeds", "1", "--out", str(tmp_path / "cmp")]
    fails(base + ["--gt", str(tmp_path / "normal.gt.h5")], capsys, "only one class", "all normal",
          out=tmp_path / "cmp")
    synth = make_synthetic(num_videos=6, dim=4, min_length=6, max_length=12, seed=1)
    write_synthetic(synth, tmp_path / "d4.h5", tmp_path / "d4.gt.h5")
    base[4] = str(tmp_path / "d4.h5")
    fails(base + ["--gt", str(tmp_path / "d4.gt.h5")], capsys, "D = 8", "D = 4", out=tmp_path / "cmp")


# -- 13, 14: accepted without a word, messages that named nothing ----------------------------------
def test_unusual_feature_files(d, tmp_path, capsys):
    x, o, ids = features_of(d)
    packed(tmp_path / "c.h5", x.astype(np.complex64), o, ids)
    fails(propagate(tmp_path / "c.h5", tmp_path / "l.h5"), capsys, "c.h5", "complex")
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["videos/a"] = np.array([["x", "y"], ["z", "w"]], dtype=object).astype("S")
    fails(propagate(tmp_path / "s.h5", tmp_path / "l.h5"), capsys, "s.h5", "video 'a'", "strings")
    for name, kind in (("f.labels.h5", "labels file"), ("s.h5", "scores file"), ("f.gt.h5", "ground-truth")):
        fails(propagate(d / name, tmp_path / "l.h5"), capsys, name, kind, "not a features file")


def test_negative_loss_weights_are_refused(d, tmp_path, capsys):
    with h5py.File(d / "f.labels.h5", "r") as src, h5py.File(tmp_path / "neg.h5", "w") as out:
        for k in src:
            out[k] = src[k][()]
        w = src["weight"][()].copy()
        w[7] = -0.5
        del out["weight"]
        out["weight"] = w
    fails(["train", "--features", str(d / "f.h5"), "--labels", str(tmp_path / "neg.h5"), "--out",
           str(tmp_path / "m.pt"), "--epochs", "1"], capsys, "'weight'", "-0.5", "snippet")


@pytest.mark.parametrize("row, words", [
    ("video_0000 Arson 20 10 -1 -1 200", ["[20, 10)", "start <= end"]),
    ("video_0000 Arson -5 10 -1 -1 200", ["[-5, 10)"]),
    ("video_0000 Arson 300 400 -1 -1 200", ["[300, 400)", "past the video's 200 frames"])])
def test_bad_ucf_intervals(d, tmp_path, capsys, row, words):
    (tmp_path / "ann.txt").write_text(row + "\n")
    fails(["evaluate", "--scores", str(d / "s.h5"), "--gt", str(tmp_path / "ann.txt")], capsys, "line 1", *words)


@pytest.mark.parametrize("ranges, words", [
    ([[0, 6], [4, 10]], ["overlaps"]), ([[0, 4], [6, 10]], ["[4, 6)", "in no video"]),
    ([[0, 4], [4, 8]], ["[8, 10)", "in no video"])])
def test_c2fpl_ranges_must_tile_the_array(tmp_path, capsys, ranges, words):
    np.save(tmp_path / "all.npy", np.random.default_rng(4).normal(size=(10, 4)).astype(np.float32))
    np.save(tmp_path / "ranges.npy", np.array(ranges))
    fails(["convert", str(tmp_path / "all.npy"), "--ranges", str(tmp_path / "ranges.npy"), "--out",
           str(tmp_path / "o.h5")], capsys, "ranges.npy", *words, out=tmp_path / "o.h5")


def test_a_binary_list_file_names_the_file_and_the_byte(d, tmp_path, capsys):
    lst = tmp_path / "feats.list"
    lst.write_bytes(b"\x93NUMPY\x01\x00binary")
    fails(["convert", str(lst), "--format", "rtfm", "--out", str(tmp_path / "o.h5")], capsys, "feats.list",
          "not a UTF-8 text file", "byte")
    ann = tmp_path / "ann.txt"
    ann.write_bytes(b"video_0000 Arson 1 2 -1 -1 20\n\xff\xfe\x00\x01")
    fails(["evaluate", "--scores", str(d / "s.h5"), "--gt", str(ann)], capsys, "ann.txt", "line 2")


def test_plot_honours_max_mismatch(d, tmp_path, capsys):
    with h5py.File(d / "s.h5", "r") as f:
        s, o, ids = f["score"][()], f["offsets"][()], f["video_ids"][()]
    keep = np.concatenate([s[o[v]:o[v + 1] - (6 if v == 0 else 0)] for v in range(len(o) - 1)])
    lengths = np.diff(o) - np.eye(len(o) - 1, dtype=np.int64)[0] * 6
    with h5py.File(tmp_path / "short.h5", "w") as f:
        f["score"], f["offsets"], f["video_ids"] = keep, np.concatenate([[0], np.cumsum(lengths)]), ids
    argv = ["plot", "--scores", str(tmp_path / "short.h5"), "--gt", str(d / "f.gt.h5"), "--roc", "--out",
            str(tmp_path / "roc.png")]
    fails(argv, capsys, ids[0].decode(), out=tmp_path / "roc.png")
    assert main(argv + ["--max-mismatch", "-1"]) == 0 and (tmp_path / "roc.png").is_file()


def test_shards_with_different_feature_sizes_are_refused_before_any_work(d, tmp_path, capsys):
    synth = make_synthetic(num_videos=6, dim=4, min_length=6, max_length=12, seed=2)
    write_synthetic(synth, tmp_path / "d4.h5", tmp_path / "d4.gt.h5")
    fails(["propagate", "--features", str(d / "f.h5"), str(tmp_path / "d4.h5"), "--out", str(tmp_path / "out"),
           "--quiet"], capsys, "d4.h5", "D = 4", "D = 8", out=tmp_path / "out")


def test_a_failing_shard_is_one_error_line_without_a_dask_traceback(d, tmp_path):
    """The workers' own log of the failed task (a traceback) is silenced; the client's error line is
    the only output on stderr."""
    import subprocess
    import sys

    pytest.importorskip("distributed")
    x, o, ids = features_of(d)
    x = x.copy()
    x[int(o[1]) + 2] = 0.0
    packed(tmp_path / "b.h5", x, o, [f"b_{i}" for i in ids])
    p = subprocess.run([sys.executable, "-m", "lanp.cli", "propagate", "--features", str(d / "f.h5"),
                        str(tmp_path / "b.h5"), "--out", str(tmp_path / "out"), "--quiet"],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert p.returncode == 2, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "b.h5" in lines[0] and "snippet 2" in lines[0], \
        p.stderr


def test_training_options_beyond_any_run_and_a_binary_config(d, tmp_path, capsys):
    base = ["train", "--features", str(d / "f.h5"), "--labels", str(d / "f.labels.h5"), "--out",
            str(tmp_path / "m.pt")]
    fails(base + ["--snippets", str(10 ** 11)], capsys, "snippets=100000000000", out=tmp_path / "m.pt")
    fails(base + ["--epochs", str(10 ** 11)], capsys, "epochs=100000000000")
    fails(base + ["--seed", "-1"], capsys, "seed=-1")
    (tmp_path / "c.toml").write_bytes(b"\x89HDF\r\n\x1a\n\x00\x00")
    fails(["propagate", "--features", str(d / "f.h5"), "--config", str(tmp_path / "c.toml")], capsys,
          "c.toml", "not a UTF-8 text file")


def test_a_file_that_is_no_checkpoint_is_one_line(d, tmp_path, capsys):
    torch.save({"f": print}, tmp_path / "code.pt")
    for model, word in ((d / "f.h5", "not a torch checkpoint"), (tmp_path / "code.pt", "never unpickles")):
        fails(["score", "--model", str(model), "--features", str(d / "f.h5"), "--out", str(tmp_path / "s.h5"),
               "--quiet"], capsys, str(model), word, out=tmp_path / "s.h5")
