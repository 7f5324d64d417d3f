"""The package version, in a module of its own so every layer may record it (a run's
snapshot keeps the version that made it) without importing the public API."""

__version__ = "0.1.0"
