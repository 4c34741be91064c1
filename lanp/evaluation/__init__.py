"""Evaluation: frame-level metrics, plots, baselines, method comparison, the demo."""
