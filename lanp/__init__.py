"""lanp: Learning Anomalies with Normality Prior (ECCV 2024) for unsupervised video anomaly detection.

``lanp.label(features, offsets)`` labels snippet features in memory (see :func:`lanp.api.label`);
``lanp.kernels`` holds the numeric kernels. Both are imported on first use, so ``import lanp``
stays cheap for the command line.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("lanp")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.1.0+src"


def __getattr__(name):
    if name == "label":
        from lanp.api import label
        return label
    raise AttributeError(f"module 'lanp' has no attribute {name!r}")


__all__ = ["label", "__version__"]
