"""What a fresh interpreter imports: for the tests that keep start-up light."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def loaded_after(code: str, *watch: str, env: dict[str, str] | None = None) -> list[str]:
    """The modules among ``watch`` (or any of their submodules) that a fresh interpreter
    has imported after ``code`` (which may end the process with ``sys.exit``: the answer
    is written at exit)."""
    report = f"""
import atexit, json, sys
WATCH = {list(watch)!r}
def report():
    loaded = [w for w in WATCH if any(m == w or m.startswith(w + ".") for m in sys.modules)]
    sys.__stdout__.write("LOADED=" + json.dumps(loaded) + "\\n")
atexit.register(report)
"""
    result = subprocess.run(
        [sys.executable, "-c", report + code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("LOADED=")]
    assert lines, f"no report:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return list(json.loads(lines[-1].removeprefix("LOADED=")))
