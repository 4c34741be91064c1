import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from lanp.cli import main  # noqa: E402
from lanp.data.io import write_h5  # noqa: E402
from lanp.model.score import read_scores, score_file  # noqa: E402
from lanp.model.train import TrainConfig, load_checkpoint, train  # noqa: E402


def dataset(tmp_path, name, V=10, D=5, crops=None, seed=0):
    """Videos whose label-1 snippets have a shifted first feature; labels file = ground truth."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, 30, V)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    y = np.zeros(offsets[-1], np.uint8)
    for v in range(0, V, 2):
        a = offsets[v] + lengths[v] // 3
        y[a:a + lengths[v] // 3] = 1
    x = rng.normal(0, 1, (offsets[-1], D)).astype(np.float32)
    x[:, 0] += 3.0 * y
    if crops:
        x = x[:, None, :] + rng.normal(0, 0.05, (offsets[-1], crops, D)).astype(np.float32)
    ids = [f"{name}_{v:03d}" for v in range(V)]
    paths = {k: tmp_path / f"{name}.{k}.h5" for k in ("feats", "labels", "gt")}
    write_h5(paths["feats"], {"features": x, "offsets": offsets, "video_ids": ids})
    write_h5(paths["labels"], {"pseudo_label": y, "weight": np.ones(len(y), np.float32), "offsets": offsets,
                               "video_ids": ids})
    write_h5(paths["gt"], {"snippet_labels": y, "offsets": offsets, "video_ids": ids})
    return paths, x, offsets, ids


def test_cli_round_trip_train_score_evaluate_plot(tmp_path, capsys):
    tr, *_ = dataset(tmp_path, "train", seed=0)
    te, x, offsets, ids = dataset(tmp_path, "test", crops=3, seed=1)
    model, scores = tmp_path / "model.pt", tmp_path / "scores.h5"
    assert main(["train", "--features", str(tr["feats"]), "--labels", str(tr["labels"]), "--out", str(model),
                 "--epochs", "30", "--batch-videos", "4", "--lr", "1e-3", "--quiet"]) == 0
    assert main(["score", "--model", str(model), "--features", str(te["feats"]), "--out", str(scores),
                 "--quiet"]) == 0
    s = read_scores(scores)
    assert list(s) == ids and all(len(s[v]) == offsets[i + 1] - offsets[i] for i, v in enumerate(ids))
    # each crop is scored as a whole video and the crops averaged
    net = load_checkpoint(model)[0]
    with torch.no_grad():
        v = 3
        seq = torch.from_numpy(np.ascontiguousarray(x[offsets[v]:offsets[v + 1]].transpose(1, 0, 2)))
        expected = torch.stack([net(seq[c]) for c in range(3)]).mean(0).numpy()
    np.testing.assert_allclose(s[ids[v]], expected, rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    assert main(["evaluate", "--scores", str(scores), "--gt", str(te["gt"]), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["auc"] > 0.8 and r["videos"] == 10 and r["abnormal_videos"] == 5 and r["videos_adjusted"] == 0
    assert main(["evaluate", "--scores", str(scores), "--gt", str(te["gt"])]) == 0
    assert "ROC-AUC" in capsys.readouterr().out
    fig, roc = tmp_path / "v.png", tmp_path / "roc.png"
    assert main(["plot", "--scores", str(scores), "--gt", str(te["gt"]), "--video", ids[2], "--out", str(fig)]) == 0
    assert main(["plot", "--scores", str(scores), "--gt", str(te["gt"]), "--roc", "--out", str(roc)]) == 0
    for f in (fig, roc):
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 5000


def test_bad_inputs_get_clear_errors(tmp_path, capsys):
    tr, *_ = dataset(tmp_path, "train", D=5)
    other, *_ = dataset(tmp_path, "other", D=7)
    model = tmp_path / "model.pt"
    train(tr["feats"], tr["labels"], model, TrainConfig(epochs=1), quiet=True)
    out = tmp_path / "s.h5"

    assert main(["score", "--model", str(tmp_path / "nope.pt"), "--features", str(tr["feats"]), "--out", str(out)]) == 2
    assert "nope.pt" in capsys.readouterr().err

    assert main(["score", "--model", str(model), "--features", str(other["feats"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "D = 7" in err and "D = 5" in err and "other.feats.h5" in err and "model.pt" in err
    assert not out.exists()

    score_file(model, tr["feats"], out, quiet=True)
    assert main(["evaluate", "--scores", str(out), "--gt", str(other["gt"])]) == 2
    assert "has no video 'train_000'" in capsys.readouterr().err
    assert main(["plot", "--scores", str(out), "--gt", str(tr["gt"]), "--video", "ghost", "--out",
                 str(tmp_path / "g.png")]) == 2
    assert "no video 'ghost'" in capsys.readouterr().err
    assert main(["train", "--features", str(tr["feats"]), "--labels", str(tr["labels"]), "--out",
                 str(tmp_path / "m.pt"), "--device", "tpu"]) == 2
    assert "device='tpu'" in capsys.readouterr().err
