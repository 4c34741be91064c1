"""Training with human labels (issue 16, deliverable 4): the human weight, labelled videos in every
batch, the multiple-instance ranking term, old labels files unchanged, and the refusals."""
import json

import h5py

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lanp.model.train as T  # noqa: E402
from shared import learnable_snippets  # noqa: E402
from lanp.cli import main  # noqa: E402
from lanp.data.io import write_h5  # noqa: E402
from lanp.kernels import InputError  # noqa: E402
from lanp.model.detector import Detector  # noqa: E402
from lanp.model.train import (HumanBatches, TrainConfig, human_weights, load_checkpoint, mil_hinge,  # noqa: E402
                              sample_indices, train, weighted_bce)


def dataset(tmp_path, rng, V=10, D=5):
    """Feature file + pseudo-labels: the first half of the videos hold a shifted run of snippets."""
    x, y, offsets, lengths = learnable_snippets(rng, V, D, 6, 30)
    N = int(offsets[-1])
    ids = [f"vid{v:02d}" for v in range(V)]
    w = rng.uniform(0.5, 1.0, N).astype(np.float32)
    feats = tmp_path / "f.h5"
    write_h5(feats, {"features": x, "offsets": offsets, "video_ids": ids})
    return {"feats": feats, "x": x, "y": y, "w": w, "offsets": offsets, "ids": ids, "lengths": lengths}


def write_labels(path, d, human=None, extra_ids=(), attrs=True, **override):
    """A labels file; with ``human`` (id -> 'normal'|'abnormal') the few-shot datasets of the contract:
    labelled normal videos pseudo 0 / weight 1 / source 1, labelled abnormal videos' shifted run
    pseudo 1 / weight 1 / source 1 (their other snippets stay pseudo)."""
    y, w, offsets, ids = d["y"].copy(), d["w"].copy(), d["offsets"], d["ids"]
    data = {"pseudo_label": y, "weight": w, "offsets": offsets, "video_ids": ids}
    meta = {}
    if human is not None:
        source = np.zeros(len(y), np.uint8)
        video_human = np.full(len(ids), -1, np.int8)
        for v, vid in enumerate(ids):
            s = slice(offsets[v], offsets[v + 1])
            if human.get(vid) == "normal":
                y[s], w[s], source[s], video_human[v] = 0, 1.0, 1, 0
            elif human.get(vid) == "abnormal":
                run = np.flatnonzero(d["y"][s]) + offsets[v]
                w[run], source[run], video_human[v] = 1.0, 1, 1
        data.update(label_source=source, video_human=video_human)
        if attrs:
            meta = {"human_video_ids": json.dumps(sorted(human) + list(extra_ids)), "human_labels": "few.csv"}
    data.update(override)
    write_h5(path, data, meta)
    return path


HUMAN = {"vid00": "abnormal", "vid01": "abnormal", "vid07": "normal", "vid08": "normal"}


# -- the loss terms, by hand -----------------------------------------------------------------------

def test_human_weights_multiply_only_human_snippets():
    w = np.array([0.5, 1.0, 0.25, 2.0], np.float32)
    src = np.array([0, 1, 1, 0], np.uint8)
    np.testing.assert_array_equal(human_weights(w, src, 3.0), [0.5, 3.0, 0.75, 2.0])
    np.testing.assert_array_equal(human_weights(w, src, 0.0), [0.5, 0.0, 0.0, 2.0])
    assert human_weights(w, np.zeros(4, np.uint8), 7.0).tobytes() == w.tobytes()


def test_weighted_bce_with_human_weight_by_hand():
    s = torch.tensor([0.9, 0.2, 0.6, 0.3])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    w = np.array([0.5, 1.0, 2.0, 1.0], np.float32)
    src = np.array([1, 0, 0, 1], np.uint8)
    got = float(weighted_bce(s, y, torch.from_numpy(human_weights(w, src, 4.0))))
    expected = -(4 * 0.5 * np.log(0.9) + 1.0 * np.log(0.8) + 2.0 * np.log(0.4) + 4 * 1.0 * np.log(0.3)) / 4
    assert got == pytest.approx(expected, rel=1e-6)


