"""Diagnostics and the length-adjusted video score on hand-made cases; CLI wiring of --preset,
--video-score and the diagnostics attributes."""
import math

import h5py
import numpy as np
import pytest

from lanp.cli import propagate_main
from lanp.method.diagnostics import diagnose, length_score_spearman, prior_violations
from lanp.method.video_scores import huber_line, length_adjusted_scores, video_scores


def test_huber_line_ignores_outliers():
    x = np.arange(20.0)
    y = 2.0 - 0.5 * x
    y[[3, 11]] += 40.0                      # two gross outliers
    a, b = huber_line(x, y)
    assert a == pytest.approx(2.0, abs=1e-6) and b == pytest.approx(-0.5, abs=1e-6)
    assert huber_line(np.ones(5), np.arange(5.0)) == (2.0, 0.0)      # constant x: median, slope 0


def test_length_adjusted_score_removes_a_power_law():
    lengths = np.array([10, 20, 40, 80, 160, 320, 640, 30, 90, 270])
    scores = 3.0 * lengths ** -0.7                    # pure length effect ...
    scores[[1, 5]] *= 2.0                             # ... and two videos with twice the spread
    adjusted, (a, b) = length_adjusted_scores(scores, lengths)
    assert b == pytest.approx(-0.7, abs=1e-6) and a == pytest.approx(math.log(3.0), abs=1e-6)
    np.testing.assert_allclose(adjusted[[1, 5]], math.log(2.0), atol=1e-6)
    np.testing.assert_allclose(np.delete(adjusted, [1, 5]), 0.0, atol=1e-6)
    assert length_score_spearman(lengths, scores) < -0.8                 # std is mostly length
    # L = 1 gives std 0: floored before the log, so the scores stay finite
    adj, _ = length_adjusted_scores(np.array([0.0, 0.1, 0.2, 0.3]), np.array([1, 5, 6, 7]))
    assert np.all(np.isfinite(adj))


