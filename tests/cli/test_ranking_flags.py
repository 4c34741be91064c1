"""--abnormal-share, --anchor-search and --forest-*: the ranking presets' settings from the command
line (and a config file) reach the labels exactly as the API's settings do; refusals."""
import h5py
import numpy as np
import pytest

import lanp
from lanp.cli import main, propagate_main
from lanp.method.crossvideo import CrossVideoSettings
from lanp.method.dualprior import DualPriorRecipe, DualPriorSettings
from lanp.method.registry import preset_recipe
from lanp.method.options import PropagateConfig
from lanp.method.triprior import TriPriorRecipe, TriPriorSettings
from shared import assert_sharded_equals_single, packed, scene_videos

DATASETS = ("normality", "pseudo_label", "weight", "video_score", "video_abnormal", "in_video_normality",
            "cross_video_normality")


@pytest.fixture
def videos(rng):
    return scene_videos(rng, n_videos=16)


def write(tmp_path, videos):
    path = tmp_path / "f.h5"
    x, offsets = packed(videos)
    with h5py.File(path, "w") as f:
        f["features"], f["offsets"] = x, offsets
    return path


def run_cli(tmp_path, path, *options):
    out = tmp_path / "l.h5"
    assert propagate_main(["--features", str(path), "--out", str(out), "--quiet", *options]) == 0
    with h5py.File(out, "r") as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


def assert_same(cli, api, names):
    for k in names:
        want = api.extra[k] if k in api.extra else getattr(api, k)
        np.testing.assert_array_equal(cli[k], want, err_msg=k)


def test_tri_prior_options_give_the_api_settings_labels(tmp_path, videos):
    path = write(tmp_path, videos)
    settings = TriPriorSettings(dual=DualPriorSettings(abnormal_share=0.25,
                                                       crossvideo=CrossVideoSettings(anchor_search="exact")),
                                trees=20, per_video=4, forest_seed=3)
    cli, attrs = run_cli(tmp_path, path, "--abnormal-share", "0.25", "--anchor-search", "exact",
                         "--forest-trees", "20", "--forest-per-video", "4", "--forest-seed", "3")
    assert_same(cli, lanp.label(videos, recipe=TriPriorRecipe(settings=settings)), DATASETS + ("isolation_score",))
    assert (attrs["dual_abnormal_share"], attrs["crossvideo_anchor_search"]) == (0.25, "exact")
    assert (attrs["tri_trees"], attrs["tri_per_video"], attrs["tri_forest_seed"]) == (20, 4, 3)
    assert abs(cli["pseudo_label"].mean() - 0.25) < 0.04
    default, _ = run_cli(tmp_path, path)                              # the options changed something
    assert abs(default["pseudo_label"].mean() - 0.15) < 0.04
    assert not np.array_equal(default["isolation_score"], cli["isolation_score"])


def test_one_forest_option_keeps_the_other_defaults(tmp_path, videos):
    path = write(tmp_path, videos)
    cli, attrs = run_cli(tmp_path, path, "--forest-seed", "7")
    assert_same(cli, lanp.label(videos, recipe=TriPriorRecipe(settings=TriPriorSettings(forest_seed=7))),
                DATASETS + ("isolation_score",))
    assert (attrs["tri_trees"], attrs["tri_per_video"], attrs["dual_abnormal_share"]) == (100, 8, 0.15)


def test_dual_prior_options(tmp_path, videos):
    path = write(tmp_path, videos)
    settings = DualPriorSettings(abnormal_share=0.3, crossvideo=CrossVideoSettings(anchor_search="exact"))
    cli, attrs = run_cli(tmp_path, path, "--preset", "dual-prior", "--abnormal-share", "0.3", "--anchor-search", "exact")
    assert_same(cli, lanp.label(videos, recipe=DualPriorRecipe(settings=settings)), DATASETS)
    assert attrs["recipe"] == "dual-prior" and attrs["dual_abnormal_share"] == 0.3


