"""The report of one run: header, metrics, charts, decisions, round trips and reasoning
excerpts, as one self-contained HTML file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from ttg_lab.broker.costs import CostModel
from ttg_lab.charts import figures
from ttg_lab.charts.figures import ChartRun
from ttg_lab.engine.reader import RunInfo
from ttg_lab.leaderboard import verdict
from ttg_lab.llm.cutoffs import run_training_flag
from ttg_lab.market.markets import get_market
from ttg_lab.metrics.compute import round_trips
from ttg_lab.metrics.reference import METRICS
from ttg_lab.reports.html import (
    chart_or_note,
    esc,
    format_metric,
    format_value,
    meta_table,
    money,
    page,
    percent,
    signed_class,
    slug,
    table,
    when,
)

if TYPE_CHECKING:
    from ttg_lab.importers.aitrader.reprice import Repriced

EXCERPTS = 10
"""Reasoning entries shown in a run report (those with the largest linked fills)."""
EXCERPT_CHARS = 1500
"""Longest reasoning text shown per entry (the rest is cut with an ellipsis)."""
TRIPS = 5
"""Best and worst round trips shown in a run report."""


# ---------------------------------------------------------------- run pieces ---------
class ReportedRun(Protocol):
    """What a run report reads of a run (:class:`ttg_lab.run.Run` has it all)."""

    @property
    def info(self) -> RunInfo: ...

    def metrics(self) -> dict[str, Any]: ...

    def ledger(self) -> pd.DataFrame: ...

    def equity(self) -> pd.DataFrame: ...

    def reasoning(self) -> pd.DataFrame: ...

    def decisions(self) -> pd.DataFrame: ...

    def attribution(self) -> pd.DataFrame: ...

    def chart(
        self, *, fills: bool = False, prices: bool = False, benchmark: bool = False
    ) -> ChartRun: ...


def currency_of(info: RunInfo) -> str:
    return get_market(info.market).currency


def costs_text(costs: CostModel) -> str:
    """The cost model's name and, for a preset, its fields: ``default (1 bp commission...)``."""
    return f"{costs.preset} ({costs.describe()})" if costs.preset else costs.name


def _rules_text(rules: list[dict[str, Any]]) -> str:
    if not rules:
        return "none"
    items = []
    for rule in rules:
        params = ", ".join(f"{k}={v}" for k, v in (rule.get("params") or {}).items())
        scope = rule.get("scope") or {}
        scoped = f" (scope {scope})" if scope else ""
        items.append(
            f"<li><b>{esc(rule.get('name'))}</b> <span class='muted'>[{esc(rule.get('origin'))}]"
            f"</span>: {esc(params) or '—'}{esc(scoped)}</li>"
        )
    return f"<ul>{''.join(items)}</ul>"


def repriced_of(info: RunInfo, equity: pd.DataFrame, ledger: pd.DataFrame) -> Repriced | None:
    """An imported run re-priced under the default cost model (None for other runs)."""
    if info.snapshot.agent_path != "imported" or equity.empty:
        return None
    from ttg_lab.importers.aitrader.reprice import reprice  # the importer's weight

    return reprice(info.snapshot, equity, ledger)


def repriced_text(repriced: Repriced, metrics: dict[str, Any], currency: str) -> str:
    """Re-priced figures beside the run's own, as plain text."""

    def figures(value: Any, ret: Any, sharpe: Any) -> str:
        return (
            f"final value {format_metric('final_value', value, currency)}, return "
            f"{format_metric('total_return', ret)}, Sharpe {format_metric('sharpe', sharpe)}"
        )

    own = figures(metrics.get("final_value"), metrics.get("total_return"), metrics.get("sharpe"))
    new = figures(repriced.final_value, repriced.total_return, repriced.sharpe)
    unpriced = (
        f"; {repriced.unpriced_fills} fill(s) without a price left as booked"
        if repriced.unpriced_fills
        else ""
    )
    return (
        f"under the {repriced.cost_model} cost model: {new} (its own, without fees: {own}; "
        f"costs {format_metric('final_value', repriced.extra_costs, currency)}{unpriced})"
    )


def masked_text(masked: bool) -> str:
    """What a run's masking means for its reader: the model's view, not the figures."""
    if not masked:
        return "no: the model saw real tickers, prices and dates"
    return (
        "yes: the model saw pseudonyms, prices scaled per symbol and shifted dates; "
        "every figure here is real (see the masking audit for what may have leaked)"
    )