def test_mil_hinge_by_hand():
    s = torch.tensor([[0.1, 0.9, 0.2],      # abnormal, max 0.9
                      [0.3, 0.2, 0.1],      # abnormal, max 0.3
                      [0.5, 0.4, 0.0],      # normal, max 0.5
                      [0.05, 0.1, 0.0],     # normal, max 0.1
                      [0.99, 0.0, 0.0]])    # unlabelled: not in any pair
    abn = torch.tensor([True, True, False, False, False])
    nor = torch.tensor([False, False, True, True, False])
    pairs = [(0.9, 0.5), (0.9, 0.1), (0.3, 0.5), (0.3, 0.1)]
    expected = np.mean([max(0.0, 1 - a + b) for a, b in pairs])
    assert float(mil_hinge(s, abn, nor)) == pytest.approx(expected, rel=1e-6)
    none = mil_hinge(s.requires_grad_(), abn, torch.zeros(5, dtype=torch.bool))
    assert float(none.detach()) == 0.0
    none.backward()                                       # stays in the graph, zero gradient
    assert torch.all(s.grad == 0)


# -- the loss inside training, by hand ---------------------------------------------------------------

@pytest.mark.parametrize("human_weight,mil_weight", [(1.0, 0.0), (3.0, 0.0), (0.0, 0.0), (2.5, 0.7)])
def test_first_training_loss_is_the_stated_formula(tmp_path, rng, human_weight, mil_weight):
    d = dataset(tmp_path, rng)
    labels = write_labels(tmp_path / "l.h5", d, HUMAN)
    seed, V = int(rng.integers(1 << 30)), len(d["ids"])
    cfg = TrainConfig(epochs=1, batch_videos=V, snippets=8, dropout=0.0, seed=seed, lr=1e-3,
                      human_weight=human_weight, mil_weight=mil_weight)
    s = train(d["feats"], labels, tmp_path / "m.pt", cfg, quiet=True)
    # the model before its first step: the same seed, the same initialisation
    torch.manual_seed(seed)
    model = Detector(5, hidden=cfg.hidden, dropout=0.0)
    g = d["offsets"][:-1, None] + sample_indices(d["lengths"], 8)
    with torch.no_grad():
        out = model(torch.from_numpy(d["x"][g])).double().numpy()
    source = np.zeros(len(d["y"]), np.uint8)
    y, w = d["y"].astype(np.float64), d["w"].astype(np.float64)
    for v, vid in enumerate(d["ids"]):
        sl = slice(d["offsets"][v], d["offsets"][v + 1])
        if HUMAN.get(vid) == "normal":
            y[sl], w[sl], source[sl] = 0, 1.0, 1
        elif HUMAN.get(vid) == "abnormal":
            run = np.flatnonzero(d["y"][sl]) + d["offsets"][v]
            w[run], source[run] = 1.0, 1
    wh = np.where(source == 1, w * human_weight, w)[g]
    yb = y[g]
    expected = -np.mean(wh * (yb * np.log(out) + (1 - yb) * np.log(1 - out)))
    m = out.max(axis=1)
    abn = [m[v] for v, vid in enumerate(d["ids"]) if HUMAN.get(vid) == "abnormal"]
    nor = [m[v] for v, vid in enumerate(d["ids"]) if HUMAN.get(vid) == "normal"]
    expected += mil_weight * np.mean([max(0.0, 1 - a + b) for a in abn for b in nor])
    assert s["loss_history"][0] == pytest.approx(expected, rel=1e-5)


# -- batches ---------------------------------------------------------------------------------------

