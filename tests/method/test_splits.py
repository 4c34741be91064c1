"""The data-driven number of normal videos (Otsu cut, two-Gaussian mixture) on hand-made scores."""
import numpy as np
import pytest

from lanp.method.splits import gmm_n_normal, n_normal_from_scores, otsu_n_normal


def test_otsu_finds_the_gap_hand_case():
    # between-class variance by hand: cut after the 3 lowest gives 3*2*(10.5-1)^2 = 541.5, the best
    assert otsu_n_normal(np.array([1.0, 0.5, 1.5, 10.0, 11.0])) == 3
    assert otsu_n_normal(np.array([5.0, 5.0, 5.0])) == 1          # no contrast: floor(V/2), at least 1
    assert otsu_n_normal(np.array([2.0])) == 1
    assert otsu_n_normal(np.array([0.0, 0.0, 0.0, 9.0])) == 3      # ties stay on one side


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_both_rules_recover_a_mixture(seed):
    rng = np.random.default_rng(seed)
    n_normal = int(rng.integers(40, 90))
    s = np.concatenate([rng.normal(0.0, 1.0, n_normal), rng.normal(6.0, 1.0, 120 - n_normal)])
    s = s[rng.permutation(s.size)]
    for rule in (otsu_n_normal, gmm_n_normal):
        assert abs(rule(s) - n_normal) <= 3, f"seed {seed}: {rule.__name__} {rule(s)} vs {n_normal}"


def test_gmm_is_not_fooled_by_unequal_spreads():
    rng = np.random.default_rng(7)
    s = np.concatenate([rng.normal(0.0, 0.2, 100), rng.normal(3.0, 1.5, 40)])
    assert abs(gmm_n_normal(s) - 100) <= 6
    with pytest.raises(ValueError, match="normal_split='count'"):
        n_normal_from_scores(s, "count")
