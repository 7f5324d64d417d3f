"""Book AI-Trader's records as runs: typed records -> a model and a completed run.

An import turns one model folder into a model row (created or reused by signature) and
one completed run: a ledger row per action, the equity curve marked to market at every
bar of our calendar, the agent's messages and typed reasoning entries. The run's number
comes from :func:`~ttg_lab.runs.numbering.write_numbered`, the run service's allocation
with its retry.

Prices: AI-Trader filled orders at the bar's open ("buy price"). The ledger's
``fill_price`` is OUR stored open of that bar; when we have no bar for the symbol at
that time, it is the price implied by AI-Trader's own cash change (``|Δcash| / amount``)
and the row's ``reason`` says so (None when not even that is known). ``cash_after`` and
``holdings`` are always AI-Trader's own snapshot, so the equity curve (its cash plus
the sum of quantity x our close at each bar) follows its book; :class:`ModelResult` reports
how far its cash is from cash recomputed with our prices.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.engine.equity import max_drawdown
from ttg_lab.engine.ledger import LedgerRow
from ttg_lab.engine.orders import ledger_row
from ttg_lab.engine.snapshot import ImportOrigin, ImportSource, ModelConfig, RunSnapshot
from ttg_lab.errors import DataFileError, NotFoundError, ValidationError
from ttg_lab.importers.aitrader.read import (
    LogLine,
    ModelSource,
    OnError,
    ParsedModel,
    PositionLine,
    Problem,
    at_bar_starts,
    catalog_entry,
    infer_interval,
    infer_market,
    parse_model,
    read_folder_layout,
)
from ttg_lab.llm.sections import split_sections
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.bars import INTRADAY_MINUTES, BarLabel
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import Market, get_market
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
    origin: ImportOrigin = "folder",
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


@dataclass(frozen=True)
class _Placement:
    """Where a model's run sits in our data: market, interval, prices and bars."""

    market: Market
    interval: str
    clock_label: BarLabel
    fingerprint: str
    index: PriceIndex
    calendar: list[datetime]

    @property
    def mode(self) -> str:
        return "daily" if self.interval == "1d" else "intraday"

    def step_of(self, when: datetime) -> int:
        """The bar a time falls in (the first bar for times before it)."""
        return max(0, bisect_right(self.calendar, when) - 1)


@dataclass(frozen=True)
class _Identity:
    """Who the imported model is: catalog id, names and signature."""

    ai_model_id: str
    display: str
    label: str
    name: str
    signature: str


@dataclass
class _Booked:
    """The ledger rows of a model's lines, and what reconciling its cash needs."""

    fills: list[_Fill]
    recomputed: list[float]
    trade_diffs: list[tuple[float, int, str]]
    missing_price: int = 0


def _import_model(
    store: Store,
    model: ParsedModel,
    owner_id: int,
    market_code: str | None,
    name_suffix: str,
    origin: ImportOrigin,
    result: ModelResult,
) -> None:
    """Book one parsed model folder as a completed run, filling in ``result``."""
    tickers = sorted({s for line in model.positions for s in line.holdings})
    model, place = _place(store, model, market_code, tickers, result)
    identity = _identify(model.source, place, name_suffix, result.notes)
    result.signature = identity.signature
    _note_data_gaps(model.positions, tickers, place, result.notes)
    booked = _book_lines(model.positions, place, result.notes)
    run_steps = _mark_bars(model.positions, place, booked.fills, result.notes)
    booked.fills.sort(key=lambda f: (f.step, f.seq))
    ledger = [f.row for f in booked.fills]
    result.reconciliation = _reconciliation(booked, model.positions)
    equity = [s["equity"] for s in run_steps]
    initial_cash = model.positions[0].cash
    result.trades = sum(1 for r in ledger if r.status == "filled")
    result.final_value = equity[-1]
    result.final_return = equity[-1] / initial_cash - 1.0 if initial_cash else None
    result.max_drawdown = max_drawdown(equity)

    def book(session: Session) -> None:
        _write_run(
            session, model, place, identity, tickers, ledger, run_steps, owner_id, origin, result
        )

    write_numbered(store, book, identity.signature)


def _place(
    store: Store,
    model: ParsedModel,
    market_code: str | None,
    tickers: list[str],
    result: ModelResult,
) -> tuple[ParsedModel, _Placement]:
    """The model's market, interval and bars in our data, and the model with its times at
    the start of the bars they name; NotFoundError when our data has no bars for it."""
    market = get_market(market_code or infer_market(tickers))
    interval = infer_interval(model.positions)
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
    if clock_label == "end":
        result.notes.append(
            f"AI-Trader's clock labels {interval} bars by their end: each line and log is "
            f"booked at the start of its bar ({INTRADAY_MINUTES[interval]} minutes earlier), "
            "the bar whose open it traded at"
        )
    return model, _Placement(market, interval, clock_label, fingerprint, index, list(calendar))


