"""lanp compare --shots: paired draws across methods, shots 0 == lanp, hard overrides, the paired
table, cross-domain end to end, and the refusals."""
import json

import numpy as np
import pytest

from lanp.cli import main
from lanp.data.human_labels import HumanLabels
from lanp.data.io import read_h5, write_h5
from lanp.evaluation.fewshot_compare import (BASELINE_FUNCTIONS, FewShotConfig, hard_overrides, paired,
                                             run_fewshot_files, run_fewshot_worlds)
from lanp.kernels import InputError

TINY = dict(train_videos=16, test_videos=14, dim=16)


def _methods():
    try:
        import lanp.evaluation.fewshot_baselines  # noqa: F401
        return ["lanp", "lanp-fewshot", "lanp-hard-overrides", *BASELINE_FUNCTIONS]
    except ImportError:
        return ["lanp", "lanp-fewshot", "lanp-hard-overrides"]


def test_hard_overrides_hand_case(tmp_path):
    # three videos of 4 snippets; lanp called v0 and v1 abnormal, v2 normal
    offsets = np.array([0, 4, 8, 12])
    write_h5(tmp_path / "lanp.labels.h5",
             {"pseudo_label": np.array([0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0], np.uint8),
              "weight": np.full(12, 0.5, np.float32), "offsets": offsets, "video_ids": ["v0", "v1", "v2"],
              "normality": np.array([1, 0, 0, 1, 0, 1, 1, 1, 0.9, 0.2, 0.8, 0.1]),
              "video_abnormal": np.array([1, 1, 0], np.uint8)}, {"abnormal_ratio": 0.5})
    human = HumanLabels({"v0": "normal_video", "v1": "abnormal_video", "v2": "abnormal_video"},
                        {"v1": ((2, 4),)}, "few.csv")
    data, attrs = read_h5(hard_overrides(tmp_path / "lanp.labels.h5", human, tmp_path / "hard.h5"), "labels")
    assert data["pseudo_label"].tolist() == [0, 0, 0, 0,            # v0: human normal
                                             1, 0, 1, 1,            # v1: lanp's label at 0, the span [2, 4) over it
                                             0, 1, 0, 1]            # v2: forced abnormal, the floor(0.5 * 4) lowest z
    assert data["weight"].tolist() == [1, 1, 1, 1, 0.5, 0.5, 1, 1, 0.5, 0.5, 0.5, 0.5]
    assert data["label_source"].tolist() == [1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0]
    assert data["video_human"].tolist() == [0, 1, 1]
    assert data["video_abnormal"].tolist() == [0, 1, 1]
    assert json.loads(attrs["human_video_ids"]) == ["v0", "v1", "v2"]


def test_label_quality_hand_case(tmp_path):
    from lanp.evaluation.fewshot_compare import label_quality

    write_h5(tmp_path / "l.h5", {"pseudo_label": np.array([1, 1, 0, 1, 0, 1], np.uint8), "weight": np.ones(6, np.float32),
                                 "offsets": np.array([0, 2, 4, 6]), "video_ids": ["a", "b", "c"],
                                 "video_human": np.array([1, -1, -1], np.int8),
                                 "video_abnormal": np.array([1, 0, 1], np.uint8)})
    truth = np.array([1, 1, 1, 0, 0, 1])
    q = label_quality(tmp_path / "l.h5", truth)
    assert q["pseudo_precision"] == 0.75 and q["pseudo_recall"] == 0.75
    # videos b, c: pseudo 1 at snippets 3 and 5, truth 1 at 2 and 5
    assert q["unlabelled_precision"] == 0.5 and q["unlabelled_recall"] == 0.5
    assert q["split_accuracy"] == pytest.approx(2 / 3)          # b is abnormal (snippet 2) but split normal
    assert label_quality(tmp_path / "l.h5", None) == {}


def _run(method, seed, shots, draw, auc):
    return {"method": method, "seed": seed, "shots": shots, "draw": draw, "auc": auc}


def test_paired_hand_case():
    runs = [_run("lanp", 0, 0, None, 0.6), _run("lanp", 1, 0, None, 0.5),
            _run("lanp-fewshot", 0, 5, 0, 0.7), _run("lanp-fewshot", 0, 5, 1, 0.55),
            _run("lanp-fewshot", 1, 5, 0, 0.8), _run("mil", 0, 5, 0, 0.7), _run("mil", 0, 5, 1, 0.6),
            _run("mil", 1, 5, 0, 0.6)]
    rows = {r["against"]: r for r in paired(runs)}
    assert rows["lanp"]["differences"] == pytest.approx([0.1, -0.05, 0.3])        # lanp's seed run, every draw
    assert (rows["lanp"]["wins"], rows["lanp"]["ties"], rows["lanp"]["losses"]) == (2, 0, 1)
    assert rows["mil"]["differences"] == pytest.approx([0.0, -0.05, 0.2])
    assert rows["mil"]["mean_difference"] == pytest.approx(0.05) and rows["mil"]["ties"] == 1


