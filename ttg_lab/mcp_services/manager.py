"""Start, stop and report the four MCP services as background HTTP servers.

Each service runs in its own process (``ttg-lab mcp serve SERVICE``) on 127.0.0.1 at a
configurable port; the manager keeps their pids and ports in a small state file in the
data folder and checks their health over HTTP.

Every request needs the token of the user who started them, also on 127.0.0.1: ``start``
creates it once per user (``mcp-token-<user>`` in the state folder, readable by the
owner only) unless one is given. It travels to the services in the environment, never
on a command line.

A pid in the state file is obeyed only while it is still the process the manager
started (see :mod:`ttg_lab.processes`). Anything else is a stale entry: it is dropped
from the file, and nothing is ever signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ttg_lab.config import Settings
from ttg_lab.errors import ConfigError, ValidationError
from ttg_lab.mcp_services.names import MCP_PATH, SERVICES
from ttg_lab.processes import ProcessIdentity, identity_after_exec, terminate

if TYPE_CHECKING:
    from ttg_lab.store.schema import User

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def check_exposure(host: str, token: str | None) -> None:
    """Binding beyond loopback is allowed only with a token."""
    if host not in LOOPBACK_HOSTS and not token:
        raise ConfigError(
            f"refusing to expose the MCP services on {host} without a token; "
            "pass --token (or set TTG_LAB_MCP_TOKEN), or bind to 127.0.0.1"
        )


DEFAULT_PORTS: dict[str, int] = {"math": 8101, "search": 8102, "trade": 8103, "price": 8104}
TOKEN_ENV = "TTG_LAB_MCP_TOKEN"


ServiceState = Literal["stopped", "starting", "healthy", "unhealthy"]
"""A service's state: no process; its process runs but does not answer yet; it answers
its health check; it answers with an error (e.g. to a token it does not know)."""


@dataclass
class ServiceStatus:
    """What the manager knows about one service."""

    service: str
    host: str
    port: int
    pid: int | None
    state: ServiceState
    tools: list[str]
    log: Path
    """Where the service writes its output (why it did not come up)."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{MCP_PATH}"

    @property
    def running(self) -> bool:
        return self.state != "stopped"

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"


@dataclass(frozen=True)
class ServiceRecord:
    """One service as the state file keeps it: where it listens and which process it is."""

    host: str
    port: int
    process: ProcessIdentity

    def running(self) -> bool:
        """Whether the recorded process is still the one the manager started."""
        return self.process.running()

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, **self.process.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> ServiceRecord | None:
        """A record from the state file; None for an entry that does not say which
        process it is (an older or tampered file): such an entry is never obeyed."""
        try:
            return cls(str(data["host"]), int(data["port"]), ProcessIdentity.from_json(data))
        except (KeyError, TypeError, ValueError):
            return None