def test_every_batch_holds_a_labelled_video_of_each_kind(rng):
    V = int(rng.integers(20, 60))
    vh = np.full(V, -1, np.int8)
    labelled = rng.choice(V, 5, replace=False)
    vh[labelled[:2]], vh[labelled[2:]] = 1, 0
    batches = HumanBatches(vh, size=int(rng.integers(3, 8)))
    seen = set()
    for epoch in range(4):
        order = rng.permutation(V)
        out = list(batches(order))
        assert sum(len(b) for b in out) >= V
        for k, b in enumerate(out):
            base = order[k * batches.size:(k + 1) * batches.size]
            np.testing.assert_array_equal(b[:len(base)], base)      # the shuffled batch, topped up
            assert len(b) <= len(base) + 2 and len(set(b.tolist())) == len(b)
            assert (vh[b] == 1).any() and (vh[b] == 0).any()
            seen.update(b[len(base):].tolist())
    assert seen <= set(labelled.tolist()) and len(seen) == 5               # the cycle reaches every one


def test_batches_without_labels_are_plain_slices(rng):
    order = rng.permutation(23)
    out = list(HumanBatches(np.full(23, -1, np.int8), 5)(order))
    assert [b.tolist() for b in out] == [order[i:i + 5].tolist() for i in range(0, 23, 5)]


def test_training_batches_hold_labelled_videos(tmp_path, rng, monkeypatch):
    d = dataset(tmp_path, rng, V=16)
    human = {"vid03": "abnormal", "vid12": "normal"}
    labels = write_labels(tmp_path / "l.h5", d, human)
    recorded = []

    class Recording(HumanBatches):
        def __call__(self, order):
            for b in super().__call__(order):
                recorded.append(self.video_human[b].copy())
                yield b

    monkeypatch.setattr(T, "HumanBatches", Recording)
    s = train(d["feats"], labels, tmp_path / "m.pt", TrainConfig(epochs=3, batch_videos=3, val_fraction=0.3),
              quiet=True)
    assert len(recorded) >= 3 * 4
    assert all((b == 1).any() and (b == 0).any() for b in recorded)
    assert s["human_videos_trained"] == {"abnormal": 1, "normal": 1} and s["val_videos"] == 4   # floor(0.3 * 14)


# -- old labels files: bit for bit -----------------------------------------------------------------

