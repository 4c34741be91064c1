"""Seeded synthetic UVAD worlds of graded difficulty, with a train and a test split each.

``easy`` is today's ``lanp synth`` data (:func:`lanp.data.synth.make_synthetic`, bit for bit): a few
scenes, smooth drift, strong interior anomalies -- so easy that the distance to a video's ends finds
them. The other worlds are calibrated on real ShanghaiTech I3D features (``docs/worlds.md``) and are
hard the ways real data is:

- lengths drawn from the real UCF-Crime training lengths (frames // 16), scaled by
  ``length_scale`` and clipped to [``min_length``, ``max_length``] so dense graphs stay small, and
  the video label coupled to the length (``label_length``: independent, abnormal videos longer,
  abnormal videos shorter);
- normal videos with scene cuts and camera changes, scenes shared by many videos (train and test
  alike), and rare normal events;
- anomalies from a few classes shared by train and test, strength graded from inside the normal
  spread to obvious, durations from one snippet to most of the video, some touching the first or
  last snippet (the normality prior is violated there).

How a world is made (all in a latent space of ``latent_dim`` dimensions, then mapped to features):
latent dimension k varies with scale lambda_k ∝ (k+1)^-spectrum_decay (sum of lambda_k^2 = 1); a
snippet's latent state is its segment's camera mean (scene mean + camera offset) + the video's
offset + a per-video "activity" times (a moving average of white noise + white noise) + a slow
random walk, plus rare-event and anomaly displacements along fixed unit directions, measured in
units of the normal within-video spread s = sqrt(temporal_std^2 + white_std^2). A fixed random map
A (K x D) gives the features x_d = m_d * max(f(g_d (A h)_d - c + e) - zero_floor, 0), with
f(t) = e^t below 0 and 1 + t above and e ~ N(0, dim_noise^2): non-negative and skewed, with
heavy-tailed per-dimension levels m_d and gains g_d that are larger for low-level dimensions, like
post-ReLU I3D features.

Randomness: the world (scenes, cameras, anomaly classes, rare events, the map) comes from
``world_seed``; the training videos from (world_seed, seed, 0), the test videos from (world_seed,
seed, 1): one world, different videos. Same arguments, same bytes.

API::

    from lanp.data.worlds import WORLDS, generate, write_split
    data = generate("scenes", seed=0)          # WorldData(.train, .test)
    write_split(data.train, "train.h5", "train.gt.h5")
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from lanp.kernels import InputError

FRAMES_PER_SNIPPET = 16
LABEL_LENGTH = ("independent", "abnormal-longer", "abnormal-shorter")
LENGTHS_RESOURCE = "ucf_train_lengths.txt"


def _doc(default, doc: str):
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class EasySpec:
    """Today's ``lanp synth`` world: :func:`lanp.data.synth.make_synthetic` with these arguments.

    The training split is make_synthetic(seed=seed, world_seed=world_seed, prefix="train"), the test
    split the same with seed + 1 and prefix "test" (what ``lanp demo`` uses)."""
    description: str = _doc("the original lanp synth data: few scenes, smooth drift, strong interior anomalies "
                            "(trivially found by the distance to the ends)", "what the world is for")
    dim: int = _doc(64, "feature size D when generate() gets none")
    train_videos: int = _doc(120, "training videos when generate() gets none")
    test_videos: int = _doc(60, "test videos when generate() gets none")
    min_length: int = _doc(24, "shortest video (snippets)")
    max_length: int = _doc(160, "longest video (snippets); lengths are uniform in [min_length, max_length]")
    abnormal_fraction: float = _doc(0.4, "probability that a video is abnormal")
    num_scenes: int = _doc(6, "scene centres of the world")
    num_anomaly_types: int = _doc(4, "anomaly directions of the world")
    drift: float = _doc(0.25, "size of the random walk around the scene centre")
    noise: float = _doc(0.08, "per-snippet noise")
    anomaly_strength: float = _doc(1.2, "length of the anomaly displacement (scene centres have length 1)")


@dataclass(frozen=True)
class WorldSpec:
    """A realistic world (see the module docstring for the generative model); the defaults are the
    ``scenes`` world. Every field has its meaning in ``field.metadata['doc']``; :func:`describe`
    lists them."""
    description: str = _doc("", "what the world is for")
    dim: int = _doc(256, "feature size D when generate() gets none")
    train_videos: int = _doc(160, "training videos when generate() gets none")
    test_videos: int = _doc(80, "test videos when generate() gets none")
    # lengths and labels
    length_scale: float = _doc(0.5, "video length = ceil(UCF-Crime training length x length_scale), clipped")
    min_length: int = _doc(8, "shortest video (snippets), after scaling")
    max_length: int = _doc(256, "longest video (snippets), after scaling: dense graphs stay <= max_length^2")
    abnormal_fraction: float = _doc(0.4, "share of abnormal videos in each split (rounded to a count)")
    label_length: str = _doc("independent", "label-vs-length relation: independent, abnormal-longer or "
                                            "abnormal-shorter")
    length_coupling: float = _doc(0.8, "strength in [0, 1] of the label-vs-length relation (the correlation "
                                       "rho of a Gaussian copula between length rank and abnormality)")
    # normal geometry (latent units)
    latent_dim: int = _doc(48, "dimensions of the latent space the features are made from")
    spectrum_decay: float = _doc(0.4, "latent dimension k varies with scale (k+1)^-spectrum_decay")
    num_scenes: int = _doc(8, "scenes of the world, shared by train and test")
    scene_popularity: float = _doc(1.0, "Zipf exponent of how often each scene is filmed (0: uniform)")
    cameras_per_scene: int = _doc(3, "camera views of each scene")
    scene_separation: float = _doc(0.8, "spread of the scene means")
    camera_separation: float = _doc(0.6, "spread of a scene's camera views around its mean")
    video_separation: float = _doc(0.35, "spread of a video's offset (light, crowd) around its camera")
    temporal_std: float = _doc(0.5, "size of the smooth within-video variation")
    temporal_window: int = _doc(6, "the smooth variation is a moving average of white noise over this many "
                                   "snippets: its autocorrelation falls linearly to 0 at this lag (real I3D: "
                                   "0.65, 0.46, 0.34, 0.23, 0.12, 0.04 at lags 1-6)")
    white_std: float = _doc(0.1, "size of the per-snippet white variation")
    drift: float = _doc(0.2, "random walk over a whole video (total size)")
    activity_spread: float = _doc(0.3, "log-normal sigma of a per-video activity multiplier on the "
                                       "within-video variation")
    cut_rate: float = _doc(1.2, "scene cuts / camera changes per 100 snippets (Poisson)")
    cut_other_scene: float = _doc(0.3, "probability that a cut goes to another scene, not another camera")
    rare_event_rate: float = _doc(0.8, "rare normal events per 100 snippets (Poisson)")
    rare_event_pool: int = _doc(24, "distinct rare normal events of the world (each a fixed direction)")
    rare_event_strength: Tuple[float, float] = _doc((0.8, 2.5), "rare-event displacement, log-uniform, in "
                                                               "units of the normal spread")
    rare_event_length: Tuple[int, int] = _doc((1, 8), "rare-event duration in snippets, uniform")
    rare_event_novelty: float = _doc(0.5, "share of a rare event's displacement (energy) along latent "
                                          "dimensions that ordinary normal snippets never use")
    # anomalies
    num_anomaly_classes: int = _doc(6, "anomaly classes of the world, shared by train and test")
    anomaly_strength: Tuple[float, float] = _doc((0.8, 4.0), "anomaly displacement, log-uniform, in units "
                                                             "of the normal spread")
    anomaly_duration: Tuple[float, float] = _doc((0.02, 0.7), "anomaly duration as a share of the video, "
                                                              "log-uniform, at least one snippet")
    second_anomaly: float = _doc(0.25, "probability of a second anomaly (same class) in an abnormal video")
    prior_violation: float = _doc(0.25, "share of abnormal videos whose (first) anomaly touches the first or "
                                       "last snippet")
    anomaly_novelty: float = _doc(0.5, "share of an anomaly's displacement (energy) along latent dimensions "
                                       "that normal snippets never use (what a supervised detector can learn "
                                       "even where the anomaly is inside the normal spread)")
    test_prior_violation: Optional[float] = _doc(None, "prior_violation of the test split; None: the same as "
                                                       "the training split's")
    class_jitter: float = _doc(0.3, "how far one anomaly's direction strays from its class direction")
    # features
    feature_gain: float = _doc(1.05, "gain g_d of a dimension of median level")
    gain_level_slope: float = _doc(0.45, "g_d ∝ (m_d / feature_level)^-gain_level_slope: sparse, low-level "
                                         "dimensions vary more (real I3D: Spearman(mean, std/mean) = -0.78)")
    gain_spread: float = _doc(0.2, "log-normal sigma of the gains g_d around that trend")
    feature_level: float = _doc(0.15, "median over dimensions of the level m_d (log-normal)")
    level_spread: float = _doc(0.95, "log-normal sigma of the levels m_d")
    dim_noise: float = _doc(0.18, "independent noise of every dimension and snippet, added to g_d (A h)_d "
                                  "(the variance beyond the latent space)")
    feature_offset: float = _doc(0.5, "c in f(g_d (A h)_d - c): shifts dimensions into the curved, skewed "
                                      "part of f")
    zero_floor: float = _doc(0.015, "floor_d = zero_floor x m_d: values below it become exactly 0")

    def check(self) -> "WorldSpec":
        """Raise InputError naming the first bad field and its allowed values."""
        def bad(name, allowed):
            raise InputError(f"{name}={getattr(self, name)!r} is invalid: it must be {allowed}")
        if self.label_length not in LABEL_LENGTH:
            bad("label_length", "one of " + ", ".join(LABEL_LENGTH))
        if not 0.0 <= self.abnormal_fraction <= 1.0:
            bad("abnormal_fraction", "in [0, 1]")
        if not 0.0 <= self.length_coupling <= 1.0:
            bad("length_coupling", "in [0, 1]")
        if not self.length_scale > 0:
            bad("length_scale", "> 0")
        if not 1 <= self.min_length <= self.max_length:
            bad("min_length", f"an integer in [1, max_length={self.max_length}]")
        for name in ("latent_dim", "num_scenes", "cameras_per_scene", "num_anomaly_classes", "rare_event_pool",
                     "dim", "train_videos", "test_videos"):
            if int(getattr(self, name)) < 1:
                bad(name, "an integer >= 1")
        if int(self.temporal_window) < 1:
            bad("temporal_window", "an integer >= 1")
        for name in ("cut_other_scene", "second_anomaly", "prior_violation", "anomaly_novelty",
                     "rare_event_novelty"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(name, "in [0, 1]")
        if self.test_prior_violation is not None and not 0.0 <= self.test_prior_violation <= 1.0:
            bad("test_prior_violation", "None or in [0, 1]")
        for name in ("spectrum_decay", "scene_popularity", "gain_level_slope", "scene_separation", "camera_separation",
                     "video_separation", "temporal_std", "white_std", "drift", "activity_spread", "cut_rate",
                     "rare_event_rate", "class_jitter", "gain_spread", "level_spread", "zero_floor", "feature_offset", "dim_noise"):
            if not getattr(self, name) >= 0:
                bad(name, ">= 0")
        for name in ("feature_gain", "feature_level"):
            if not getattr(self, name) > 0:
                bad(name, "> 0")
        for name, lo_min in (("anomaly_strength", 0.0), ("rare_event_strength", 0.0), ("anomaly_duration", 0.0)):
            lo, hi = getattr(self, name)
            if not lo_min < lo <= hi:
                bad(name, "a pair (low, high) with 0 < low <= high")
        if self.anomaly_duration[1] > 1.0:
            bad("anomaly_duration", "a pair (low, high) with 0 < low <= high <= 1")
        lo, hi = self.rare_event_length
        if not 1 <= lo <= hi:
            bad("rare_event_length", "a pair of integers (low, high) with 1 <= low <= high")
        if self.temporal_std + self.white_std <= 0:
            bad("temporal_std", "> 0 when white_std is 0 (the normal spread is the unit of strengths)")
        return self


Spec = Union[EasySpec, WorldSpec]

WORLDS: Dict[str, Spec] = {
    "easy": EasySpec(),
    "scenes": WorldSpec(
        description="shared scenes, cuts and camera changes, rare normal events, anomaly classes from barely "
                    "visible to obvious, a quarter touching the ends; labels independent of length"),
    "subtle": WorldSpec(
        description="as scenes, but anomalies mostly inside the normal spread (found only along their own "
                    "directions) and more touch the ends",
        anomaly_strength=(0.45, 2.2), anomaly_novelty=0.9, prior_violation=0.3),
    "clean-train": WorldSpec(
        description="the held-back real benchmark's profile: training videos obey the prior (start and end "
                    "normal), half the test videos do not; anomalies a little stronger",
        prior_violation=0.0, test_prior_violation=0.5, anomaly_strength=(1.2, 4.0)),
    "length-biased-long": WorldSpec(
        description="as scenes, with abnormal videos longer than normal ones (std(z) calls long videos normal)",
        label_length="abnormal-longer"),
    "length-biased-short": WorldSpec(
        description="as scenes, with abnormal videos shorter than normal ones (rewards a length-biased split)",
        label_length="abnormal-shorter"),
}


def describe(spec: Spec) -> List[Tuple[str, object, str]]:
    """(field, value, meaning) of every field of a spec."""
    return [(f.name, getattr(spec, f.name), f.metadata.get("doc", "")) for f in fields(spec)]


def world_spec(name: str, **overrides) -> Spec:
    """The spec of a named world, with fields replaced by ``overrides`` (checked)."""
    if name not in WORLDS:
        raise InputError(f"world={name!r} is unknown: choose one of {', '.join(WORLDS)}")
    spec = WORLDS[name]
    known = [f.name for f in fields(spec)]
    unknown = [k for k in overrides if k not in known]
    if unknown:
        raise InputError(f"world {name!r} has no parameter {unknown[0]!r}: its parameters are {', '.join(known)}")
    overrides = {k: _typed(name, spec, k, v) for k, v in overrides.items()}
    spec = replace(spec, **overrides) if overrides else spec
    if isinstance(spec, EasySpec):
        _check_easy(spec)
    else:
        spec.check()
    return spec


def _typed(world: str, spec: Spec, name: str, value):
    """``value`` converted to the type of the field's default; InputError when it does not fit."""
    default = getattr(spec, name)
    number = lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
    optional = {f.name for f in fields(spec) if f.default is None}
    if name in optional:
        if value is None or number(value):
            return None if value is None else float(value)
        kind = "None or a number"
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
        kind = "a string"
    elif isinstance(default, tuple):
        if isinstance(value, (tuple, list)) and len(value) == len(default) and all(map(number, value)):
            return tuple(type(d)(v) if isinstance(d, int) and float(v).is_integer() else v
                         for d, v in zip(default, value))
        kind = f"a pair (low, high) of numbers, like {default}"
    elif isinstance(default, int):
        if number(value) and float(value).is_integer():
            return int(value)
        kind = "an integer"
    else:
        if number(value):
            return float(value)
        kind = "a number"
    raise InputError(f"world {world!r}: {name}={value!r} is invalid: it must be {kind}")


