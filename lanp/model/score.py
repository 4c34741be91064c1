"""Score every snippet of a feature file with a trained detector.

Each whole video goes through the detector at once (the temporal convolution sees its real
neighbours); for (L, C, D) features each crop is scored as its own sequence and the C scores of a
snippet are averaged. ``smooth=K`` (odd K >= 3; off by default) then replaces each snippet's score by
the mean of the K scores centred on it within its video (fewer at the ends, where the window is
cut at the video's first and last snippet) -- an inference-time choice, reported separately.
Output (packed, input order): ``score`` (N,) float32, ``offsets`` (V+1,) int64, ``video_ids`` (V,)
str; attributes name the model and features, ``smooth`` (0 = off), the lanp version and any
``attrs`` given (the CLI adds ``lanp_config``, the resolved configuration as JSON).

A model trained on human labels (a few-shot labels file) records their video ids; the scores file
then carries them as the attribute ``human_video_ids`` (JSON list; absent when there are none), and
:func:`refuse_human_videos` -- called by ``lanp evaluate`` -- refuses a scored test set holding any.
"""
from __future__ import annotations

import json
from typing import Dict, List, Tuple

import numpy as np

from lanp import __version__
from lanp.data.io import FeatureFile, open_h5, read_h5, write_h5
from lanp.kernels import InputError
from lanp.outputs import check_output, checkpoint

# torch is imported where a model runs, so read_scores (lanp evaluate, lanp plot) does not load it


def score_features(model, ff: FeatureFile, device="cpu", quiet: bool = True) -> np.ndarray:
    """(N,) float32 scores of every snippet of an open feature file, in its order."""
    import torch

    with torch.no_grad():
        return _score_features(torch, model, ff, device, quiet)


def _score_features(torch, model, ff: FeatureFile, device, quiet: bool) -> np.ndarray:
    from tqdm.auto import tqdm

    if ff.dim != model.feature_size:
        raise InputError(f"features file {ff.path!r} has feature size D = {ff.dim} but the model was trained "
                         f"on D = {model.feature_size}")
    out = np.empty(ff.num_snippets, np.float32)
    bar = tqdm(total=ff.num_videos, desc="score", unit="video", disable=quiet, leave=False)
    for v0, v1 in ff.chunks():
        x, local = ff.read(v0, v1, crops="keep", reuse=True)
        for v in range(v1 - v0):
            rows = x[local[v]:local[v + 1]]
            bad = ~np.isfinite(rows)
            if bad.any():
                at = np.argwhere(bad)[0]
                raise InputError(f"features file {ff.path!r}: video {ff.video_ids[v0 + v]!r}, snippet {int(at[0])} "
                                 f"holds {float(rows[tuple(at)])}: every feature must be finite")
            seq = torch.from_numpy(rows).to(device)
            if seq.dim() == 3:                           # (L, C, D): score each crop, average
                s = model(seq.transpose(0, 1)).mean(dim=0)
            else:
                s = model(seq)
            s = s.float().cpu().numpy()
            if not np.all(np.isfinite(s)):
                raise InputError(f"the model gives non-finite scores on video {ff.video_ids[v0 + v]!r} "
                                 f"(snippet {int(np.argmin(np.isfinite(s)))}) of {ff.path!r}, whose features are "
                                 f"finite: the checkpoint is broken")
            out[ff.offsets[v0] + local[v]:ff.offsets[v0] + local[v + 1]] = s
        bar.update(v1 - v0)
        checkpoint()
    bar.close()
    return out


def check_smooth(smooth) -> int:
    """0 (off) or an odd window size >= 3; 1 means off too."""
    if smooth is None:
        return 0
    k = int(smooth)
    if k != smooth or k < 0 or (k > 1 and k % 2 == 0):
        raise InputError(f"smooth={smooth!r} is invalid: it must be 0 (off) or an odd number of snippets "
                         f"(3, 5, 7, ...) so the window is centred")
    return 0 if k <= 1 else k


