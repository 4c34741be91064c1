"""lanp convert: each source format on small generated files, bad inputs, and the real sample."""
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from lanp.cli import main
from lanp.data.convert import (c2fpl_sources, convert, detect_format, folder_sources, rtfm_sources,
                          split_sources)
from lanp.data.io import FeatureFile
from lanp.kernels import InputError

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "shanghaitech_i3d_sample"
if not SAMPLE.exists():
    SAMPLE = Path("/work/shared/data/shanghaitech_i3d_sample")


def _videos(rng, lengths, crops=3, dim=5):
    shape = (lambda L: (L, crops, dim)) if crops else (lambda L: (L, dim))
    return [rng.normal(size=shape(L)).astype(np.float32) for L in lengths]


def _read(path):
    with h5py.File(path, "r") as f:
        return f["features"][()], f["offsets"][()], list(f["video_ids"].asstr()[()]), dict(f.attrs)


def test_rtfm_windows_paths_crlf_keeps_order_and_means_crops(tmp_path):
    rng = np.random.default_rng(0)
    names = ["b_vid", "a_vid", "c_vid"]                 # not sorted: the list order must be kept
    arrays = _videos(rng, [4, 1, 7])
    feat_dir = tmp_path / "feats"
    feat_dir.mkdir()
    for n, a in zip(names, arrays):
        np.save(feat_dir / f"{n}_i3d.npy", a)
    lst = tmp_path / "train.list"
    lst.write_bytes("".join(f"G:\\UCF_Train_ten_crop_i3d\\{n}_i3d.npy\r\n" for n in names).encode())
    out = tmp_path / "out.h5"
    convert(rtfm_sources(lst, feat_dir, "_i3d.npy"), out, quiet=True, block_bytes=64)   # tiny blocks
    x, off, ids, attrs = _read(out)
    assert ids == names
    assert off.tolist() == [0, 4, 5, 12] and off.dtype == np.int64
    expect = np.concatenate([a.astype(np.float64).mean(1) for a in arrays]).astype(np.float32)
    np.testing.assert_array_equal(x, expect)
    assert attrs["crops"] == "mean" and int(attrs["source_crops"]) == 3
    with FeatureFile(out) as ff:                        # lanp reads what convert wrote
        got, _ = ff.read(0, 3)
        np.testing.assert_array_equal(got, expect)


def test_rtfm_posix_paths_resolve_below_root_and_relative(tmp_path):
    rng = np.random.default_rng(1)
    arrays = _videos(rng, [3, 2], crops=0)
    (tmp_path / "x" / "train").mkdir(parents=True)
    np.save(tmp_path / "x" / "train" / "v1.npy", arrays[0])
    np.save(tmp_path / "v2.npy", arrays[1])
    lst = tmp_path / "a.list"
    lst.write_text("/home/someone/feats/v1.npy\nv2.npy\n\n")
    out = tmp_path / "o.h5"
    convert(rtfm_sources(lst), out, quiet=True)         # root defaults to the list's folder
    x, off, ids, attrs = _read(out)
    assert ids == ["v1", "v2"] and attrs["crops"] == "none"
    np.testing.assert_array_equal(x, np.concatenate(arrays))


def test_keep_crops_float16_chunks_and_gzip(tmp_path):
    rng = np.random.default_rng(2)
    arrays = _videos(rng, [5, 3], crops=4, dim=6)
    for i, a in enumerate(arrays):
        np.save(tmp_path / f"v{i}.npy", a)
    out = tmp_path / "o.h5"
    convert(folder_sources(tmp_path), out, crops="keep", dtype="float16", chunk_rows=2,
            compression="gzip", compression_level=4, quiet=True)
    with h5py.File(out, "r") as f:
        ds = f["features"]
        assert ds.shape == (8, 4, 6) and ds.dtype == np.float16
        assert ds.chunks == (2, 4, 6) and ds.compression == "gzip"
        np.testing.assert_array_equal(ds[()], np.concatenate(arrays).astype(np.float16))