def _header_rows(
    info: RunInfo, metrics: dict[str, Any], repriced: Repriced | None = None
) -> list[tuple[str, str]]:
    snap = info.snapshot
    model = snap.model
    currency = currency_of(info)
    tickers = list(snap.tickers)
    shown = ", ".join(tickers[:15]) + (f" … ({len(tickers)} symbols)" if len(tickers) > 15 else "")
    params = ", ".join(f"{k}={v}" for k, v in model.parameters.items())
    status = esc(info.status) + (f" — {esc(info.error)}" if info.error else "")
    return [
        ("model", f"{esc(model.name)} <span class='muted'>({esc(info.model)})</span>"),
        ("run", f"#{esc(info.run_number)} (id {esc(info.id)})"),
        ("period", f"{esc(when(info.start))} .. {esc(when(info.end))}"),
        ("mode", f"{esc(info.mode)} ({esc(snap.interval)} bars)"),
        ("status", f"{status}; {esc(info.steps_done)}/{esc(info.steps_total)} steps"),
        ("market", f"{esc(model.market)} ({esc(currency)})"),
        ("AI model", f"{esc(model.ai_model_id)} via the {esc(snap.agent_path)} path"),
        (
            "training window",
            f"<span class='verdict'>{esc(run_training_flag(info).describe())}</span>",
        ),
        ("masked", f"<span class='verdict'>{esc(masked_text(info.masked))}</span>"),
        ("parameters", esc(params) or "—"),
        ("initial cash", esc(money(model.initial_cash, currency))),
        ("tickers", esc(shown) or "whole market"),
        ("costs", f"{esc(costs_text(snap.costs))}; fill at {esc(snap.fill)}"),
        ("seed", esc(snap.seed)),
        ("rules", _rules_text(snap.rules.to_list())),
        (
            "LLM usage",
            f"{esc(format_metric('llm_calls', metrics.get('llm_calls')))} calls, "
            f"{esc(format_metric('llm_cost', metrics.get('llm_cost')))}",
        ),
        ("vs benchmark", f"<span class='verdict'>{esc(verdict(metrics))}</span>"),
        *(
            [("re-priced", esc(repriced_text(repriced, metrics, currency)))]
            if repriced is not None
            else []
        ),
        (
            "versions",
            f"package {esc(snap.package_version)}, prompt "
            f"{esc(snap.prompt_version or '—')}, data "
            f"{esc(snap.data_fingerprint[:12])}",
        ),
    ]


def metrics_table(metrics: dict[str, Any], currency: str) -> str:
    """Every metric of the reference with its formatted value, unit and definition."""
    rows = [
        [
            f"<code>{esc(m.key)}</code>",
            esc(format_value(m.unit, metrics.get(m.key), currency)),
            esc(m.unit),
            f"<span class='muted'>{esc(m.formula)}</span>",
        ]
        for m in METRICS
    ]
    return table(["metric", "value", "unit", "definition"], rows, [False, True, False, False])


def _filled(ledger: pd.DataFrame) -> pd.DataFrame:
    return ledger[ledger["status"] == "filled"]


def reasoning_excerpts(
    reasoning: pd.DataFrame, ledger: pd.DataFrame, limit: int = EXCERPTS
) -> list[dict[str, Any]]:
    """The reasoning entries whose linked orders filled for the most value, largest first.

    Each: id, step, ts, type, content, order ids and the linked fill value. When no
    entry links to a fill, the run's decision entries (in order) stand in.
    """
    fills = _filled(ledger)
    value_of = {
        str(o): abs(float(q) * float(p))
        for o, q, p in zip(fills["order_id"], fills["quantity"], fills["fill_price"], strict=True)
    }
    entries: list[dict[str, Any]] = []
    for row in reasoning.itertuples(index=False):
        linked: Any = row.order_ids
        orders = [str(o) for o in (linked or [])]
        entries.append(
            {
                "id": row.id,
                "step": row.step_index,
                "ts": row.ts,
                "type": row.type,
                "content": row.content,
                "orders": orders,
                "value": sum(value_of.get(o, 0.0) for o in orders),
            }
        )
    with_fills = [e for e in entries if e["value"] > 0]
    if with_fills:
        with_fills.sort(key=lambda e: (-e["value"], e["id"]))
        return with_fills[:limit]
    return [e for e in entries if e["type"] == "decision"][:limit]