class ServiceManager:
    """Manages the MCP service processes of one lab (one data folder). Services started
    here act as ``user``: a run view shows only that user's runs."""

    def __init__(self, settings: Settings, user: str | None = None) -> None:
        self.settings = settings
        self.user = user
        self.state_path = settings.state_dir / "mcp_services.json"
        self.log_dir = settings.state_dir / "logs"
        self.token_path = settings.state_dir / (f"mcp-token-{user}" if user else "mcp-token")
        """Where ``start`` keeps this user's token (mode 0600)."""

    def token(self, create: bool = False) -> str | None:
        """This user's service token (None when there is none yet and ``create`` is
        false). A token file that others could read is refused, never used."""
        path = self.token_path
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(32))
        try:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise ConfigError(
                    f"{path} can be read by other users (mode {mode:o}); delete it and "
                    "start the services again for a new token"
                )
            return path.read_text().strip() or None
        except FileNotFoundError:
            return None
        except PermissionError:
            raise ConfigError(f"{path} belongs to another user; it is not your token") from None

    def _state(self) -> dict[str, ServiceRecord]:
        """The services whose recorded process still runs; stale entries (a process that
        ended, a pid now used by another program, an entry without an identity) are
        dropped from the file here, so they are never obeyed."""
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
        data = data if isinstance(data, dict) else {}
        records = {name: ServiceRecord.from_json(entry) for name, entry in data.items()}
        live = {name: r for name, r in records.items() if r is not None and r.running()}
        if data and len(live) != len(data):
            self._save(live)
        return live

    def _save(self, state: dict[str, ServiceRecord]) -> None:
        if not state:
            self.state_path.unlink(missing_ok=True)
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        data = {name: record.to_json() for name, record in state.items()}
        self.state_path.write_text(json.dumps(data, indent=2))

    @staticmethod
    def _pick(services: list[str] | None) -> list[str]:
        chosen = list(services or SERVICES)
        unknown = [s for s in chosen if s not in SERVICES]
        if unknown:
            raise ValidationError(
                f"unknown service(s) {', '.join(unknown)}; services are {', '.join(SERVICES)}"
            )
        return chosen

    def _probe(self, host: str, port: int, token: str | None) -> tuple[ServiceState, list[str]]:
        """A running service's state from its /health answer, with the tools it lists."""
        import httpx  # only a health check needs it, not every lab that knows the manager

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            answer = httpx.get(f"http://{host}:{port}/health", headers=headers, timeout=1.0)
        except httpx.HTTPError:
            return "starting", []
        if answer.status_code != 200:
            return "unhealthy", []
        listed = answer.json().get("tools", [])
        return "healthy", [str(t) for t in listed] if isinstance(listed, list) else []

    def status(self, token: str | None = None) -> list[ServiceStatus]:
        """Each service's process and health (checked with ``token``, else the one in
        the environment, else this user's)."""
        state = self._state()
        token = token or os.environ.get(TOKEN_ENV) or self.token()
        result = []
        for service in SERVICES:
            log = self.log_dir / f"mcp-{service}.log"
            record = state.get(service)
            if record is None:
                port = DEFAULT_PORTS[service]
                result.append(ServiceStatus(service, "127.0.0.1", port, None, "stopped", [], log))
                continue
            health, tools = self._probe(record.host, record.port, token)
            pid = record.process.pid
            result.append(ServiceStatus(service, record.host, record.port, pid, health, tools, log))
        return result

    def wait_until_up(
        self, services: list[str], timeout: float, token: str | None = None
    ) -> list[ServiceStatus]:
        """The statuses of ``services`` once none is still starting, or at ``timeout``
        seconds (then some may still be starting: a busy machine can take a while)."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = [s for s in self.status(token) if s.service in services]
            if time.monotonic() >= deadline or all(s.state != "starting" for s in statuses):
                return statuses
            time.sleep(0.2)

    def start(
        self,
        services: list[str] | None = None,
        host: str = "127.0.0.1",
        ports: dict[str, int] | None = None,
        token: str | None = None,
        wait: float = 0.0,
    ) -> list[ServiceStatus]:
        """Start the chosen services (all by default) unless already running, guarded by
        ``token`` (else the one in the environment, else this user's, created here).
        Returns at once, with the new ones ``starting``, unless asked to ``wait`` (seconds)
        for them to answer: see :meth:`wait_until_up`."""
        chosen = self._pick(services)
        check_exposure(host, token or os.environ.get(TOKEN_ENV))
        token = token or os.environ.get(TOKEN_ENV) or self.token(create=True)
        state = self._state()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TTG_LAB_DB_URL": self.settings.db_url}
        if self.user:
            env["TTG_LAB_USER"] = self.user
        env[TOKEN_ENV] = str(token)
        for service in chosen:
            if service in state:
                continue
            port = (ports or {}).get(service, DEFAULT_PORTS[service])
            command: tuple[str, ...] = (sys.executable, "-m", "ttg_lab.cli", "mcp", "serve")
            command += (service, "--host", host, "--port", str(port))
            with (self.log_dir / f"mcp-{service}.log").open("ab") as log:
                process = subprocess.Popen(
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            identity = identity_after_exec(process, command)
            if identity is not None:
                state[service] = ServiceRecord(host, port, identity)
        self._save(state)
        return self.wait_until_up(chosen, wait, token)

    def stop(self, services: list[str] | None = None, wait: float = 10.0) -> list[str]:
        """Stop the chosen services; returns the ones that were running."""
        chosen = self._pick(services)
        state = self._state()
        stopped = []
        for service in chosen:
            record = state.pop(service, None)
            if record is None:
                continue
            terminate(record.process, wait)
            stopped.append(service)
        self._save(state)
        return stopped


def serve(
    service: str, store_url: str, host: str, port: int, token: str | None, user: User
) -> None:
    """Run one service in the foreground until interrupted, acting as ``user``. Without
    a token it serves sandboxes only: run views need the token."""
    import uvicorn

    from ttg_lab.mcp_services.http import service_app
    from ttg_lab.store.database import Store

    check_exposure(host, token)
    store = Store(store_url)
    store.migrate()
    app = service_app(service, store, token, user)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


__all__ = ["DEFAULT_PORTS", "ServiceManager", "ServiceStatus", "serve"]
