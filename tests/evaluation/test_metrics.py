import numpy as np
import pytest

pytest.importorskip("sklearn")

from lanp.kernels import InputError  # noqa: E402
from lanp.evaluation.metrics import evaluate, frame_scores  # noqa: E402
from shared import pairwise_auc, trapezoid_pr_reference, step_ap_reference  # noqa: E402


def test_hand_computed_case():
    # fps = 2. Video a (normal): frames 0.1 0.1 0.5 0.5. Video b: frames 0.3 0.3 | 0.4 0.4 | 0.2 0.2,
    # abnormal frames 2..3 (score 0.4). Pooled: each positive (0.4) beats 6 of 8 negatives -> AUC 0.75.
    # Ranked: 0.5 0.5 (neg) then 0.4 0.4 (pos): precision 2/4 at recall 1 -> AP 0.5.
    # Abnormal video b alone: 0.4 beats 0.3 and 0.2 -> AUC 1, AP 1.
    scores = {"a": np.array([0.1, 0.5]), "b": np.array([0.3, 0.4, 0.2])}
    gt = {"a": np.zeros(4, np.uint8), "b": np.array([0, 0, 1, 1, 0, 0], np.uint8)}
    r = evaluate(scores, gt, fps=2)
    assert r["auc"] == pytest.approx(0.75)
    assert r["ap"] == pytest.approx(0.5)
    assert r["auc_abnormal"] == pytest.approx(1.0)
    assert r["ap_abnormal"] == pytest.approx(1.0)
    assert (r["videos"], r["abnormal_videos"], r["frames"], r["abnormal_frames"]) == (2, 1, 10, 2)
    assert r["videos_adjusted"] == 0


def test_auc_matches_pairwise_count_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    scores, gt, ys, ss = {}, {}, [], []
    for v in range(15):
        L = int(rng.integers(1, 12))
        s = rng.integers(0, 5, L) / 4.0            # many ties
        y = (rng.random(L * 3) < 0.3).astype(np.uint8) if v % 2 else np.zeros(L * 3, np.uint8)
        scores[f"v{v}"], gt[f"v{v}"] = s, y
        ys.append(y)
        ss.append(np.repeat(s, 3))
    r = evaluate(scores, gt, fps=3)
    assert r["auc"] == pytest.approx(pairwise_auc(np.concatenate(ys), np.concatenate(ss)))
    ab = [k for k in range(15) if ys[k].any()]
    assert r["auc_abnormal"] == pytest.approx(pairwise_auc(np.concatenate([ys[k] for k in ab]),
                                                           np.concatenate([ss[k] for k in ab])))


def test_length_rule_pads_with_last_score_and_trims():
    s, d = frame_scores(np.array([0.2, 0.7]), 7, fps=2)
    np.testing.assert_array_equal(s, [0.2, 0.2, 0.7, 0.7, 0.7, 0.7, 0.7])
    assert d == 3
    s, d = frame_scores(np.array([0.2, 0.7]), 3, fps=2)
    np.testing.assert_array_equal(s, [0.2, 0.2, 0.7])
    assert d == -1
    scores = {"a": np.array([0.1, 0.9]), "b": np.array([0.5, 0.6]), "c": np.array([0.3])}
    gt = {"a": np.array([0, 0, 1, 1, 1], np.uint8), "b": np.array([0, 1, 1], np.uint8), "c": np.zeros(2, np.uint8)}
    r = evaluate(scores, gt, fps=2)
    assert (r["videos_padded"], r["videos_trimmed"], r["videos_adjusted"]) == (1, 1, 2)
    assert r["frames"] == 10 and r["max_adjustment_frames"] == 1


def test_large_mismatch_is_an_error_unless_allowed():
    scores = {"a": np.array([0.1, 0.9])}
    gt = {"a": np.array([0] * 10 + [1] * 10, np.uint8)}
    with pytest.raises(InputError, match=r"video 'a'.*20 frames"):
        evaluate(scores, gt, fps=2, max_mismatch=2)
    assert evaluate(scores, gt, fps=2, max_mismatch=None)["videos_padded"] == 1


