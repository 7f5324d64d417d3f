"""Import AI-Trader's published agent runs into the store as completed, read-only runs.

AI-Trader writes, per model folder, ``position/position.jsonl`` (the initial state, then
one line per action with the portfolio after it) and ``log/<clock>/log.jsonl`` (the
model's conversation of one step). An import turns one model folder into a model row
(created or reused by signature) and one completed run: a ledger row per action, the
equity curve marked to market at every bar of our calendar, the agent's messages and
typed reasoning entries.

Both sources, a real folder and the compact shipped file, are read into the same
in-memory layout (:class:`ModelSource`), and one code path imports it.

Times: AI-Trader's clock names a bar the way its data files do. Its A-share hourly
files label a bar by its end (10:30 is the bar 09:30-10:30, whose open AI-Trader filled
at), while our bars carry their start, so its lines and logs of such runs are booked at
the start of the bar they traded in (:data:`CLOCK_LABELS`); the log's own clock is kept
in each reasoning entry's context.

Prices: AI-Trader filled orders at the bar's open ("buy price"). The ledger's
``fill_price`` is OUR stored open of that bar; when we have no bar for the symbol at
that time, it is the price implied by AI-Trader's own cash change (``|Δcash| / amount``)
and the row's ``reason`` says so (None when not even that is known). ``cash_after`` and
``holdings`` are always AI-Trader's own snapshot, so the equity curve (its cash plus
the sum of quantity x our close at each bar) follows its book; :class:`ModelResult` reports
how far its cash is from cash recomputed with our prices.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.engine.equity import max_drawdown
from ttg_lab.engine.ledger import LedgerRow
from ttg_lab.engine.orders import ledger_row
from ttg_lab.engine.snapshot import ImportSource, ModelConfig, RunSnapshot
from ttg_lab.errors import DataFileError, NotFoundError, ValidationError
from ttg_lab.llm.catalog import CatalogModel, load_catalog
from ttg_lab.llm.sections import split_sections
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.bars import INTRADAY_MINUTES, BarLabel
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import get_market
from ttg_lab.market.shipped import SHIPPED
from ttg_lab.metrics.stored import store_metrics
from ttg_lab.models import slugify
from ttg_lab.rules.constraints import RuleSet
from ttg_lab.runs.numbering import next_run_number, write_numbered
from ttg_lab.store.database import Store
from ttg_lab.store.schema import (
    AgentLog,
    LedgerEntry,
    ReasoningEntry,
    RunStep,
    TradingModel,
    TradingRun,
    utcnow,
)
from ttg_lab.text import refuse_secret
from ttg_lab.version import __version__

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

QTY_TOLERANCE = 1.5e-4
"""Holdings differences below this are rounding (AI-Trader rounds crypto to 4 decimals)."""
CASH_TOLERANCE = 0.01
PRICE_NOTE_THRESHOLD = 0.001
"""A fill whose AI-Trader price differs from our open by more than this (relative) says so."""

CLOCK_LABELS: dict[tuple[str, str], BarLabel] = {
    (d.market, d.interval): d.source_label for d in SHIPPED.values()
}
"""How AI-Trader's clock labels the bars of each (market, interval): as its data files,
which are the sources of our shipped datasets."""

MARKET_LABELS: dict[str, str] = {"us": "US", "cn": "A-shares", "crypto": "crypto"}
INTERVAL_LABELS: dict[str, str] = {"1d": "daily", "60min": "hourly"}
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


@dataclass
class ModelResult:
    """What the import did with one model folder."""

    folder: str
    status: str = "imported"  # imported | skipped (already imported) | failed
    model_id: int | None = None
    signature: str = ""
    run_id: int | None = None
    market: str = ""
    interval: str = ""
    bars: int = 0
    trades: int = 0
    initial_cash: float = 0.0
    final_value: float | None = None
    final_return: float | None = None
    max_drawdown: float | None = None
    reconciliation: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class ImportReport(list[int]):
    """The ids of the runs an import created (a list), plus per-model results and problems.

    ``problems`` lists every malformed line with file and line number; with
    ``on_error="report"`` those lines were left out and the rest imported.
    """

    def __init__(self) -> None:
        super().__init__()
        self.results: list[ModelResult] = []
        self.problems: list[Problem] = []


# --------------------------------------------------------------------------- parsing


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


# --------------------------------------------------------------------------- import


def import_aitrader(
    store: Store,
    path: Path,
    *,
    owner_id: int,
    market: str | None = None,
    name_suffix: str = "",
    on_error: OnError = "raise",
) -> ImportReport:
    """Import AI-Trader run folder(s) at ``path``; the ids of the runs created.

    ``path`` is a model folder, a market folder (``agent_data_crypto``) or the folder
    holding market folders. ``market`` (us, cn, crypto) overrides the market inferred from
    the symbols. With ``on_error="raise"`` (default) any malformed line raises a
    :class:`DataFileError` naming file and line before anything is written; with
    ``"report"`` such lines are left out, the rest imported, and the problems returned.
    A model folder imported before (same file hashes) is skipped.
    """
    refuse_secret(name_suffix, "the name suffix")  # it becomes part of model names
    return import_sources(
        store,
        read_folder_layout(Path(path)),
        owner_id=owner_id,
        market=market,
        name_suffix=name_suffix,
        on_error=on_error,
    )


def import_sources(
    store: Store,
    sources: Sequence[ModelSource],
    *,
    owner_id: int,
    market: str | None = None,
    name_suffix: str = "",
    on_error: OnError = "raise",
    origin: str = "folder",
) -> ImportReport:
    """Import model folders already read into memory (see :func:`import_aitrader`)."""
    if on_error not in ("raise", "report"):
        raise ValidationError(f"on_error must be 'raise' or 'report', got {on_error!r}")
    if market is not None:
        get_market(market)
    parsed = [parse_model(source) for source in sources]
    problems = [p for model in parsed for p in model.problems]
    if problems and on_error == "raise":
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise DataFileError(first.path, first.message + more, first.line)
    report = ImportReport()
    report.problems.extend(problems)
    for model in parsed:
        result = ModelResult(folder=model.source.rel, problems=list(model.problems))
        report.results.append(result)
        if not model.usable:
            result.status = "failed"
            result.notes.append("no initial state (first line of position.jsonl); not imported")
            continue
        try:
            _import_model(store, model, owner_id, market, name_suffix, origin, result)
        except NotFoundError as exc:  # no price data for the market and interval
            if on_error == "raise":
                raise
            problem = Problem(model.source.position.display, None, str(exc))
            result.status = "failed"
            result.problems.append(problem)
            report.problems.append(problem)
            continue
        if result.status == "imported" and result.run_id is not None:
            store_metrics(store, result.run_id)  # so leaderboards rank imports with our runs
            report.append(result.run_id)
    return report


@dataclass
class _Fill:
    """A ledger row in the making, with what reconciliation needs."""

    step: int
    seq: int
    row: LedgerRow


def _holdings(line: PositionLine) -> dict[str, float]:
    """Non-zero holdings, sorted (the engine's snapshot format)."""
    return {s: q for s, q in sorted(line.holdings.items()) if abs(q) > 1e-12}


def _signed(action: str, amount: float) -> float:
    return amount if action in ("buy", "cover") else -amount


def _apply(line: PositionLine, base: PositionLine) -> dict[str, float]:
    """``base``'s holdings with ``line``'s action applied."""
    holdings = dict(base.holdings)
    if line.action not in (None, "no_trade") and line.symbol is not None:
        assert line.action is not None
        holdings[line.symbol] = holdings.get(line.symbol, 0.0) + _signed(line.action, line.amount)
    return holdings


def _same_holdings(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) <= QTY_TOLERANCE for k in set(a) | set(b))


