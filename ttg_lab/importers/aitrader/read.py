"""Read AI-Trader's published runs: files -> typed records.

AI-Trader writes, per model folder, ``position/position.jsonl`` (the initial state, then
one line per action with the portfolio after it) and ``log/<clock>/log.jsonl`` (the
model's conversation of one step). Both sources, a real folder and the compact shipped
file, are read into the same in-memory layout (:class:`ModelSource`), then parsed into
typed records (:class:`PositionLine`, :class:`ParsedLog`, :class:`ParsedModel`) with
every malformed line kept as a :class:`Problem` naming file and line. Nothing here
touches the store; :mod:`~ttg_lab.importers.aitrader.book` books the records as runs.

Times: AI-Trader's clock names a bar the way its data files do. Its A-share hourly
files label a bar by its end (10:30 is the bar 09:30-10:30, whose open AI-Trader filled
at), while our bars carry their start, so :func:`at_bar_starts` moves its lines and logs
of such runs to the start of the bar they traded in.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from ttg_lab.errors import DataFileError
from ttg_lab.llm.catalog import CatalogModel, load_catalog
from ttg_lab.market.bars import INTRADAY_MINUTES, BarLabel

OnError = Literal["raise", "report"]

ACTIONS: dict[str, str] = {
    "buy": "buy",
    "sell": "sell",
    "buy_crypto": "buy",
    "sell_crypto": "sell",
    "short": "short",
    "cover": "cover",
    "no_trade": "no_trade",
}
"""AI-Trader's action names and the ledger action each one maps to."""

MAX_SYMBOL_CHARS = 32
"""Width of the ledger's symbol column."""
MAX_UNITS = 1e12
MAX_CASH = 1e15
"""Larger amounts or cash are a unit or parsing error, not a trade."""
_SYMBOL = re.compile(rf"[^\s\x00-\x1f\x7f]{{1,{MAX_SYMBOL_CHARS}}}")
_CN_SYMBOL = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class SourceFile:
    """One text file of an AI-Trader run: its lines and where it came from.

    ``rel`` is the path inside the model folder (``position/position.jsonl``);
    ``display`` names it in messages (a real path, or ``compact-file#group/model/rel``).
    """

    rel: str
    display: str
    lines: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """SHA-256 of the lines, each ended by a newline (the file's bytes for LF files)."""
        digest = hashlib.sha256()
        for line in self.lines:
            digest.update(line.encode("utf-8") + b"\n")
        return digest.hexdigest()


@dataclass(frozen=True)
class LogSource:
    """One step's conversation file; ``clock`` is its folder name (AI-Trader's clock)."""

    clock: str
    file: SourceFile


@dataclass(frozen=True)
class ModelSource:
    """One AI-Trader model folder in memory: ``group/name`` (e.g. ``agent_data/gpt-5``)."""

    group: str
    name: str
    position: SourceFile
    logs: tuple[LogSource, ...]
    original_files: dict[str, str] | None = None
    """sha256 of the original files when these lines are a trimmed copy of them."""
    trimmed: dict[str, int] | None = None
    """What a trimmed copy cut (messages, characters, limit)."""

    @property
    def rel(self) -> str:
        return f"{self.group}/{self.name}"

    def files(self) -> list[SourceFile]:
        return [self.position, *(log.file for log in self.logs)]

    def source_files(self) -> dict[str, str]:
        """sha256 per original file, keyed by the path inside the model folder."""
        if self.original_files is not None:
            return dict(self.original_files)
        return {f.rel: f.sha256 for f in self.files()}


def _read_lines(path: Path) -> tuple[str, ...]:
    try:
        return tuple(path.read_text(encoding="utf-8").splitlines())
    except UnicodeDecodeError as exc:
        raise DataFileError(path, f"not UTF-8 text: {exc}") from None


def read_model_folder(folder: Path) -> ModelSource:
    """The layout of one model folder (it holds ``position/position.jsonl``)."""
    folder = Path(folder)
    position = folder / "position" / "position.jsonl"
    if not position.is_file():
        raise DataFileError(folder, "not an AI-Trader model folder: no position/position.jsonl")
    logs = []
    for path in sorted(folder.glob("log/*/log.jsonl")):
        rel = path.relative_to(folder).as_posix()
        logs.append(LogSource(path.parent.name, SourceFile(rel, str(path), _read_lines(path))))
    return ModelSource(
        group=folder.resolve().parent.name,
        name=folder.name,
        position=SourceFile("position/position.jsonl", str(position), _read_lines(position)),
        logs=tuple(sorted(logs, key=lambda log: log.clock)),
    )


