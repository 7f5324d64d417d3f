"""``ttg-lab dashboard``: prepare the embedded default store and serve the dashboard with
Voila (preheated kernels, no tracebacks or source shown to viewers).

Every page gets a kernel of its own, and a page that is reloaded, left or closed ends it:
its script posts Voila's shutdown with the ``_xsrf`` cookie our identity provider issues
(:mod:`ttg_lab.voila_identity`), and a kernel no page is connected to that has done
nothing for :data:`KERNEL_CULL_AFTER` seconds is ended by Voila's culler (a browser may
close a tab without the shutdown request).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from ttg_lab.config import PROJECT_ROOT
from ttg_lab.errors import ConfigError
from ttg_lab.mcp_services.manager import LOOPBACK_HOSTS
from ttg_lab.processes import stop_signals

if TYPE_CHECKING:
    from ttg_lab.lab import Lab

NOTEBOOK = PROJECT_ROOT / "notebooks" / "dashboard.ipynb"
KERNEL_CULL_AFTER = 300
"""Seconds a kernel with no page connected and no activity lives on before it is ended."""
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
        lab.models.share(model)  # the baselines are everyone's yardstick
        lab.start_run(model, mode="daily", path="direct", background=False)
        prepared.append(model.signature)
    return prepared


def voila_command(
    host: str, port: int, token: str | None, cull_after: int = KERNEL_CULL_AFTER
) -> list[str]:
    """The Voila command line that serves the dashboard notebook; kernels of pages that
    are gone end (see the module's docstring), idle ones after ``cull_after`` seconds."""
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
        # pages get the _xsrf cookie, so a closed or reloaded page ends its kernel
        "--Voila.identity_provider_class=ttg_lab.voila_identity.DashboardIdentityProvider",
        f"--MappingKernelManager.cull_idle_timeout={cull_after}",
        f"--MappingKernelManager.cull_interval={min(60, max(1, cull_after // 3))}",
    ]
    # the token itself goes to Voila in JUPYTER_TOKEN (see serve), never on the command line
    command.append("--Voila.auto_token=True" if token else "--Voila.auto_token=False")
    return command


def has_market_data(db_url: str) -> bool:
    """A cheap look (no lab opened) at whether an SQLite store already holds market data;
    False for other databases and for anything unreadable, which means: prepare first."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database or not Path(url.database).exists():
        return False
    try:
        with sqlite3.connect(f"file:{url.database}?mode=ro", uri=True) as conn:
            return bool(conn.execute("SELECT count(*) FROM datasets").fetchone()[0])
    except sqlite3.Error:
        return False


def _prepare(db_url: str) -> None:
    """Prepare the store on a first start, as the local admin (who owns the shared
    baselines); only an admin may, so a first start by an ordinary user is refused."""
    import ttg_lab
    from ttg_lab.store.access import require_admin
    from ttg_lab.users import LOCAL_USERNAME

    lab = ttg_lab.open(db_url)  # whoever the environment says serves the dashboard
    try:
        if is_prepared(lab):
            return
        require_admin(lab.user, "preparing the store on the dashboard's first start")
    finally:
        lab.close()
    lab = ttg_lab.open(db_url, user=LOCAL_USERNAME)
    try:
        print("preparing the embedded store (first start)...", flush=True)
        prepare_default(lab)
    finally:
        lab.close()


def serve(db_url: str, host: str = "127.0.0.1", port: int = 8866, token: str | None = None) -> int:
    """Start Voila and print the URL, preparing the store first on a first start; returns
    Voila's exit code. On a store that already has its data, Voila starts at once and the
    remaining checks run while its kernel warms up."""
    if host not in LOOPBACK_HOSTS and not token:
        raise ConfigError(
            f"refusing to serve the dashboard on {host} without a token; pass --token"
        )
    command = voila_command(host, port, token)
    env = {**os.environ, "TTG_LAB_DB_URL": db_url}
    if host not in ("0.0.0.0", "::", ""):  # where a pre-heated kernel asks for its page
        env["VOILA_APP_IP"] = f"[{host}]" if ":" in host else host
    if token:
        env["JUPYTER_TOKEN"] = token
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    with stop_signals():  # stopping the command (Ctrl-C, SIGINT, SIGTERM) stops Voila
        return _serve(command, env, url, db_url)


def _serve(command: list[str], env: dict[str, str], url: str, db_url: str) -> int:
    """Voila started (before the store's checks when the store has its data), then waited
    on; a stop (KeyboardInterrupt, see :func:`~ttg_lab.processes.stop_signals`) ends it."""
    notebooks = str(PROJECT_ROOT / "notebooks")
    process: subprocess.Popen[bytes] | None = None
    try:
        if has_market_data(db_url):
            process = subprocess.Popen(command, env=env, cwd=notebooks)
        _prepare(db_url)
        if process is None:
            process = subprocess.Popen(command, env=env, cwd=notebooks)
        print(f"TTG Lab dashboard: {url}", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        if process is None:
            raise
        process.terminate()
        return process.wait()
    except BaseException:
        if process is not None:
            process.terminate()
        raise