def test_config_file_sets_them_too(tmp_path, videos):
    path = write(tmp_path, videos)
    config = tmp_path / "c.toml"
    config.write_text("[propagate]\nabnormal-share = 0.2\nforest_trees = 30\n")
    cli, attrs = run_cli(tmp_path, path, "--config", str(config))
    settings = TriPriorSettings(dual=DualPriorSettings(abnormal_share=0.2), trees=30)
    assert_same(cli, lanp.label(videos, recipe=TriPriorRecipe(settings=settings)), DATASETS)
    assert (attrs["dual_abnormal_share"], attrs["tri_trees"]) == (0.2, 30)


def test_sharded_run_takes_them(tmp_path, videos):
    settings = TriPriorSettings(dual=DualPriorSettings(abnormal_share=0.2), trees=25)
    assert_sharded_equals_single(tmp_path, videos, lambda: TriPriorRecipe(settings=settings), "tri-prior",
                                 DATASETS + ("isolation_score",), options=("--abnormal-share", "0.2",
                                                                           "--forest-trees", "25"))


@pytest.mark.parametrize("options, message", [
    (("--preset", "paper", "--abnormal-share", "0.2"), "--abnormal-share 0.2 applies to --preset dual-prior or tri-prior, not --preset paper"),
    (("--preset", "tail-adjusted", "--anchor-search", "exact"), "--anchor-search exact applies to --preset dual-prior or tri-prior"),
    (("--preset", "dual-prior", "--forest-trees", "5"), "--forest-trees 5 applies to --preset tri-prior, not --preset dual-prior"),
    (("--abnormal-share", "1.5"), "--abnormal-share: abnormal_share=1.5 is invalid: it must be a number in the open interval (0, 1)"),
    (("--abnormal-share", "0"), "--abnormal-share: abnormal_share=0.0 is invalid"),
    (("--forest-per-video", "0"), "--forest-per-video: per_video=0 is invalid: it must be an integer in [1, 65536]"),
    (("--forest-trees", "-3"), "--forest-trees: trees=-3 is invalid"),
    (("--forest-seed", "-1"), "--forest-seed: forest_seed=-1 is invalid"),
])
def test_refusals_name_the_option_and_touch_nothing(tmp_path, videos, capsys, options, message):
    path = write(tmp_path, videos)
    out = tmp_path / "l.h5"
    out.write_bytes(b"keep me")
    assert main(["propagate", "--features", str(path), "--out", str(out), "--quiet", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert out.read_bytes() == b"keep me"


def test_few_shot_recommended_refuses_them(tmp_path, videos, capsys):
    path = write(tmp_path, videos)
    labels = tmp_path / "h.csv"
    labels.write_text("video_id,kind\nvideo_0000,normal_video\n")
    with h5py.File(path, "a") as f:
        f["video_ids"] = [f"video_{i:04d}" for i in range(len(videos))]
    assert main(["propagate", "--features", str(path), "--out", str(tmp_path / "l.h5"), "--quiet",
                 "--labels-file", str(labels), "--abnormal-share", "0.2"]) == 2
    assert "builds on the in-video recipe" in capsys.readouterr().err
    # with --preset tri-prior the labels and the option go together
    assert main(["propagate", "--features", str(path), "--out", str(tmp_path / "l.h5"), "--quiet",
                 "--labels-file", str(labels), "--preset", "tri-prior", "--abnormal-share", "0.2"]) == 0
    with h5py.File(tmp_path / "l.h5", "r") as f:
        assert f.attrs["dual_abnormal_share"] == 0.2 and f.attrs["human_normal_videos"] == 1


def test_preset_recipe_refuses_settings_of_another_preset():
    with pytest.raises(ValueError, match="do not fit preset 'dual-prior'"):
        preset_recipe(PropagateConfig(preset="dual-prior"), TriPriorSettings())
    with pytest.raises(ValueError, match="do not fit preset 'paper'"):
        preset_recipe(PropagateConfig(preset="paper"), DualPriorSettings())
    recipe = preset_recipe(PropagateConfig(), TriPriorSettings(trees=9))          # recommended = tri-prior
    assert isinstance(recipe, TriPriorRecipe) and recipe.tri.trees == 9