def _follows(line: PositionLine, base: PositionLine) -> bool:
    """Whether ``line``'s snapshot is ``base`` plus ``line``'s action."""
    if not _same_holdings(_apply(line, base), line.holdings):
        return False
    return line.action != "no_trade" or abs(line.cash - base.cash) <= CASH_TOLERANCE


def _base_index(lines: Sequence[PositionLine], i: int) -> int | None:
    """The line ``lines[i]`` continues from: normally ``i - 1``; after AI-Trader restarted
    a step from an earlier state, that earlier line; None when no earlier line fits."""
    if _follows(lines[i], lines[i - 1]):
        return i - 1
    for j in range(i - 2, -1, -1):
        if _follows(lines[i], lines[j]):
            return j
    return None


def _ledger_action(line: PositionLine, before: float) -> str:
    """buy/sell/short/cover from the action and the position held before it."""
    assert line.action is not None
    if line.action == "sell" and before <= QTY_TOLERANCE:
        return "short"
    if line.action == "buy" and before < -QTY_TOLERANCE:
        return "cover"
    return line.action


def _fmt(when: datetime) -> str:
    return f"{when:%Y-%m-%d}" if when.time() == datetime.min.time() else f"{when:%Y-%m-%d %H:%M}"


def _import_model(
    store: Store,
    model: ParsedModel,
    owner_id: int,
    market_code: str | None,
    name_suffix: str,
    origin: str,
    result: ModelResult,
) -> None:
    source = model.source
    tickers = sorted({s for line in model.positions for s in line.holdings})
    market = get_market(market_code or infer_market(tickers))
    interval = infer_interval(model.positions)
    mode = "daily" if interval == "1d" else "intraday"
    clock_label = CLOCK_LABELS.get((market.code, interval), "start")
    model = at_bar_starts(model, interval, clock_label)
    lines = model.positions
    initial = lines[0]
    fingerprint = data_fingerprint(store, market.code, interval)
    index = price_index(store, market.code, interval, fingerprint)
    end = max([lines[-1].when, *(log.when for log in model.logs)])
    calendar = index.calendar_between(initial.when, end)
    if not calendar:
        raise NotFoundError(
            f"no {interval} bars of the {market.code} market between {_fmt(initial.when)} and "
            f"{_fmt(end)} in our data"
        )
    result.market, result.interval, result.bars = market.code, interval, len(calendar)
    result.initial_cash = initial.cash
    notes = result.notes
    if clock_label == "end":
        notes.append(
            f"AI-Trader's clock labels {interval} bars by their end: each line and log is "
            f"booked at the start of its bar ({INTRADAY_MINUTES[interval]} minutes earlier), "
            "the bar whose open it traded at"
        )

    def step_of(when: datetime) -> int:
        return max(0, bisect_right(calendar, when) - 1)

    # Identity of the model.
    match = catalog_entry(source.name)
    if match is None:
        ai_model_id, display, agent = f"aitrader/{source.name}", source.name, source.name
        notes.append(f"{source.name!r} matches no aitrader_signature in the catalog")
    else:
        ai_model_id, display, agent = match.id, match.name, match.aitrader_signature
    label = f"{MARKET_LABELS[market.code]} {INTERVAL_LABELS.get(interval, interval)}"
    base_sig = f"aitrader-{agent}-{market.code}-{INTERVAL_LABELS.get(interval, interval)}"
    name = f"AI-Trader {display} ({label}){name_suffix}"
    signature = slugify(base_sig + name_suffix)
    result.signature = signature
    unknown = [s for s in tickers if not index.has_symbol(s)]
    if unknown:
        notes.append(f"symbols not in our {market.code} {interval} data: {', '.join(unknown)}")
    late = [line for line in lines[1:] if line.when > calendar[-1]]
    if late:
        notes.append(
            f"{len(late)} line(s) after our last bar {_fmt(calendar[-1])} (up to "
            f"{_fmt(late[-1].when)}): booked at that last bar; the equity curve ends there"
        )

    # Ledger rows, in file order, plus reconciliation with our prices.
    fills: list[_Fill] = []
    seen_ids: dict[int, int] = {}
    recomputed: list[float] = [initial.cash]
    trade_diffs: list[tuple[float, int, str]] = []
    missing_price = 0
    for i in range(1, len(lines)):
        line = lines[i]
        assert line.action is not None
        base_i = _base_index(lines, i)
        if base_i is None:
            notes.append(
                f"line {line.line} ({_fmt(line.when)}): holdings do not follow from any earlier "
                "line plus its action"
            )
        elif base_i != i - 1:
            notes.append(
                f"line {line.line} ({_fmt(line.when)}): continues from line {lines[base_i].line} "
                f"({_fmt(lines[base_i].when)}), not the line before: AI-Trader restarted the "
                "step from an earlier state; its snapshot is kept"
            )
        base = lines[i - 1 if base_i is None else base_i]
        step = step_of(line.when)
        if line.id is None:
            order_id = f"aitrader-line{line.line}"
        elif line.id in seen_ids:
            order_id = f"aitrader-{line.id}-line{line.line}"
            notes.append(
                f"line {line.line}: id {line.id} repeats line {seen_ids[line.id]}; "
                f"order id {order_id}"
            )
        else:
            order_id = f"aitrader-{line.id}"
            seen_ids[line.id] = line.line
        previous_cash = recomputed[i - 1] if base_i is None else recomputed[base_i]
        if line.action == "no_trade" or line.symbol is None:
            recomputed.append(previous_cash)
            row = ledger_row(
                step, line.when, "no_trade", None, 0.0, line.cash, _holdings(line), order_id, "none"
            )
            fills.append(_Fill(step, i, row))
            continue
        signed = _signed(line.action, line.amount)
        ours = index.bar_value(line.symbol, line.when, "open")
        implied = (base.cash - line.cash) / signed if signed and base_i is not None else None
        reasons = []
        price = ours
        if ours is None:
            missing_price += 1
            price = implied
            reasons.append(
                f"no {interval} bar of {line.symbol} at {_fmt(line.when)} in our data: "
                + (
                    f"price implied by AI-Trader's cash change {implied:.6g}"
                    if implied is not None
                    else "price unknown"
                )
            )
        elif implied is not None and abs(implied - ours) > PRICE_NOTE_THRESHOLD * ours:
            reasons.append(
                f"AI-Trader's price {implied:.6g} (from its cash change), our open {ours:g}"
            )
        if ours is not None and base_i is not None:
            trade_diffs.append((abs((base.cash - line.cash) - signed * ours), line.line, order_id))
        if line.stated_price is not None:
            reasons.append(f"AI-Trader's line states price {line.stated_price:g}")
        recomputed.append(previous_cash - signed * (price if price is not None else 0.0))
        if line.amount == 0:
            reasons.insert(0, "amount 0 in AI-Trader's file: nothing traded")
        row = ledger_row(
            step,
            line.when,
            _ledger_action(line, base.holdings.get(line.symbol, 0.0)),
            line.symbol,
            line.amount,
            line.cash,
            _holdings(line),
            order_id,
            "filled" if line.amount > 0 else "none",
            "; ".join(reasons),
            fill_price=price,
        )
        fills.append(_Fill(step, i, row))

    # Steps without a line get the engine's explicit no-trade; marks at every bar's close.
    steps_with_rows = {f.step for f in fills}
    states = _states_per_bar(calendar, lines)
    last_price: dict[str, float] = {}
    for f in fills:
        if f.row.fill_price is not None and f.row.symbol:
            last_price.setdefault(f.row.symbol, f.row.fill_price)
    run_steps: list[dict[str, Any]] = []
    unvalued: set[str] = set()
    for step, (bar, state) in enumerate(zip(calendar, states, strict=True)):
        holdings = _holdings(state)
        value = math.fsum([state.cash, *_values(index, holdings, bar, last_price, unvalued)])
        run_steps.append(
            {
                "step_index": step,
                "ts": bar,
                "cash": state.cash,
                "equity": value,
                "holdings": holdings,
                "risk_state": {},
            }
        )
        if step not in steps_with_rows:
            fills.append(
                _Fill(
                    step,
                    -1,
                    ledger_row(
                        step,
                        bar,
                        "no_trade",
                        None,
                        0.0,
                        state.cash,
                        holdings,
                        f"aitrader-none-s{step}",
                        "none",
                        "no line in AI-Trader's position.jsonl for this bar",
                    ),
                )
            )
    if unvalued:
        notes.append(
            f"no close at or before some bars for {', '.join(sorted(unvalued))}: valued at "
            "their first fill price there"
        )
    fills.sort(key=lambda f: (f.step, f.seq))
    ledger = [f.row for f in fills]

    drifts = [abs(r - line.cash) for r, line in zip(recomputed, lines, strict=True)]
    worst_trade = max(trade_diffs, default=(0.0, 0, ""))
    result.reconciliation = {
        "trades_priced": len(trade_diffs),
        "trades_without_our_price": missing_price,
        "max_trade_cash_diff": round(worst_trade[0], 6),
        "max_trade_cash_diff_order": worst_trade[2] or None,
        "max_cash_drift": round(max(drifts), 6),
        "final_cash": lines[-1].cash,
        "final_cash_recomputed": round(recomputed[-1], 6),
    }

    equity = [s["equity"] for s in run_steps]
    result.trades = sum(1 for r in ledger if r.status == "filled")
    result.final_value = equity[-1]
    result.final_return = equity[-1] / initial.cash - 1.0 if initial.cash else None
    result.max_drawdown = max_drawdown(equity)

    def book(session: Session) -> None:
        """The model (when new) and its run with every row, in one transaction."""
        model_row = session.scalars(
            select(TradingModel).where(TradingModel.signature == signature)
        ).one_or_none()
        files = source.source_files()
        if model_row is not None:
            existing = _existing_run(session, model_row.id, files, clock_label)
            if existing is not None:
                result.status, result.run_id, result.model_id = "skipped", existing, model_row.id
                result.notes.append(f"already imported as run {existing}; nothing written")
                return
        else:
            model_row = TradingModel(
                owner_id=owner_id,
                name=name,
                signature=signature,
                description=(
                    f"Imported from AI-Trader's published run {source.rel} ({display}, "
                    f"{label}): its positions, actions and logs. Not run in this lab; fills "
                    "are priced at our stored open, the book is AI-Trader's."
                ),
                market=market.code,
                initial_cash=initial.cash,
                tickers=tickers,
                ai_model_id=ai_model_id,
                parameters={},
                shared=origin == "shipped",  # the published runs are every user's reference
            )
            session.add(model_row)
            session.flush()
        result.model_id = model_row.id
        snapshot = RunSnapshot(
            model=ModelConfig(
                name=model_row.name,
                signature=model_row.signature,
                market=model_row.market,
                ai_model_id=model_row.ai_model_id,
                parameters=dict(model_row.parameters),
                initial_cash=initial.cash,
                tickers=tickers,
                custom_rules=model_row.custom_rules or "",
                custom_instructions=model_row.custom_instructions or "",
            ),
            tickers=tuple(tickers),
            rules=RuleSet(),
            costs=COST_PRESETS["zero"],
            fill="open",
            seed=0,
            interval=interval,
            agent_path="imported",
            data_fingerprint=fingerprint,
            package_version=__version__,
            imported=ImportSource(
                source=origin,
                source_path=source.rel,
                source_files=files,
                source_bar_labels=clock_label,
                trimmed_copy=source.trimmed,
                reconciliation=result.reconciliation,
                notes=notes[:50],
            ),
        )
        now = utcnow()
        run = TradingRun(
            model_id=model_row.id,
            run_number=next_run_number(session, model_row.id),
            status="completed",
            mode=mode,
            period_start=calendar[0],
            period_end=calendar[-1],
            started_at=now,
            ended_at=now,
            strategy_snapshot=snapshot.to_json(),
            steps_total=len(calendar),
            steps_done=len(calendar),
            total_trades=result.trades,
            final_value=result.final_value,
            final_return=result.final_return,
            max_drawdown=result.max_drawdown,
        )
        session.add(run)
        session.flush()
        result.run_id = run.id
        session.execute(insert(LedgerEntry), [{**r.as_record(), "run_id": run.id} for r in ledger])
        session.execute(insert(RunStep), [{**s, "run_id": run.id} for s in run_steps])
        logs, entries = _log_rows(model, ledger, step_of)
        if logs:
            session.execute(insert(AgentLog), [{**r, "run_id": run.id} for r in logs])
        if entries:
            session.execute(insert(ReasoningEntry), [{**e, "run_id": run.id} for e in entries])

    write_numbered(store, book, signature)