def reference_training(d, cfg):
    """Today's training loop (before human labels), written out: seeded permutation, fixed uniform
    sampling, shuffled batches, RMSprop on the weighted BCE."""
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    V = len(d["ids"])
    rng.permutation(V)                                      # the (unused) validation permutation
    g = d["offsets"][:-1, None] + sample_indices(d["lengths"], cfg.snippets)
    xt, yt, wt = (torch.from_numpy(np.ascontiguousarray(a)) for a in
                  (d["x"][g], d["y"][g].astype(np.float32), d["w"][g]))
    model = Detector(d["x"].shape[1], hidden=cfg.hidden, dropout=cfg.dropout)
    opt = torch.optim.RMSprop(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    model.train()
    for _ in range(cfg.epochs):
        order = torch.from_numpy(rng.permutation(V))
        for b in range(0, V, cfg.batch_videos):
            idx = order[b:b + cfg.batch_videos]
            loss = weighted_bce(model(xt[idx]), yt[idx], wt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.state_dict()


def test_old_labels_files_train_exactly_as_before(tmp_path, rng):
    d = dataset(tmp_path, rng, V=11)
    seed = int(rng.integers(1 << 30))
    old = write_labels(tmp_path / "old.h5", d)
    none = write_labels(tmp_path / "none.h5", d, human={})            # few-shot datasets, nothing labelled
    expected = reference_training(d, TrainConfig(epochs=3, batch_videos=4, seed=seed, lr=1e-3))
    runs = [(old, TrainConfig(epochs=3, batch_videos=4, seed=seed, lr=1e-3)),
            (old, TrainConfig(epochs=3, batch_videos=4, seed=seed, lr=1e-3, human_weight=5.0, mil_weight=2.0)),
            (none, TrainConfig(epochs=3, batch_videos=4, seed=seed, lr=1e-3, human_weight=5.0, mil_weight=2.0))]
    for k, (labels, cfg) in enumerate(runs):
        train(d["feats"], labels, tmp_path / f"m{k}.pt", cfg, quiet=True)
        model, ckpt = load_checkpoint(tmp_path / f"m{k}.pt")
        for name, value in expected.items():
            assert torch.equal(ckpt["state_dict"][name], value), (k, name, seed)
        assert ckpt["human_video_ids"] == []


def test_human_labels_change_training(tmp_path, rng):
    d = dataset(tmp_path, rng)
    old = write_labels(tmp_path / "old.h5", d)
    few = write_labels(tmp_path / "few.h5", d, HUMAN)
    cfg = TrainConfig(epochs=2, batch_videos=4, seed=1, human_weight=4.0, mil_weight=1.0)
    train(d["feats"], old, tmp_path / "a.pt", cfg, quiet=True)
    train(d["feats"], few, tmp_path / "b.pt", cfg, quiet=True)
    a, b = load_checkpoint(tmp_path / "a.pt")[1], load_checkpoint(tmp_path / "b.pt")[1]
    assert not torch.equal(a["state_dict"]["fc2.weight"], b["state_dict"]["fc2.weight"])


def test_checkpoint_records_every_labelled_id(tmp_path, rng):
    d = dataset(tmp_path, rng)
    # the attribute may name labelled videos of another feature file (a cross-domain source): kept
    few = write_labels(tmp_path / "few.h5", d, HUMAN, extra_ids=("elsewhere_007",))
    s = train(d["feats"], few, tmp_path / "m.pt", TrainConfig(epochs=1, val_fraction=0.5), quiet=True)
    ckpt = load_checkpoint(tmp_path / "m.pt")[1]
    assert sorted(ckpt["human_video_ids"]) == sorted([*HUMAN, "elsewhere_007"])
    assert ckpt["human_labels"] == "few.csv"
    assert s["human_videos_trained"] == {"abnormal": 2, "normal": 2} and s["val_videos"] == 3
    # without the attribute the datasets give the ids
    few = write_labels(tmp_path / "few2.h5", d, HUMAN, attrs=False)
    train(d["feats"], few, tmp_path / "m2.pt", TrainConfig(epochs=1), quiet=True)
    assert sorted(load_checkpoint(tmp_path / "m2.pt")[1]["human_video_ids"]) == sorted(HUMAN)
    # a labelled video the attribute does not list: the file contradicts itself
    bad = tmp_path / "bad.h5"
    write_labels(bad, d, HUMAN)
    with h5py.File(bad, "a") as f:
        f.attrs["human_video_ids"] = json.dumps(["vid00", "vid01", "vid07"])
    with pytest.raises(InputError, match="'video_human' marks video 'vid08' as labelled but the attribute"):
        train(d["feats"], bad, tmp_path / "m3.pt", TrainConfig(epochs=1), quiet=True)


# -- refusals --------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("human_weight", -1.0), ("human_weight", float("nan")),
                                         ("human_weight", float("inf")), ("mil_weight", -0.5),
                                         ("mil_weight", "1")])
def test_bad_weights_are_refused(tmp_path, rng, field, value):
    d = dataset(tmp_path, rng)
    labels = write_labels(tmp_path / "l.h5", d, HUMAN)
    with pytest.raises(InputError, match=f"{field}=.* is invalid: it must be a finite number"):
        train(d["feats"], labels, tmp_path / "m.pt", TrainConfig(epochs=1, **{field: value}), quiet=True)
    assert not (tmp_path / "m.pt").exists()