def _excerpts_html(excerpts: list[dict[str, Any]], currency: str) -> str:
    if not excerpts:
        return "<p class='note'>No reasoning recorded.</p>"
    blocks = []
    for e in excerpts:
        content = str(e["content"] or "")
        if len(content) > EXCERPT_CHARS:
            content = content[:EXCERPT_CHARS].rstrip() + " …"
        orders = ", ".join(e["orders"][:12]) + (" …" if len(e["orders"]) > 12 else "")
        value = f" · linked fills {money(e['value'], currency)}" if e["value"] else ""
        blocks.append(
            "<div class='excerpt'><div class='head'>"
            f"{esc(when(e['ts']))} · step {esc(e['step'])} · <b>{esc(e['type'])}</b>"
            f"{esc(value)}{' · orders ' + esc(orders) if orders else ''}</div>"
            f"<pre>{esc(content)}</pre></div>"
        )
    return "".join(blocks)


def decisions_summary(decisions: pd.DataFrame) -> tuple[dict[str, int], pd.DataFrame]:
    """Gate decisions counted by verdict, and per rule by the verdict it took part in
    (plus orders the rule placed itself, ``forced``)."""
    by_verdict = {str(k): int(v) for k, v in Counter(decisions["verdict"]).most_common()}
    counts: dict[str, Counter[str]] = {}
    for origin, verdict_, firings in zip(
        decisions["origin"], decisions["verdict"], decisions["firings"], strict=True
    ):
        for name in {str(f.get("rule")) for f in firings or []}:
            counts.setdefault(name, Counter())[str(verdict_)] += 1
        if str(origin).startswith("rule:"):
            counts.setdefault(str(origin).removeprefix("rule:"), Counter())["forced"] += 1
    columns = ["allow", "resize", "reject", "forced"]
    frame = pd.DataFrame(
        [[name, *(c.get(k, 0) for k in columns)] for name, c in sorted(counts.items())],
        columns=["rule", *columns],
    )
    return by_verdict, frame


def _decisions_html(decisions: pd.DataFrame) -> str:
    if decisions.empty:
        return "<p class='note'>The gate recorded no orders for this run.</p>"
    by_verdict, by_rule = decisions_summary(decisions)
    out = "<h3>By verdict</h3>" + table(
        ["verdict", "orders"],
        [[esc(k), esc(f"{v:,}")] for k, v in by_verdict.items()],
        [False, True],
    )
    out += "<h3>By rule</h3>"
    if by_rule.empty:
        out += "<p class='note'>No rule fired.</p>"
    else:
        out += table(
            ["rule", "allowed", "resized", "rejected", "forced"],
            [[esc(r[0]), *(esc(f"{int(x):,}") for x in r[1:])] for r in by_rule.itertuples(False)],
            [False, True, True, True, True],
        )
    return out


def trip_tables(ledger: pd.DataFrame, equity: pd.DataFrame) -> tuple[list[Any], list[Any]]:
    """The best and the worst round trips by P&L (each at most ``TRIPS``, no overlap)."""
    if _filled(ledger).empty:
        return [], []
    bars = pd.DatetimeIndex(pd.to_datetime(equity["ts"]))
    frame = ledger.assign(ts=pd.to_datetime(ledger["ts"]))
    trips = sorted(round_trips(frame, bars), key=lambda t: t["pnl"], reverse=True)
    best = trips[:TRIPS]
    worst = sorted(trips[len(best) :], key=lambda t: t["pnl"])[:TRIPS]
    return best, worst


def _trips_html(trips: list[dict[str, Any]], currency: str) -> str:
    if not trips:
        return "<p class='note'>None.</p>"
    rows = [
        [
            esc(t["symbol"]),
            esc(t["side"]),
            esc(f"{t['quantity']:g}"),
            esc(when(t["entry_time"])),
            esc(when(t["exit_time"])),
            esc(f"{t['entry_price']:,.2f}"),
            esc(f"{t['exit_price']:,.2f}"),
            f"<span class='{signed_class(t['pnl'])}'>{esc(money(t['pnl'], currency))}</span>",
            esc(percent(t["return"])),
            esc(t["bars"]),
            esc(f"{t['entry_order']} → {t['exit_order']}"),
        ]
        for t in trips
    ]
    headers = ["symbol", "side", "qty", "entry", "exit", "entry price", "exit price"]
    headers += ["P&amp;L", "return", "bars", "orders"]
    numeric = [False, False, True, False, False, True, True, True, True, True, False]
    return table(headers, rows, numeric)


