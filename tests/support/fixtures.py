"""Pytest fixtures for the offline OpenAI stub (load with ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .openai_server import OpenAIStubServer, Text


@pytest.fixture()
def openai_stub() -> Iterator[OpenAIStubServer]:
    """A running stub server answering ``Text("ok")``; swap replies with ``reset()``."""
    server = OpenAIStubServer(lambda _request: Text("ok"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