def test_matching_by_name_and_unknown_video():
    scores = {"G:\\UCF\\Abuse028_x264_i3d.npy": np.array([0.1, 0.9]), "Normal_1": np.array([0.2, 0.2])}
    gt = {"Normal_1": np.zeros(4, np.uint8), "Abuse028_x264__9": np.array([0, 0, 1, 1], np.uint8),
          "extra": np.zeros(4, np.uint8)}
    r = evaluate(scores, gt, fps=2)
    assert r["auc"] == pytest.approx(1.0) and r["gt_videos_not_scored"] == 1
    with pytest.raises(InputError, match="has no video 'nope'"):
        evaluate({"nope": np.array([0.5])}, gt, fps=2)


def test_one_class_gives_none():
    r = evaluate({"a": np.array([0.1, 0.3])}, {"a": np.zeros(4, np.uint8)}, fps=2)
    assert r["auc"] is None and r["auc_abnormal"] is None and r["abnormal_videos"] == 0


def test_ap_and_pr_auc_differ_on_a_hand_computed_case():
    # frames ranked 0.9 (pos) 0.8 (neg) 0.7 (pos) 0.1 (neg). PR points: (R 0, P 1), (.5, 1), (.5, .5), (1, 2/3).
    # step AP = .5 * 1 + .5 * 2/3 = 5/6; trapezoid = .5 * (1 + 1) / 2 + 0 + .5 * (.5 + 2/3) / 2 = 19/24.
    r = evaluate({"a": np.array([0.9, 0.8, 0.7, 0.1])}, {"a": np.array([1, 0, 1, 0], np.uint8)}, fps=1)
    assert r["ap"] == pytest.approx(5 / 6)
    assert r["pr_auc"] == pytest.approx(19 / 24)
    assert r["auc"] == pytest.approx(0.75)                  # 0.9 beats both, 0.7 beats 0.1 only
    assert "trapezoid" in r["ap_note"] and "average_precision_score" in r["ap_note"]
    # perfect ranking: both are 1
    r = evaluate({"a": np.array([0.9, 0.8, 0.2, 0.1])}, {"a": np.array([1, 1, 0, 0], np.uint8)}, fps=1)
    assert r["ap"] == pytest.approx(1.0) and r["pr_auc"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ap_and_pr_auc_match_independent_references_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(200) < 0.3).astype(np.uint8)
    s = rng.integers(0, 12, 200) / 11.0 + 0.3 * y          # ties and a signal
    r = evaluate({"a": s}, {"a": y}, fps=1)
    assert r["pr_auc"] == pytest.approx(trapezoid_pr_reference(y, s), abs=1e-12), f"seed {seed}"
    assert r["ap"] == pytest.approx(step_ap_reference(y, s), abs=1e-12), f"seed {seed}"
    assert r["auc"] == pytest.approx(pairwise_auc(y, s)), f"seed {seed}"


def ucf_case():
    # fps 1. Pooled positives {0.7, 0.5}, negatives {0.1, 0.3, 0.6, 0.2, 0.4}.
    scores = {"Normal_Videos_001_x264": np.array([0.1, 0.3]), "Normal_Videos_002_x264": np.array([0.6]),
              "Burglary001_x264": np.array([0.2, 0.7]), "Arson001_x264": np.array([0.5, 0.4])}
    gt = {"Normal_Videos_001_x264": np.array([0, 0], np.uint8), "Normal_Videos_002_x264": np.array([0], np.uint8),
          "Burglary001_x264": np.array([0, 1], np.uint8), "Arson001_x264": np.array([1, 0], np.uint8)}
    return scores, gt


