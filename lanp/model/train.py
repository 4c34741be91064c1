"""Train the detector on propagated pseudo-labels with the weighted BCE loss (paper eq. 9).

Each mini-batch holds ``batch_videos`` (30) training videos, each represented by ``snippets`` (32)
snippets sampled uniformly over its length: local indices floor(i * L / 32), i = 0..31 (indices
repeat when L < 32). With ``random_offsets`` each epoch draws, independently for every video and
segment, u_i in [0, 1) and uses floor((i + u_i) * L / 32), a random snippet inside segment i.

Loss (eq. 9): mean over the batch's snippets of -w (y log s + (1 - y) log(1 - s)), with y the
pseudo-label and w the loss weight from the labels file. RMSprop(lr 1e-4, momentum 0.6).

Human labels (few-shot labels files, issue 16). A labels file written by ``lanp propagate
--labels-file`` also holds ``label_source`` (N,) uint8 (0 pseudo, 1 human), ``video_human`` (V,)
int8 (-1 unlabelled, 0 human normal, 1 human abnormal) and the attribute ``human_video_ids`` (JSON
list). Older files lack them: every snippet is pseudo-labelled and training is bit for bit what it
was before (same random draws, same batches). With them:

- weight: w' = w * human_weight where label_source == 1, else w (``human_weight`` >= 0, default 1);
- batches: the videos are still shuffled and cut into batches of ``batch_videos``; then every batch
  that holds no human abnormal video gets one more video, the next human abnormal training video in
  a fixed cycle (training order, continued across batches and epochs), and likewise for the human
  normal videos. So every batch holds at least one labelled video of each labelled kind present
  (a batch grows by at most 2 videos), and a multiple-instance pair whenever both kinds exist;
- multiple-instance ranking (``mil_weight`` > 0, default 0 = off), with m_v = max_t s_v,t the largest
  score among video v's sampled snippets in the batch, A / B the batch's human abnormal / normal
  videos: loss += mil_weight * mean over (a, b) in A x B of max(0, 1 - m_a + m_b); 0 when A or B is
  empty (:func:`mil_hinge`);
- validation: held-out videos are drawn from the unlabelled videos only (n_val = floor(val_fraction *
  unlabelled videos)); the labelled ones always train;
- the checkpoint records ``human_video_ids`` (every labelled id of the labels file, also those not in
  this feature file) so that ``lanp score`` carries them into the scores file and ``lanp evaluate``
  refuses a test set that holds any of them.

An optional validation split (``val_fraction``) holds out a seeded random part of the TRAINING
videos; their weighted loss on pseudo-labels (same uniform 32-snippet sampling) is computed after
each epoch and the checkpoint keeps the epoch with the lowest validation loss. Test data is never
used here.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from lanp import __version__
from lanp.model.detector import DROPOUT, HIDDEN, Detector
from lanp.data.io import FeatureFile, read_h5
from lanp.outputs import atomic_file, check_output, checkpoint, deferred
from lanp.kernels import InputError

LABEL_DATASETS = ("pseudo_label", "weight", "offsets", "video_ids")
HUMAN_DATASETS = ("label_source", "video_human")


@dataclass
class TrainConfig:
    epochs: int = 300
    batch_videos: int = 30
    snippets: int = 32
    lr: float = 1e-4
    momentum: float = 0.6
    random_offsets: bool = False
    seed: int = 0
    val_fraction: float = 0.0
    hidden: int = HIDDEN
    dropout: float = DROPOUT
    human_weight: float = 1.0
    mil_weight: float = 0.0

    def check(self):
        for name, most in (("epochs", 10 ** 7), ("batch_videos", 10 ** 9), ("snippets", 10 ** 5),
                           ("hidden", 1 << 16)):
            if not 1 <= int(getattr(self, name)) <= most:
                raise InputError(f"{name}={getattr(self, name)!r} is invalid: it must be an integer in [1, {most}]")
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or not 0 <= self.seed < 2 ** 63:
            raise InputError(f"seed={self.seed!r} is invalid: it must be an integer in [0, 2**63)")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"lr={self.lr!r} is invalid: it must be a finite number > 0")
        if not 0 <= self.momentum < 1:
            raise InputError(f"momentum={self.momentum!r} is invalid: it must be in [0, 1)")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"val_fraction={self.val_fraction!r} is invalid: it must be in [0, 1)")
        for name in ("human_weight", "mil_weight"):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (ok and math.isfinite(value) and 0 <= value <= 1e6):
                raise InputError(f"{name}={value!r} is invalid: it must be a finite number in [0, 1e6]")


def check_max_memory(max_memory_gb) -> int:
    """--max-memory-gb as bytes: a finite number >= 0 (0: always stream from the file)."""
    try:
        gb = float(max_memory_gb)
    except (TypeError, ValueError):
        raise InputError(f"max_memory_gb={max_memory_gb!r} is invalid: expected a number of GB") from None
    if not math.isfinite(gb) or gb < 0 or gb > 1 << 40:
        raise InputError(f"max_memory_gb={max_memory_gb!r} is invalid: it must be a finite number of GB "
                         f"in [0, 2**40]")
    return int(gb * 1024 ** 3)


def sample_indices(lengths, snippets: int = 32, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """(V, snippets) local snippet indices, floor((i + u) * L / snippets) with u = 0, or u ~ U[0, 1)
    per video and segment when ``rng`` is given."""
    lengths = np.asarray(lengths, dtype=np.int64)
    i = np.arange(snippets, dtype=np.float64)[None, :]
    if rng is not None:
        i = i + rng.random((lengths.shape[0], snippets))
    idx = np.floor(i * lengths[:, None] / snippets).astype(np.int64)
    return np.minimum(idx, lengths[:, None] - 1)


def weighted_bce(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 9: mean of -w (y log s + (1 - y) log(1 - s)) over all snippets (log clamped at -100)."""
    return F.binary_cross_entropy(scores, labels, weight=weights, reduction="mean")


