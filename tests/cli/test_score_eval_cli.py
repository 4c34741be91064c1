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
from shared import labelled_split as dataset  # noqa: E402


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


def test_smoothing_hand_computed_and_bad_widths():
    from lanp.kernels import InputError
    from lanp.model.score import smooth_scores

    s = np.array([0, 3, 6, 3, 9, 1, 2], np.float32)
    offsets = np.array([0, 4, 5, 7])
    # video 0, k = 3: (0+3)/2, (0+3+6)/3, (3+6+3)/3, (6+3)/2; video 1 alone; video 2: both ends see both
    np.testing.assert_allclose(smooth_scores(s, offsets, 3), [1.5, 3, 4, 4.5, 9, 1.5, 1.5])
    # k = 5 on video 0: (0+3+6)/3, (0+3+6+3)/4, (0+3+6+3)/4, (3+6+3)/3
    np.testing.assert_allclose(smooth_scores(s, offsets, 5)[:4], [3, 3, 3, 4])
    np.testing.assert_array_equal(smooth_scores(s, offsets, 1), s)
    for k in (2, 4, -3, 2.5):
        with pytest.raises(InputError, match=rf"smooth={k!r} is invalid: .*odd"):
            smooth_scores(s, offsets, k)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    tr, *_ = dataset(tmp, "train", seed=0)
    te, x, offsets, ids = dataset(tmp, "test", seed=1)
    model = tmp / "model.pt"
    train(tr["feats"], tr["labels"], model, TrainConfig(epochs=5, batch_videos=4, lr=1e-3), quiet=True)
    scores = tmp / "scores.h5"
    score_file(model, te["feats"], scores, quiet=True)
    return tmp, model, te, scores, ids


def test_score_smooth_cli_stores_smooth_and_config(trained, tmp_path, capsys):
    import h5py

    from lanp import config_file
    from lanp.model.score import smooth_scores

    tmp, model, te, plain, ids = trained
    out = tmp_path / "smooth.h5"
    assert main(["score", "--model", str(model), "--features", str(te["feats"]), "--out", str(out),
                 "--smooth", "5", "--quiet"]) == 0
    assert "smoothed over 5 snippets" in capsys.readouterr().out
    with h5py.File(plain, "r") as f:
        raw, offsets = f["score"][()], f["offsets"][()]
        assert f.attrs["smooth"] == 0
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["score"][()], smooth_scores(raw, offsets, 5), rtol=1e-6)
        assert f.attrs["smooth"] == 5
        stored = config_file.read_stored(dict(f.attrs))
    assert stored["command"] == "score" and stored["options"]["smooth"] == 5
    assert main(["score", "--model", str(model), "--features", str(te["feats"]), "--out", str(out),
                 "--smooth", "4"]) == 2
    assert "smooth=4 is invalid" in capsys.readouterr().err


def test_evaluate_reports_every_metric_and_the_config(trained, capsys):
    from lanp.evaluation.metrics import evaluate
    from lanp.data.groundtruth import read_groundtruth

    tmp, model, te, scores, ids = trained
    capsys.readouterr()
    assert main(["evaluate", "--scores", str(scores), "--gt", str(te["gt"]), "--far-threshold", "0.3", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    direct = evaluate(read_scores(scores), read_groundtruth(te["gt"]), far_threshold=0.3)
    for key in ("auc", "ap", "pr_auc", "auc_abnormal", "ap_abnormal", "pr_auc_abnormal", "far", "video_auc",
                "video_ap"):
        assert r[key] == pytest.approx(direct[key]) and r[key] is not None, key
    assert r["far_threshold"] == 0.3 and r["config"]["options"]["far-threshold"] == 0.3
    assert r["dataset"] == "other" and r["headline"] == "auc"
    assert main(["evaluate", "--scores", str(scores), "--gt", str(te["gt"])]) == 0
    text = capsys.readouterr().out
    for label in ("frame ROC-AUC", "pr_auc (trapezoid; papers)", "ap (step; scikit-learn)", "video ROC-AUC",
                  "false alarm rate @ 0.5", "note: ap = step-interpolated"):
        assert label in text, label


def test_rtfm_export_reads_back_to_the_same_metrics(trained, tmp_path, capsys):
    tmp, model, te, scores, ids = trained
    gt_npy, lst = tmp_path / "gt-test.npy", tmp_path / "test.list"
    capsys.readouterr()
    assert main(["evaluate", "--scores", str(scores), "--gt", str(te["gt"]), "--export-gt", "rtfm", str(gt_npy),
                 "--export-list", str(lst), "--json"]) == 0
    source = json.loads(capsys.readouterr().out)
    exported = np.load(gt_npy, allow_pickle=False)
    lengths = [len(v) for v in read_scores(scores).values()]
    assert exported.shape == (16 * sum(lengths),) and lst.read_text().split() == ids
    assert source["export"]["frames"] == exported.shape[0] and source["export"]["videos_adjusted"] == 0
    assert main(["evaluate", "--scores", str(scores), "--gt", str(gt_npy), "--gt-list", str(lst), "--json"]) == 0
    back = json.loads(capsys.readouterr().out)
    for key in ("auc", "ap", "pr_auc", "far", "video_auc", "frames", "abnormal_frames"):
        assert back[key] == source[key], key
    assert main(["evaluate", "--scores", str(scores), "--gt", str(te["gt"]), "--export-gt", "mat", "x.npy"]) == 2
    assert "export format 'mat' is invalid: choose one of rtfm" in capsys.readouterr().err
    assert main(["evaluate", "--scores", str(scores), "--gt", str(te["gt"]), "--export-list", "x.list"]) == 2
    assert "--export-list needs --export-gt" in capsys.readouterr().err


def test_plot_all_and_pr(trained, tmp_path, capsys):
    tmp, model, te, scores, ids = trained
    out = tmp_path / "figs"
    assert main(["plot", "--scores", str(scores), "--gt", str(te["gt"]), "--all", "--out", str(out)]) == 0
    assert f"wrote {len(ids)} figures" in capsys.readouterr().out
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(f"{v}.png" for v in ids)
    page = (out / "index.html").read_text()
    assert all(f'src="{v}.png"' in page for v in ids) and "configuration" in page and "http" not in page
    first_abnormal = page.index(ids[0])                    # abnormal videos (even ids here) are listed first
    assert first_abnormal < page.index(ids[1])
    pr = tmp_path / "pr.png"
    assert main(["plot", "--scores", str(scores), "--gt", str(te["gt"]), "--pr", "--out", str(pr)]) == 0
    assert pr.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pr.stat().st_size > 5000


def test_duplicate_video_ids_in_a_scores_file_are_an_error(tmp_path, capsys):
    path = tmp_path / "dup.h5"
    write_h5(path, {"score": np.array([0.1, 0.2, 0.3], np.float32), "offsets": np.array([0, 1, 2, 3]),
                    "video_ids": ["a", "b", "a"]})
    write_h5(tmp_path / "gt.h5", {"snippet_labels": np.array([0, 1, 0], np.uint8), "offsets": np.array([0, 1, 2, 3]),
                                  "video_ids": ["a", "b", "c"]})
    assert main(["evaluate", "--scores", str(path), "--gt", str(tmp_path / "gt.h5")]) == 2
    err = capsys.readouterr().err
    assert "dup.h5" in err and "video id 'a' appears twice (videos 0 and 2)" in err
