"""Start, stop and report the four MCP services as background HTTP servers.

Each service runs in its own process (``ttg-lab mcp serve SERVICE``) on 127.0.0.1 at a
configurable port; the manager keeps their pids and ports in a small state file in the
data folder and checks their health over HTTP. The token, when one is used, travels in
the environment, never on a command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import httpx

from ttg_lab.config import Settings
from ttg_lab.errors import ConfigError, ValidationError
from ttg_lab.services.names import SERVICES

if TYPE_CHECKING:
    from ttg_lab.store.schema import User

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MCP_PATH = "/mcp"


def check_exposure(host: str, token: str | None) -> None:
    """Binding beyond loopback is allowed only with a token."""
    if host not in LOOPBACK_HOSTS and not token:
        raise ConfigError(
            f"refusing to expose the MCP services on {host} without a token; "
            "pass --token (or set TTG_LAB_MCP_TOKEN), or bind to 127.0.0.1"
        )


DEFAULT_PORTS: dict[str, int] = {"math": 8101, "search": 8102, "trade": 8103, "price": 8104}
TOKEN_ENV = "TTG_LAB_MCP_TOKEN"


@dataclass
class ServiceStatus:
    """What the manager knows about one service."""

    service: str
    host: str
    port: int
    pid: int | None
    running: bool
    healthy: bool
    tools: list[str]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{MCP_PATH}"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ServiceManager:
    """Manages the MCP service processes of one lab (one data folder). Services started
    here act as ``user``: a run view shows only that user's runs."""

    def __init__(self, settings: Settings, user: str | None = None) -> None:
        self.settings = settings
        self.user = user
        self.state_path = settings.state_dir / "mcp_services.json"
        self.log_dir = settings.state_dir / "logs"

    def _state(self) -> dict[str, dict[str, object]]:
        if not self.state_path.exists():
            return {}
        try:
            data = json.loads(self.state_path.read_text())
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, state: dict[str, dict[str, object]]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(state, indent=2))

    @staticmethod
    def _pick(services: list[str] | None) -> list[str]:
        chosen = list(services or SERVICES)
        unknown = [s for s in chosen if s not in SERVICES]
        if unknown:
            raise ValidationError(
                f"unknown service(s) {', '.join(unknown)}; services are {', '.join(SERVICES)}"
            )
        return chosen

    def health(self, host: str, port: int, token: str | None = None) -> dict[str, object] | None:
        """The service's /health answer, or None when it does not answer."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            answer = httpx.get(f"http://{host}:{port}/health", headers=headers, timeout=1.0)
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        data = answer.json()
        return data if isinstance(data, dict) else None

    def status(self, token: str | None = None) -> list[ServiceStatus]:
        """Each service's process and health (checked with ``token``, else the one in
        the environment)."""
        state = self._state()
        token = token or os.environ.get(TOKEN_ENV)
        result = []
        for service in SERVICES:
            entry = state.get(service, {})
            host = str(entry.get("host", "127.0.0.1"))
            port = int(str(entry.get("port", DEFAULT_PORTS[service])))
            pid = int(str(entry["pid"])) if entry.get("pid") else None
            health = self.health(host, port, token) if _alive(pid) else None
            listed = health.get("tools", []) if health else []
            tools = [str(t) for t in listed] if isinstance(listed, list) else []
            result.append(
                ServiceStatus(service, host, port, pid, _alive(pid), health is not None, tools)
            )
        return result

    def start(
        self,
        services: list[str] | None = None,
        host: str = "127.0.0.1",
        ports: dict[str, int] | None = None,
        token: str | None = None,
        wait: float = 20.0,
    ) -> list[ServiceStatus]:
        """Start the chosen services (all by default) unless already running."""
        chosen = self._pick(services)
        token = token or os.environ.get(TOKEN_ENV)
        check_exposure(host, token)
        state = self._state()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TTG_LAB_DB_URL": self.settings.db_url}
        if self.user:
            env["TTG_LAB_USER"] = self.user
        if token:
            env[TOKEN_ENV] = token
        for service in chosen:
            entry = state.get(service, {})
            if _alive(int(str(entry["pid"])) if entry.get("pid") else None):
                continue
            port = (ports or {}).get(service, DEFAULT_PORTS[service])
            log = (self.log_dir / f"mcp-{service}.log").open("ab")
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ttg_lab.cli",
                    "mcp",
                    "serve",
                    service,
                    "--host",
                    host,
                    "--port",
                    str(port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            state[service] = {"pid": process.pid, "host": host, "port": port}
        self._save(state)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            statuses = [s for s in self.status(token) if s.service in chosen]
            if all(s.healthy for s in statuses):
                return statuses
            if any(not s.running for s in statuses):
                break
            time.sleep(0.1)
        return [s for s in self.status(token) if s.service in chosen]

    def stop(self, services: list[str] | None = None, wait: float = 10.0) -> list[str]:
        """Stop the chosen services; returns the ones that were running."""
        chosen = self._pick(services)
        state = self._state()
        stopped = []
        for service in chosen:
            entry = state.pop(service, {})
            pid = int(str(entry["pid"])) if entry.get("pid") else None
            if not _alive(pid):
                continue
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + wait
            while _alive(pid) and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                _reap(pid)
            stopped.append(service)
        self._save(state)
        return stopped

    def describe(self) -> list[dict[str, object]]:
        return [{**asdict(s), "url": s.url} for s in self.status()]


def _reap(pid: int) -> None:
    """Collect a child that exited, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def serve(
    service: str,
    store_url: str,
    host: str,
    port: int,
    token: str | None,
    user: User | None = None,
) -> None:
    """Run one service in the foreground until interrupted, acting as ``user``."""
    import uvicorn

    from ttg_lab.services.http import service_app
    from ttg_lab.store.database import Store

    check_exposure(host, token)
    store = Store(store_url)
    store.migrate()
    app = service_app(service, store, token, user)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


__all__ = ["DEFAULT_PORTS", "ServiceManager", "ServiceStatus", "serve"]