def human_weights(weight: np.ndarray, label_source: np.ndarray, human_weight: float) -> np.ndarray:
    """(N,) float32 loss weights: w * human_weight where label_source == 1, w elsewhere (unchanged
    bit for bit where label_source == 0)."""
    weight = np.asarray(weight, np.float32)
    return np.where(np.asarray(label_source) == 1, weight * np.float32(human_weight), weight).astype(np.float32)


def mil_hinge(scores: torch.Tensor, abnormal: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """Multiple-instance ranking hinge (Sultani et al. 2018) of a batch of videos.

    scores (B, T) snippet scores; abnormal, normal (B,) bool masks of the human abnormal / normal
    videos. With m_v = max_t scores[v, t]: mean over every (a, b), a abnormal, b normal, of
    max(0, 1 - m_a + m_b); a zero tensor (still in the graph) when either set is empty."""
    m = scores.max(dim=1).values
    a, b = m[abnormal], m[normal]
    if a.numel() == 0 or b.numel() == 0:
        return scores.sum() * 0.0
    return torch.relu(1.0 - a[:, None] + b[None, :]).mean()


def resolve_device(device: str) -> torch.device:
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise InputError(f"device={device!r} is invalid: choose cpu or cuda")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device={device!r} was requested but torch {torch.__version__} sees no CUDA device "
                         f"(a CPU-only torch build, or no GPU): use --device cpu")
    return torch.device(device)


@dataclass
class TrainingLabels:
    """A labels file's training targets in the feature file's order: pseudo_label, weight (N,)
    float32; label_source (N,) uint8 (0 pseudo, 1 human); video_human (V,) int8 (-1 unlabelled,
    0 human normal, 1 human abnormal); human_video_ids: every labelled id the labels file names;
    human_labels: the human labels' own file (the labels file's ``human_labels`` attribute) or "".
    The attribute may list more ids than ``video_human`` marks (labelled videos of another feature
    file, e.g. the source domain of a cross-domain run); all of them are recorded."""
    pseudo_label: np.ndarray
    weight: np.ndarray
    label_source: np.ndarray
    video_human: np.ndarray
    human_video_ids: list
    human_labels: str = ""