def _check_easy(spec: EasySpec) -> None:
    for name in ("num_scenes", "num_anomaly_types", "dim", "train_videos", "test_videos"):
        if getattr(spec, name) < 1:
            raise InputError(f"{name}={getattr(spec, name)!r} is invalid: it must be an integer >= 1")
    for name in ("drift", "noise", "anomaly_strength"):
        if not getattr(spec, name) >= 0:
            raise InputError(f"{name}={getattr(spec, name)!r} is invalid: it must be >= 0")
    if not 0.0 <= spec.abnormal_fraction <= 1.0:
        raise InputError(f"abnormal_fraction={spec.abnormal_fraction!r} is invalid: it must be in [0, 1]")
    if not 1 <= spec.min_length <= spec.max_length:
        raise InputError(f"min_length={spec.min_length!r} is invalid: it must be an integer in "
                         f"[1, max_length={spec.max_length}]")


@dataclass
class Split:
    """One split of a world, packed. ``video_classes``/``snippet_classes`` are -1 where normal."""
    features: np.ndarray          # (N, D) float32, non-negative for realistic worlds
    offsets: np.ndarray           # (V+1,) int64
    video_ids: List[str]          # V
    snippet_labels: np.ndarray    # (N,) uint8, 1 inside anomalies
    video_labels: np.ndarray      # (V,) uint8
    video_classes: np.ndarray     # (V,) int16, anomaly class of the video's anomalies, -1 normal
    snippet_classes: np.ndarray   # (N,) int16, anomaly class of the snippet, -1 normal
    video_scenes: np.ndarray      # (V,) int16, scene of the first snippet
    video_cameras: np.ndarray     # (V,) int16, camera of the first snippet
    snippet_scenes: np.ndarray    # (N,) int16, scene of every snippet (cuts change it)
    rare_events: np.ndarray       # (N,) uint8, 1 inside rare normal events
    prior_violation: np.ndarray   # (V,) bool, an anomaly touches the first or last snippet

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def video(self, v: int) -> np.ndarray:
        return self.features[self.offsets[v]:self.offsets[v + 1]]

    def frame_labels(self, frames_per_snippet: int = FRAMES_PER_SNIPPET):
        """(frame_labels (N*fps,), frame_offsets (V+1,)): every snippet label repeated per frame."""
        return np.repeat(self.snippet_labels, frames_per_snippet), self.offsets * frames_per_snippet


