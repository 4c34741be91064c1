"""lanp: Learning Anomalies with Normality Prior (ECCV 2024) for unsupervised video anomaly detection."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("lanp")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.1.0+src"