def test_bad_human_datasets_are_refused(tmp_path, rng):
    d = dataset(tmp_path, rng)
    N, V = len(d["y"]), len(d["ids"])
    cases = [
        ({"label_source": np.zeros(N, np.uint8)}, "has 'label_source' but not 'video_human'"),
        ({"video_human": np.full(V, -1, np.int8)}, "has 'video_human' but not 'label_source'"),
    ]
    for k, (extra, message) in enumerate(cases):
        path = tmp_path / f"bad{k}.h5"
        write_h5(path, {"pseudo_label": d["y"], "weight": d["w"], "offsets": d["offsets"], "video_ids": d["ids"],
                        **extra})
        with pytest.raises(InputError, match=message):
            train(d["feats"], path, tmp_path / "m.pt", TrainConfig(epochs=1), quiet=True)
    source = np.zeros(N, np.uint8)
    source[d["offsets"][2] + 4] = 2
    bad = write_labels(tmp_path / "b1.h5", d, {}, label_source=source)
    with pytest.raises(InputError, match="'label_source' of video 'vid02', snippet 4 is 2: it must be one of 0, 1"):
        train(d["feats"], bad, tmp_path / "m.pt", TrainConfig(epochs=1), quiet=True)
    vh = np.full(V, -1, np.int8)
    vh[3] = 5
    bad = write_labels(tmp_path / "b2.h5", d, {}, video_human=vh)
    with pytest.raises(InputError, match="'video_human' of video 'vid03' is 5: it must be one of -1, 0, 1"):
        train(d["feats"], bad, tmp_path / "m.pt", TrainConfig(epochs=1), quiet=True)
    bad = write_labels(tmp_path / "b3.h5", d, {}, video_human=np.full(V + 1, -1, np.int8))
    with pytest.raises(InputError, match="do not match"):
        train(d["feats"], bad, tmp_path / "m.pt", TrainConfig(epochs=1), quiet=True)
    path = tmp_path / "b4.h5"
    write_h5(path, {"pseudo_label": d["y"], "weight": d["w"], "offsets": d["offsets"], "video_ids": d["ids"],
                    "label_source": np.zeros(N, np.uint8), "video_human": np.full(V, -1, np.int8)},
             {"human_video_ids": "vid00, vid01"})
    with pytest.raises(InputError, match="'human_video_ids' = 'vid00, vid01' is invalid: it must be a JSON list"):
        train(d["feats"], path, tmp_path / "m.pt", TrainConfig(epochs=1), quiet=True)
    assert not (tmp_path / "m.pt").exists()


def test_validation_needs_unlabelled_videos(tmp_path, rng):
    d = dataset(tmp_path, rng, V=4)
    labels = write_labels(tmp_path / "l.h5", d, {"vid00": "abnormal", "vid01": "abnormal", "vid02": "normal"})
    with pytest.raises(InputError, match=r"leaves 0 validation .*3 human-labelled, never held out"):
        train(d["feats"], labels, tmp_path / "m.pt", TrainConfig(epochs=1, val_fraction=0.5), quiet=True)


def test_cli_flags(tmp_path, rng, capsys):
    d = dataset(tmp_path, rng)
    labels = write_labels(tmp_path / "l.h5", d, HUMAN)
    base = ["train", "--features", str(d["feats"]), "--labels", str(labels), "--epochs", "1", "--quiet"]
    assert main(base + ["--out", str(tmp_path / "bad.pt"), "--human-weight", "-2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: human_weight=-2.0 is invalid") and err.count("\n") == 1
    assert not (tmp_path / "bad.pt").exists()
    assert main(base + ["--out", str(tmp_path / "m.pt"), "--human-weight", "3", "--mil-weight", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "2 abnormal + 2 normal videos" in out and "MIL weight 0.5" in out
    hp = load_checkpoint(tmp_path / "m.pt")[1]["hparams"]
    assert (hp["human_weight"], hp["mil_weight"]) == (3.0, 0.5)
