"""XD-Violence end to end on generated files in its layouts: per-crop I3D files + VGGish audio ->
lanp convert -> lanp train (tiny) -> lanp score -> lanp evaluate against an annotations.txt, with AP
(pr_auc, the trapezoid of the published code) as the headline."""
import json

import h5py
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from lanp.cli import main  # noqa: E402
from lanp.data.io import write_h5  # noqa: E402
from lanp.model.score import read_scores  # noqa: E402
from shared import pairwise_auc, step_ap_reference, trapezoid_pr_reference  # noqa: E402

FPS = 16


def make_xd(tmp_path, seed=5, videos=8, crops=5, dim=12, audio_dim=4):
    """Per-crop visual files, VGGish files, lists and annotations.txt; returns names, frame labels."""
    rng = np.random.default_rng(seed)
    vis, aud = tmp_path / "i3d", tmp_path / "vggish"
    vis.mkdir()
    aud.mkdir()
    names, labels, ann = [], {}, []
    for v in range(videos):
        violent = v % 2 == 0
        name = f"Movie.{v}.20{v:02d}__#00-0{v}-00_00-0{v}-30_label_{'B1-0-0' if violent else 'A'}"
        T = int(rng.integers(8, 20))
        y = np.zeros(FPS * T, np.uint8)
        if violent:                                  # two intervals in frames, end excluded
            a, b = int(rng.integers(10, 40)), int(rng.integers(60, 90))
            c, d = FPS * T - 70, FPS * T - 20
            y[a:b] = 1
            y[c:d] = 1
            ann.append(f"{name}{'.mp4' if v % 4 == 0 else ''} {a} {b} {c} {d}")
        snippet = y.reshape(T, FPS).max(1)
        x = rng.normal(0, 1, (T, crops, dim)).astype(np.float32) + 2.0 * snippet[:, None, None]
        for k in range(crops):
            np.save(vis / f"{name}__{k}.npy", x[:, k])
        np.save(aud / f"{name}__vggish.npy", rng.normal(0, 1, (T, audio_dim)).astype(np.float32))
        names.append(name)
        labels[name] = y
    (tmp_path / "rgb_test.list").write_text("".join(f"/data/xd/i3d/{n}__{k}.npy\n" for n in names for k in range(crops)))
    (tmp_path / "audio_test.list").write_text("".join(f"/data/xd/vggish/{n}__vggish.npy\n" for n in names))
    (tmp_path / "annotations.txt").write_text("\n".join(ann) + "\n")
    return names, labels


def test_xd_violence_convert_train_score_evaluate(tmp_path, capsys):
    names, labels = make_xd(tmp_path)
    feats = tmp_path / "xd_test.h5"
    assert main(["convert", str(tmp_path / "rgb_test.list"), "--root", str(tmp_path / "i3d"),
                 "--audio", str(tmp_path / "audio_test.list"), "--audio-root", str(tmp_path / "vggish"),
                 "--crops", "keep", "--out", str(feats), "--quiet"]) == 0
    with h5py.File(feats, "r") as f:
        assert f["features"].shape[1:] == (5, 12 + 4) and list(f["video_ids"].asstr()[()]) == names
        offsets = f["offsets"][()]
    # a tiny detector trained on the ground truth's snippet labels (what is tested is the path, not the method)
    snippet = np.concatenate([labels[n].reshape(-1, FPS).max(1) for n in names]).astype(np.uint8)
    write_h5(tmp_path / "labels.h5", {"pseudo_label": snippet, "weight": np.ones(len(snippet), np.float32),
                                      "offsets": offsets, "video_ids": names})
    model, scores = tmp_path / "xd.pt", tmp_path / "xd.scores.h5"
    assert main(["train", "--features", str(feats), "--labels", str(tmp_path / "labels.h5"), "--out", str(model),
                 "--epochs", "5", "--batch-videos", "4", "--lr", "1e-3", "--quiet"]) == 0
    assert main(["score", "--model", str(model), "--features", str(feats), "--out", str(scores), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--scores", str(scores), "--gt", str(tmp_path / "annotations.txt"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["dataset"] == "xd-violence" and r["headline"] == "pr_auc" and r["headline_value"] == r["pr_auc"]
    assert (r["videos"], r["abnormal_videos"], r["normal_videos"]) == (8, 4, 4) and r["videos_adjusted"] == 0
    # independent reference: frame labels built here, scores repeated 16 times
    s = read_scores(scores)
    y_all = np.concatenate([labels[n] for n in names])
    s_all = np.concatenate([np.repeat(s[n].astype(np.float64), FPS) for n in names])
    assert r["abnormal_frames"] == int(y_all.sum())
    assert r["pr_auc"] == pytest.approx(trapezoid_pr_reference(y_all, s_all), abs=1e-9)
    assert r["ap"] == pytest.approx(step_ap_reference(y_all, s_all), abs=1e-9)
    assert r["auc"] == pytest.approx(pairwise_auc(y_all, s_all))
    normal = np.concatenate([np.repeat(s[n], FPS) for n in names if not labels[n].any()])
    assert r["far"] == pytest.approx(float(np.mean(normal >= 0.5)))
    assert main(["evaluate", "--scores", str(scores), "--gt", str(tmp_path / "annotations.txt")]) == 0
    assert "dataset xd-violence: headline AP (pr_auc) =" in capsys.readouterr().out
    # the field's per-crop .list reads an exported RTFM-style gt.npy back in list order
    gt_npy = tmp_path / "xd-gt.npy"
    assert main(["evaluate", "--scores", str(scores), "--gt", str(tmp_path / "annotations.txt"), "--export-gt",
                 "rtfm", str(gt_npy), "--json"]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(np.load(gt_npy), y_all)
    assert main(["evaluate", "--scores", str(scores), "--gt", str(gt_npy), "--gt-list", str(tmp_path / "rgb_test.list"),
                 "--json"]) == 0
    back = json.loads(capsys.readouterr().out)
    assert back["pr_auc"] == r["pr_auc"] and back["auc"] == r["auc"]
