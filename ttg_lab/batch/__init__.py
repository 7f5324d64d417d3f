"""Batch experiments: a grid of parameter sets run as papermill notebooks, resumable."""
