"""The RTFM export and the per-class AUCs on the real UCF-Crime ground truth (skipped without ../shared)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from lanp.cli import main  # noqa: E402
from lanp.data.groundtruth import read_groundtruth, read_list  # noqa: E402
from lanp.data.io import write_h5  # noqa: E402

GT = Path(os.environ.get("LANP_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data" / "gt"
pytestmark = pytest.mark.skipif(not GT.is_dir(), reason=f"real ground truth not found at {GT}")

UCF_CLASSES = ["Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting", "RoadAccidents",
               "Robbery", "Shooting", "Shoplifting", "Stealing", "Vandalism"]


def test_ucf_rtfm_export_reads_back_with_the_real_list(tmp_path, capsys):
    single = read_groundtruth(GT / "ucf_single_gt")                   # 16 * T frames per video
    names = read_list(GT / "ucf-i3d-test.list")                       # the RTFM test order
    lengths = {n: len(single[n + "__9"]) // 16 for n in names}
    rng = np.random.default_rng(3)
    offsets = np.concatenate([[0], np.cumsum([lengths[n] for n in names])]).astype(np.int64)
    y = np.concatenate([single[n + "__9"].reshape(-1, 16).max(1) for n in names])
    s = (0.35 * y + 0.65 * rng.random(offsets[-1])).astype(np.float32)  # informative, seeded scores
    scores = tmp_path / "ucf.scores.h5"
    write_h5(scores, {"score": s, "offsets": offsets, "video_ids": [f"{n}_i3d" for n in names]})
    gt_npy = tmp_path / "gt-ucf.npy"
    assert main(["evaluate", "--scores", str(scores), "--gt", str(GT / "ucf_single_gt"),
                 "--export-gt", "rtfm", str(gt_npy), "--json"]) == 0
    source = json.loads(capsys.readouterr().out)
    assert source["dataset"] == "ucf-crime" and source["classes"] == UCF_CLASSES
    assert source["export"]["frames"] == 1109680 and source["export"]["videos_adjusted"] == 0
    assert main(["evaluate", "--scores", str(scores), "--gt", str(gt_npy), "--gt-list",
                 str(GT / "ucf-i3d-test.list"), "--json"]) == 0
    back = json.loads(capsys.readouterr().out)
    for key in ("auc", "ap", "pr_auc", "far", "video_auc", "frames", "abnormal_frames", "per_class_auc"):
        assert back[key] == source[key], key
    assert 0.5 < source["auc"] < 1.0 and all(0.5 < v < 1.0 for v in source["per_class_auc"].values())
    # the annotation file with the real frame counts gives the same per-class structure
    assert main(["evaluate", "--scores", str(scores), "--gt",
                 str(GT / "ucf_annotations/Temporal_Anomaly_Annotation_New.txt"), "--json"]) == 0
    ann = json.loads(capsys.readouterr().out)
    frames = {r.split(",")[0]: int(r.split(",")[2]) for r in
              (GT / "lanp_splits/ucf-crime/Anomaly_Test.txt").read_text().split()}
    longer = sum(frames[n] > 16 * lengths[n] for n in names)           # real frames >= 16 * T for every video
    assert ann["classes"] == UCF_CLASSES and ann["videos_trimmed"] == 0 and ann["videos_padded"] == longer > 0
    assert abs(ann["auc"] - source["auc"]) < 0.01