def _has_rules(info: RunInfo, decisions: pd.DataFrame) -> bool:
    """Whether attribution is worth showing: a rule beyond the built-in default, or a
    rule that fired."""
    rules = info.snapshot.rules.to_list()
    if any(r.get("origin") != "builtin" for r in rules):
        return True
    return bool(rules) and not decisions.empty and bool(decisions["firings"].map(bool).any())


def default_report_path(reports_dir: Path, info: RunInfo) -> Path:
    """Where a run's report goes unless told: ``<reports_dir>/run-<id>-<model>.html``."""
    return reports_dir / f"run-{info.id}-{slug(info.model)}.html"


def render_run_report(run: ReportedRun) -> str:
    """One run's report as a self-contained HTML page.

    Contains the run's header and snapshot, every metric, equity against the benchmark,
    drawdown, allocation, rule attribution (when the run has rules), trades on the most
    traded symbol's price, the reasoning linked to the largest fills, the gate's
    decisions and the best and worst round trips.
    """
    info = run.info
    metrics = run.metrics()
    currency = currency_of(info)
    ledger, equity = run.ledger(), run.equity()
    decisions = run.decisions()
    label = f"{info.model} #{info.run_number}"
    flag = run_training_flag(info)
    warning = (
        f"<p class='note'>{esc(flag.describe())}</p>"
        if flag.window in ("inside", "unknown")
        else ""
    )
    sections: list[tuple[str, str, str]] = [
        ("metrics", "Metrics", metrics_table(metrics, currency))
    ]
    charts_html = chart_or_note(
        lambda: figures.equity_curves([run.chart(benchmark=True)], True), "equity"
    )
    charts_html += chart_or_note(lambda: figures.drawdown(run.chart()), "drawdown")
    charts_html += chart_or_note(
        lambda: figures.allocation(run.chart(prices=True), 10), "allocation"
    )
    sections.append(("charts", "Equity, drawdown, allocation", charts_html))
    if _has_rules(info, decisions):
        sections.append(
            (
                "attribution",
                "Rule attribution",
                chart_or_note(lambda: figures.rule_attribution(run.attribution()), "attribution")
                + "<p class='muted'>Counterfactual replay of the recorded orders without each "
                "rule; exact for agents whose orders do not depend on earlier fills.</p>",
            )
        )
    symbol = figures.most_traded_symbol(_filled(ledger))
    trades = (
        chart_or_note(
            lambda: figures.trades_on_price(run.chart(fills=True, prices=True), symbol), "trades"
        )
        if symbol
        else "<p class='note'>The run filled no orders.</p>"
    )
    sections.append(("trades", f"Trades on {symbol or 'price'}", trades))
    excerpts = reasoning_excerpts(run.reasoning(), ledger)
    sections.append(
        ("reasoning", "Reasoning behind the largest fills", _excerpts_html(excerpts, currency))
    )
    sections.append(("decisions", "Rule decisions", _decisions_html(decisions)))
    best, worst = trip_tables(ledger, equity)
    sections.append(
        (
            "round-trips",
            "Round trips",
            f"<p class='muted'>{esc(format_metric('round_trips', metrics.get('round_trips')))} "
            "closed round trips (FIFO, fees included).</p>"
            f"<h3>Best</h3>{_trips_html(best, currency)}"
            f"<h3>Worst</h3>{_trips_html(worst, currency)}",
        )
    )
    intro = (
        f"<h1>{esc(label)}</h1><p class='muted'>{esc(when(info.start))} .. "
        f"{esc(when(info.end))} · {esc(info.mode)} · {esc(info.status)}"
        f"{' · masked' if info.masked else ''} · training window: {esc(flag.label)} · total return "
        f"<span class='{signed_class(metrics.get('total_return'))}'>"
        f"{esc(format_metric('total_return', metrics.get('total_return')))}</span></p>"
        + warning
        + meta_table(_header_rows(info, metrics, repriced_of(info, equity, ledger)))
    )
    return page(f"Run report: {label}", sections, intro)
