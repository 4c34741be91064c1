"""The episodic protocol: pooling, nearest-prototype accuracy, chance level, seeding, refusals."""
import numpy as np
import pytest

from lanp.evaluation.episodes import episode_accuracy, run_episodes, video_vectors
from lanp.kernels import InputError


def _videos(rng, V=40, D=8, shift=0.0):
    lengths = rng.integers(2, 9, size=V)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    labels = (rng.permutation(V) < V // 2).astype(np.uint8)
    x = rng.normal(size=(int(offsets[-1]), D))
    x[:, 0] += shift * np.repeat(labels, lengths)
    return x, offsets, labels


def test_video_vectors_against_a_loop(rng):
    x, offsets, _ = _videos(rng)
    for pooling, reduce in (("mean", np.mean), ("max", np.max)):
        ref = np.stack([reduce(x[offsets[v]:offsets[v + 1]], axis=0) for v in range(len(offsets) - 1)])
        got = video_vectors(x, offsets, pooling, normalize=False)
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-13
        unit = video_vectors(x, offsets, pooling)
        assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-13)


def test_episode_accuracy_hand_case():
    vectors = np.array([[0.0], [1.0], [10.0], [11.0], [0.4], [6.0], [5.5], [9.0]])
    labels = np.array([0, 0, 1, 1, 0, 1, 0, 0])
    # prototypes 0.5 (normal) and 10.5 (abnormal): 0.4 normal (right), 6.0 abnormal (right),
    # 5.5 is a tie (half), 9.0 abnormal (wrong)
    assert episode_accuracy(vectors, labels, np.array([0, 1, 2, 3]), np.array([4, 5, 6, 7])) == pytest.approx(2.5 / 4)


def test_separable_videos_score_one_and_random_ones_chance(rng):
    x, offsets, labels = _videos(rng, V=60, shift=20.0)
    res = run_episodes(x, offsets, labels, shots=2, queries=3, episodes=30, seed=1, normalize=False)
    assert res["accuracy"] == {"mean": 1.0, "std": 0.0} and len(res["accuracies"]) == 30
    assert res["embedding"] == "features" and res["pooling"] == "mean"
    x, offsets, labels = _videos(rng, V=60, shift=0.0)
    res = run_episodes(x, offsets, labels, shots=2, queries=5, episodes=400, seed=2)
    assert abs(res["accuracy"]["mean"] - 0.5) < 0.05


def test_classify_by_video_score_and_seeding(rng):
    x, offsets, labels = _videos(rng, V=30)
    scores = labels + rng.uniform(0, 0.4, size=labels.size)        # separable by the score alone
    res = run_episodes(video_labels=labels, video_scores=scores, shots=1, queries=4, episodes=20)
    assert res["embedding"] == "score" and res["accuracy"]["mean"] == 1.0
    a = run_episodes(x, offsets, labels, shots=3, queries=3, episodes=10, seed=5)
    b = run_episodes(x, offsets, labels, shots=3, queries=3, episodes=10, seed=5, pooling="max")
    assert a == run_episodes(x, offsets, labels, shots=3, queries=3, episodes=10, seed=5)
    assert a["accuracies"] != run_episodes(x, offsets, labels, shots=3, queries=3, episodes=10, seed=6)["accuracies"]
    assert b["pooling"] == "max"


def test_refusals(rng):
    x, offsets, labels = _videos(rng, V=10)
    with pytest.raises(InputError, match="5 normal videos: 3 shots \\+ 3 queries per class need 6"):
        run_episodes(x, offsets, labels, shots=3, queries=3)
    with pytest.raises(InputError, match="shots=0 is invalid"):
        run_episodes(x, offsets, labels, shots=0)
    with pytest.raises(InputError, match="pooling='median' is invalid"):
        run_episodes(x, offsets, labels, shots=1, queries=1, pooling="median")
    with pytest.raises(InputError, match=r"video_scores\[2\] = nan"):
        run_episodes(video_labels=labels, video_scores=np.where(np.arange(10) == 2, np.nan, 0.0), shots=1, queries=1)
    with pytest.raises(InputError, match="9 video labels"):
        run_episodes(x, offsets, labels[:9], shots=1, queries=1)