def _identify(
    source: ModelSource, place: _Placement, name_suffix: str, notes: list[str]
) -> _Identity:
    """The model's catalog entry (when its folder name matches one), names and signature."""
    match = catalog_entry(source.name)
    if match is None:
        ai_model_id, display, agent = f"aitrader/{source.name}", source.name, source.name
        notes.append(f"{source.name!r} matches no aitrader_signature in the catalog")
    else:
        ai_model_id, display, agent = match.id, match.name, match.aitrader_signature
    market, interval = place.market.code, place.interval
    label = f"{MARKET_LABELS[market]} {INTERVAL_LABELS.get(interval, interval)}"
    base_sig = f"aitrader-{agent}-{market}-{INTERVAL_LABELS.get(interval, interval)}"
    name = f"AI-Trader {display} ({label}){name_suffix}"
    return _Identity(ai_model_id, display, label, name, slugify(base_sig + name_suffix))


def _note_data_gaps(
    lines: Sequence[PositionLine], tickers: list[str], place: _Placement, notes: list[str]
) -> None:
    """Notes on symbols our data lacks and lines after our last bar."""
    unknown = [s for s in tickers if not place.index.has_symbol(s)]
    if unknown:
        notes.append(
            f"symbols not in our {place.market.code} {place.interval} data: {', '.join(unknown)}"
        )
    last_bar = place.calendar[-1]
    late = [line for line in lines[1:] if line.when > last_bar]
    if late:
        notes.append(
            f"{len(late)} line(s) after our last bar {_fmt(last_bar)} (up to "
            f"{_fmt(late[-1].when)}): booked at that last bar; the equity curve ends there"
        )


def _order_id(line: PositionLine, seen_ids: dict[int, int], notes: list[str]) -> str:
    """The ledger's order id of a line: AI-Trader's id, made unique when it repeats."""
    if line.id is None:
        return f"aitrader-line{line.line}"
    if line.id in seen_ids:
        order_id = f"aitrader-{line.id}-line{line.line}"
        notes.append(
            f"line {line.line}: id {line.id} repeats line {seen_ids[line.id]}; order id {order_id}"
        )
        return order_id
    seen_ids[line.id] = line.line
    return f"aitrader-{line.id}"


def _note_continuity(
    lines: Sequence[PositionLine], i: int, base_i: int | None, notes: list[str]
) -> None:
    """A note when line ``i`` does not continue from the line before it."""
    line = lines[i]
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


def _book_lines(lines: Sequence[PositionLine], place: _Placement, notes: list[str]) -> _Booked:
    """A ledger row per line after the first, in file order, with cash recomputed at our
    prices for the reconciliation."""
    booked = _Booked([], [lines[0].cash], [])
    seen_ids: dict[int, int] = {}
    for i in range(1, len(lines)):
        line = lines[i]
        assert line.action is not None
        base_i = _base_index(lines, i)
        _note_continuity(lines, i, base_i, notes)
        base = lines[i - 1 if base_i is None else base_i]
        step = place.step_of(line.when)
        order_id = _order_id(line, seen_ids, notes)
        previous_cash = booked.recomputed[i - 1] if base_i is None else booked.recomputed[base_i]
        if line.action == "no_trade" or line.symbol is None:
            booked.recomputed.append(previous_cash)
            row = ledger_row(
                step, line.when, "no_trade", None, 0.0, line.cash, _holdings(line), order_id, "none"
            )
        else:
            row = _trade_row(line, base, base_i is not None, step, order_id, place, booked)
            signed = _signed(line.action, line.amount)
            price = row.fill_price
            booked.recomputed.append(previous_cash - signed * (price if price is not None else 0.0))
        booked.fills.append(_Fill(step, i, row))
    return booked


