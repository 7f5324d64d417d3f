"""``ttg-lab dashboard``: prepare the embedded default store and serve the dashboard with
Voila (preheated kernels, no tracebacks or source shown to viewers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ttg_lab.config import PROJECT_ROOT
from ttg_lab.errors import ConfigError
from ttg_lab.lab import Lab
from ttg_lab.services.manager import LOOPBACK_HOSTS

NOTEBOOK = PROJECT_ROOT / "notebooks" / "dashboard.ipynb"
BASELINE_MODELS: list[dict[str, object]] = [
    {
        "name": "Baseline buy and hold QQQ",
        "ai_model_id": "baseline/buy_and_hold",
        "tickers": ["QQQ"],
    },
    {"name": "Baseline buy and hold", "ai_model_id": "baseline/buy_and_hold"},
    {"name": "Baseline momentum", "ai_model_id": "baseline/momentum"},
    {"name": "Baseline mean reversion", "ai_model_id": "baseline/mean_reversion"},
    {"name": "Baseline random", "ai_model_id": "baseline/random"},
    {"name": "Baseline cash", "ai_model_id": "baseline/cash"},
]


def is_prepared(lab: Lab) -> bool:
    """Whether the store already holds the shipped data and the baseline models."""
    names = {m.name for m in lab.models.list()}
    return not lab.data.list().empty and all(spec["name"] in names for spec in BASELINE_MODELS)


def prepare_default(lab: Lab) -> list[str]:
    """First start: shipped data and AI-Trader runs loaded, baseline models created and
    run once over the NASDAQ-100 period so the leaderboard has both. Idempotent."""
    lab.init()
    known = {m.name for m in lab.models.list()}
    prepared = []
    for spec in BASELINE_MODELS:
        if spec["name"] in known:
            continue
        model = lab.models.create(initial_cash=100_000.0, **spec)  # type: ignore[arg-type]
        lab.start_run(model, mode="daily", path="direct", background=False)
        prepared.append(model.signature)
    return prepared


def voila_command(host: str, port: int, token: str | None) -> list[str]:
    """The Voila command line that serves the dashboard notebook."""
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or shutil.which("voila")
    if voila is None:
        raise ConfigError("voila is not installed; run: pip install -e '.[dev]'")
    command = [
        voila,
        str(NOTEBOOK),
        "--no-browser",
        f"--Voila.ip={host}",
        f"--port={port}",
        "--theme=dark",
        "--show_tracebacks=False",
        "--strip_sources=True",
        "--preheat_kernel=True",
        "--pool_size=1",
        "--Voila.port_retries=0",
    ]
    command.append(f"--token={token}" if token else "--Voila.auto_token=False")
    return command


def serve(lab: Lab, host: str = "127.0.0.1", port: int = 8866, token: str | None = None) -> int:
    """Prepare the store, start Voila and print the URL; returns Voila's exit code."""
    if host not in LOOPBACK_HOSTS and not token:
        raise ConfigError(
            f"refusing to serve the dashboard on {host} without a token; pass --token"
        )
    if not is_prepared(lab):  # first start; later starts go straight to Voila
        print("preparing the embedded store (first start)...", flush=True)
        prepare_default(lab)
    command = voila_command(host, port, token)
    env = {**os.environ, "TTG_LAB_DB_URL": lab.settings.db_url}
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"TTG Lab dashboard: {url}", flush=True)
    process = subprocess.Popen(command, env=env, cwd=str(PROJECT_ROOT / "notebooks"))
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()
