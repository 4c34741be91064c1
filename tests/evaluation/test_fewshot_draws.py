"""Few-shot label draws: training split only, K + K videos, true spans, nested over shots, seeded."""
import numpy as np
import pytest

from lanp.evaluation.fewshot_draws import draw_labels, draw_series, snippet_runs, write_draw_csv
from lanp.kernels import InputError


def _split(rng, videos=30, abnormal=12):
    lengths = rng.integers(3, 20, size=videos)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    y = np.zeros(int(offsets[-1]), np.uint8)
    for v in rng.choice(videos, size=abnormal, replace=False):
        L = int(lengths[v])
        for _ in range(int(rng.integers(1, 3))):
            a = int(rng.integers(0, L))
            y[offsets[v] + a:offsets[v] + min(L, a + int(rng.integers(1, 4)))] = 1
    return [f"train_{v:03d}" for v in range(videos)], offsets, y


def test_snippet_runs_hand_case():
    assert snippet_runs(np.array([0, 1, 1, 0, 0, 1, 0, 1])) == ((1, 3), (5, 6), (7, 8))
    assert snippet_runs(np.array([1, 1])) == ((0, 2),)
    assert snippet_runs(np.zeros(4)) == ()


def test_draws_label_k_abnormal_and_k_normal_training_videos_with_their_true_spans(rng):
    ids, offsets, y = _split(rng)
    truth = {vid: y[offsets[v]:offsets[v + 1]] for v, vid in enumerate(ids)}
    for labels in draw_labels(ids, offsets, y, shots=4, draws=5, label_kind="span", seed=3):
        kinds = list(labels.kinds.values())
        assert kinds.count("abnormal_video") == 4 and kinds.count("normal_video") == 4
        for vid, kind in labels.kinds.items():
            assert truth[vid].any() == (kind == "abnormal_video")
        assert set(labels.spans) == {v for v, k in labels.kinds.items() if k == "abnormal_video"}
        for vid, spans in labels.spans.items():
            mask = np.zeros(truth[vid].size, bool)
            for a, b in spans:
                mask[a:b] = True
            assert np.array_equal(mask, truth[vid] > 0)              # exactly the true anomalous snippets
    video = draw_labels(ids, offsets, y, shots=4, draws=1, label_kind="video", seed=3)[0]
    assert video.spans == {} and len(video) == 8


def test_draws_are_nested_over_shots_differ_over_draws_and_repeat_by_seed(rng):
    ids, offsets, y = _split(rng)
    series = draw_series(ids, offsets, y, shots=[0, 1, 2, 5], draws=4, label_kind="span", seed=11)
    for d in range(4):
        assert len(series[0][d]) == 0
        for small, big in ((1, 2), (2, 5)):
            assert set(series[small][d].kinds) < set(series[big][d].kinds)
            assert all(series[big][d].spans[v] == s for v, s in series[small][d].spans.items())
    assert len({frozenset(series[5][d].kinds) for d in range(4)}) > 1
    again = draw_series(ids, offsets, y, shots=[5], draws=4, label_kind="span", seed=11)
    assert [a.kinds for a in again[5]] == [b.kinds for b in series[5]]
    other = draw_series(ids, offsets, y, shots=[5], draws=4, label_kind="span", seed=12)
    assert [a.kinds for a in other[5]] != [b.kinds for b in series[5]]


def test_a_draw_written_as_csv_reads_back_the_same(rng, tmp_path):
    from lanp.data.human_labels import read_labels_file

    ids, offsets, y = _split(rng)
    for kind in ("span", "video"):
        labels = draw_labels(ids, offsets, y, shots=3, draws=1, label_kind=kind, seed=1)[0]
        write_draw_csv(tmp_path / f"{kind}.csv", labels)
        back = read_labels_file(tmp_path / f"{kind}.csv", ids, np.diff(offsets))
        assert back.kinds == labels.kinds and back.spans == labels.spans


def test_refusals(rng):
    ids, offsets, y = _split(rng, videos=10, abnormal=3)
    with pytest.raises(InputError, match="shots=4 is invalid: the training split has 3 abnormal and 7 normal"):
        draw_labels(ids, offsets, y, shots=4, draws=1)
    with pytest.raises(InputError, match="label_kind='frames' is invalid"):
        draw_labels(ids, offsets, y, shots=1, draws=1, label_kind="frames")
    with pytest.raises(InputError, match="draws=0 is invalid"):
        draw_labels(ids, offsets, y, shots=1, draws=0)
    with pytest.raises(InputError, match="shots=-1 is invalid"):
        draw_labels(ids, offsets, y, shots=-1, draws=1)
    with pytest.raises(InputError, match="snippet labels"):
        draw_labels(ids, offsets, y[:-1], shots=1, draws=1)