@dataclass
class WorldData:
    name: str
    spec: Spec
    seed: int
    world_seed: int
    dim: int
    train: Split
    test: Split


def ucf_train_lengths() -> np.ndarray:
    """The 1,610 real UCF-Crime training lengths in snippets (frames // 16), shipped with lanp."""
    text = resources.files("lanp.data").joinpath(LENGTHS_RESOURCE).read_text()
    return np.array(text.split(), dtype=np.int64)


def scaled_lengths(raw: np.ndarray, spec: WorldSpec) -> np.ndarray:
    """Length rule: ceil(raw x length_scale) clipped to [min_length, max_length]."""
    return np.clip(np.ceil(np.asarray(raw) * spec.length_scale), spec.min_length, spec.max_length).astype(np.int64)


def _check_sizes(train_videos, test_videos, dim):
    for name, value, low in (("train_videos", train_videos, 1), ("test_videos", test_videos, 1), ("dim", dim, 2)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise InputError(f"{name}={value!r} is invalid: it must be an integer >= {low}")


def generate(name: str, *, seed: int = 0, train_videos: Optional[int] = None, test_videos: Optional[int] = None,
             dim: Optional[int] = None, world_seed: Optional[int] = None, **overrides) -> WorldData:
    """Draw a train and a test split from the world ``name`` (one of ``WORLDS``).

    train_videos, test_videos, dim: default the spec's (``easy``: 120, 60, 64 like ``lanp demo``; the
    others 160, 80, 256). seed: the videos; world_seed (default: seed): scenes, cameras, anomaly classes, rare events and the
    feature map, shared by both splits. ``overrides`` replace fields of the world's spec, e.g.
    ``label_length="abnormal-longer"``. Bad names or values raise InputError naming them and their
    allowed values.
    """
    spec = world_spec(name, **overrides)
    train_videos = spec.train_videos if train_videos is None else train_videos
    test_videos = spec.test_videos if test_videos is None else test_videos
    dim = spec.dim if dim is None else dim
    _check_sizes(train_videos, test_videos, dim)
    world_seed = seed if world_seed is None else world_seed
    for label, value in (("seed", seed), ("world_seed", world_seed)):
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise InputError(f"{label}={value!r} is invalid: it must be an integer >= 0")
    if isinstance(spec, EasySpec):
        train, test = _easy_split(spec, train_videos, dim, seed, world_seed, "train"), \
            _easy_split(spec, test_videos, dim, seed + 1, world_seed, "test")
    else:
        model = _World(spec, int(dim), np.random.default_rng([int(world_seed), 7]))
        test_violation = spec.prior_violation if spec.test_prior_violation is None else spec.test_prior_violation
        train = model.split(int(train_videos), np.random.default_rng([int(world_seed), int(seed), 0]), "train",
                            spec.prior_violation)
        test = model.split(int(test_videos), np.random.default_rng([int(world_seed), int(seed), 1]), "test",
                           test_violation)
    return WorldData(name=name, spec=spec, seed=int(seed), world_seed=int(world_seed), dim=int(dim),
                     train=train, test=test)


def easy_dataset(spec: EasySpec, num_videos: int, dim: int, seed: int, world_seed: int, prefix: str):
    """make_synthetic with the spec's arguments (the ``easy`` world's one dataset)."""
    from lanp.data.synth import make_synthetic
    return make_synthetic(num_videos=num_videos, dim=dim, min_length=spec.min_length, max_length=spec.max_length,
                          abnormal_fraction=spec.abnormal_fraction, num_scenes=spec.num_scenes,
                          num_anomaly_types=spec.num_anomaly_types, drift=spec.drift, noise=spec.noise,
                          anomaly_strength=spec.anomaly_strength, seed=seed, world_seed=world_seed, prefix=prefix)


def _easy_split(spec: EasySpec, num_videos, dim, seed, world_seed, prefix) -> Split:
    d = easy_dataset(spec, int(num_videos), int(dim), int(seed), int(world_seed), prefix)
    V, N = len(d.video_ids), int(d.offsets[-1])
    minus = lambda n: np.full(n, -1, np.int16)
    return Split(features=d.features, offsets=d.offsets, video_ids=d.video_ids, snippet_labels=d.snippet_labels,
                 video_labels=d.video_labels, video_classes=minus(V), snippet_classes=minus(N),
                 video_scenes=minus(V), video_cameras=minus(V), snippet_scenes=minus(N),
                 rare_events=np.zeros(N, np.uint8), prior_violation=np.zeros(V, bool))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _loguniform(rng, pair) -> float:
    lo, hi = pair
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else float(lo)


class _World:
    """The world's fixed parts (from the world RNG) and the drawing of one split."""

    def __init__(self, spec: WorldSpec, dim: int, rng: np.random.Generator):
        self.spec, self.dim = spec, dim
        K = spec.latent_dim
        lam = np.arange(1, K + 1, dtype=np.float64) ** -spec.spectrum_decay
        self.lam = lam / np.linalg.norm(lam)
        self.spread = math.hypot(spec.temporal_std, spec.white_std)
        # latent parts first, so a world's scenes and classes do not depend on dim
        self.scenes = spec.scene_separation * rng.normal(size=(spec.num_scenes, K)) * self.lam
        self.cameras = self.scenes[:, None, :] + spec.camera_separation * rng.normal(
            size=(spec.num_scenes, spec.cameras_per_scene, K)) * self.lam
        popularity = (np.arange(1, spec.num_scenes + 1, dtype=np.float64)) ** -spec.scene_popularity
        self.popularity = popularity / popularity.sum()
        # anomaly classes and rare events: a shared-latent part and a part along dimensions of their own
        # (K + c for class c, K + num_anomaly_classes + j for rare event j) that normal snippets never use
        C, R = spec.num_anomaly_classes, spec.rare_event_pool
        self.width = K + C + R
        self.classes = self._directions(rng, C, K, spec.anomaly_novelty)
        self.rare = self._directions(rng, R, K + C, spec.rare_event_novelty)
        # the feature map
        self.A = rng.normal(size=(self.width, dim))
        self.level = spec.feature_level * np.exp(spec.level_spread * rng.normal(size=dim))
        self.gain = (spec.feature_gain * (self.level / spec.feature_level) ** -spec.gain_level_slope
                     * np.exp(spec.gain_spread * rng.normal(size=dim)))
        self.gain = np.clip(self.gain, 0.25 * spec.feature_gain, 2.0 * spec.feature_gain)
        self.pool = ucf_train_lengths()

    def _directions(self, rng, n: int, first: int, novelty: float) -> np.ndarray:
        K = self.lam.shape[0]
        d = np.zeros((n, self.width))
        d[:, :K] = math.sqrt(1.0 - novelty) * _unit(rng.normal(size=(n, K)))
        d[np.arange(n), first + np.arange(n)] = math.sqrt(novelty)
        return d

    def features(self, h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = (h @ self.A) * self.gain - self.spec.feature_offset
        u += self.spec.dim_noise * rng.normal(size=u.shape)
        f = np.where(u > 0, 1.0 + u, np.exp(np.minimum(u, 0.0)))      # exp below 0, linear above: no blow-up
        x = np.maximum(self.level * (f - self.spec.zero_floor), 0.0)
        empty = ~x.any(axis=1)              # never an all-zero snippet (lanp refuses those); only at tiny D
        x[empty] = 1e-3 * self.level
        return x.astype(np.float32)

    def _labels(self, lengths: np.ndarray, rng) -> np.ndarray:
        spec, V = self.spec, lengths.shape[0]
        n_abnormal = int(round(spec.abnormal_fraction * V))
        noise = rng.normal(size=V)
        if spec.label_length == "independent" or spec.length_coupling == 0:
            score = noise
        else:
            from scipy.special import ndtri
            from scipy.stats import rankdata
            z = ndtri((rankdata(lengths) - 0.5) / V)
            rho = spec.length_coupling
            score = rho * z + math.sqrt(max(0.0, 1.0 - rho * rho)) * noise
            if spec.label_length == "abnormal-shorter":
                score = -score
        abnormal = np.zeros(V, dtype=bool)
        abnormal[np.argsort(-score, kind="stable")[:n_abnormal]] = True
        return abnormal

    def _smooth(self, L: int, rng) -> np.ndarray:
        """(L, K) moving average of unit white noise over temporal_window snippets (unit variance)."""
        w = int(self.spec.temporal_window)
        e = np.cumsum(rng.normal(size=(L + w, self.lam.shape[0])), axis=0)
        return (e[w:] - e[:-w]) / math.sqrt(w)

    def split(self, num_videos: int, rng: np.random.Generator, prefix: str, prior_violation: float) -> Split:
        spec, K = self.spec, self.lam.shape[0]
        lengths = scaled_lengths(rng.choice(self.pool, size=num_videos), spec)
        abnormal = self._labels(lengths, rng)
        H, Y, C, S, R = [], [], [], [], []
        v_class = np.full(num_videos, -1, np.int16)
        v_scene = np.zeros(num_videos, np.int16)
        v_camera = np.zeros(num_videos, np.int16)
        violation = np.zeros(num_videos, bool)
        for v in range(num_videos):
            L = int(lengths[v])
            scene = int(rng.choice(spec.num_scenes, p=self.popularity))
            camera = int(rng.integers(spec.cameras_per_scene))
            v_scene[v], v_camera[v] = scene, camera
            offset = spec.video_separation * rng.normal(size=K) * self.lam
            activity = math.exp(spec.activity_spread * rng.normal())
            # segments: cuts to another camera of the scene or to another scene
            n_cuts = min(int(rng.poisson(spec.cut_rate * L / 100.0)), max(0, L - 1))
            cuts = np.sort(rng.choice(np.arange(1, L), size=n_cuts, replace=False)) if n_cuts else np.array([], int)
            base = np.zeros((L, self.width))
            scenes = np.empty(L, np.int16)
            bounds = [0, *cuts.tolist(), L]
            s, c = scene, camera
            for i in range(len(bounds) - 1):
                if i > 0:
                    if rng.random() < spec.cut_other_scene and spec.num_scenes > 1:
                        s = int(rng.choice([k for k in range(spec.num_scenes) if k != s],
                                           p=_renorm(self.popularity, s)))
                        c = int(rng.integers(spec.cameras_per_scene))
                    elif spec.cameras_per_scene > 1:
                        c = int((c + rng.integers(1, spec.cameras_per_scene)) % spec.cameras_per_scene)
                base[bounds[i]:bounds[i + 1], :K] = self.cameras[s, c]
                scenes[bounds[i]:bounds[i + 1]] = s
            h = base
            h[:, :K] += offset + activity * self.lam * (spec.temporal_std * self._smooth(L, rng)
                                                        + spec.white_std * rng.normal(size=(L, K)))
            h[:, :K] += np.cumsum(rng.normal(size=(L, K)), axis=0) * self.lam * (spec.drift / math.sqrt(L))
            # rare normal events
            rare = np.zeros(L, np.uint8)
            for _ in range(int(rng.poisson(spec.rare_event_rate * L / 100.0))):
                n = int(min(L, rng.integers(spec.rare_event_length[0], spec.rare_event_length[1] + 1)))
                lo = int(rng.integers(0, L - n + 1))
                direction = self.rare[rng.integers(spec.rare_event_pool)]
                h[lo:lo + n] += _loguniform(rng, spec.rare_event_strength) * self.spread * direction
                rare[lo:lo + n] = 1
            # anomalies
            y = np.zeros(L, np.uint8)
            if abnormal[v]:
                k = int(rng.integers(spec.num_anomaly_classes))
                v_class[v] = k
                touch = rng.random() < prior_violation
                for i in range(1 + int(rng.random() < spec.second_anomaly)):
                    n = max(1, int(round(_loguniform(rng, spec.anomaly_duration) * L)))
                    if i == 0 and touch:
                        n = min(n, L)
                        lo = 0 if rng.random() < 0.5 else L - n
                    else:
                        n = min(n, max(1, L - 2))
                        lo = int(rng.integers(1, max(2, L - n))) if L > 2 else 0
                    jitter = np.zeros(self.width)
                    jitter[:K] = spec.class_jitter * rng.normal(size=K) / math.sqrt(K)
                    direction = _unit(self.classes[k] + jitter)
                    h[lo:lo + n] += _loguniform(rng, spec.anomaly_strength) * self.spread * direction
                    y[lo:lo + n] = 1
                violation[v] = bool(y[0] or y[-1])
            H.append(h)
            Y.append(y)
            C.append(np.where(y > 0, v_class[v], -1).astype(np.int16))
            S.append(scenes)
            R.append(rare)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        labels = np.concatenate(Y)
        video_labels = np.array([y.any() for y in Y], dtype=np.uint8)
        v_class[video_labels == 0] = -1
        return Split(features=self.features(np.concatenate(H), rng), offsets=offsets,
                     video_ids=[f"{prefix}_{v:04d}" for v in range(num_videos)], snippet_labels=labels,
                     video_labels=video_labels, video_classes=v_class, snippet_classes=np.concatenate(C),
                     video_scenes=v_scene, video_cameras=v_camera, snippet_scenes=np.concatenate(S),
                     rare_events=np.concatenate(R), prior_violation=violation)


def _renorm(p: np.ndarray, drop: int) -> np.ndarray:
    q = np.delete(p, drop)
    return q / q.sum()


def write_split(split: Split, features_path, gt_path=None, attrs: Optional[dict] = None,
                frames_per_snippet: int = FRAMES_PER_SNIPPET) -> None:
    """Features in lanp's packed layout (``features``, ``offsets``, ``video_ids``); ground truth as
    lanp's gt.h5 (``snippet_labels`` + ``offsets`` + ``video_ids``, ``frame_labels`` +
    ``frame_offsets``, ``video_labels``, and the world's ``video_classes``, ``snippet_classes``,
    ``video_scenes``, ``rare_events``, ``prior_violation``). Both written atomically."""
    from lanp.data.io import write_h5
    meta = {"generator": "lanp.data.worlds", "frames_per_snippet": frames_per_snippet, **(attrs or {})}
    write_h5(features_path, {"features": split.features, "offsets": split.offsets, "video_ids": split.video_ids},
             meta)
    if gt_path is not None:
        frames, frame_offsets = split.frame_labels(frames_per_snippet)
        write_h5(gt_path, {"frame_labels": frames, "frame_offsets": frame_offsets,
                           "snippet_labels": split.snippet_labels, "offsets": split.offsets,
                           "video_ids": split.video_ids, "video_labels": split.video_labels,
                           "video_classes": split.video_classes, "snippet_classes": split.snippet_classes,
                           "video_scenes": split.video_scenes, "rare_events": split.rare_events,
                           "prior_violation": split.prior_violation.astype(np.uint8)}, meta)
