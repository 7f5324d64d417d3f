"""The raw-answer cache: every provider answer kept verbatim under the lab's data folder.

Layout: ``<root>/<provider>/<key[:2]>/<key>.body`` holds the answer's bytes as they came,
``<key>.json`` what they answer (the request as shown, never with a key), the HTTP status,
content type, when it was fetched and the body's SHA-256. Both files are written to a
temporary file, synced and renamed, the meta file last, and :meth:`ResponseCache.get`
reads an answer only when its body's digest matches the meta file: a half-written entry
(a kill mid-write) never reads as an answer.

``<root>/loads.jsonl`` lists each merge of fetched bars (load name, market, interval,
symbol, the SHA-256 of every answer used and the merged bars' fingerprint), so a run's
data fingerprint can be traced back to the answers it came from.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from ttg_lab.market.providers.base import FetchRequest, RawResponse

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
LOADS_LOG = "loads.jsonl"


def _safe(name: str) -> str:
    """A provider name as one folder name (``ccxt:binance`` -> ``ccxt_binance``)."""
    return _UNSAFE.sub("_", name).strip(".") or "_"


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)


@dataclass(frozen=True)
class LoadRecord:
    """One merge of fetched bars, as the cache's load log lists it."""

    load: str
    market: str
    interval: str
    symbol: str
    responses: tuple[str, ...]
    """SHA-256 of each answer the bars came from."""
    fingerprint: str
    """:func:`ttg_lab.market.loader.fingerprint` of the bars merged."""
    added: int
    skipped: int
    replaced: int
    at: str
    """When it was merged (ISO 8601, UTC)."""


class ResponseCache:
    """Provider answers by request (see the module)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _base(self, request: FetchRequest) -> Path:
        key = request.key
        return self.root / _safe(request.provider) / key[:2] / key

    def state_file(self, provider: str) -> Path:
        """Where the provider's rate-limit counts persist."""
        return self.root / _safe(provider) / "ratelimit.json"

    def get(self, request: FetchRequest) -> RawResponse | None:
        """The stored answer to ``request`` (None: none, or a damaged or half-written one)."""
        base = self._base(request)
        try:
            meta = json.loads(base.with_suffix(".json").read_text())
            body = base.with_suffix(".body").read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or hashlib.sha256(body).hexdigest() != meta.get("sha256"):
            return None
        try:
            fetched_at = datetime.fromisoformat(str(meta["fetched_at"]))
            return RawResponse(
                request, int(meta["status"]), body, str(meta["content_type"]), fetched_at
            )
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, response: RawResponse) -> None:
        """Keep ``response`` (replacing an earlier answer to the same request)."""
        base = self._base(response.request)
        base.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "request": response.request.shown(),
            "provider": response.request.provider,
            "symbol": response.request.symbol,
            "interval": response.request.interval,
            "first": response.request.first.isoformat(),
            "last": response.request.last.isoformat(),
            "status": response.status,
            "content_type": response.content_type,
            "fetched_at": response.fetched_at.isoformat(),
            "sha256": response.sha256,
        }
        _write_atomically(base.with_suffix(".body"), response.body)
        _write_atomically(base.with_suffix(".json"), json.dumps(meta, indent=1).encode())

    def discard(self, request: FetchRequest) -> None:
        """Forget the answer to ``request`` (one that could not be used is asked again)."""
        base = self._base(request)
        for suffix in (".json", ".body"):
            base.with_suffix(suffix).unlink(missing_ok=True)

    def log_load(self, record: LoadRecord) -> None:
        """Append ``record`` to the load log (one JSON line, under a file lock)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(record), separators=(",", ":")) + "\n"
        with open(self.root / LOADS_LOG, "a") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            try:
                out.write(line)
                out.flush()
                os.fsync(out.fileno())
            finally:
                fcntl.flock(out, fcntl.LOCK_UN)

    def loads(self) -> list[LoadRecord]:
        """The load log, oldest first."""
        try:
            lines = (self.root / LOADS_LOG).read_text().splitlines()
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            data = json.loads(line)
            data["responses"] = tuple(data["responses"])
            records.append(LoadRecord(**data))
        return records