def load_labels(labels_path, features: FeatureFile):
    """(pseudo_label, weight) from a labels file, reordered to the feature file's videos by name."""
    labels = read_training_labels(labels_path, features)
    return labels.pseudo_label, labels.weight


def _human_ids_attr(labels_path, attrs: dict):
    """The labels file's ``human_video_ids`` attribute as a list of str, or None when absent."""
    if "human_video_ids" not in attrs:
        return None
    from lanp.data.human_labels import parse_id_list
    return parse_id_list(attrs["human_video_ids"], f"labels file {str(labels_path)!r}")


def read_training_labels(labels_path, features: FeatureFile) -> TrainingLabels:
    """Pseudo-labels, weights and (when the file has them) the human labels of a labels file,
    reordered to the feature file's videos by name. A file without ``label_source`` and
    ``video_human`` reads as all pseudo (label_source 0, video_human -1)."""
    data, attrs = read_h5(labels_path, "labels", required=LABEL_DATASETS)
    ids, offsets = list(data["video_ids"]), np.asarray(data["offsets"], dtype=np.int64)
    y, w = np.asarray(data["pseudo_label"], np.float32), np.asarray(data["weight"], np.float32)
    if offsets.shape != (len(ids) + 1,) or offsets[-1] != y.shape[0] or w.shape != y.shape:
        raise InputError(f"labels file {str(labels_path)!r}: offsets {offsets.shape} ending at "
                         f"{offsets[-1] if offsets.size else None} do not match {len(ids)} videos and "
                         f"pseudo_label {y.shape} / weight {w.shape}")
    present = [name for name in HUMAN_DATASETS if name in data]
    if len(present) == 1:
        missing = next(name for name in HUMAN_DATASETS if name not in data)
        raise InputError(f"labels file {str(labels_path)!r} has {present[0]!r} but not {missing!r}: a labels "
                         f"file with human labels carries both (lanp propagate --labels-file writes them)")
    if present:
        src, vh = np.asarray(data["label_source"]), np.asarray(data["video_human"])
        if src.shape != y.shape or vh.shape != (len(ids),):
            raise InputError(f"labels file {str(labels_path)!r}: label_source {src.shape} / video_human {vh.shape} "
                             f"do not match pseudo_label {y.shape} / {len(ids)} videos")
        for name, values, allowed in (("label_source", src, (0, 1)), ("video_human", vh, (-1, 0, 1))):
            bad = ~np.isin(values, allowed)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                where = (f"video {ids[k]!r}" if name == "video_human" else
                         f"video {ids[int(np.searchsorted(offsets, k, side='right')) - 1]!r}, snippet "
                         f"{k - int(offsets[int(np.searchsorted(offsets, k, side='right')) - 1])}")
                raise InputError(f"labels file {str(labels_path)!r}: {name!r} of {where} is {values[k].item()}: "
                                 f"it must be one of {', '.join(map(str, allowed))}")
        src, vh = src.astype(np.uint8), vh.astype(np.int8)
    else:
        src, vh = np.zeros(y.shape, np.uint8), np.full(len(ids), -1, np.int8)
    marked = [vid for vid, h in zip(ids, vh) if h >= 0]
    listed = _human_ids_attr(labels_path, attrs)
    if listed is not None and present and not set(marked) <= set(listed):
        odd = sorted(set(marked) - set(listed))
        raise InputError(f"labels file {str(labels_path)!r}: 'video_human' marks video {odd[0]!r} as labelled but "
                         f"the attribute 'human_video_ids' ({len(set(listed))} ids) does not list it")
    human_ids = list(listed) if listed is not None else marked

    where = {vid: k for k, vid in enumerate(ids)}
    N = features.num_snippets
    y_out, w_out = np.empty(N, np.float32), np.empty(N, np.float32)
    src_out, vh_out = np.empty(N, np.uint8), np.empty(features.num_videos, np.int8)
    for v, vid in enumerate(features.video_ids):
        k = where.get(vid)
        if k is None:
            raise InputError(f"labels file {str(labels_path)!r} has no video {vid!r} of features file "
                             f"{features.path!r}: propagate this feature file first")
        L = offsets[k + 1] - offsets[k]
        if L != features.lengths[v]:
            raise InputError(f"video {vid!r}: {L} snippets in labels file {str(labels_path)!r} but "
                             f"{features.lengths[v]} in features file {features.path!r}")
        s = slice(features.offsets[v], features.offsets[v + 1])
        y_out[s], w_out[s] = y[offsets[k]:offsets[k + 1]], w[offsets[k]:offsets[k + 1]]
        src_out[s], vh_out[v] = src[offsets[k]:offsets[k + 1]], vh[k]
    if not np.all(np.isfinite(w_out)):
        raise InputError(f"labels file {str(labels_path)!r}: 'weight' holds NaN or Inf")
    for name, values, ok, rule in (("weight", w_out, (w_out >= 0) & (w_out <= 1e6), "in [0, 1e6]"),
                                   ("pseudo_label", y_out, (y_out == 0) | (y_out == 1), "0 or 1")):
        if not np.all(ok):
            row = int(np.flatnonzero(~ok)[0])
            v = int(np.searchsorted(features.offsets, row, side="right")) - 1
            raise InputError(f"labels file {str(labels_path)!r}: {name!r} of video {features.video_ids[v]!r}, "
                             f"snippet {row - int(features.offsets[v])} is {float(values[row])}: it must be {rule}")
    source = attrs.get("human_labels", "")
    source = source.decode() if isinstance(source, bytes) else str(source)
    return TrainingLabels(y_out, w_out, src_out, vh_out, human_ids, source)