def _trade_row(
    line: PositionLine,
    base: PositionLine,
    follows: bool,
    step: int,
    order_id: str,
    place: _Placement,
    booked: _Booked,
) -> LedgerRow:
    """The ledger row of a trade line, priced at our open (else AI-Trader's implied price),
    its reason saying where the price came from; the trade's cash difference is kept."""
    assert line.action is not None and line.symbol is not None
    signed = _signed(line.action, line.amount)
    ours = place.index.bar_value(line.symbol, line.when, "open")
    implied = (base.cash - line.cash) / signed if signed and follows else None
    reasons = []
    price = ours
    if ours is None:
        booked.missing_price += 1
        price = implied
        reasons.append(
            f"no {place.interval} bar of {line.symbol} at {_fmt(line.when)} in our data: "
            + (
                f"price implied by AI-Trader's cash change {implied:.6g}"
                if implied is not None
                else "price unknown"
            )
        )
    elif implied is not None and abs(implied - ours) > PRICE_NOTE_THRESHOLD * ours:
        reasons.append(f"AI-Trader's price {implied:.6g} (from its cash change), our open {ours:g}")
    if ours is not None and follows:
        booked.trade_diffs.append(
            (abs((base.cash - line.cash) - signed * ours), line.line, order_id)
        )
    if line.stated_price is not None:
        reasons.append(f"AI-Trader's line states price {line.stated_price:g}")
    if line.amount == 0:
        reasons.insert(0, "amount 0 in AI-Trader's file: nothing traded")
    return ledger_row(
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


def _mark_bars(
    lines: Sequence[PositionLine], place: _Placement, fills: list[_Fill], notes: list[str]
) -> list[dict[str, Any]]:
    """The run's steps: AI-Trader's book at every bar, marked at our closes; a bar
    without a line gets the engine's explicit no-trade row (added to ``fills``)."""
    steps_with_rows = {f.step for f in fills}
    states = _states_per_bar(place.calendar, lines)
    last_price: dict[str, float] = {}
    for f in fills:
        if f.row.fill_price is not None and f.row.symbol:
            last_price.setdefault(f.row.symbol, f.row.fill_price)
    run_steps: list[dict[str, Any]] = []
    unvalued: set[str] = set()
    for step, (bar, state) in enumerate(zip(place.calendar, states, strict=True)):
        holdings = _holdings(state)
        value = math.fsum([state.cash, *_values(place.index, holdings, bar, last_price, unvalued)])
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
    return run_steps


def _reconciliation(booked: _Booked, lines: Sequence[PositionLine]) -> dict[str, Any]:
    """How far AI-Trader's cash is from cash recomputed with our prices."""
    drifts = [abs(r - line.cash) for r, line in zip(booked.recomputed, lines, strict=True)]
    worst_trade = max(booked.trade_diffs, default=(0.0, 0, ""))
    return {
        "trades_priced": len(booked.trade_diffs),
        "trades_without_our_price": booked.missing_price,
        "max_trade_cash_diff": round(worst_trade[0], 6),
        "max_trade_cash_diff_order": worst_trade[2] or None,
        "max_cash_drift": round(max(drifts), 6),
        "final_cash": lines[-1].cash,
        "final_cash_recomputed": round(booked.recomputed[-1], 6),
    }


def _write_run(
    session: Session,
    model: ParsedModel,
    place: _Placement,
    identity: _Identity,
    tickers: list[str],
    ledger: list[LedgerRow],
    run_steps: list[dict[str, Any]],
    owner_id: int,
    origin: ImportOrigin,
    result: ModelResult,
) -> None:
    """The model (when new) and its run with every row, in one transaction; nothing when
    the same files were imported before."""
    source, initial = model.source, model.positions[0]
    files = source.source_files()
    model_row = session.scalars(
        select(TradingModel).where(TradingModel.signature == identity.signature)
    ).one_or_none()
    if model_row is not None:
        existing = _existing_run(session, model_row.id, files, place.clock_label)
        if existing is not None:
            result.status, result.run_id, result.model_id = "skipped", existing, model_row.id
            result.notes.append(f"already imported as run {existing}; nothing written")
            return
    else:
        model_row = TradingModel(
            owner_id=owner_id,
            name=identity.name,
            signature=identity.signature,
            description=(
                f"Imported from AI-Trader's published run {source.rel} ({identity.display}, "
                f"{identity.label}): its positions, actions and logs. Not run in this lab; "
                "fills are priced at our stored open, the book is AI-Trader's."
            ),
            market=place.market.code,
            initial_cash=initial.cash,
            tickers=tickers,
            ai_model_id=identity.ai_model_id,
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
        interval=place.interval,
        agent_path="imported",
        data_fingerprint=place.fingerprint,
        package_version=__version__,
        imported=ImportSource(
            source=origin,
            source_path=source.rel,
            source_files=files,
            source_bar_labels=place.clock_label,
            trimmed_copy=source.trimmed,
            reconciliation=result.reconciliation,
            notes=result.notes[:50],
        ),
    )
    now = utcnow()
    calendar = place.calendar
    run = TradingRun(
        model_id=model_row.id,
        run_number=next_run_number(session, model_row.id),
        status="completed",
        mode=place.mode,
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
    logs, entries = _log_rows(model, ledger, place.step_of)
    if logs:
        session.execute(insert(AgentLog), [{**r, "run_id": run.id} for r in logs])
    if entries:
        session.execute(insert(ReasoningEntry), [{**e, "run_id": run.id} for e in entries])


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
