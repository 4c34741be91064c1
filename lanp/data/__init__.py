"""Data I/O: feature files, atomic HDF5 outputs, converters, ground truth, synthetic data."""
