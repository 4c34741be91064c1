import os
from pathlib import Path

import numpy as np
import pytest

from lanp.data.groundtruth import (canonical_name, match_videos, read_frame_counts, read_groundtruth, read_list,
                              read_npy_folder, read_rtfm, read_ucf_annotations)
from lanp.data.io import write_h5
from lanp.kernels import InputError

GT = Path(os.environ.get("LANP_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data" / "gt"
real = pytest.mark.skipif(not GT.is_dir(), reason=f"real ground truth not found at {GT}")


def split_csv(path):
    rows = [line.split(",") for line in path.read_text().splitlines() if line.strip()]
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def test_canonical_names():
    for s in ["G:\\UCF_Test_ten_crop_i3d\\Abuse028_x264_i3d.npy", "Abuse028_x264__9_gt.npy",
              "Abuse028_x264.mp4", "/home/x/Abuse028_x264_i3d.npy", "Abuse028_x264"]:
        assert canonical_name(s) == "Abuse028_x264"
    assert canonical_name("01_0015.npy") == "01_0015"


@real
def test_ucf_per_video_folder():
    gt = read_groundtruth(GT / "ucf_single_gt")
    test = split_csv(GT / "lanp_splits/ucf-crime/Anomaly_Test.txt")
    assert len(gt) == 290 and sum(len(v) for v in gt.values()) == 1109680
    match = match_videos(list(test), gt)
    for name, (label, frames) in test.items():
        g = gt[match[name]]
        # 16 * T with T = the feature count: 16 * ((frames - 1) // 16) for most videos, but 11 of those
        # whose frame count is a multiple of 16 have 16 * (frames // 16)
        assert len(g) % 16 == 0 and frames - 16 <= len(g) <= frames
        assert bool(g.any()) == (label == 1)


@real
def test_ucf_annotations_with_and_without_frame_column_agree_with_per_video_files():
    new = read_groundtruth(GT / "ucf_annotations/Temporal_Anomaly_Annotation_New.txt")
    counts = read_frame_counts(GT / "lanp_splits/ucf-crime/Anomaly_Test.txt")
    old = read_groundtruth(GT / "ucf_annotations/Temporal_Anomaly_Annotation.txt",
                           frame_counts=GT / "lanp_splits/ucf-crime/Anomaly_Test.txt")
    single = read_npy_folder(GT / "ucf_single_gt")
    assert len(new) == len(old) == 290 and new.keys() == old.keys()
    assert sum(int(v.any()) for v in new.values()) == 140
    for name, labels in new.items():
        np.testing.assert_array_equal(labels, old[name])
        assert len(labels) == counts[name]
        s = single[name + "__9"]
        np.testing.assert_array_equal(labels[:len(s)], s)
    with pytest.raises(InputError, match="no frame count for video 'Abuse028_x264'"):
        read_ucf_annotations(GT / "ucf_annotations/Temporal_Anomaly_Annotation.txt")


@real
def test_shanghaitech_masks_and_rtfm_concatenated_gt():
    masks = read_groundtruth(GT / "sh_test_frame_mask")
    split = {**split_csv(GT / "lanp_splits/shanghaitech/test_split.txt"),
             **split_csv(GT / "lanp_splits/shanghaitech/train_split.txt")}
    assert len(masks) == 107
    for name, m in masks.items():
        assert len(m) == split[name][1] and m.any() and split[name][0] == 1

    names = read_list(GT / "shanghai-i3d-test-10crop.list")
    assert len(names) == 199 and names[:2] == ["01_0015", "01_0025"]
    lengths = {n: split[n][1] // 16 + 1 for n in names[:44]}           # abnormal block: one exact fit
    lengths.update({"01_001": 48, "01_004": 49, "01_006": 32})          # sample feature files
    rest = [n for n in names[44:] if n not in lengths]
    extra = (142912 // 16 - sum(lengths.values())) - 50 * len(rest)    # the normal videos' total only
    lengths.update({n: 50 + (k < extra) for k, n in enumerate(rest)})
    lengths = {f"{n}_i3d": v for n, v in lengths.items()}               # score ids named like feature files
    gt = read_groundtruth(GT / "gt-sh.npy", lengths=lengths, list_path=GT / "shanghai-i3d-test-10crop.list")
    assert len(gt) == 199
    for n in names[:44]:
        m, g = masks[n], gt[n]
        np.testing.assert_array_equal(g[:len(m)], m)
        assert np.all(g[len(m):] == m[-1])
    assert sum(len(gt[n]) for n in names[:44]) == 17968
    for n, frames in [("01_001", 768), ("01_004", 784), ("01_006", 512)]:
        assert len(gt[n]) == frames and not gt[n].any()
    assert sum(int(g.sum()) for g in gt.values()) == 8028
    lengths["01_0015_i3d"] += 1
    with pytest.raises(InputError, match="142912 frames"):
        read_rtfm(GT / "gt-sh.npy", GT / "shanghai-i3d-test-10crop.list", lengths)
    del lengths["01_0015_i3d"]
    with pytest.raises(InputError, match="'01_0015'"):
        read_rtfm(GT / "gt-sh.npy", GT / "shanghai-i3d-test-10crop.list", lengths)
    with pytest.raises(InputError, match="--gt-list"):
        read_groundtruth(GT / "gt-sh.npy", lengths=lengths)


@real
def test_rtfm_lists_crlf_and_windows_paths():
    ucf = read_list(GT / "ucf-i3d-test.list")
    assert len(ucf) == 290 and ucf[0] == "Abuse028_x264" and ucf[140].startswith("Normal_Videos")
    assert len(read_list(GT / "ucf-i3d.list")) == 1610
    assert len(read_list(GT / "shanghai-i3d-train-10crop.list")) == 238


def test_lanp_gt_h5_both_forms(tmp_path):
    snip = np.array([0, 1, 1, 0, 0, 1], np.uint8)
    offsets = np.array([0, 4, 6])
    write_h5(tmp_path / "s.h5", {"snippet_labels": snip, "offsets": offsets, "video_ids": ["a", "b"]})
    write_h5(tmp_path / "f.h5", {"frame_labels": np.repeat(snip, 16), "frame_offsets": offsets * 16,
                                 "video_ids": ["a", "b"]})
    s, f = read_groundtruth(tmp_path / "s.h5"), read_groundtruth(tmp_path / "f.h5")
    assert list(s) == ["a", "b"] and len(s["a"]) == 64
    for k in s:
        np.testing.assert_array_equal(s[k], f[k])
    np.testing.assert_array_equal(s["b"], [0] * 16 + [1] * 16)
    write_h5(tmp_path / "bad.h5", {"labels": snip})
    with pytest.raises(InputError, match="neither frame_labels"):
        read_groundtruth(tmp_path / "bad.h5")


def test_pickled_and_bad_files_are_refused(tmp_path):
    np.save(tmp_path / "p_gt.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickled"):
        read_groundtruth(tmp_path)
    np.save(tmp_path / "p_gt.npy", np.array([0, 2, 1]))
    with pytest.raises(InputError, match="frame 1 is 2"):
        read_groundtruth(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        read_groundtruth(tmp_path / "missing.txt")
    (tmp_path / "x.csv").write_text("a,1\n")
    with pytest.raises(InputError, match="unknown format"):
        read_groundtruth(tmp_path / "x.csv")


XD_A = "Film.A.2001__#00-01-00_00-02-00_label_A"
XD_B = "Film.B.1999__#00-10-00_00-11-00_label_B1-0-0"
XD_G = "Film.C.2010__#01-00-00_01-01-30_label_G-B2-0"


def test_xd_violence_annotations(tmp_path):
    ann = tmp_path / "annotations.txt"
    ann.write_text(f"{XD_B} 3 7 20 25\n{XD_G}.mp4 0 2\n")
    lengths = {f"{XD_A}__0": 2, XD_B: 2, XD_G: 1}          # snippet counts: 32, 32 and 16 frames
    gt = read_groundtruth(ann, lengths=lengths)
    assert read_groundtruth(ann, lengths=lengths, fps=16).keys() == gt.keys() == {XD_A, XD_B, XD_G}
    np.testing.assert_array_equal(gt[XD_A], np.zeros(32))                        # not listed: normal
    expected = np.zeros(32, np.uint8)
    expected[3:7] = 1
    expected[20:25] = 1
    np.testing.assert_array_equal(gt[XD_B], expected)
    np.testing.assert_array_equal(np.flatnonzero(gt[XD_G]), [0, 1])
    counts = read_groundtruth(ann, lengths=lengths, frame_counts={XD_B: 22})      # clipped at the end
    assert len(counts[XD_B]) == 22 and counts[XD_B][20:].all()
    # without lengths: the last annotated frame
    assert len(read_groundtruth(ann)[XD_B]) == 25


@pytest.mark.parametrize("line, message", [
    (f"{XD_B} 3 7 20", "pairs of start and end"),
    (f"{XD_B} 3 x", "integer frame numbers"),
    (f"{XD_B} 9 4", r"interval \[9, 4\) is invalid"),
    (f"{XD_B} 40 50", "starts after the video's 32 frames"),
])
def test_xd_violence_bad_lines_name_file_line_and_video(tmp_path, line, message):
    ann = tmp_path / "annotations.txt"
    ann.write_text(f"{XD_G} 0 2\n{line}\n")
    with pytest.raises(InputError, match=message) as info:
        read_groundtruth(ann, lengths={XD_B: 2, XD_G: 1})
    assert "annotations.txt" in str(info.value) and "line 2" in str(info.value) and XD_B in str(info.value)


def test_video_listed_twice_is_an_error(tmp_path):
    ann = tmp_path / "annotations.txt"
    ann.write_text(f"{XD_B} 0 2\n{XD_B}.mp4 4 6\n")
    with pytest.raises(InputError, match="second time"):
        read_groundtruth(ann, lengths={XD_B: 1})
    ucf = tmp_path / "Temporal_Anomaly_Annotation.txt"
    ucf.write_text("Arson001_x264.mp4  Arson  2  5  -1  -1  40\nArson001_x264.mp4  Arson  7  9  -1  -1  40\n")
    with pytest.raises(InputError, match="line 2: video 'Arson001_x264' appears a second time"):
        read_groundtruth(ucf)


def test_rtfm_list_with_one_line_per_crop_and_a_repeated_video(tmp_path):
    np.save(tmp_path / "gt.npy", np.array([0] * 16 + [1] * 16 + [0] * 16, np.float64))
    lst = tmp_path / "xd_test.list"
    lst.write_text("".join(f"/data/xd/{XD_B}__{c}.npy\n" for c in range(5)) + f"/data/xd/{XD_A}__0.npy\n")
    gt = read_rtfm(tmp_path / "gt.npy", lst, {XD_B: 2, XD_A: 1})
    assert list(gt) == [XD_B, XD_A] and gt[XD_B].sum() == 16
    lst.write_text(f"{XD_B}__0.npy\n{XD_A}__0.npy\n{XD_B}__1.npy\n")
    with pytest.raises(InputError, match=f"entry 3 names video '{XD_B}' a second time"):
        read_rtfm(tmp_path / "gt.npy", lst, {XD_B: 2, XD_A: 1})


def test_aligned_labels_pad_with_the_last_label_and_trim(tmp_path):
    from lanp.data.groundtruth import aligned_labels, export_groundtruth

    gt = {"a": np.array([0, 1, 1], np.uint8), "b": np.array([1, 0, 0, 0, 0], np.uint8), "c": np.zeros(4, np.uint8)}
    labels, adjusted = aligned_labels({"b_i3d": 1, "a": 3, "c": 2}, gt, fps=2)    # scores order, 2 x T frames
    assert [v for v, _ in labels] == ["b_i3d", "a", "c"] and adjusted == 2
    np.testing.assert_array_equal(labels[0][1], [1, 0])                          # trimmed
    np.testing.assert_array_equal(labels[1][1], [0, 1, 1, 1, 1, 1])              # padded with the last label
    with pytest.raises(InputError, match=r"video 'a': 30 snippets x 2 = 60 frames.*max_mismatch=2"):
        aligned_labels({"a": 30}, gt, fps=2)
    info = export_groundtruth("rtfm", tmp_path / "gt.npy", labels, tmp_path / "gt.list")
    back = np.load(tmp_path / "gt.npy", allow_pickle=False)
    assert back.dtype == np.float64 and back.tolist() == [1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert (tmp_path / "gt.list").read_text() == "b_i3d\na\nc\n"
    assert info["frames"] == 12 and info["abnormal_frames"] == 6
    with pytest.raises(InputError, match="export format 'mat' is invalid: choose one of rtfm"):
        export_groundtruth("mat", tmp_path / "x.npy", labels)