def find_model_folders(path: Path) -> list[Path]:
    """Model folders at ``path``: the folder itself, its children or its grandchildren.

    So a model folder (``agent_data/gpt-5``), a market folder (``agent_data``) and the
    folder holding the market folders (``runs``) all work.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataFileError(path, "not a folder")

    def is_model(p: Path) -> bool:
        return (p / "position" / "position.jsonl").is_file()

    if is_model(path):
        return [path]
    children = sorted(p for p in path.iterdir() if p.is_dir())
    found = [p for p in children if is_model(p)]
    if not found:
        found = [g for c in children for g in sorted(c.iterdir()) if g.is_dir() and is_model(g)]
    if not found:
        raise DataFileError(path, "no AI-Trader model folder (*/position/position.jsonl) found")
    return found


def read_folder_layout(path: Path) -> list[ModelSource]:
    """Every model folder at ``path`` (see :func:`find_model_folders`) in memory."""
    return [read_model_folder(folder) for folder in find_model_folders(path)]


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Problem:
    """A malformed line (or file) of an import: where it is and what is wrong."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}, line {self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"

    def error(self) -> DataFileError:
        return DataFileError(self.path, self.message, self.line)


@dataclass(frozen=True)
class PositionLine:
    """One valid line of position.jsonl (``action`` None for the initial state)."""

    line: int
    when: datetime
    id: int | None
    action: str | None
    raw_action: str | None
    symbol: str | None
    amount: float
    cash: float
    holdings: dict[str, float]
    stated_price: float | None


@dataclass(frozen=True)
class LogLine:
    """One valid line of a log.jsonl: its messages as ``{"role", "content"}`` dicts."""

    line: int
    signature: str | None
    timestamp: str | None
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class ParsedLog:
    source: LogSource
    when: datetime
    lines: list[LogLine]


@dataclass
class ParsedModel:
    source: ModelSource
    positions: list[PositionLine]
    logs: list[ParsedLog]
    problems: list[Problem]

    @property
    def usable(self) -> bool:
        return bool(self.positions) and self.positions[0].action is None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _symbol_problem(symbol: str) -> str | None:
    """Why ``symbol`` cannot be a position's symbol, or None."""
    if _SYMBOL.fullmatch(symbol):
        return None
    shown = repr(symbol) if len(symbol) <= 40 else f"{symbol[:40]!r}... ({len(symbol)} characters)"
    return (
        f"symbol {shown} is not a symbol (1 to {MAX_SYMBOL_CHARS} characters, no spaces "
        "or control characters)"
    )


