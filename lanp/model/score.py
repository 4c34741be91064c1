"""Score every snippet of a feature file with a trained detector.

Each whole video goes through the detector at once (the temporal convolution sees its real
neighbours); for (L, C, D) features each crop is scored as its own sequence and the C scores of a
snippet are averaged. Output (packed, input order): ``score`` (N,) float32, ``offsets`` (V+1,)
int64, ``video_ids`` (V,) str; attributes name the model and features and the lanp version.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from lanp import __version__
from lanp.data.io import FeatureFile, read_h5, write_h5
from lanp.kernels import InputError
from lanp.model.train import load_checkpoint, resolve_device


@torch.no_grad()
def score_features(model, ff: FeatureFile, device="cpu", quiet: bool = True) -> np.ndarray:
    """(N,) float32 scores of every snippet of an open feature file, in its order."""
    from tqdm.auto import tqdm

    if ff.dim != model.feature_size:
        raise InputError(f"features file {ff.path!r} has feature size D = {ff.dim} but the model was trained "
                         f"on D = {model.feature_size}")
    out = np.empty(ff.num_snippets, np.float32)
    bar = tqdm(total=ff.num_videos, desc="score", unit="video", disable=quiet, leave=False)
    for v0, v1 in ff.chunks():
        x, local = ff.read(v0, v1, crops="keep", reuse=True)
        for v in range(v1 - v0):
            seq = torch.from_numpy(x[local[v]:local[v + 1]]).to(device)
            if seq.dim() == 3:                           # (L, C, D): score each crop, average
                s = model(seq.transpose(0, 1)).mean(dim=0)
            else:
                s = model(seq)
            out[ff.offsets[v0] + local[v]:ff.offsets[v0] + local[v + 1]] = s.float().cpu().numpy()
        bar.update(v1 - v0)
    bar.close()
    return out


def score_file(model_path, features_path, out_path, device: str = "cpu", quiet: bool = False) -> dict:
    dev = resolve_device(device)
    model, ckpt = load_checkpoint(model_path, dev)
    with FeatureFile(features_path) as ff:
        try:
            scores = score_features(model, ff, dev, quiet)
        except InputError as exc:
            raise InputError(f"model {str(model_path)!r}: {exc}") from None
        ids, offsets, crops = list(ff.video_ids), ff.offsets.copy(), ff.crops
    write_h5(out_path, {"score": scores, "offsets": offsets, "video_ids": ids},
             {"model": str(model_path), "features": str(features_path), "crops": crops or 0,
              "lanp_version": __version__})
    return {"out": str(out_path), "videos": len(ids), "snippets": int(offsets[-1]), "crops": crops}


def read_scores(path) -> Dict[str, np.ndarray]:
    """{video id: (L,) scores} from a scores file, in file order."""
    data, _ = read_h5(path, "scores", required=("score", "offsets", "video_ids"))
    s, o, ids = np.asarray(data["score"]), np.asarray(data["offsets"], np.int64), data["video_ids"]
    if o.shape != (len(ids) + 1,) or o[0] != 0 or o[-1] != s.shape[0] or np.any(np.diff(o) < 0):
        raise InputError(f"scores file {str(path)!r}: offsets {o.shape} do not describe {len(ids)} videos "
                         f"over {s.shape[0]} scores")
    return {vid: s[o[v]:o[v + 1]] for v, vid in enumerate(ids)}
