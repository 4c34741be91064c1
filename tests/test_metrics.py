import numpy as np
import pytest

pytest.importorskip("sklearn")

from lanp.kernels import InputError  # noqa: E402
from lanp.evaluation.metrics import evaluate, frame_scores  # noqa: E402


def pairwise_auc(y, s):
    """Mann-Whitney AUC by counting every (positive, negative) pair; ties count one half."""
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


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