def _existing_run(
    session: Session, model_id: int, files: dict[str, str], clock_label: BarLabel
) -> int | None:
    """A run of the model imported from exactly these files and booked with the same
    reading of AI-Trader's clock, if any (runs imported before bars carried their start
    took every clock as a bar start)."""
    runs = session.execute(
        select(TradingRun.id, TradingRun.strategy_snapshot).where(TradingRun.model_id == model_id)
    )
    for run_id, stored in runs:
        imported = RunSnapshot.import_source(stored)
        if (
            imported is not None
            and imported.source_files == files
            and imported.source_bar_labels == clock_label
        ):
            return int(run_id)
    return None


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


def _states_per_bar(
    calendar: Sequence[datetime], lines: Sequence[PositionLine]
) -> list[PositionLine]:
    """For each bar, the last line at or before it (its snapshot is the book at that bar)."""
    states: list[PositionLine] = []
    i = 0
    for bar in calendar:
        while i + 1 < len(lines) and lines[i + 1].when <= bar:
            i += 1
        states.append(lines[i])
    return states


def _values(
    index: PriceIndex,
    holdings: dict[str, float],
    bar: datetime,
    fallback: dict[str, float],
    unvalued: set[str],
) -> list[float]:
    values = []
    for symbol, qty in holdings.items():
        price = index.close_at_or_before(symbol, bar)
        if price is None:
            unvalued.add(symbol)
            price = fallback.get(symbol, 0.0)
        values.append(qty * price)
    return values