def test_summary_pools_worlds():
    from lanp.evaluation.fewshot_compare import summary, summarize

    results = {}
    for w, (a, b) in {"w1": (0.7, 0.6), "w2": (0.5, 0.55)}.items():
        runs = [dict(_run("lanp", 0, 0, None, b), ap=b, video_auc=b, auc_abnormal=b, episodes={}),
                dict(_run("lanp-fewshot", 0, 5, 0, a), ap=a, video_auc=a, auc_abnormal=a, episodes={})]
        results[w] = {"table": summarize(runs), "paired": paired(runs)}
    s = summary(results)
    row = next(r for r in s["table"] if r["method"] == "lanp-fewshot")
    assert row["auc"] == pytest.approx(0.6) and row["worlds"] == 2
    q = s["paired"][0]
    assert q["differences"] == pytest.approx([0.1, -0.05]) and (q["worlds_ahead"], q["worlds"]) == (1, 2)


def test_worlds_pair_every_method_and_zero_shots_is_lanp(tmp_path):
    config = FewShotConfig(methods=_methods(), shots=[0, 1, 2], draws=2, epochs=1, lr=1e-3, episodes=4, queries=2)
    payload = run_fewshot_worlds(["scenes"], tmp_path / "fs", config, log=lambda m: None, **TINY)
    runs = payload["results"]["scenes"]["runs"]
    by = {}
    for r in runs:
        by.setdefault((r["shots"], r["draw"]), {})[r["method"]] = r
    lanp = by[(0, None)]["lanp"]
    zero = by[(0, 0)]["lanp-fewshot"]
    for key in ("auc", "ap", "auc_abnormal", "video_auc"):
        assert zero[key] == lanp[key]                                 # shots 0: the same labels, the same model
    for k in (1, 2):
        for d in (0, 1):
            methods = by[(k, d)]
            assert set(methods) == set(config.methods) - {"lanp"}
            assert len({tuple(r["labelled"]) for r in methods.values()}) == 1          # one draw for every method
            assert len(methods["lanp-fewshot"]["labelled"]) == 2 * k
    for d in (0, 1):                                                  # nested over shots
        assert set(by[(1, d)]["lanp-fewshot"]["labelled"]) < set(by[(2, d)]["lanp-fewshot"]["labelled"])
    assert lanp["pseudo_precision"] is not None and lanp["split_accuracy"] is not None
    assert by[(1, 0)]["lanp-hard-overrides"]["unlabelled_precision"] is not None
    result = payload["results"]["scenes"]
    assert {(p["against"], p["shots"]) for p in result["paired"] if p["metric"] == "auc"} >= \
        {("lanp", 1), ("lanp", 2), ("lanp-hard-overrides", 2)}
    saved = json.loads((tmp_path / "fs" / "compare.json").read_text())
    assert len(saved["results"]["scenes"]["runs"]) == len(runs)
    md = (tmp_path / "fs" / "compare.md").read_text()
    assert "| lanp-fewshot | 2 | 2 |" in md and "Episodic protocol" in md


def test_cross_domain_runs_end_to_end(tmp_path):
    config = FewShotConfig(methods=["lanp", "lanp-fewshot"], shots=[1], draws=1, epochs=1, lr=1e-3,
                           adapt=["none", "coral"], episodes=2, queries=2)
    payload = run_fewshot_worlds(["subtle"], tmp_path / "x", config, source_world="scenes", log=lambda m: None, **TINY)
    runs = payload["results"]["scenes -> subtle"]["runs"]
    assert {r["method"] for r in runs} == {"lanp", "lanp-fewshot-none", "lanp-fewshot-coral"}
    labelled = [r["labelled"] for r in runs if r["method"] != "lanp"]
    assert labelled[0] == labelled[1] and all(v.startswith("source_") for v in labelled[0])
    against = {(p["method"], p["against"]) for p in payload["results"]["scenes -> subtle"]["paired"]}
    assert ("lanp-fewshot-coral", "lanp-fewshot-none") in against


def _files(tmp_path):
    from lanp.data.worlds import generate, write_split

    drawn = generate("scenes", seed=0, **TINY)
    write_split(drawn.train, tmp_path / "train.h5", tmp_path / "train.gt.h5")
    write_split(drawn.test, tmp_path / "test.h5", tmp_path / "test.gt.h5")
    return drawn


