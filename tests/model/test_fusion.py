"""Test-time fusion with an isolation forest (lanp.model.fusion, lanp score --fuse-forest): the
fused score against its definition with an independently fitted scikit-learn forest, hand-checked
pieces, the file path equal to the array path, the CLI's outputs and refusals."""
import h5py
import numpy as np
import pytest

pytest.importorskip("torch")
from sklearn.ensemble import IsolationForest  # noqa: E402

from lanp.cli import main  # noqa: E402
from lanp.data.io import FeatureFile  # noqa: E402
from lanp.method.dualprior import sample_rows  # noqa: E402
from lanp.model.fusion import CALIBRATION, empirical_cdf, fit_fusion, fit_fusion_file, read_rows  # noqa: E402
from lanp.model.score import score_features  # noqa: E402
from lanp.model.train import TrainConfig, load_checkpoint, train  # noqa: E402
from lanp.method.triprior import TriPriorSettings  # noqa: E402
from shared import labelled_split  # noqa: E402


@pytest.fixture
def trained(tmp_path, rng):
    tr, xtr, otr, _ = labelled_split(tmp_path, "train", V=12, D=6, seed=int(rng.integers(2 ** 31)), max_length=90)
    te, xte, ote, _ = labelled_split(tmp_path, "test", V=12, D=6, crops=3, seed=int(rng.integers(2 ** 31)),
                                     max_length=90)
    model = tmp_path / "model.pt"
    train(tr["feats"], tr["labels"], model, TrainConfig(epochs=5, batch_videos=4, lr=1e-3, seed=0), quiet=True)
    return tr, xtr, otr, te, xte, ote, model


def test_hand_checked_pieces():
    assert empirical_cdf(np.array([3.0, 1.0, 2.0, 2.0]), np.array([0.5, 1.0, 2.0, 2.5, 9.0])).tolist() == \
        [0.0, 0.25, 0.75, 0.75, 1.0]
    assert sample_rows(np.array([0, 3, 11]), 4).tolist() == [0, 1, 2, 4, 6, 8, 10]   # all of 3, then 4 of 8
    assert sample_rows(np.array([0]), 4).size == 0


def test_fused_score_is_its_definition(trained):
    """s = (F_d(d) + F_r(r)) / 2 with F over the calibration rows and r from a forest fitted here on
    the per_video sample with scikit-learn directly."""
    tr, xtr, otr, te, xte, ote, model = trained
    net = load_checkpoint(model)[0]
    with FeatureFile(tr["feats"]) as ff:
        dtr = score_features(net, ff)
    with FeatureFile(te["feats"]) as ff:
        dte = score_features(net, ff)
    settings = TriPriorSettings(trees=30, per_video=5, forest_seed=2)
    fusion = fit_fusion(xtr, otr, dtr, settings)
    xmean = xte.mean(axis=1, dtype=np.float64).astype(np.float32)            # the reader's crop mean
    fused, r = fusion.fuse(dte, xmean)
    fit, cal = sample_rows(otr, 5), sample_rows(otr, CALIBRATION)
    assert cal.size == sum(min(int(L), CALIBRATION) for L in np.diff(otr))
    forest = IsolationForest(n_estimators=30, max_samples=min(256, fit.size), random_state=2).fit(xtr[fit])
    r_ref = -forest.score_samples(xmean)
    np.testing.assert_allclose(r, r_ref, rtol=1e-6)
    ref_cal = -forest.score_samples(xtr[cal])
    want = 0.5 * ((dtr[cal][None, :] <= dte[:, None]).mean(axis=1) + (ref_cal[None, :] <= r_ref[:, None]).mean(axis=1))
    np.testing.assert_allclose(fused, want, atol=1e-6)
    assert fused.min() >= 0.0 and fused.max() <= 1.0
    # each snippet's score depends on it alone: fusing a subset gives the subset's scores
    part, _ = fusion.fuse(dte[10:40], xmean[10:40])
    np.testing.assert_array_equal(part, fused[10:40])
    # the file path reads the same rows and gives the same fusion
    with FeatureFile(tr["feats"]) as ff:
        fit_x, cal_x = read_rows(ff, fit, cal)                           # one pass, both samples
        np.testing.assert_array_equal(fit_x, xtr[fit])
        np.testing.assert_array_equal(cal_x, xtr[cal])
        again = fit_fusion_file(ff, dtr, settings)
    np.testing.assert_array_equal(again.fuse(dte, xmean)[0], fused)


def test_cli_writes_fused_and_both_scores(trained, tmp_path, capsys):
    tr, xtr, otr, te, xte, ote, model = trained
    plain, fused = tmp_path / "plain.h5", tmp_path / "fused.h5"
    assert main(["score", "--model", str(model), "--features", str(te["feats"]), "--out", str(plain), "--quiet"]) == 0
    assert main(["score", "--model", str(model), "--features", str(te["feats"]), "--out", str(fused), "--quiet",
                 "--fuse-forest", str(tr["feats"])]) == 0
    assert "fused with an isolation forest" in capsys.readouterr().out
    with h5py.File(plain, "r") as a, h5py.File(fused, "r") as b:
        np.testing.assert_array_equal(b["detector_score"][()], a["score"][()])
        assert "detector_score" not in a and "fusion" not in a.attrs
        assert b.attrs["fusion"] == "isolation-forest" and b.attrs["fusion_trees"] == 100
        assert b.attrs["fusion_per_video"] == 8 and b.attrs["fusion_train_features"] == str(tr["feats"])
        s, d, r = b["score"][()], b["detector_score"][()], b["isolation_score"][()]
    net = load_checkpoint(model)[0]
    with FeatureFile(tr["feats"]) as ff:
        fusion = fit_fusion(xtr, otr, score_features(net, ff))
    want, want_r = fusion.fuse(d, xte.mean(axis=1, dtype=np.float64).astype(np.float32))
    np.testing.assert_array_equal(s, want)
    np.testing.assert_array_equal(r, want_r)
    assert main(["evaluate", "--scores", str(fused), "--gt", str(te["gt"]), "--json"]) == 0


def test_refusals_touch_nothing(trained, tmp_path, capsys, rng):
    tr, xtr, otr, te, xte, ote, model = trained
    other, *_ = labelled_split(tmp_path, "other", D=4, seed=int(rng.integers(2 ** 31)))
    out = tmp_path / "s.h5"
    out.write_bytes(b"keep me")
    for train_file, message in ((other["feats"], "has feature size D = 4 but the model was trained on D = 6"),
                                (tmp_path / "missing.h5", "missing.h5")):
        assert main(["score", "--model", str(model), "--features", str(te["feats"]), "--out", str(out), "--quiet",
                     "--fuse-forest", str(train_file)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err
        assert out.read_bytes() == b"keep me"


def test_smoothing_applies_to_the_fused_score_last(trained, tmp_path):
    from lanp.model.score import score_file, smooth_scores

    tr, xtr, otr, te, xte, ote, model = trained
    plain, smooth = tmp_path / "f.h5", tmp_path / "f5.h5"
    score_file(model, te["feats"], plain, quiet=True, fuse_forest=tr["feats"])
    score_file(model, te["feats"], smooth, quiet=True, fuse_forest=tr["feats"], smooth=5)
    with h5py.File(plain, "r") as a, h5py.File(smooth, "r") as b:
        np.testing.assert_array_equal(b["score"][()], smooth_scores(a["score"][()], ote, 5))
        np.testing.assert_array_equal(b["detector_score"][()], a["detector_score"][()])   # kept as scored
        assert b.attrs["smooth"] == 5 and b.attrs["fusion"] == "isolation-forest"
