"""The official presets ``official-ucf`` / ``official-sht`` as recipes: what the method's public
code (shyern/LANP-UVAD) computes; its numbers are the ones the paper reports.

The per-video numerics (windowed graph, capped CG, post-processing) are the numba kernel
:func:`lanp.kernels.propagate_official`. :class:`OfficialRecipe` overrides the paper recipe's
steps with the public code's rules:

- video score std(z) (population); the int(f V) highest-score videos are abnormal
  (f = 0.5 UCF, 0.27 SHT), the rest normal;
- in each abnormal video the int(0.4 T) lowest-z snippets are pseudo-abnormal (ties: earlier
  snippet first);
- normal list: for each of the int(0.1 N_nor) lowest-score videos (at least 1), the mean of its 32
  uniformly sampled snippets (indices floor(i T / 32));
- d = min over the list of 1 - cos (UCF) or of the RMS distance sqrt(||x - m||^2 / D) (SHT);
  w = exp(-|d - y_hat|).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np

from lanp.kernels import ConvergenceWarning, InputError, propagate_official, weight_distance
from lanp.method.options import PRESETS as PRESET_NAMES
from lanp.method.recipe import Recipe


@dataclass(frozen=True)
class OfficialPreset:
    """Every constant of the public code for one dataset."""

    name: str
    graph: str                      # 'rms' (UCF) or 'cosine' (SHT): the feature term of a_ij
    abnormal_video_fraction: float  # int(f V) highest-score videos are abnormal
    weight_distance: str            # 'cosine' (d = 1 - cos) or 'rms' (d = sqrt(||x-m||^2 / D))
    sigma: float = 0.1
    alpha: float = 0.99
    max_k: int = 50
    maxiter: int = 10
    rtol: float = 1e-6
    abnormal_ratio: float = 0.4
    confident_fraction: float = 0.1
    samples: int = 32

    def attrs(self) -> dict:
        return {f"preset_{k}": v for k, v in asdict(self).items()}


PRESETS = {
    "official-ucf": OfficialPreset("official-ucf", graph="rms", abnormal_video_fraction=0.5,
                                   weight_distance="cosine"),
    "official-sht": OfficialPreset("official-sht", graph="cosine", abnormal_video_fraction=0.27,
                                   weight_distance="rms"),
}


def get_preset(name: str) -> Optional[OfficialPreset]:
    """None for 'paper', else the official preset; unknown names get an error listing the choices."""
    if name == "paper":
        return None
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is invalid: choose one of {', '.join(PRESET_NAMES)}")
    return PRESETS[name]


def abnormal_videos(scores: np.ndarray, preset: OfficialPreset) -> np.ndarray:
    """(V,) bool: the int(f V) highest-score videos (ties: the later video counts as higher)."""
    V = scores.shape[0]
    n_abnormal = int(preset.abnormal_video_fraction * V)
    abnormal = np.zeros(V, dtype=bool)
    if n_abnormal:
        abnormal[np.argsort(scores, kind="stable")[V - n_abnormal:]] = True
    return abnormal


def normal_list_videos(scores: np.ndarray, abnormal: np.ndarray, preset: OfficialPreset) -> np.ndarray:
    """Indices of the max(1, int(h N_nor)) lowest-score videos, lowest first."""
    n_normal = int((~abnormal).sum())
    if n_normal == 0:
        raise InputError("no normal video: the preset's split left every video abnormal")
    count = max(1, int(preset.confident_fraction * n_normal))
    return np.argsort(scores, kind="stable")[:count]


def sample_indices(T: int, samples: int = 32) -> np.ndarray:
    """floor(i T / samples) for i < samples (repeats when T < samples)."""
    return np.floor(np.arange(samples) * T / samples).astype(np.int64)


def warn_capped(converged: np.ndarray, preset: OfficialPreset, where) -> None:
    """One ConvergenceWarning when CG stopped at the preset's cap for some videos (the public
    code's behaviour, reported rather than hidden)."""
    capped = int((~np.asarray(converged)).sum())
    if capped:
        warnings.warn(f"{where}: {preset.name}: CG stopped at maxiter={preset.maxiter} above "
                      f"rtol={preset.rtol:g} for {capped} of {len(converged)} video(s), as the public code does",
                      ConvergenceWarning, stacklevel=4)