def _log_rows(
    model: ParsedModel, ledger: Sequence[LedgerRow], step_of: Callable[[datetime], int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """agent_logs rows (one per log file) and typed reasoning entries."""
    logs: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for log in model.logs:
        step = step_of(log.when)
        order_ids = [r.order_id for r in ledger if r.ts == log.when and r.status == "filled"]
        messages: list[dict[str, Any]] = []
        assistant: list[tuple[LogLine, str]] = []
        for line in log.lines:
            for message in line.messages:
                item: dict[str, Any] = dict(message)
                if line.timestamp:
                    item["timestamp"] = line.timestamp
                messages.append(item)
                if message["role"] == "assistant" and split_sections(message["content"], "x"):
                    assistant.append((line, message["content"]))
        log_file = f"{model.source.rel}/{log.source.file.rel}"
        logs.append({"step_index": step, "ts": log.when, "messages": messages})
        for i, (line, text) in enumerate(assistant):
            default = "decision" if i == len(assistant) - 1 else "analysis"
            for kind, content in split_sections(text, default):
                context: dict[str, Any] = {
                    "source": "aitrader",
                    "log_file": log_file,
                    "line": line.line,
                    "clock": log.source.clock,
                    "signature": line.signature,
                }
                entries.append(
                    {
                        "step_index": step,
                        "ts": log.when,
                        "type": kind,
                        "content": content,
                        "context": context,
                        "order_ids": order_ids if kind == "decision" else [],
                    }
                )
    return logs, entries


__all__ = [
    "ACTIONS",
    "ImportReport",
    "LogSource",
    "ModelResult",
    "ModelSource",
    "Problem",
    "SourceFile",
    "find_model_folders",
    "import_aitrader",
    "import_sources",
    "parse_model",
    "read_folder_layout",
    "read_model_folder",
]