def test_float16_overflow_is_an_error(tmp_path):
    np.save(tmp_path / "v.npy", np.full((2, 3), 1e6, dtype=np.float32))
    out = tmp_path / "o.h5"
    with pytest.raises(InputError, match="too large for float16"):
        convert(folder_sources(tmp_path), out, dtype="float16", quiet=True)
    assert not out.exists() and not list(tmp_path.glob(".o.h5*"))


def test_c2fpl_ranges_and_names(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(10, 2, 4)).astype(np.float32)
    np.save(tmp_path / "all.npy", data)
    ranges = np.array([[6, 10], [0, 2], [2, 6]])        # order of the ranges file, not of the rows
    np.save(tmp_path / "ranges.npy", ranges)
    (tmp_path / "names.txt").write_text("z\r\ny\r\nx\r\n")
    out = tmp_path / "o.h5"
    assert detect_format(tmp_path / "all.npy") == "c2fpl"
    convert(c2fpl_sources(tmp_path / "all.npy", tmp_path / "ranges.npy", tmp_path / "names.txt"), out, quiet=True)
    x, off, ids, _ = _read(out)
    assert ids == ["z", "y", "x"] and off.tolist() == [0, 4, 6, 10]
    m = data.astype(np.float64).mean(1).astype(np.float32)
    np.testing.assert_array_equal(x, np.concatenate([m[6:10], m[0:2], m[2:6]]))
    np.save(tmp_path / "bad.npy", np.array([[0, 2], [5, 5]]))
    with pytest.raises(InputError, match=r"row 1 \(video 'video_000001'\).*\[5, 5\) is empty"):
        c2fpl_sources(tmp_path / "all.npy", tmp_path / "bad.npy")
    np.save(tmp_path / "bad.npy", np.array([[0, 11]]))
    with pytest.raises(InputError, match="outside"):
        c2fpl_sources(tmp_path / "all.npy", tmp_path / "bad.npy")


def test_split_file_with_suffix(tmp_path):
    rng = np.random.default_rng(4)
    arrays = _videos(rng, [3, 4], crops=0)
    np.save(tmp_path / "01_0014_i3d.npy", arrays[0])
    np.save(tmp_path / "01_001_i3d.npy", arrays[1])
    split = tmp_path / "train_split.txt"
    split.write_text("01_0014,1,50\n01_001,0,64\n")
    assert detect_format(split) == "split"
    out = tmp_path / "o.h5"
    convert(split_sources(split, tmp_path, "_i3d.npy"), out, quiet=True)
    x, off, ids, _ = _read(out)
    assert ids == ["01_0014", "01_001"]
    np.testing.assert_array_equal(x, np.concatenate(arrays))
    split.write_text("01_0014,1,50\nmissing,0,3\n")
    with pytest.raises(InputError, match=r"line 2: video 'missing'.*missing_i3d.npy"):
        split_sources(split, tmp_path, "_i3d.npy")


def test_folder_is_sorted(tmp_path):
    rng = np.random.default_rng(5)
    for n in ["c", "a", "b"]:
        np.save(tmp_path / f"{n}.npy", rng.normal(size=(2, 3)).astype(np.float32))
    assert [s.video_id for s in folder_sources(tmp_path)] == ["a", "b", "c"]


