"""lanp compare --worlds: tables per world, the summary's ranks and gaps, the heat map, refusals."""
import json

import pytest

from lanp.cli import main
from lanp.evaluation.compare import CompareConfig
from lanp.evaluation.worlds_compare import mean_ranks, run_worlds, summary_rows
from lanp.kernels import InputError


def _row(method, auc):
    return {"method": method, "auc": {"mean": auc, "std": 0.0}, "ap": {"mean": auc, "std": 0.0},
            **{k: {"mean": None, "std": None} for k in ("precision", "recall", "split_video_auc",
                                                         "length_score_spearman")}}


def test_mean_ranks_and_gaps_hand_case():
    per_world = {"w1": [_row("a", 0.9), _row("b", 0.7), _row("oracle", 0.95)],
                 "w2": [_row("a", 0.6), _row("b", 0.8), _row("oracle", 0.8)]}
    ranks = mean_ranks(per_world)
    assert ranks == {"a": 2.5, "b": 2.25, "oracle": 1.25}          # w2: b and oracle tie at rank 1.5
    rows = {r["method"]: r for r in summary_rows(per_world)}
    assert rows["a"]["gap"] == pytest.approx((0.05 + 0.2) / 2) and rows["oracle"]["gap"] == 0.0
    assert [r["method"] for r in summary_rows(per_world)] == ["oracle", "b", "a"]


def test_run_worlds_writes_every_world_and_a_summary(tmp_path):
    config = CompareConfig(methods=["lanp", "trivial-ends", "oracle"], seeds=2, epochs=1, lr=1e-3)
    payload = run_worlds(["easy", "scenes"], tmp_path / "w", config, train_videos=12, test_videos=8, dim=16,
                         log=lambda m: None)
    assert list(payload["per_world"]) == ["easy", "scenes"]
    for rows in payload["per_world"].values():
        assert [r["method"] for r in rows] == ["lanp", "trivial-ends", "oracle"]
        for r in rows:
            assert [run["seed"] for run in r["runs"]] == [0, 1]
        lanp_row = rows[0]
        assert lanp_row["split_accuracy"]["mean"] is not None and lanp_row["precision"]["mean"] is not None
    assert {r["method"] for r in payload["summary"]} == {"lanp", "trivial-ends", "oracle"}
    md = (tmp_path / "w" / "compare.md").read_text()
    assert "## Summary" in md and "## easy" in md and "## scenes" in md and "gap to oracle" in md
    assert json.loads((tmp_path / "w" / "compare.json").read_text())["worlds"] == ["easy", "scenes"]
    assert (tmp_path / "w" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_refusals(tmp_path):
    with pytest.raises(InputError, match="choose from"):
        run_worlds(["nowhere"], tmp_path / "x", CompareConfig(methods=["lanp"], seeds=1, epochs=1))
    assert main(["compare", "--worlds", "easy", "--train", "t.h5", "--out", str(tmp_path / "y")]) == 2
    assert main(["compare", "--out", str(tmp_path / "z")]) == 2                      # neither data nor worlds


def test_an_existing_file_as_out_is_refused_before_any_work(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("keep")
    assert main(["compare", "--worlds", "easy", "--methods", "lanp", "--seeds", "1", "--epochs", "1",
                 "--out", str(target)]) == 2
    captured = capsys.readouterr()
    assert "== world" not in captured.out and "error:" in captured.err and "--out" in captured.err
    assert target.read_text() == "keep"


def test_first_seed_draws_fresh_worlds_and_equals_those_seeds_run_from_zero(tmp_path):
    """--first-seed 2 --seeds 1 runs seed 2 only: the same numbers as seed 2 of a run from 0."""
    common = dict(methods=["trivial-ends"], epochs=1, lr=1e-3)
    late = run_worlds(["easy"], tmp_path / "late", CompareConfig(seeds=1, first_seed=2, **common),
                      train_videos=12, test_videos=8, dim=16, log=lambda m: None)
    full = run_worlds(["easy"], tmp_path / "full", CompareConfig(seeds=3, **common),
                      train_videos=12, test_videos=8, dim=16, log=lambda m: None)
    (late_row,), (full_row,) = late["per_world"]["easy"], full["per_world"]["easy"]
    assert [r["seed"] for r in late_row["runs"]] == [2]
    assert late_row["runs"][0]["auc"] == full_row["runs"][2]["auc"]
    assert late_row["runs"][0]["auc"] != full_row["runs"][0]["auc"]
    assert late["settings"]["first_seed"] == 2
    assert "from seed 2" in (tmp_path / "late" / "compare.md").read_text()
    for bad in (-1, 1.5, True):
        with pytest.raises(InputError, match="first_seed="):
            CompareConfig(methods=["lanp"], first_seed=bad).check()
    assert main(["compare", "--worlds", "easy", "--shots", "1", "--first-seed", "1", "--out", str(tmp_path / "f")]) == 2
