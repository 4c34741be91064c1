"""Feature alignment (lanp.method.adapt): CORAL and diagonal whitening on random data, refusals."""
import numpy as np
import pytest
import scipy.linalg

from lanp.kernels import InputError
from lanp.method.adapt import fit_alignment, ledoit_wolf_shrinkage, shrunk_covariance


def _cov(x):
    xc = x - x.mean(axis=0)
    return xc.T @ xc / x.shape[0]


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _domains(rng, n_s=400, n_t=300, D=12):
    """Two correlated Gaussian clouds with different means, scales and correlations."""
    A_s = rng.normal(size=(D, D)) * rng.uniform(0.2, 2.0, size=D)
    A_t = rng.normal(size=(D, D)) * rng.uniform(0.2, 2.0, size=D)
    xs = rng.normal(size=(n_s, D)) @ A_s + rng.normal(0, 3, size=D)
    xt = rng.normal(size=(n_t, D)) @ A_t + rng.normal(0, 3, size=D)
    return xs.astype(np.float32), xt


def test_coral_matches_the_target_mean_and_covariance(rng):
    xs, xt = _domains(rng)
    a = fit_alignment(xs, xt, "coral", shrinkage=0.0)
    moved = a.apply(xs)
    assert moved.dtype == np.float64 and moved.shape == xs.shape
    assert _rel(moved.mean(axis=0), xt.mean(axis=0)) < 1e-10
    assert _rel(_cov(moved), _cov(xt)) < 1e-10


def test_coral_with_shrinkage_against_a_scipy_reference(rng):
    xs, xt = _domains(rng, n_s=30, n_t=25, D=20)            # fewer rows than needed for a full-rank S
    lam = float(rng.uniform(0.05, 0.9))
    a = fit_alignment(xs, xt, "coral", shrinkage=lam)
    Cs = (1 - lam) * _cov(xs.astype(np.float64)) + lam * np.trace(_cov(xs.astype(np.float64))) / 20 * np.eye(20)
    Ct = (1 - lam) * _cov(xt) + lam * np.trace(_cov(xt)) / 20 * np.eye(20)
    ref = np.real(np.linalg.inv(scipy.linalg.sqrtm(Cs)) @ scipy.linalg.sqrtm(Ct))
    expect = (xs - xs.astype(np.float64).mean(axis=0)) @ ref + xt.mean(axis=0)
    assert _rel(a.apply(xs), expect) < 1e-8
    assert a.shrinkage == (lam, lam)


def test_identity_when_source_is_target(rng):
    xs, _ = _domains(rng)
    for method, shrink in (("coral", "auto"), ("coral", 0.0), ("whiten", "auto"), ("none", "auto")):
        a = fit_alignment(xs, xs, method, shrinkage=shrink)
        assert _rel(a.apply(xs), xs.astype(np.float64)) < 1e-10, method


def test_whiten_matches_each_feature_mean_and_variance(rng):
    xs, xt = _domains(rng)
    moved = fit_alignment(xs, xt, "whiten", shrinkage=0.0).apply(xs)
    assert _rel(moved.mean(axis=0), xt.mean(axis=0)) < 1e-10
    assert _rel(moved.var(axis=0), xt.var(axis=0)) < 1e-10


def test_hand_case_one_feature():
    # source {0, 2}: mean 1, var 1; target {10, 16}: mean 13, var 9 -> x' = (x - 1) * 3 + 13
    a = fit_alignment(np.array([[0.0], [2.0]]), np.array([[10.0], [16.0]]), "coral", shrinkage=0.0)
    assert np.allclose(a.apply(np.array([[0.0], [2.0], [5.0]])), [[10.0], [16.0], [25.0]], rtol=0, atol=1e-12)
    assert fit_alignment(np.array([[0.0], [2.0]]), np.array([[10.0], [16.0]]), "none").apply([[5.0]])[0, 0] == 5.0


def test_a_feature_without_source_variance_maps_to_the_target_mean(rng):
    xs, xt = _domains(rng, D=6)
    xs[:, 2] = 0.0
    moved = fit_alignment(xs, xt, "whiten", shrinkage=0.0).apply(xs)
    assert np.allclose(moved[:, 2], xt[:, 2].mean(), rtol=1e-12)
    assert np.isfinite(fit_alignment(xs, xt, "coral", shrinkage=0.0).apply(xs)).all()


def test_ledoit_wolf_against_scikit_learn(rng):
    from sklearn.covariance import ledoit_wolf_shrinkage as sk

    xs, _ = _domains(rng, n_s=40, D=15)
    x = xs.astype(np.float64)
    assert abs(ledoit_wolf_shrinkage(x) - sk(x, assume_centered=False)) < 1e-10
    lam = ledoit_wolf_shrinkage(x)
    assert 0.0 < lam <= 1.0
    assert _rel(shrunk_covariance(x, lam), (1 - lam) * _cov(x) + lam * np.trace(_cov(x)) / 15 * np.eye(15)) < 1e-12


def test_refusals(rng):
    xs, xt = _domains(rng, D=5)
    with pytest.raises(InputError, match="D = 5 but target rows have D = 4"):
        fit_alignment(xs, xt[:, :4])
    with pytest.raises(InputError, match="target rows: 1 row"):
        fit_alignment(xs, xt[:1])
    with pytest.raises(InputError, match="source rows: 0 row"):
        fit_alignment(xs[:0], xt)
    bad = xs.copy()
    bad[7, 3] = np.nan
    with pytest.raises(InputError, match="source rows: row 7, feature 3 holds nan"):
        fit_alignment(bad, xt)
    bad = xt.copy()
    bad[2, 1] = np.inf
    with pytest.raises(InputError, match="target rows: row 2, feature 1 holds inf"):
        fit_alignment(xs, bad)
    with pytest.raises(InputError, match="choose one of coral, whiten, none"):
        fit_alignment(xs, xt, "pca")
    with pytest.raises(InputError, match=r"shrinkage=1.5 is invalid"):
        fit_alignment(xs, xt, shrinkage=1.5)
    a = fit_alignment(xs, xt)
    with pytest.raises(InputError, match="D = 3 but the alignment was fitted on D = 5"):
        a.apply(xs[:, :3])
    rows = xs[:2].copy()
    rows[1, 0] = np.nan
    with pytest.raises(InputError, match="rows: row 1, feature 0 holds nan"):
        a.apply(rows)
