"""Test support code: an offline OpenAI-compatible stub server and its pytest fixtures."""