def test_labels_from_the_test_split_are_refused(tmp_path, capsys):
    drawn = _files(tmp_path)
    config = FewShotConfig(methods=["lanp-hard-overrides"], shots=[1], draws=1, epochs=1)
    # the training file given as the test file too: every drawn id is a test id
    with pytest.raises(InputError, match="is also a test video"):
        run_fewshot_files(tmp_path / "train.h5", tmp_path / "train.h5", tmp_path / "train.gt.h5",
                          tmp_path / "train.gt.h5", tmp_path / "o1", config, log=lambda m: None)
    vid = drawn.train.video_ids[0]
    (tmp_path / "few.csv").write_text(f"video_id,kind\n{vid},normal_video\n")
    code = main(["compare", "--train", str(tmp_path / "train.h5"), "--test", str(tmp_path / "train.h5"),
                 "--gt", str(tmp_path / "train.gt.h5"), "--labels-file", str(tmp_path / "few.csv"),
                 "--methods", "lanp-hard-overrides", "--epochs", "1", "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and vid in err and "also a test video" in err


def test_cli_refusals(tmp_path, capsys):
    _files(tmp_path)
    files = ["--train", str(tmp_path / "train.h5"), "--test", str(tmp_path / "test.h5"),
             "--gt", str(tmp_path / "test.gt.h5")]
    cases = [
        (files + ["--shots", "1"], "--train-gt"),                                    # nothing to draw from
        (files + ["--shots", "1", "--source-world", "scenes"], "--source-world needs --worlds"),
        (["--worlds", "scenes", "--shots", "1", "--train", "t.h5"], "not both"),
        (["--worlds", "scenes", "--shots", "-1"], "--shots"),
        (["--worlds", "scenes", "--shots", "1", "--methods", "oracle"], "choose from"),
        (["--worlds", "scenes", "--shots", "1", "--adapt", "pca"], "--adapt"),
        (["--worlds", "scenes", "--source-world", "scenes"], "give --shots too"),
        (["--worlds", "scenes", "--shots", "1", "--label-kind", "span", "--train-videos", "16", "--test-videos", "14",
          "--dim", "16", "--methods", "lanp-hard-overrides", "--shots", "9", "--epochs", "1"], "shots=9 is invalid"),
    ]
    for k, (argv, message) in enumerate(cases):
        code = main(["compare", *argv, "--out", str(tmp_path / f"out{k}")])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (argv, err)


def test_files_through_the_cli(tmp_path, capsys):
    _files(tmp_path)
    code = main(["compare", "--train", str(tmp_path / "train.h5"), "--test", str(tmp_path / "test.h5"),
                 "--gt", str(tmp_path / "test.gt.h5"), "--train-gt", str(tmp_path / "train.gt.h5"),
                 "--shots", "1", "--draws", "2", "--label-kind", "video", "--seeds", "1", "--methods", "lanp", "lanp-fewshot",
                 "--epochs", "1", "--episodes", "2", "--queries", "2", "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "o" / "compare.json").read_text())
    runs = saved["results"]["files"]["runs"]
    assert [(r["method"], r["shots"], r["draw"]) for r in runs] == [("lanp", 0, None), ("lanp-fewshot", 1, 0),
                                                                     ("lanp-fewshot", 1, 1)]
    assert all(r["pseudo_precision"] is not None for r in runs)
    assert (tmp_path / "o" / "runs" / "seed0" / "labels.k1.d0.csv").read_text().count("abnormal_span") == 0


def test_the_dual_prior_base_zero_shots_is_its_lanp_row(tmp_path):
    """--preset dual-prior: every lanp row runs the default's recipe; 0 shots equals it, a 1-shot
    draw labels 2 videos; other presets are refused."""
    config = FewShotConfig(methods=["lanp", "lanp-fewshot"], shots=[0, 1], draws=1, epochs=1, lr=1e-3,
                           episodes=2, queries=2, preset="dual-prior")
    payload = run_fewshot_worlds(["scenes"], tmp_path / "fs", config, log=lambda m: None, **TINY)
    by = {(r["shots"], r["method"]): r for r in payload["results"]["scenes"]["runs"]}
    for key in ("auc", "ap", "auc_abnormal", "video_auc"):
        assert by[(0, "lanp-fewshot")][key] == by[(0, "lanp")][key]
    assert len(by[(1, "lanp-fewshot")]["labelled"]) == 2
    with pytest.raises(InputError, match="cross-video"):
        FewShotConfig(preset="cross-video").check()
