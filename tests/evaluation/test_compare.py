"""`lanp compare` on a tiny dataset writes a table with a row per method."""
import json

import numpy as np
import pytest

from lanp.cli import main
from lanp.evaluation.compare import (METHODS, CompareConfig, labels_from_scores, pseudo_label_quality, run_compare,
                                    snippet_labels_from_gt, split_quality)
from lanp.kernels import InputError
from lanp.method.options import PropagateConfig
from lanp.data.synth import make_synthetic, write_synthetic


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmp")
    kw = dict(dim=8, min_length=12, max_length=30, world_seed=5)
    write_synthetic(make_synthetic(num_videos=10, seed=5, prefix="train", **kw), d / "train.h5", d / "train.gt.h5")
    write_synthetic(make_synthetic(num_videos=8, seed=6, prefix="test", **kw), d / "test.h5", d / "test.gt.h5")
    return d


def test_every_method_gets_a_row(tiny):
    out = tiny / "all"
    messages = []
    payload = run_compare(tiny / "train.h5", tiny / "test.h5", tiny / "test.gt.h5", out,
                          CompareConfig(seeds=2, epochs=1, lr=1e-3), train_gt=tiny / "train.gt.h5",
                          log=messages.append)
    assert [r["method"] for r in payload["rows"]] == list(METHODS)
    table = (out / "compare.md").read_text()
    for m in METHODS:
        assert f"| {m} |" in table
    assert "pseudo-label precision" in table
    saved = json.loads((out / "compare.json").read_text())
    assert len(saved["rows"]) == len(METHODS)
    for row in saved["rows"]:
        assert len(row["runs"]) == 2 and 0.0 <= row["auc"]["mean"] <= 1.0
        assert row["precision"]["mean"] is not None
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert sum(m.startswith("[") for m in messages) == 2 * len(METHODS)     # progress per method and seed


def test_cli_subset_without_train_gt(tiny, capsys):
    out = tiny / "cli"
    rc = main(["compare", "--train", str(tiny / "train.h5"), "--test", str(tiny / "test.h5"),
               "--gt", str(tiny / "test.gt.h5"), "--methods", "lanp", "trivial-ends", "--seeds", "1",
               "--epochs", "1", "--out", str(out)])
    assert rc == 0
    table = (out / "compare.md").read_text()
    assert "| lanp |" in table and "| trivial-ends |" in table and "precision" not in table
    assert "oracle" not in table
    assert "| lanp |" in capsys.readouterr().out


def test_unknown_method_is_an_error(tiny):
    with pytest.raises(InputError, match="unknown method"):
        run_compare(tiny / "train.h5", tiny / "test.h5", tiny / "test.gt.h5", tiny / "bad",
                    CompareConfig(methods=["lanp", "gcl"]))
    rc = main(["compare", "--train", str(tiny / "train.h5"), "--test", str(tiny / "test.h5"),
               "--gt", str(tiny / "test.gt.h5"), "--methods", "nope", "--out", str(tiny / "bad")])
    assert rc == 2


def test_pseudo_label_quality_and_rule():
    gt = {"a": np.repeat(np.array([0, 1, 1, 0], np.uint8), 16)}
    q = pseudo_label_quality(np.array([0, 1, 0, 1], np.uint8), np.array([0, 4]), ["a"], gt)
    assert q == {"precision": 0.5, "recall": 0.5}
    # the LANP rule on negated scores: in the more spread video the floor(0.5 L) highest scores are 1
    labels, video_score, abnormal = labels_from_scores(np.array([0, 0, 0, 0, 0, 5, 4, 0.0]), np.array([0, 4, 8]),
                                                       PropagateConfig(abnormal_ratio=0.5))
    assert labels.tolist() == [0, 0, 0, 0, 0, 1, 1, 0]
    assert abnormal.tolist() == [False, True] and video_score[1] > video_score[0] == 0.0


def test_snippet_labels_from_frame_truth():
    gt = {"a": np.r_[np.zeros(20), np.ones(5), np.zeros(7)], "b_gt": np.zeros(40)}
    snip, video = snippet_labels_from_gt(gt, np.array([0, 3, 5]), ["a", "b"], fps=16)
    assert snip.tolist() == [0, 1, 0, 0, 0] and video.tolist() == [1, 0]   # frames 16..31 hold the 1s
    snip, _ = snippet_labels_from_gt({"a": np.r_[np.zeros(16), np.ones(4)]}, np.array([0, 3]), ["a"], fps=16)
    assert snip.tolist() == [0, 1, 1]                     # past the last frame: its label repeats
    with pytest.raises(InputError, match="has no video"):
        snippet_labels_from_gt(gt, np.array([0, 3]), ["zzz"], fps=16)


