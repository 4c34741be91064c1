import os
from pathlib import Path

import numpy as np
import pytest

from lanp.data.groundtruth import (canonical_name, match_videos, read_frame_counts, read_groundtruth, read_list,
                              read_npy_folder, read_rtfm, read_ucf_annotations)
from lanp.data.io import write_h5
from lanp.kernels import InputError

GT = Path(os.environ.get("LANP_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "gt"
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