def split_attrs(preset: OfficialPreset, abnormal: np.ndarray, listed: np.ndarray) -> dict:
    """The labels-file attributes of a preset run: every constant, the split and the list size."""
    attrs = preset.attrs()
    attrs.update({"preset": preset.name, "normal_list_videos": len(listed),
                  "n_normal": int((~abnormal).sum())})
    return attrs




class OfficialRecipe(Recipe):
    """The public code's recipe for one :class:`OfficialPreset`; the graph, solver and split
    options of the config are not used (the preset fixes them), its video score is."""

    z_dtype = np.float64

    def __init__(self, config=None, preset: Optional[OfficialPreset] = None):
        super().__init__(config)
        self.preset = preset if preset is not None else get_preset(self.config.preset)
        if self.preset is None:
            raise ValueError("OfficialRecipe needs an official preset: choose official-ucf or official-sht")
        self.name = self.preset.name

    def pass1_key(self) -> dict:
        return {"recipe": self.name, "preset": asdict(self.preset), "video_score": self.config.video_score}

    @property
    def abnormal_ratio(self) -> float:
        return self.preset.abnormal_ratio

    def read_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def check(self, lengths, video_ids, where) -> None:
        pass

    def check_dataset(self, num_videos: int) -> None:
        """The preset fixes the split; an explicit N_nor must still describe this dataset."""
        if self.config.n_normal is not None or self.config.normal_fraction is not None:
            self.n_normal(num_videos)

    def normality(self, x, offsets, video_ids, where, first_video):
        self.check_rows(x, offsets, video_ids, where)    # the official kernel does not check its input
        p = self.preset
        r = propagate_official(x, offsets, variant=p.graph, sigma=p.sigma, alpha=p.alpha, rtol=p.rtol,
                               maxiter=p.maxiter, max_k=p.max_k, video_ids=video_ids, where=where)
        return replace(r, backend=f"cpu-{p.name}")

    def check_rows(self, x, offsets, video_ids, where) -> None:
        """Refuse NaN / Inf values and all-zero feature vectors (the public code gives NaN for them:
        cosines and RMS distances of a zero row are undefined), naming the video, snippet and value."""
        from lanp.kernels import video_name

        x = np.asarray(x)
        rows = x.reshape(x.shape[0], -1)
        finite = np.isfinite(rows)
        bad = np.flatnonzero(~finite.all(axis=1))
        zero = np.flatnonzero(~np.any(rows != 0, axis=1))
        for kind, found in (("finite", bad), ("zero", zero)):
            if not found.size:
                continue
            row = int(found[0])
            v = int(np.searchsorted(offsets, row, side="right")) - 1
            snippet = f"{where}: {video_name(video_ids, v)}, snippet {row - int(offsets[v])}"
            if kind == "finite":
                col = int(np.flatnonzero(~finite[row])[0])
                raise InputError(f"{snippet} holds {float(rows[row, col])} (feature {col}): preset "
                                 f"{self.preset.name} needs finite features")
            raise InputError(f"{snippet} is an all-zero feature vector: preset {self.preset.name}'s "
                             f"{'cosine similarity' if self.preset.graph == 'cosine' else 'weight distance'} "
                             f"is undefined for it")

    def candidate_rows(self, x, offsets) -> np.ndarray:
        """(v, D) float64: the mean of each video's ``samples`` uniformly sampled snippets."""
        x = np.asarray(x, dtype=np.float64)
        rows = [x[int(offsets[v]) + sample_indices(int(offsets[v + 1] - offsets[v]), self.preset.samples)].mean(axis=0)
                for v in range(offsets.shape[0] - 1)]
        return np.stack(rows) if rows else np.zeros((0, x.shape[1]))

    def split(self, scores):
        return abnormal_videos(scores, self.preset)

    def normal_list(self, scores, abnormal):
        return normal_list_videos(scores, abnormal, self.preset)

    def split_attrs(self, abnormal, listed) -> dict:
        return split_attrs(self.preset, abnormal, listed)

    def warn(self, first, video_ids, where) -> None:
        warn_capped(first.converged, self.preset, where)

    def weights(self, x, pseudo, means) -> np.ndarray:
        """w = exp(-|d - y_hat|), d by the preset's weight distance, row by row in float64."""
        d = weight_distance(x, means, self.preset.weight_distance)
        return np.exp(-np.abs(d - pseudo)).astype(np.float32)