def _parse_position_line(raw: str, number: int, first: bool) -> PositionLine | str:
    """A PositionLine, or the reason the line is malformed."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(data, dict):
        return "expected a JSON object"
    when = _parse_time(data.get("date"))
    if when is None:
        return f"missing or unreadable 'date': {data.get('date')!r}"
    if when > datetime.now() + timedelta(days=1):
        return f"date {when} is in the future"
    positions = data.get("positions")
    if not isinstance(positions, dict):
        return "missing 'positions' object"
    cash = _number(positions.get("CASH"))
    if cash is None:
        return f"'positions' lacks a numeric CASH: {positions.get('CASH')!r}"
    if abs(cash) > MAX_CASH:
        return f"CASH {cash:g} is implausible"
    holdings: dict[str, float] = {}
    for symbol, qty in positions.items():
        if symbol == "CASH":
            continue
        problem = _symbol_problem(symbol)
        if problem is not None:
            return f"position {problem}"
        value = _number(qty)
        if value is None:
            return f"position {symbol!r} is not a number: {qty!r}"
        if abs(value) > MAX_UNITS:
            return f"position {symbol!r} {value:g} is implausible"
        holdings[str(symbol)] = value
    ident = data.get("id")
    ident = ident if isinstance(ident, int) and not isinstance(ident, bool) else None
    action = data.get("this_action")
    if first and action is None:
        return PositionLine(number, when, ident, None, None, None, 0.0, cash, holdings, None)
    if not isinstance(action, dict):
        return "missing 'this_action' object"
    raw_action = action.get("action")
    if raw_action not in ACTIONS:
        return f"unknown action {raw_action!r}; known: {', '.join(ACTIONS)}"
    mapped = ACTIONS[raw_action]
    amount = _number(action.get("amount", 0))
    if amount is None:
        return f"amount is not a number: {action.get('amount')!r}"
    if amount < 0:
        return f"negative amount {amount:g}"
    if amount > MAX_UNITS:
        return f"amount {amount:g} is implausible"
    symbol = action.get("symbol")
    if mapped != "no_trade" and (not isinstance(symbol, str) or not symbol.strip()):
        return f"{raw_action} without a symbol"
    if isinstance(symbol, str) and symbol.strip():
        problem = _symbol_problem(symbol.strip())
        if problem is not None:
            return f"{raw_action}: {problem}"
    stated = _number(action.get("price"))
    return PositionLine(
        number,
        when,
        ident,
        mapped,
        str(raw_action),
        symbol.strip() if isinstance(symbol, str) and symbol.strip() else None,
        amount,
        cash,
        holdings,
        stated,
    )


def _parse_positions(source: SourceFile, problems: list[Problem]) -> list[PositionLine]:
    lines: list[PositionLine] = []
    for number, raw in enumerate(source.lines, start=1):
        if not raw.strip():
            continue
        parsed = _parse_position_line(raw, number, first=not lines)
        if isinstance(parsed, str):
            problems.append(Problem(source.display, number, parsed))
            continue
        if lines and parsed.when < lines[-1].when:
            problems.append(
                Problem(
                    source.display,
                    number,
                    f"date {parsed.when} is before the previous line's {lines[-1].when}",
                )
            )
            continue
        lines.append(parsed)
    if not lines:
        problems.append(Problem(source.display, None, "no valid line: no initial state"))
    elif lines[0].action is not None:
        problems.append(
            Problem(source.display, lines[0].line, "the first line is not an initial state")
        )
    return lines


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(block.get("text", "")) if isinstance(block, dict) else str(block)
            for block in content
            if isinstance(block, str | dict)
        ]
        return "".join(parts)
    return None


def _parse_log_line(raw: str, number: int) -> LogLine | str:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(data, dict):
        return "expected a JSON object"
    new = data.get("new_messages")
    if isinstance(new, dict):
        new = [new]
    if not isinstance(new, list):
        return "missing 'new_messages' (a message or a list of messages)"
    messages: list[dict[str, str]] = []
    for i, message in enumerate(new):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return f"message {i} has no 'role'"
        text = _content_text(message.get("content"))
        if text is None:
            return f"message {i} has no text 'content'"
        if "\x00" in text:
            return f"message {i} contains a NUL character"
        messages.append({"role": message["role"], "content": text})
    signature = data.get("signature")
    timestamp = data.get("timestamp")
    return LogLine(
        number,
        signature if isinstance(signature, str) else None,
        timestamp if isinstance(timestamp, str) else None,
        messages,
    )


def _parse_logs(source: ModelSource, problems: list[Problem]) -> list[ParsedLog]:
    logs: list[ParsedLog] = []
    for log in source.logs:
        when = _parse_time(log.clock)
        if when is None:
            problems.append(
                Problem(log.file.display, None, f"log folder {log.clock!r} is not a time")
            )
            continue
        lines: list[LogLine] = []
        for number, raw in enumerate(log.file.lines, start=1):
            if not raw.strip():
                continue
            parsed = _parse_log_line(raw, number)
            if isinstance(parsed, str):
                problems.append(Problem(log.file.display, number, parsed))
            else:
                lines.append(parsed)
        logs.append(ParsedLog(log, when, lines))
    return sorted(logs, key=lambda log: log.when)


def parse_model(source: ModelSource) -> ParsedModel:
    """Validate and parse one model folder; malformed lines become problems."""
    problems: list[Problem] = []
    positions = _parse_positions(source.position, problems)
    logs = _parse_logs(source, problems)
    return ParsedModel(source, positions, logs, problems)


# --------------------------------------------------------------------------- identity


def infer_market(symbols: Iterable[str]) -> str:
    """us, cn or crypto from the symbols a run held or could hold."""
    names = [s for s in symbols if s]
    if names and all(s.upper().endswith("-USDT") for s in names):
        return "crypto"
    if names and all(_CN_SYMBOL.match(s.upper()) for s in names):
        return "cn"
    return "us"


def infer_interval(lines: Sequence[PositionLine]) -> str:
    """``60min`` when any line has a time of day, else ``1d``."""
    if any(line.when.time() != datetime.min.time() for line in lines):
        return "60min"
    return "1d"


def catalog_entry(folder_name: str) -> CatalogModel | None:
    """The catalog model whose ``aitrader_signature`` the folder name is or starts with
    (``gpt-5-astock-hour`` -> GPT-5; case-insensitive); None if none."""
    name = folder_name.lower()
    best: CatalogModel | None = None
    for info in load_catalog().models.values():
        signature = info.aitrader_signature.lower()
        fits = name == signature or name.startswith(signature + "-")
        if signature and fits and (best is None or len(signature) > len(best.aitrader_signature)):
            best = info
    return best


def at_bar_starts(model: ParsedModel, interval: str, clock_label: BarLabel) -> ParsedModel:
    """``model`` with its lines and logs at the start of the bar they name (unchanged when
    AI-Trader's clock already names bars by their start)."""
    if clock_label == "start" or interval not in INTRADAY_MINUTES:
        return model
    shift = timedelta(minutes=INTRADAY_MINUTES[interval])
    return replace(
        model,
        positions=[replace(line, when=line.when - shift) for line in model.positions],
        logs=[replace(log, when=log.when - shift) for log in model.logs],
    )
