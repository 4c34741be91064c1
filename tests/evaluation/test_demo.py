import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from lanp.cli import main  # noqa: E402
from lanp.evaluation.demo import run_demo  # noqa: E402


def test_small_demo_end_to_end(tmp_path, capsys):
    lines = []
    r = run_demo(tmp_path / "demo", train_videos=60, test_videos=24, epochs=25, log=lines.append)
    assert r["auc"] > 0.75, r["metrics"]     # clearly above chance (seed 0 gives 0.87; chance is 0.5)
    assert r["metrics"]["abnormal_videos"] > 0 and r["metrics"]["videos"] == 24
    for key in ("model", "scores", "labels", "roc", "video_plot"):
        assert (tmp_path / "demo").joinpath(r["paths"][key].rsplit("/", 1)[-1]).stat().st_size > 0
    assert f"ROC-AUC {r['auc']:.4f}" in lines[-1]
    # the files it leaves behind give the same number through the CLI
    capsys.readouterr()
    assert main(["evaluate", "--scores", r["paths"]["scores"], "--gt", r["paths"]["test_gt"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["auc"] == pytest.approx(r["auc"])


def test_demo_command(tmp_path, capsys):
    assert main(["demo", "--workdir", str(tmp_path / "d"), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "frame-level ROC-AUC" in out and "roc.png" in out