@pytest.mark.parametrize("case, pattern", [
    ("missing", r"line 2: feature file '/far/away/gone.npy' not found"),
    ("dim", r"video 'b'.*\(2, 4\).*video 'a'.*mismatched feature size"),
    ("pickled", r"b.npy' holds a pickled"),
    ("empty", r"video 'b'.*is empty"),
    ("nan", r"video 'b'.*snippet 1 has a NaN"),
    ("duplicate", r"video id 'a' appears twice"),
])
def test_bad_inputs_name_the_file_and_write_nothing(tmp_path, case, pattern):
    np.save(tmp_path / "a.npy", np.ones((2, 3), np.float32))
    lines = ["a.npy", "b.npy"]
    if case == "missing":
        lines[1] = "/far/away/gone.npy"
    elif case == "dim":
        np.save(tmp_path / "b.npy", np.ones((2, 4), np.float32))
    elif case == "pickled":
        np.save(tmp_path / "b.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    elif case == "empty":
        np.save(tmp_path / "b.npy", np.ones((0, 3), np.float32))
    elif case == "nan":
        np.save(tmp_path / "b.npy", np.array([[1, 2, 3], [1, np.nan, 3]], np.float32))
    elif case == "duplicate":
        (tmp_path / "sub").mkdir()
        np.save(tmp_path / "sub" / "a.npy", np.ones((2, 3), np.float32))
        lines[1] = "sub/a.npy"
    lst = tmp_path / "x.list"
    lst.write_text("\n".join(lines))
    out = tmp_path / "o.h5"
    with pytest.raises(InputError, match=pattern):
        convert(rtfm_sources(lst), out, quiet=True)
    assert not out.exists() and not list(tmp_path.glob(".o.h5*"))
    assert main(["convert", str(lst), "--out", str(out), "--quiet"]) == 2
    assert not out.exists()


@pytest.mark.skipif(not SAMPLE.exists(), reason="../shared/data is not available")
def test_real_shanghaitech_sample(tmp_path, capsys):
    out = tmp_path / "sh.h5"
    assert main(["convert", str(SAMPLE / "sample.list"), "--suffix", "_i3d.npy", "--out", str(out),
                 "--quiet"]) == 0
    assert "rtfm: 7 videos, 289 snippets" in capsys.readouterr().out
    x, off, ids, _ = _read(out)
    assert ids == ["01_002", "01_003", "01_005", "01_007", "01_001", "01_004", "01_006"]
    assert np.diff(off).tolist() == [31, 49, 43, 37, 48, 49, 32]
    paths = open(SAMPLE / "sample.list").read().split()
    for v, p in enumerate(paths):
        raw = np.load(SAMPLE / p)
        np.testing.assert_array_equal(x[off[v]:off[v + 1]], raw.astype(np.float64).mean(1).astype(np.float32))
    keep = tmp_path / "keep.h5"
    assert main(["convert", str(SAMPLE / "sample.list"), "--root", str(SAMPLE), "--crops", "keep",
                 "--dtype", "float16", "--out", str(keep), "--quiet"]) == 0
    with h5py.File(keep, "r") as f:
        assert f["features"].shape == (289, 10, 2048) and f["features"].dtype == np.float16
        assert f["video_ids"].asstr()[0] == "01_002_i3d"


XD_NAMES = ["Film.B.1999__#00-10-00_00-11-00_label_B1-0-0", "Film.A.2001__#00-01-00_00-02-00_label_A"]


def _xd_files(tmp_path, rng, lengths=(6, 4), crops=5, dim=8, audio_dim=3, audio_delta=(0, 1)):
    """Per-crop visual files <video>__<c>.npy and VGGish files <video>__vggish.npy, with their lists."""
    vis, aud = tmp_path / "i3d", tmp_path / "vggish"
    vis.mkdir()
    aud.mkdir()
    visual, audio = {}, {}
    for name, L, d in zip(XD_NAMES, lengths, audio_delta):
        visual[name] = rng.normal(size=(L, crops, dim)).astype(np.float32)
        audio[name] = rng.normal(size=(L + d, audio_dim)).astype(np.float32)
        for c in range(crops):
            np.save(vis / f"{name}__{c}.npy", visual[name][:, c])
        np.save(aud / f"{name}__vggish.npy", audio[name])
    rgb_list = tmp_path / "rgb_test.list"
    rgb_list.write_text("".join(f"/home/x/xd/i3d/{n}__{c}.npy\n" for n in XD_NAMES for c in range(crops)))
    audio_list = tmp_path / "audio_test.list"
    audio_list.write_text("".join(f"/home/x/xd/vggish/{n}__vggish.npy\n" for n in XD_NAMES))
    return vis, aud, rgb_list, audio_list, visual, audio


def test_xd_violence_crops_audio_and_their_concatenation(tmp_path, capsys):
    rng = np.random.default_rng(11)
    vis, aud, rgb_list, audio_list, visual, audio = _xd_files(tmp_path, rng)
    assert detect_format(rgb_list) == detect_format(vis) == detect_format(audio_list) == "xd"
    # visual, crops kept: (T, 5, 8), list order kept
    assert main(["convert", str(rgb_list), "--root", str(vis), "--crops", "keep", "--out",
                 str(tmp_path / "v.h5"), "--quiet"]) == 0
    x, o, ids, attrs = _read(tmp_path / "v.h5")
    assert ids == XD_NAMES and x.shape == (10, 5, 8) and attrs["source_format"] == "xd"
    np.testing.assert_array_equal(x[o[0]:o[1]], visual[XD_NAMES[0]])
    np.testing.assert_array_equal(x[o[1]:o[2]], visual[XD_NAMES[1]])
    # crops averaged, from the folder (sorted by name)
    assert main(["convert", str(vis), "--out", str(tmp_path / "m.h5"), "--quiet"]) == 0
    x, o, ids, _ = _read(tmp_path / "m.h5")
    assert ids == sorted(XD_NAMES) and x.shape == (10, 8)
    np.testing.assert_allclose(x[o[0]:o[1]], visual[sorted(XD_NAMES)[0]].mean(1), rtol=1e-6)
    # audio alone: (T, 3) with the video names as ids
    assert main(["convert", str(audio_list), "--root", str(aud), "--out", str(tmp_path / "a.h5"), "--quiet"]) == 0
    x, o, ids, _ = _read(tmp_path / "a.h5")
    assert ids == XD_NAMES and x.shape == (6 + 5, 3)
    # visual + audio, crops kept: audio appended to every crop; the audio one snippet longer is cut
    assert main(["convert", str(rgb_list), "--root", str(vis), "--audio", str(audio_list), "--audio-root",
                 str(aud), "--crops", "keep", "--out", str(tmp_path / "av.h5"), "--quiet"]) == 0
    x, o, ids, attrs = _read(tmp_path / "av.h5")
    assert x.shape == (10, 5, 11) and attrs["audio_source"] == str(audio_list)
    for v, name in enumerate(XD_NAMES):
        L = len(visual[name])
        np.testing.assert_array_equal(x[o[v]:o[v + 1], :, :8], visual[name])
        for c in range(5):
            np.testing.assert_array_equal(x[o[v]:o[v + 1], c, 8:], audio[name][:L])
    # visual + audio, crops averaged: [mean of the crops, audio] = 8 + 3
    assert main(["convert", str(rgb_list), "--root", str(vis), "--audio", str(aud), "--out",
                 str(tmp_path / "avm.h5"), "--quiet"]) == 0
    x, o, ids, _ = _read(tmp_path / "avm.h5")
    np.testing.assert_allclose(x[o[1]:o[2]], np.concatenate([visual[XD_NAMES[1]].mean(1), audio[XD_NAMES[1]][:4]], 1),
                               rtol=1e-6)


def test_xd_violence_bad_inputs(tmp_path):
    from lanp.data.convert import xd_sources

    rng = np.random.default_rng(12)
    vis, aud, rgb_list, audio_list, visual, audio = _xd_files(tmp_path, rng, audio_delta=(0, 2))
    with pytest.raises(InputError, match=rf"video '{re.escape(XD_NAMES[1])}': the visual features have 4 snippets "
                                         rf"but the audio .* has 6; they may differ by one snippet at most"):
        convert(xd_sources(rgb_list, vis, audio_list, aud), tmp_path / "x.h5", quiet=True)
    (aud / f"{XD_NAMES[1]}__vggish.npy").unlink()
    with pytest.raises(InputError, match=rf"has no file for 1 of the 2 videos, first '{re.escape(XD_NAMES[1])}'"):
        xd_sources(rgb_list, vis, aud)
    np.save(vis / f"{XD_NAMES[0]}__2.npy", rng.normal(size=(5, 8)).astype(np.float32))      # one crop too short
    with pytest.raises(InputError, match=r"crop file .*__2.npy' has shape \(5, 8\) but crop 0"):
        convert(xd_sources(vis), tmp_path / "x.h5", quiet=True)
    lst = tmp_path / "dup.list"
    lst.write_text(f"{XD_NAMES[0]}__0.npy\n{XD_NAMES[0]}__1.npy\n{XD_NAMES[0]}__0.npy\n")
    with pytest.raises(InputError, match="line 3: video .* has crop 0 twice"):
        xd_sources(lst, vis)
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(ValueError, match="only with the xd format"):
        from lanp.data.convert import sources_for
        sources_for("folder", vis, audio=aud)
