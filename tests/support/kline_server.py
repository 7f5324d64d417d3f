"""What the exchanges' test servers share: a threaded HTTP server on 127.0.0.1 that serves
bars built from the shipped datasets, releases them one by one, and plays bad answers.

A test switches on a bad answer with :meth:`KlineServer.fail` (the next ``times``
answers of the data endpoint or another path, or all of them): each server maps the
:data:`Fault` names to what its exchange really sends. :meth:`KlineServer.release_until`
hides every bar that starts after a moment, as a live exchange does not yet have them.

Nothing here touches the network beyond the loopback interface.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qs, urlsplit

Fault = Literal[
    "unknown_symbol", "rate_limit", "banned", "html", "truncated", "empty", "error", "hang"
]
"""Bad answers: the exchange's unknown-symbol answer, HTTP 429 (with ``Retry-After``),
HTTP 418 (an IP ban after 429s), an HTML 502 page, a body cut in half, an empty body, the
exchange's own error JSON, and no answer for :attr:`KlineServer.hang_seconds`."""

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json;charset=UTF-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Seen:
    """A request the server received: its path and query (first value of each name)."""

    path: str
    query: dict[str, str]


Route = Callable[[dict[str, str]], Answer]


class KlineServer:
    """The shared server; subclasses give ``routes`` (path -> handler), the data endpoint's
    path and :meth:`fault_answer`."""

    data_path = ""

    def __init__(self) -> None:
        self.released: datetime | None = None
        self.hang_seconds = 2.0
        self.seen: list[Seen] = []
        self._faults: list[tuple[str, Fault, int | None, float | None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what subclasses give

    def routes(self) -> dict[str, Route]:
        raise NotImplementedError

    def fault_answer(self, fault: Fault, retry_after: float | None, normal: Answer) -> Answer:
        """What the exchange sends for ``fault`` (``normal`` is the good answer)."""
        raise NotImplementedError

    # -- switches

    def release_until(self, moment: datetime | None) -> None:
        """Serve only bars starting at or before ``moment`` (exchange-local naive, as the
        store stamps them); None serves every bar."""
        with self._lock:
            self.released = moment

    def fail(
        self,
        fault: Fault,
        times: int | None = 1,
        retry_after: float | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests of ``path`` (the data endpoint by default;
        every one when ``times`` is None) with ``fault``."""
        with self._lock:
            self._faults.append((path or self.data_path, fault, times, retry_after))

    def heal(self) -> None:
        """Stop every bad answer."""
        with self._lock:
            self._faults.clear()

    def data_requests(self) -> list[Seen]:
        """The data endpoint's requests so far."""
        return [s for s in self.seen if s.path == self.data_path]

    def _take_fault(self, path: str) -> tuple[Fault, float | None] | None:
        with self._lock:
            index = next((i for i, f in enumerate(self._faults) if f[0] == path), None)
            if index is None:
                return None
            _, fault, times, retry_after = self._faults[index]
            if times is not None:
                if times <= 1:
                    self._faults.pop(index)
                else:
                    self._faults[index] = (path, fault, times - 1, retry_after)
            return fault, retry_after

    def answer(self, path: str, query: dict[str, str]) -> Answer:
        """What the server answers ``path?query``."""
        with self._lock:
            self.seen.append(Seen(path, query))
        route = self.routes().get(path)
        if route is None:
            return Answer(404, b'{"code":-1,"msg":"not found"}')
        normal = route(query)
        fault = self._take_fault(path)
        if fault is not None and fault[0] == "hang":
            time.sleep(self.hang_seconds)  # the client gave up long before
            return normal
        return normal if fault is None else self.fault_answer(*fault, normal)

    # -- lifecycle

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> KlineServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                reply = owner.answer(parts.path, query)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    for name, value in reply.headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a "hang" answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KlineServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def truncated(body: bytes) -> bytes:
    """``body`` cut in half, as a dropped connection leaves it."""
    return body[: len(body) // 2]
