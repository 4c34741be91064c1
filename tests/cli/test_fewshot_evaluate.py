"""lanp evaluate refuses a test set holding a video the model was trained on as a human-labelled
video (issue 16): the ids travel labels file -> checkpoint -> scores file attribute -> evaluate."""
import json

import h5py
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from lanp.cli import main  # noqa: E402
from lanp.data.io import write_h5  # noqa: E402
from lanp.model.score import read_human_video_ids  # noqa: E402


def videos(tmp_path, rng, name, ids, D=4):
    """A feature file and snippet ground truth: even videos hold a shifted run of snippets."""
    lengths = rng.integers(8, 20, len(ids))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    y = np.zeros(offsets[-1], np.uint8)
    for v in range(0, len(ids), 2):
        y[offsets[v] + 2:offsets[v] + 6] = 1
    x = rng.normal(0, 1, (offsets[-1], D)).astype(np.float32)
    x[:, 0] += 3.0 * y
    feats, gt = tmp_path / f"{name}.h5", tmp_path / f"{name}.gt.h5"
    write_h5(feats, {"features": x, "offsets": offsets, "video_ids": list(ids)})
    write_h5(gt, {"snippet_labels": y, "offsets": offsets, "video_ids": list(ids)})
    return feats, gt, y, offsets


def few_shot_labels(path, ids, y, offsets, human):
    """The few-shot labels-file datasets of the contract (label_source, video_human, human_video_ids)."""
    source = np.zeros(len(y), np.uint8)
    vh = np.full(len(ids), -1, np.int8)
    for v, vid in enumerate(ids):
        if vid in human:
            vh[v] = 1 if human[vid] == "abnormal_video" else 0
            source[offsets[v]:offsets[v + 1]] = 1
    write_h5(path, {"pseudo_label": y, "weight": np.ones(len(y), np.float32), "offsets": offsets,
                    "video_ids": list(ids), "label_source": source, "video_human": vh},
             {"human_video_ids": json.dumps(sorted(human)), "human_labels": "few.csv"})
    return path


@pytest.fixture()
def model(tmp_path, rng):
    ids = [f"clip_{v:02d}" for v in range(8)]
    feats, _, y, offsets = videos(tmp_path, rng, "train", ids)
    labels = few_shot_labels(tmp_path / "train.labels.h5", ids, y, offsets,
                             {"clip_00": "abnormal_video", "clip_03": "normal_video"})
    out = tmp_path / "model.pt"
    assert main(["train", "--features", str(feats), "--labels", str(labels), "--out", str(out), "--epochs", "2",
                 "--batch-videos", "3", "--quiet"]) == 0
    return out


def score(model, feats, out):
    assert main(["score", "--model", str(model), "--features", str(feats), "--out", str(out), "--quiet"]) == 0
    return out


def test_disjoint_test_set_is_evaluated(tmp_path, rng, model, capsys):
    feats, gt, *_ = videos(tmp_path, rng, "test", [f"test_{v:02d}" for v in range(6)])
    scores = score(model, feats, tmp_path / "s.h5")
    assert read_human_video_ids(scores) == ["clip_00", "clip_03"]
    capsys.readouterr()
    assert main(["evaluate", "--scores", str(scores), "--gt", str(gt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["videos"] == 6


def test_labelled_training_video_in_the_test_set_is_refused(tmp_path, rng, model, capsys):
    feats, gt, *_ = videos(tmp_path, rng, "test", ["test_00", "clip_03", "test_01"])
    scores = score(model, feats, tmp_path / "s.h5")
    capsys.readouterr()
    export = tmp_path / "gt.npy"
    code = main(["evaluate", "--scores", str(scores), "--gt", str(gt), "--export-gt", "rtfm", str(export)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: scores file {str(scores)!r} scores video 'clip_03', which model")
    assert str(model) in err and "'few.csv'" in err and "1 of the 3 scored videos" in err
    assert not export.exists()


def test_plain_model_writes_no_ids_and_bad_attribute_is_refused(tmp_path, rng, capsys):
    ids = [f"clip_{v:02d}" for v in range(6)]
    feats, gt, y, offsets = videos(tmp_path, rng, "train", ids)
    labels = tmp_path / "plain.labels.h5"
    write_h5(labels, {"pseudo_label": y, "weight": np.ones(len(y), np.float32), "offsets": offsets, "video_ids": ids})
    model = tmp_path / "plain.pt"
    assert main(["train", "--features", str(feats), "--labels", str(labels), "--out", str(model), "--epochs", "1",
                 "--quiet"]) == 0
    scores = score(model, feats, tmp_path / "s.h5")
    with h5py.File(scores, "r") as f:
        assert "human_video_ids" not in f.attrs
    assert main(["evaluate", "--scores", str(scores), "--gt", str(gt)]) == 0      # training videos, no labels
    with h5py.File(scores, "a") as f:
        f.attrs["human_video_ids"] = "{not json"
    capsys.readouterr()
    assert main(["evaluate", "--scores", str(scores), "--gt", str(gt)]) == 2
    assert "attribute 'human_video_ids' = '{not json' is invalid" in capsys.readouterr().err