class HumanBatches:
    """Cuts a shuffled order of training positions into batches of ``size`` and tops up every batch
    that lacks a human abnormal (video_human 1) or a human normal (0) video with the next one of that
    kind in a fixed cycle (ascending position, the cycle continuing across calls, so across epochs).
    Without labelled videos the batches are exactly order[b:b + size]."""

    def __init__(self, video_human: np.ndarray, size: int):
        self.video_human = np.asarray(video_human, np.int8)
        self.size = int(size)
        self.cycles = [np.flatnonzero(self.video_human == kind) for kind in (1, 0)]
        self.cycles = [c for c in self.cycles if c.size]
        self.cursor = [0] * len(self.cycles)

    def __call__(self, order: np.ndarray):
        for b in range(0, len(order), self.size):
            idx = order[b:b + self.size]
            extra = []
            for c, cycle in enumerate(self.cycles):
                if not np.isin(cycle, idx).any():
                    extra.append(int(cycle[self.cursor[c] % cycle.size]))
                    self.cursor[c] += 1
            yield np.concatenate([idx, np.asarray(extra, dtype=idx.dtype)]) if extra else idx


class _Rows:
    """Gathers snippet rows (crops averaged) by global index: from memory when the features fit in
    ``max_bytes``, else by streaming the file in chunks of videos (bounded memory)."""

    def __init__(self, features: FeatureFile, max_bytes: int):
        self.ff = features
        self.x = None
        if features.num_snippets * features.dim * 4 <= max_bytes:
            self.x = np.concatenate([features.read(v0, v1)[0] for v0, v1 in features.chunks()], axis=0)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        flat = rows.reshape(-1)
        if self.x is not None:
            return self.x[flat].reshape(rows.shape + (self.ff.dim,))
        out = np.empty((flat.shape[0], self.ff.dim), np.float32)
        order = np.argsort(flat, kind="stable")
        sorted_rows = flat[order]
        for v0, v1 in self.ff.chunks():
            a, b = self.ff.offsets[v0], self.ff.offsets[v1]
            lo, hi = np.searchsorted(sorted_rows, [a, b])
            if hi > lo:
                x, _ = self.ff.read(v0, v1, reuse=True)
                out[order[lo:hi]] = x[sorted_rows[lo:hi] - a]
        return out.reshape(rows.shape + (self.ff.dim,))


def save_checkpoint(path, model: Detector, config: TrainConfig, extra: dict, what: str = "checkpoint",
                    inputs=()) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from lanp.config_file import current_config
    payload = {"state_dict": state, "hparams": asdict(config), "feature_size": model.feature_size,
               "lanp_version": __version__, **extra}
    resolved = current_config()                       # the command line's resolved configuration
    if resolved is not None:
        payload["lanp_config"] = resolved
    with atomic_file(path, what, inputs) as tmp, deferred():     # torch calls tmp.write from C++
        torch.save(payload, tmp)