def test_ucf_per_class_far_and_video_level_hand_computed():
    scores, gt = ucf_case()
    r = evaluate(scores, gt, fps=1)
    assert r["dataset"] == "ucf-crime" and r["headline"] == "auc"
    assert r["auc"] == pytest.approx(9 / 10)               # 0.7 beats 5 negatives, 0.5 beats 4
    assert r["headline_value"] == r["auc"]
    assert r["classes"] == ["Arson", "Burglary"]
    # Burglary: 0.7 vs its 0.2 and the normals 0.1 0.3 0.6 -> 4/4; Arson: 0.5 vs 0.4 0.1 0.3 0.6 -> 3/4
    assert r["per_class_auc"] == pytest.approx({"Arson": 0.75, "Burglary": 1.0})
    assert r["per_class_videos"] == {"Arson": 1, "Burglary": 1}
    assert r["far"] == pytest.approx(1 / 3)                # normal frames 0.1 0.3 0.6: one >= 0.5
    assert evaluate(scores, gt, fps=1, far_threshold=0.05)["far"] == pytest.approx(1.0)
    assert evaluate(scores, gt, fps=1, far_threshold=0.6)["far"] == pytest.approx(1 / 3)   # >= counts
    assert evaluate(scores, gt, fps=1, far_threshold=0.61)["far"] == pytest.approx(0.0)
    # video maxima: normal 0.3, 0.6; abnormal 0.7 (beats both), 0.5 (beats 0.3) -> 3/4
    assert r["video_auc"] == pytest.approx(0.75)
    # ranked 0.7 (pos) 0.6 (neg) 0.5 (pos) 0.3 (neg): step AP = .5 * 1 + .5 * 2/3
    assert r["video_ap"] == pytest.approx(5 / 6)
    assert r["auc_abnormal"] == pytest.approx(1.0)          # 0.7, 0.5 vs 0.2, 0.4
    assert (r["normal_videos"], r["abnormal_videos"]) == (2, 2)
    other = evaluate(scores, gt, fps=1, dataset="other")
    assert other["classes"] == [] and other["per_class_auc"] == {}


def test_xd_violence_names_lead_with_pr_auc():
    scores = {"Film.A.2001__#00-01-00_00-02-00_label_A": np.array([0.1, 0.8]),
              "Film.B.1999__#00-10-00_00-11-00_label_B1-0-0": np.array([0.9, 0.7])}
    gt = {"Film.A.2001__#00-01-00_00-02-00_label_A": np.array([0, 0], np.uint8),
          "Film.B.1999__#00-10-00_00-11-00_label_B1-0-0": np.array([1, 0], np.uint8)}
    r = evaluate(scores, gt, fps=1)
    assert r["dataset"] == "xd-violence" and r["headline"] == "pr_auc" and r["headline_value"] == r["pr_auc"]
    assert r["classes"] == []
    # ranked 0.9 (pos) 0.8 0.7 0.1: P = 1 at R = 1 -> both APs 1
    assert r["pr_auc"] == pytest.approx(1.0)


def test_bad_parameters_and_a_video_scored_twice():
    scores, gt = ucf_case()
    with pytest.raises(InputError, match=r"dataset='ucf'.*ucf-crime"):
        evaluate(scores, gt, dataset="ucf")
    with pytest.raises(InputError, match="far_threshold=nan"):
        evaluate(scores, gt, fps=1, far_threshold=float("nan"))
    twice = {"Arson001_x264": np.array([0.5, 0.4]), "G:\\x\\Arson001_x264_i3d.npy": np.array([0.5, 0.4])}
    with pytest.raises(InputError, match=r"'Arson001_x264' and .*Arson001_x264_i3d.npy.*both match"):
        evaluate(twice, gt, fps=1)


def test_no_normal_video_gives_no_far():
    r = evaluate({"a": np.array([0.2, 0.9])}, {"a": np.array([0, 1], np.uint8)}, fps=1)
    assert r["far"] is None and r["video_auc"] is None and r["normal_videos"] == 0