def test_split_quality_hand_case():
    q = split_quality(np.array([0.1, 0.9, 0.2, 0.8]), np.array([False, True, True, False]),
                      np.array([0, 1, 0, 1]), np.array([10, 20, 30, 40]))
    assert q["split_accuracy"] == 0.5 and q["split_video_auc"] == 1.0
    assert q["length_score_spearman"] == pytest.approx(0.4)


def test_oracle_needs_training_truth(tiny):
    with pytest.raises(InputError, match="needs the training ground truth"):
        run_compare(tiny / "train.h5", tiny / "test.h5", tiny / "test.gt.h5", tiny / "no-oracle",
                    CompareConfig(methods=["oracle"], seeds=1, epochs=1))
    assert not (tiny / "no-oracle").exists()          # refused before any work


def test_refinement_retrains_on_its_own_scores(tiny, monkeypatch):
    """Round 0 trains on the recipe's labels; the next rounds on labels from the detector's own
    training scores (the recipe's abnormal videos, top floor(r L) by score), weights exp(-|s - y|)."""
    import lanp.evaluation.compare as C

    seen = []
    real = C._train_and_score

    def spy(train_path, test_path, work, name, seed, pseudo, weight, *rest, **kw):
        seen.append((name, pseudo.copy(), weight.copy()))
        return real(train_path, test_path, work, name, seed, pseudo, weight, *rest, **kw)

    monkeypatch.setattr(C, "_train_and_score", spy)
    data = {"train": C.read_split(tiny / "train.h5"), "test": C.read_split(tiny / "test.h5"),
            "train_path": str(tiny / "train.h5"), "test_path": str(tiny / "test.h5")}
    r = C.run_method("lanp-refine", 0, data, CompareConfig(epochs=2, lr=1e-3), tiny / "refine", {})
    base = C.label_arrays(C.method_recipe("lanp"), *data["train"], data["train_path"])
    assert np.array_equal(seen[0][1], base.pseudo_label) and np.array_equal(seen[0][2], base.weight)
    assert 2 <= len(seen) <= C.REFINE_ROUNDS + 2
    lengths = np.diff(base.offsets)
    for _, pseudo, weight in seen[1:]:
        per_video = np.add.reduceat(pseudo.astype(int), base.offsets[:-1])
        want = np.where(base.video_abnormal, np.floor(0.4 * lengths), 0)
        assert np.array_equal(per_video, want)                 # the recipe's split and ratio are kept
        assert np.all((weight > 0) & (weight <= 1))
    assert r["test_scores"].shape == (data["test"][1][-1],)


def test_fused_row_fuses_the_tri_priors_own_detector(tiny):
    """lanp-tri-prior-fused trains the detector lanp-tri-prior trains (same labels, same seed) and
    scores the test file with lanp.model.fusion on it."""
    import lanp.evaluation.compare as C
    from lanp.model.fusion import fit_fusion

    data = {"train": C.read_split(tiny / "train.h5"), "test": C.read_split(tiny / "test.h5"),
            "train_path": str(tiny / "train.h5"), "test_path": str(tiny / "test.h5")}
    config, cache = CompareConfig(epochs=2, lr=1e-3), {}
    tri = C.run_method("lanp-tri-prior", 1, data, config, tiny / "fused", cache)
    fused = C.run_method("lanp-tri-prior-fused", 1, data, config, tiny / "fused", cache)
    assert np.array_equal(fused["pseudo"], tri["pseudo"])
    test_scores, train_scores = C._train_and_score(data["train_path"], data["test_path"], tiny / "fused2",
                                                   "check", 1, tri["pseudo"], np.ones(tri["pseudo"].shape, np.float32),
                                                   data["train"][1], data["train"][2], config, also_train=True)
    np.testing.assert_array_equal(test_scores, tri["test_scores"])          # the same detector
    want, _ = fit_fusion(data["train"][0], data["train"][1], train_scores).fuse(test_scores, data["test"][0])
    np.testing.assert_array_equal(fused["test_scores"], want)
    assert not np.array_equal(fused["test_scores"], tri["test_scores"])