def smooth_scores(scores: np.ndarray, offsets: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average of width ``k`` (odd) within each video; the window is cut at a video's
    ends (the mean of the scores it covers there). ``k`` <= 1 returns a copy."""
    s = np.asarray(scores, np.float64)
    out = s.copy()
    if check_smooth(k) == 0:
        return out.astype(np.asarray(scores).dtype)
    h = k // 2
    for v in range(len(offsets) - 1):
        a, b = int(offsets[v]), int(offsets[v + 1])
        x = s[a:b]
        c = np.concatenate([[0.0], np.cumsum(x)])
        i = np.arange(b - a)
        lo, hi = np.maximum(i - h, 0), np.minimum(i + h + 1, b - a)
        out[a:b] = (c[hi] - c[lo]) / (hi - lo)
    return out.astype(np.asarray(scores).dtype)


def fused_scores(fusion, ff: FeatureFile, detector: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(fused (N,), forest score (N,)) of every snippet of an open feature file, whose detector
    scores are ``detector`` (:class:`lanp.model.fusion.ForestFusion`), chunk by chunk."""
    fused = np.empty(ff.num_snippets, np.float32)
    forest = np.empty(ff.num_snippets, np.float32)
    for v0, v1 in ff.chunks():
        lo, hi = int(ff.offsets[v0]), int(ff.offsets[v1])
        x, _ = ff.read(v0, v1)
        fused[lo:hi], forest[lo:hi] = fusion.fuse(detector[lo:hi], x)
        checkpoint()
    return fused, forest


def score_file(model_path, features_path, out_path, device: str = "cpu", quiet: bool = False,
               smooth: int = 0, attrs: dict = None, fuse_forest=None) -> dict:
    """Score ``features_path`` with the checkpoint ``model_path`` into ``out_path`` (``score``,
    ``offsets``, ``video_ids``). ``fuse_forest``: the model's training feature file; ``score`` is
    then the detector's score fused with an isolation forest fit on it (:mod:`lanp.model.fusion`),
    and ``detector_score`` and ``isolation_score`` are written too. ``smooth`` applies last."""
    from lanp.model.train import load_checkpoint, resolve_device

    smooth = check_smooth(smooth)
    inputs = [("--model", model_path), ("--features", features_path)]
    if fuse_forest is not None:
        inputs.append(("--fuse-forest", fuse_forest))
    check_output(out_path, "--out", inputs)
    dev = resolve_device(device)
    model, ckpt = load_checkpoint(model_path, dev)
    human_ids = _checkpoint_human_ids(model_path, ckpt)
    with FeatureFile(features_path) as ff:
        if ff.dim != model.feature_size:
            raise InputError(f"model {str(model_path)!r}: features file {ff.path!r} has feature size D = {ff.dim} "
                             f"but the model was trained on D = {model.feature_size}")
        fusion = extra = None
        if fuse_forest is not None:
            fusion = _fusion_of(model, fuse_forest, dev, quiet)
        scores = score_features(model, ff, dev, quiet)
        if fusion is not None:
            fused, forest = fused_scores(fusion, ff, scores)
            extra, scores = {"detector_score": scores, "isolation_score": forest}, fused
        ids, offsets, crops = list(ff.video_ids), ff.offsets.copy(), ff.crops
    if smooth:
        scores = smooth_scores(scores, offsets, smooth)
    human = ({"human_video_ids": json.dumps(human_ids),
              "human_labels": str(ckpt.get("human_labels") or ckpt.get("labels", ""))} if human_ids else {})
    write_h5(out_path, {"score": scores, "offsets": offsets, "video_ids": ids, **(extra or {})},
             {"model": str(model_path), "features": str(features_path), "crops": crops or 0,
              "smooth": smooth, "lanp_version": __version__, **human,
              **(fusion.attrs(fuse_forest) if fusion is not None else {}), **(attrs or {})}, what="--out", inputs=inputs)
    return {"out": str(out_path), "videos": len(ids), "snippets": int(offsets[-1]), "crops": crops,
            "smooth": smooth, "fused": fusion is not None}


def _fusion_of(model, train_path, device, quiet: bool):
    """The :class:`lanp.model.fusion.ForestFusion` of the model's training feature file."""
    from lanp.model.fusion import fit_fusion_file

    with FeatureFile(train_path) as ff:
        if ff.dim != model.feature_size:
            raise InputError(f"--fuse-forest {str(train_path)!r} has feature size D = {ff.dim} but the model was "
                             f"trained on D = {model.feature_size}: give the model's training features")
        return fit_fusion_file(ff, score_features(model, ff, device, quiet))


def _checkpoint_human_ids(model_path, ckpt: dict) -> List[str]:
    """The human-labelled training video ids a checkpoint records ([] for older checkpoints)."""
    ids = ckpt.get("human_video_ids", [])
    if not isinstance(ids, (list, tuple)) or not all(isinstance(v, str) for v in ids):
        raise InputError(f"model checkpoint {str(model_path)!r}: 'human_video_ids' is {type(ids).__name__}, "
                         f"not a list of video ids")
    return list(ids)


def read_human_video_ids(path) -> List[str]:
    """The ``human_video_ids`` attribute of a scores file ([] when absent: no human labels)."""
    with open_h5(path, "scores") as f:
        raw = f.attrs.get("human_video_ids")
        source = f.attrs.get("model", "")
    if raw is None:
        return []
    from lanp.data.human_labels import parse_id_list
    return parse_id_list(raw, f"scores file {str(path)!r} (from model {str(source)!r})")


def refuse_human_videos(path, video_ids) -> None:
    """InputError when a scores file scores a video its model was trained on as a human-labelled
    video: evaluating there would measure the labels, not the detector."""
    human = set(read_human_video_ids(path))
    clash = [vid for vid in video_ids if vid in human]
    if clash:
        with open_h5(path, "scores") as f:
            model, labels = str(f.attrs.get("model", "?")), str(f.attrs.get("human_labels", "") or "?")
        raise InputError(f"scores file {str(path)!r} scores video {clash[0]!r}, which model {model!r} was trained "
                         f"on as a human-labelled video (labels {labels!r}); {len(clash)} of the {len(video_ids)} "
                         f"scored videos are labelled training videos: a test set must not contain them")


def read_scores(path) -> Dict[str, np.ndarray]:
    """{video id: (L,) scores} from a scores file, in file order. A repeated video id is an error."""
    data, _ = read_h5(path, "scores", required=("score", "offsets", "video_ids"))
    s, o, ids = np.asarray(data["score"]), np.asarray(data["offsets"], np.int64), data["video_ids"]
    if o.shape != (len(ids) + 1,) or o[0] != 0 or o[-1] != s.shape[0] or np.any(np.diff(o) < 0):
        raise InputError(f"scores file {str(path)!r}: offsets {o.shape} do not describe {len(ids)} videos "
                         f"over {s.shape[0]} scores")
    bad = ~np.isfinite(s) if s.dtype.kind in "fc" else np.zeros(s.shape, bool)
    if s.dtype.kind not in "fiu" or s.ndim != 1:
        raise InputError(f"scores file {str(path)!r}: 'score' must be a 1-D array of numbers, got {s.dtype} {s.shape}")
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        v = int(np.searchsorted(o, row, side="right")) - 1
        raise InputError(f"scores file {str(path)!r}: video {ids[v]!r}, snippet {row - int(o[v])} has score "
                         f"{float(s[row])}: every score must be finite (a broken model or features?)")
    from lanp.data.groundtruth import refuse_duplicate_ids
    refuse_duplicate_ids(ids, f"scores file {str(path)!r}", verb="scored")
    return {vid: s[o[v]:o[v + 1]] for v, vid in enumerate(ids)}
