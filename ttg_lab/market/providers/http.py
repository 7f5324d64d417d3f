"""What the HTTP providers share: one GET that keeps secrets out of what it says, a
transport kept per provider, and periods split by the calendar.

httpx loads on the first request, not with the lab: a run that fetches nothing never
needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

from ttg_lab.errors import FetchError
from ttg_lab.market.providers.base import FetchRequest, RawResponse
from ttg_lab.secrets import redact

if TYPE_CHECKING:
    import httpx

QUOTED_CHARS = 120
"""Characters of a provider's own words an error quotes at most."""


def quoted(text: str, secret: str | None = None) -> str:
    """A provider's ``text`` as an error quotes it: one line, ``secret`` and anything
    shaped like a key masked, at most :data:`QUOTED_CHARS` characters."""
    clean = " ".join(text.split())
    if secret:
        clean = clean.replace(secret, "***")
    clean = redact(clean)
    return clean if len(clean) <= QUOTED_CHARS else clean[:QUOTED_CHARS] + "…"


def months(first: date, last: date) -> list[tuple[date, date]]:
    """The calendar months ``first``..``last`` touches, each clipped to the period."""
    spans = []
    start = first
    while start <= last:
        following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        spans.append((start, min(last, date.fromordinal(following.toordinal() - 1))))
        start = following
    return spans


def years(first: date, last: date) -> list[tuple[date, date]]:
    """The calendar years ``first``..``last`` touches, each clipped to the period."""
    return [
        (max(first, date(year, 1, 1)), min(last, date(year, 12, 31)))
        for year in range(first.year, last.year + 1)
    ]


class Getter:
    """GETs one provider's requests through one :class:`httpx.HTTPTransport` (a new one
    costs ~60 ms; a client would log each URL, keys and all). No redirect is followed;
    the answer is kept verbatim whatever its status."""

    def __init__(self, provider: str, now: Callable[[], datetime]) -> None:
        self.provider = provider
        self.now = now
        self._transport: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def _connection(self) -> httpx.HTTPTransport:
        import httpx

        with self._lock:
            if self._transport is None:
                self._transport = httpx.HTTPTransport()
            return self._transport

    def get(
        self,
        request: FetchRequest,
        timeout: float,
        secret_params: Sequence[tuple[str, str]] = (),
    ) -> RawResponse:
        """The answer to ``request`` sent with ``secret_params`` added (a key); a
        FetchError ``network`` naming the URL (never the query) when none came."""
        import httpx

        outgoing = httpx.Request(
            "GET",
            request.url,
            params=[*request.params, *secret_params],
            headers={"Accept": "application/json"},
            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
        )
        try:
            response = self._connection().handle_request(outgoing)
            try:
                body = response.read()
            finally:
                response.close()
        except httpx.TimeoutException:
            reason = f"no answer in {timeout:g} s"
            raise FetchError(self.provider, request.symbol, reason, "network") from None
        except httpx.HTTPError as exc:  # its text may hold the URL, and so a key
            reason = f"no answer from {request.url} ({type(exc).__name__})"
            raise FetchError(self.provider, request.symbol, reason, "network") from None
        content_type = response.headers.get("content-type", "")
        return RawResponse(request, response.status_code, body, content_type, self.now())