def load_checkpoint(path, device="cpu"):
    """(model in eval mode, checkpoint dict). Loads with weights_only=True (never unpickles code)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        text = str(exc).strip()
        if "Unsupported global" in text:
            why = "it holds Python objects besides tensors and plain values, which lanp never unpickles"
        elif "Weights only load failed" in text or "invalid load key" in text or "zip archive" in text:
            why = "it is not a torch checkpoint (neither a zip archive nor a pickle of tensors)"
        else:
            why = (text.splitlines() or [type(exc).__name__])[0]
        raise InputError(f"model checkpoint {str(path)!r} cannot be loaded as a lanp checkpoint "
                         f"(torch.load, weights_only=True): {why}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "feature_size" not in ckpt:
        raise InputError(f"model checkpoint {str(path)!r} is not a lanp checkpoint (no state_dict / feature_size)")
    hp = ckpt.get("hparams", {})
    if not isinstance(hp, dict):
        raise InputError(f"model checkpoint {str(path)!r}: 'hparams' is a {type(hp).__name__}, not a dict of "
                         f"hyper-parameters")
    if not isinstance(ckpt["state_dict"], dict):
        raise InputError(f"model checkpoint {str(path)!r}: 'state_dict' is a {type(ckpt['state_dict']).__name__}")

    def number(key, value, kind, lo, hi):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or kind(value) != value or not lo <= value <= hi:
            raise InputError(f"model checkpoint {str(path)!r}: {key} = {value!r} is invalid: expected "
                             f"{'an integer' if kind is int else 'a number'} in [{lo}, {hi}]")
        return kind(value)

    feature_size = number("feature_size", ckpt["feature_size"], int, 1, 1 << 20)
    hidden = number("hparams.hidden", hp.get("hidden", HIDDEN), int, 1, 1 << 16)
    dropout = number("hparams.dropout", hp.get("dropout", DROPOUT), float, 0.0, 1.0)
    for name, value in ckpt["state_dict"].items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.all(torch.isfinite(value)):
            raise InputError(f"model checkpoint {str(path)!r}: weights {name!r} hold NaN or Inf "
                             f"(a diverged training run?)")
    model = Detector(feature_size, hidden=hidden, dropout=dropout)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, KeyError) as exc:
        raise InputError(f"model checkpoint {str(path)!r}: state dict does not fit the detector: {exc}") from None
    return model.to(device).eval(), ckpt


def train(features_path, labels_path, out_path, config: Optional[TrainConfig] = None, device: str = "cpu",
          quiet: bool = False, max_memory_gb: float = 4.0, log=print) -> dict:
    """Train a detector and write its checkpoint atomically to ``out_path``. Returns a summary dict."""
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    config.check()
    check_max_memory(max_memory_gb)
    inputs = [("--features", features_path), ("--labels", labels_path)]
    check_output(out_path, "--out", inputs)
    dev = resolve_device(device)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)

    with FeatureFile(features_path) as ff:
        labels = read_training_labels(labels_path, ff)
        y, w = labels.pseudo_label, human_weights(labels.weight, labels.label_source, config.human_weight)
        V = ff.num_videos
        perm = rng.permutation(V)
        labelled = labels.video_human >= 0
        candidates = perm[~labelled[perm]]             # validation videos: unlabelled ones only
        n_val = int(math.floor(config.val_fraction * candidates.size))
        if config.val_fraction > 0 and (n_val < 1 or n_val >= V):
            raise InputError(f"val_fraction={config.val_fraction} leaves {n_val} validation and {V - n_val} "
                             f"training videos out of {V}"
                             f"{f' ({int(labelled.sum())} human-labelled, never held out)' if labelled.any() else ''}"
                             f": both need at least one")
        val_videos = np.sort(candidates[:n_val])
        train_videos = np.sort(np.setdiff1d(perm, val_videos)) if n_val else np.sort(perm)
        human_train = labels.video_human[train_videos]
        batches = HumanBatches(human_train, config.batch_videos)
        abnormal_t = torch.from_numpy(human_train == 1).to(dev)
        normal_t = torch.from_numpy(human_train == 0).to(dev)
        rows = _Rows(ff, check_max_memory(max_memory_gb))
        offsets, lengths = ff.offsets, ff.lengths

        def batch_of(videos, local):
            g = offsets[videos][:, None] + local
            x = rows.gather(g)
            bad = ~np.isfinite(x)
            if bad.any():
                row = int(g.reshape(-1)[np.flatnonzero(bad.any(axis=-1).reshape(-1))[0]])
                v = int(np.searchsorted(offsets, row, side="right")) - 1
                raise InputError(f"features file {ff.path!r}: video {ff.video_ids[v]!r}, snippet "
                                 f"{row - int(offsets[v])} holds NaN or Inf: every feature must be finite")
            to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)
            return to(x), to(y[g]), to(w[g])

        fixed = batch_of(train_videos, sample_indices(lengths[train_videos], config.snippets))
        val = batch_of(val_videos, sample_indices(lengths[val_videos], config.snippets)) if n_val else None

        model = Detector(ff.dim, hidden=config.hidden, dropout=config.dropout).to(dev)
        opt = torch.optim.RMSprop(model.parameters(), lr=config.lr, momentum=config.momentum)
        history, val_history = [], []
        best = (math.inf, -1, None)
        bar = tqdm(range(config.epochs), desc="train", unit="epoch", disable=quiet, leave=False)
        for epoch in bar:
            if config.random_offsets:
                xt, yt, wt = batch_of(train_videos, sample_indices(lengths[train_videos], config.snippets, rng))
            else:
                xt, yt, wt = fixed
            model.train()
            total, count = 0.0, 0
            for batch, idx_np in enumerate(batches(rng.permutation(len(train_videos)))):
                idx = torch.from_numpy(idx_np).to(dev)
                out = model(xt[idx])
                finite = bool(torch.all(torch.isfinite(out)))
                loss = weighted_bce(out, yt[idx], wt[idx]) if finite else torch.tensor(math.nan)
                if finite and config.mil_weight > 0:
                    loss = loss + config.mil_weight * mil_hinge(out, abnormal_t[idx], normal_t[idx])
                if not torch.isfinite(loss):
                    raise InputError(f"training diverged: the loss is {float(loss)} in epoch {epoch + 1} "
                                     f"(batch {batch + 1}); nothing was written. Lower "
                                     f"--lr (now {config.lr:g}) or check the features and labels for "
                                     f"extreme values")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            history.append(total / count)
            checkpoint()
            postfix = {"loss": f"{history[-1]:.4f}"}
            if val is not None:
                model.eval()
                with torch.no_grad():
                    vloss = float(weighted_bce(model(val[0]), val[1], val[2]))
                val_history.append(vloss)
                postfix["val"] = f"{vloss:.4f}"
                if vloss < best[0]:
                    best = (vloss, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
            bar.set_postfix(postfix)
        bar.close()

    selected = "final"
    if best[2] is not None:
        model.load_state_dict(best[2])
        selected = "best_validation_loss"
    extra = {"epoch": best[1] + 1 if best[2] is not None else config.epochs, "selected": selected,
             "loss_history": history, "val_loss_history": val_history,
             "train_videos": len(train_videos), "val_videos": int(n_val),
             "features": str(features_path), "labels": str(labels_path),
             "human_video_ids": list(labels.human_video_ids), "human_labels": labels.human_labels,
             "human_videos_trained": {"abnormal": int(np.sum(human_train == 1)),
                                      "normal": int(np.sum(human_train == 0))},
             "human_snippets": int(np.sum(labels.label_source == 1))}
    for name, value in model.state_dict().items():
        if not torch.all(torch.isfinite(value)):
            raise InputError(f"training produced non-finite weights in {name!r} (lr {config.lr:g}); "
                             f"nothing was written")
    save_checkpoint(out_path, model, config, extra, "--out", inputs)
    return {"out": str(out_path), "final_loss": history[-1], "first_loss": history[0], **extra}
