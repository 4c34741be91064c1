import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lanp.data.io import write_h5  # noqa: E402
from lanp.kernels import InputError  # noqa: E402
from lanp.model.train import TrainConfig, load_checkpoint, sample_indices, train, weighted_bce  # noqa: E402
from shared import learnable_snippets  # noqa: E402


def make_fixture(tmp_path, V=12, D=6, seed=0, crops=None):
    """Tiny dataset: label 1 snippets have a shifted feature so the task is learnable."""
    rng = np.random.default_rng(seed)
    x, y, offsets, lengths = learnable_snippets(rng, V, D, 5, 40)
    N = int(offsets[-1])
    if crops:
        x = np.repeat(x[:, None, :], crops, axis=1) + rng.normal(0, 0.01, (N, crops, D)).astype(np.float32)
    ids = [f"vid{v:02d}" for v in range(V)]
    feats, labels = tmp_path / "f.h5", tmp_path / "f.labels.h5"
    write_h5(feats, {"features": x, "offsets": offsets, "video_ids": ids})
    w = rng.uniform(0.5, 1.0, N).astype(np.float32)
    # labels file written in a different video order: matched by name
    order = rng.permutation(V)
    lo = np.concatenate([[0], np.cumsum(lengths[order])]).astype(np.int64)
    cat = lambda a: np.concatenate([a[offsets[v]:offsets[v + 1]] for v in order])
    write_h5(labels, {"pseudo_label": cat(y), "weight": cat(w), "offsets": lo,
                      "video_ids": [ids[v] for v in order]})
    return feats, labels, x, y, w, offsets


def test_sample_indices_uniform_and_random():
    idx = sample_indices([64, 10, 1, 33], 32)
    assert idx.shape == (4, 32)
    np.testing.assert_array_equal(idx[0], np.arange(0, 64, 2))
    np.testing.assert_array_equal(idx[1], [int(np.floor(i * 10 / 32)) for i in range(32)])
    assert np.all(idx[2] == 0)
    np.testing.assert_array_equal(idx[3], [i * 33 // 32 for i in range(32)])
    r = sample_indices([64, 10], 32, np.random.default_rng(1))
    assert np.all(r[0] // 2 == np.arange(32))          # stays inside segment i
    assert not np.array_equal(r[0], idx[0])
    assert np.all((r[1] >= 0) & (r[1] < 10))


def test_weighted_bce_matches_eq9():
    s = torch.tensor([0.9, 0.2, 0.6])
    y = torch.tensor([1.0, 0.0, 0.0])
    w = torch.tensor([0.5, 1.0, 2.0])
    expected = -(0.5 * np.log(0.9) + 1.0 * np.log(0.8) + 2.0 * np.log(0.4)) / 3
    assert float(weighted_bce(s, y, w)) == pytest.approx(expected, rel=1e-6)


def weighted_loss_on(model, x, y, w, offsets):
    model.eval()
    with torch.no_grad():
        s = torch.cat([model(torch.from_numpy(x[offsets[v]:offsets[v + 1]])) for v in range(len(offsets) - 1)])
    return float(weighted_bce(s, torch.from_numpy(y.astype(np.float32)), torch.from_numpy(w)))


def test_training_lowers_the_weighted_loss_and_checkpoint_round_trips(tmp_path):
    feats, labels, x, y, w, offsets = make_fixture(tmp_path)
    cfg = TrainConfig(epochs=1, batch_videos=4, lr=1e-3, seed=3)
    train(feats, labels, tmp_path / "m0.pt", cfg, quiet=True)
    before = weighted_loss_on(load_checkpoint(tmp_path / "m0.pt")[0], x, y, w, offsets)
    cfg = TrainConfig(epochs=40, batch_videos=4, lr=1e-3, seed=3, random_offsets=True)
    summary = train(feats, labels, tmp_path / "m.pt", cfg, quiet=True)
    model, ckpt = load_checkpoint(tmp_path / "m.pt")
    after = weighted_loss_on(model, x, y, w, offsets)
    assert after < 0.7 * before
    assert summary["final_loss"] < summary["first_loss"]
    assert ckpt["feature_size"] == 6 and ckpt["hparams"]["epochs"] == 40 and ckpt["hparams"]["random_offsets"]
    assert "lanp_version" in ckpt and len(ckpt["loss_history"]) == 40
    assert not list(tmp_path.glob(".*tmp*"))


def test_seed_makes_training_reproducible(tmp_path):
    feats, labels, *_ = make_fixture(tmp_path)
    cfg = TrainConfig(epochs=2, batch_videos=5, seed=7)
    train(feats, labels, tmp_path / "a.pt", cfg, quiet=True)
    train(feats, labels, tmp_path / "b.pt", cfg, quiet=True)
    a, b = load_checkpoint(tmp_path / "a.pt")[1], load_checkpoint(tmp_path / "b.pt")[1]
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=0)


def test_streaming_rows_equal_in_memory_rows(tmp_path):
    feats, labels, *_ = make_fixture(tmp_path, crops=3)
    cfg = TrainConfig(epochs=2, batch_videos=5, seed=1)
    train(feats, labels, tmp_path / "mem.pt", cfg, quiet=True)
    train(feats, labels, tmp_path / "stream.pt", cfg, quiet=True, max_memory_gb=0)
    a, b = load_checkpoint(tmp_path / "mem.pt")[1], load_checkpoint(tmp_path / "stream.pt")[1]
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k])


def test_validation_split_uses_training_videos_and_keeps_best_epoch(tmp_path):
    feats, labels, *_ = make_fixture(tmp_path)
    s = train(feats, labels, tmp_path / "m.pt", TrainConfig(epochs=6, batch_videos=4, val_fraction=0.25),
              quiet=True)
    ckpt = load_checkpoint(tmp_path / "m.pt")[1]
    assert (s["train_videos"], s["val_videos"]) == (9, 3)
    assert ckpt["selected"] == "best_validation_loss"
    assert ckpt["epoch"] == int(np.argmin(ckpt["val_loss_history"])) + 1


def test_bad_inputs(tmp_path):
    feats, labels, *_ = make_fixture(tmp_path)
    other = tmp_path / "other.labels.h5"
    write_h5(other, {"pseudo_label": np.zeros(5, np.uint8), "weight": np.ones(5, np.float32),
                     "offsets": np.array([0, 5]), "video_ids": ["someone_else"]})
    with pytest.raises(InputError, match="no video 'vid00'"):
        train(feats, other, tmp_path / "m.pt", TrainConfig(epochs=1), quiet=True)
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="epochs=0"):
        train(feats, labels, tmp_path / "m.pt", TrainConfig(epochs=0), quiet=True)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    assert not (tmp_path / "m.pt").exists()
