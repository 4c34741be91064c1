"""lanp.label (the in-memory API) gives the numbers lanp-propagate writes, for packed input and
for a list of per-video arrays; its docstring example runs."""
import doctest

import h5py
import numpy as np
import pytest

import lanp
import lanp.api
from lanp.cli import propagate_main
from lanp.method.ablations import Ablation, AblationRecipe

DATASETS = ("normality", "pseudo_label", "weight", "video_score", "video_abnormal", "cg_iterations", "cg_residual")


def _videos(seed, crops=False):
    rng = np.random.default_rng(seed)
    videos = []
    for v, n in enumerate(rng.integers(3, 40, size=9)):
        x = rng.gamma(2.0, 0.2, size=8) + 0.05 * rng.normal(size=(n, 8))
        if v % 3 == 1:
            x[n // 3: 2 * n // 3] += 1.0
        x = np.abs(x).astype(np.float32)
        videos.append(np.repeat(x[:, None, :], 3, axis=1) * np.array([0.9, 1.0, 1.1])[:, None] if crops else x)
    return [v.astype(np.float32) for v in videos]


def _propagate_file(tmp_path, videos, options):
    path, out = tmp_path / "f.h5", tmp_path / "f.labels.h5"
    with h5py.File(path, "w") as f:
        f["features"] = np.concatenate(videos)
        f["offsets"] = np.concatenate([[0], np.cumsum([len(v) for v in videos])]).astype(np.int64)
    assert propagate_main(["--features", str(path), "--out", str(out), "--quiet", *options]) == 0
    with h5py.File(out, "r") as f:
        return {k: f[k][()] for k in DATASETS}, dict(f.attrs)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("crops", [False, True])
@pytest.mark.parametrize("options,kwargs", [
    ([], {}),
    (["--window", "4", "--video-score", "std-length-adjusted", "--preset", "tail-adjusted"],
     {"window": 4, "video_score": "std-length-adjusted", "preset": "tail-adjusted"}),
    (["--window", "4"], {"window": 4}),                                   # the default: the tri prior
    (["--preset", "official-sht"], {"preset": "official-sht"}),
])
def test_label_equals_lanp_propagate(tmp_path, seed, crops, options, kwargs):
    videos = _videos(seed, crops)
    want, attrs = _propagate_file(tmp_path, videos, options)
    packed = np.concatenate(videos)
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in videos])])
    for got in (lanp.label(videos, **kwargs), lanp.label(packed, offsets, **kwargs)):
        for k in DATASETS:
            np.testing.assert_allclose(getattr(got, k), want[k], rtol=1e-6, atol=1e-12, err_msg=f"seed {seed}: {k}")
        assert got.attrs["n_normal"] == attrs["n_normal"]


def test_label_takes_a_recipe_and_refuses_unknown_options():
    videos = _videos(2)
    base = lanp.label(videos, preset="paper")
    off = lanp.label(videos, recipe=AblationRecipe(ablation=Ablation(reweight=False)))
    assert np.array_equal(off.pseudo_label, base.pseudo_label) and np.all(off.weight == 1.0)
    with pytest.raises(ValueError, match="unknown option.*sigmaa"):
        lanp.label(videos, sigmaa=0.2)
    with pytest.raises(ValueError, match="not used with recipe="):
        lanp.label(videos, recipe=AblationRecipe(), sigma=0.2)
    with pytest.raises(ValueError, match="every video must be"):
        lanp.label([np.ones((3, 4)), np.ones((3, 5))])


def test_docstring_example_runs():
    result = doctest.testmod(lanp.api, raise_on_error=False)
    assert result.attempted >= 4 and result.failed == 0
