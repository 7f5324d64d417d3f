"""AI-Trader's published runs as shipped with the repository, and the build that made them.

``data/runs/aitrader_runs.jsonl.gz`` holds one JSON record per (market folder, model
folder) of AI-Trader's ``runs/`` layout: the lines of ``position/position.jsonl``
verbatim and, per step, the lines of ``log/<clock>/log.jsonl``. Log message texts
longer than :data:`MAX_CONTENT` characters (mostly web pages pasted in as tool results)
are cut there with a marker saying how much was cut; lines with nothing to cut are kept
verbatim. :func:`load_shipped_runs` imports the file with the same code as a real
folder (:func:`ttg_lab.importers.aitrader.import_sources`).

Maintainers rebuild with ``python -m ttg_lab.importers.shipped_runs RUNS_DIR OUT_FILE``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ttg_lab.errors import DataFileError
from ttg_lab.importers.aitrader import (
    LogSource,
    ModelSource,
    SourceFile,
    find_model_folders,
    import_sources,
    read_model_folder,
)
from ttg_lab.market.shipped import DEFAULT_DATA_DIR
from ttg_lab.store.database import Store

log = logging.getLogger(__name__)

SHIPPED_SUBDIR = "runs"
SHIPPED_FILENAME = "aitrader_runs.jsonl.gz"
MAX_CONTENT = 6000
"""Characters of one log message kept in the shipped copy."""
FORMAT = "ttg-lab aitrader runs v1"


def shipped_runs_path(data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    """``data_dir/runs/aitrader_runs.jsonl.gz`` (or ``data_dir/aitrader_runs.jsonl.gz``)."""
    nested = Path(data_dir) / SHIPPED_SUBDIR / SHIPPED_FILENAME
    direct = Path(data_dir) / SHIPPED_FILENAME
    return direct if direct.is_file() and not nested.is_file() else nested


def trim_log_line(raw: str, limit: int = MAX_CONTENT) -> tuple[str, int, int]:
    """``raw`` with each message text cut to ``limit`` characters: (line, messages cut,
    characters cut). Lines that need no cut, or are not readable, come back unchanged."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return raw, 0, 0
    if not isinstance(data, dict):
        return raw, 0, 0
    new = data.get("new_messages")
    messages = [new] if isinstance(new, dict) else new if isinstance(new, list) else []
    cut = chars = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and len(content) > limit:
            dropped = len(content) - limit
            message["content"] = (
                content[:limit] + f"\n[... {dropped} characters cut in ttg-lab's shipped copy]"
            )
            cut, chars = cut + 1, chars + dropped
    if not cut:
        return raw, 0, 0
    return json.dumps(data, ensure_ascii=False), cut, chars


def _record(source: ModelSource, limit: int) -> tuple[dict[str, Any], int, int]:
    logs = []
    cut = chars = 0
    for entry in source.logs:
        lines = []
        for raw in entry.file.lines:
            line, c, n = trim_log_line(raw, limit)
            lines.append(line)
            cut, chars = cut + c, chars + n
        logs.append({"clock": entry.clock, "lines": lines})
    record = {
        "format": FORMAT,
        "group": source.group,
        "model": source.name,
        "position": list(source.position.lines),
        "logs": logs,
        "original_sha256": source.source_files(),
        "trimmed": {"messages": cut, "characters": chars, "limit": limit},
    }
    return record, cut, chars


def build_shipped_runs(
    source_runs_dir: Path, out_path: Path, limit: int = MAX_CONTENT
) -> dict[str, int]:
    """Pack every model folder under ``source_runs_dir`` (AI-Trader's ``runs/``) into
    ``out_path`` (gzipped JSONL, sorted by folder, reproducible); figures of the build."""
    source_runs_dir, out_path = Path(source_runs_dir), Path(out_path)
    figures = {"models": 0, "position_lines": 0, "log_files": 0, "log_lines": 0}
    figures.update({"messages_trimmed": 0, "characters_trimmed": 0})
    records = []
    for folder in find_model_folders(source_runs_dir):
        source = read_model_folder(folder)
        record, cut, chars = _record(source, limit)
        records.append(record)
        figures["models"] += 1
        figures["position_lines"] += len(source.position.lines)
        figures["log_files"] += len(source.logs)
        figures["log_lines"] += sum(len(entry.file.lines) for entry in source.logs)
        figures["messages_trimmed"] += cut
        figures["characters_trimmed"] += chars
        if cut:
            log.info("%s: %d message(s) cut, %d characters", source.rel, cut, chars)
    records.sort(key=lambda r: (r["group"], r["model"]))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    with (
        out_path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(payload.encode("utf-8"))
    figures["bytes"] = out_path.stat().st_size
    return figures


def read_shipped_runs(path: Path) -> list[ModelSource]:
    """The model folders held by a compact file, as the importer's in-memory layout."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "the shipped AI-Trader runs file is missing")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            rows = handle.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataFileError(path, f"unreadable gzip file: {exc}") from None
    sources: list[ModelSource] = []
    for number, raw in enumerate(rows, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            group, model = str(record["group"]), str(record["model"])
            base = f"{path}#{group}/{model}"
            position = SourceFile(
                "position/position.jsonl",
                f"{base}/position/position.jsonl",
                tuple(str(line) for line in record["position"]),
            )
            logs = []
            for entry in record["logs"]:
                clock = str(entry["clock"])
                rel = f"log/{clock}/log.jsonl"
                lines = tuple(str(line) for line in entry["lines"])
                logs.append(LogSource(clock, SourceFile(rel, f"{base}/{rel}", lines)))
            original = {str(k): str(v) for k, v in record["original_sha256"].items()}
            trimmed = {str(k): int(v) for k, v in record["trimmed"].items()}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataFileError(path, f"not a runs record: {exc}", number) from None
        sources.append(ModelSource(group, model, position, tuple(logs), original, trimmed))
    return sources


def load_shipped_runs(store: Store, data_dir: Path, owner_id: int) -> int:
    """Import the shipped AI-Trader runs (skipping those imported already); runs created."""
    path = shipped_runs_path(data_dir)
    report = import_sources(
        store, read_shipped_runs(path), owner_id=owner_id, on_error="raise", origin="shipped"
    )
    return len(report)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (to compare rebuilds)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    """``python -m ttg_lab.importers.shipped_runs RUNS_DIR OUT_FILE``: rebuild the file."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m ttg_lab.importers.shipped_runs RUNS_DIR OUT_FILE", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    figures = build_shipped_runs(Path(args[0]), Path(args[1]))
    for name, count in figures.items():
        print(f"{name}: {count:,}")
    print(f"sha256: {file_sha256(Path(args[1]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