def test_spearman_hand_cases():
    assert length_score_spearman([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert length_score_spearman([1, 2, 3, 4], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)
    assert math.isnan(length_score_spearman([1, 2], [1.0, 2.0]))
    assert math.isnan(length_score_spearman([3, 3, 3], [1.0, 2.0, 3.0]))


def test_prior_violations_hand_made():
    z = np.array([0.1, 0.9, 0.2, 0.8, 1.0,      # lowest 2 = {0, 2}: first snippet -> violation
                  1.0, 0.1, 0.2, 0.9, 1.0,      # {1, 2}: fine
                  1.0, 0.5, 0.6, 0.7, 0.2,      # {4, 1}: last snippet -> violation
                  0.1, 0.2])                    # L = 2: floor(0.8) = 0 lowest -> fine
    offsets = np.array([0, 5, 10, 15, 17])
    assert prior_violations(z, offsets, 0.4).tolist() == [True, False, True, False]
    d = diagnose(z, offsets, scores=np.array([0.3, 0.2, 0.1, 0.0]), abnormal=np.array([1, 1, 0, 0], bool),
                 iterations=np.array([3, 5, 7, 40]), residual=np.array([1e-7, 2e-7, 3e-7, 1e-3]))
    assert d["diag_prior_violation_share"] == 0.5
    assert d["diag_prior_violation_share_abnormal"] == 0.5 and d["diag_prior_violation_share_normal"] == 0.5
    assert (d["diag_cg_iterations_min"], d["diag_cg_iterations_median"], d["diag_cg_iterations_max"]) == (3, 6.0, 40)
    assert d["diag_cg_residual_max"] == 1e-3
    assert d["diag_length_score_spearman"] == pytest.approx(math.sqrt(0.6))   # ranks (3,3,3,1) vs (4,3,2,1)
    with pytest.raises(ValueError, match="video_score='x' is invalid"):
        video_scores(z, offsets, "x")


def _tiny_file(path, rng, lengths):
    xs = []
    for i, L in enumerate(lengths):
        base = rng.random(6) + 0.5
        x = base + 0.01 * rng.normal(size=(L, 6))
        if i % 3 == 0:
            x[L // 3: L // 2] += 2.0                # an interior anomaly
        xs.append(np.abs(x))
    with h5py.File(path, "w") as f:
        f["features"] = np.concatenate(xs).astype(np.float32)
        f["offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        f["video_ids"] = np.array([f"v{i}" for i in range(len(lengths))], dtype=object)


@pytest.mark.filterwarnings("ignore::lanp.kernels.ConvergenceWarning")
@pytest.mark.parametrize("preset, score", [("paper", "std"), ("paper", "std-length-adjusted"),
                                           ("official-sht", "std"), ("official-ucf", "std-length-adjusted")])
def test_cli_writes_diagnostics(tmp_path, capsys, preset, score):
    rng = np.random.default_rng(3)
    feats = tmp_path / "f.h5"
    _tiny_file(feats, rng, [12, 30, 7, 50, 22, 9, 41, 16, 28, 33, 120, 15])
    out = tmp_path / "l.h5"
    assert propagate_main(["--features", str(feats), "--out", str(out), "--preset", preset,
                           "--video-score", score, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Spearman(length, video score)" in printed and "prior violations" in printed
    with h5py.File(out, "r") as f:
        attrs = dict(f.attrs)
        lengths = np.diff(f["offsets"][()])
        scores = f["video_score"][()]
        z = f["normality"][()]
        assert attrs["preset"] == preset and attrs["video_score"] == score
        assert attrs["diag_length_score_spearman"] == pytest.approx(length_score_spearman(lengths, scores), abs=1e-6)
        assert attrs["diag_cg_iterations_max"] == f["cg_iterations"][()].max()
        if score == "std-length-adjusted":
            assert "video_score_fit_slope" in attrs
            assert abs(attrs["diag_length_score_spearman"]) < 0.6
        if preset != "paper":
            assert attrs["preset_maxiter"] == 10 and f["cg_iterations"][()].max() <= 10
            assert attrs["diag_prior_violation_share"] == 0.0          # seeds are set to max(z)
            assert z.min() >= 0


def test_spearman_matches_scipy_with_ties(rng):
    """The numpy Spearman (average ranks, then Pearson) against scipy.stats on fresh data."""
    from scipy.stats import rankdata, spearmanr
    from lanp.method.diagnostics import average_ranks
    for _ in range(20):
        n = int(rng.integers(3, 300))
        lengths = rng.integers(1, 12, n)                       # many ties
        scores = rng.normal(size=n) + 0.1 * lengths
        scores[: n // 4] = np.round(scores[: n // 4], 1)        # ties in the scores too
        assert np.array_equal(average_ranks(scores), rankdata(scores))
        if np.ptp(lengths) > 0:
            assert length_score_spearman(lengths, scores) == pytest.approx(
                spearmanr(lengths, scores).statistic, abs=1e-12)


def test_seed_calibrated_scores_hand_case():
    from lanp.method.video_scores import seed_normalised, video_scores
    z = np.array([2.0, 1.0, 0.5, 2.0,      # seeds 2, 2: zn = 1, .5, .25, 1
                  4.0, 4.0, 4.0, 4.0])     # flat: zn = 1
    offsets = np.array([0, 4, 8])
    np.testing.assert_allclose(seed_normalised(z, offsets), [1, 0.5, 0.25, 1, 1, 1, 1, 1])
    s, attrs = video_scores(z, offsets, "seed-low-tail")
    # q10 of (.25, .5, 1, 1) with linear interpolation: .25 + 0.3 * .25 = .325
    np.testing.assert_allclose(s, [1 - 0.325, 0.0])
    assert attrs["video_score"] == "seed-low-tail"
    share, attrs = video_scores(z, offsets, "share-below")
    # the dataset's 10 % quantile of zn is in the bin of 0.25: video 0 has 1 of 4 snippets there
    np.testing.assert_allclose(share, [0.25, 0.0])
    assert 0.25 < attrs["video_score_threshold"] <= 0.255


def test_seed_calibrated_scores_ignore_length():
    """A long and a short video with the same shape of z get the same seed-low-tail score."""
    from lanp.method.video_scores import video_scores
    shape = lambda n: 0.5 + 0.5 * np.cos(np.linspace(0, 2 * np.pi, n))       # 1 at both ends
    z = np.concatenate([shape(20) * 3.0, shape(400) * 0.01])                  # very different scales
    s, _ = video_scores(z, np.array([0, 20, 420]), "seed-low-tail")
    assert abs(s[0] - s[1]) < 0.05                                             # sampling of the shape only
    std, _ = video_scores(z, np.array([0, 20, 420]), "std")
    assert std[0] > 100 * std[1]                                               # std sees the scale


def test_tail_length_adjusted_removes_a_log_length_trend():
    """seed-low-tail rises with length by chance; its adjusted form is the residual of a robust fit
    on log L: an exact a + b log L trend is removed, and a video above the trend stays above."""
    from lanp.method.video_scores import get

    lengths = np.array([10, 20, 40, 80, 160, 320, 15, 60, 240, 30])
    q10 = 0.9 - 0.05 * np.log(lengths)                # the low tail drops with length ...
    q10[4] -= 0.2                                     # ... and one video is truly more abnormal
    score = get("seed-low-tail-length-adjusted")
    adjusted, attrs = score.combine({"zn_q10": q10}, lengths)
    assert attrs["video_score_fit_slope"] == pytest.approx(0.05, abs=1e-6)
    np.testing.assert_allclose(np.delete(adjusted, 4), 0.0, atol=1e-6)
    assert adjusted[4] == pytest.approx(0.2, abs=1e-6)
    assert abs(length_score_spearman(lengths, adjusted)) < abs(length_score_spearman(lengths, 1 - q10))
