"""Self-contained HTML reports of one run or a comparison of runs.

A report is one file that opens offline: plotly.js is embedded once, inline, in the
page's head; charts, tables and text follow. Every string that comes from the store
(model names, reasoning, rule reasons, order ids) is HTML-escaped, because an LLM's
reasoning can contain markup or script.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from ttg_lab import charts, formatting
from ttg_lab.errors import TTGLabError, ValidationError
from ttg_lab.leaderboard import BOARD_COLUMNS, verdict
from ttg_lab.market.markets import get_market
from ttg_lab.metrics.bootstrap import iid_mean_interval
from ttg_lab.metrics.compute import round_trips
from ttg_lab.metrics.reference import METRICS

if TYPE_CHECKING:
    from ttg_lab.lab import Lab

EXCERPTS = 10
"""Reasoning entries shown in a run report (those with the largest linked fills)."""
EXCERPT_CHARS = 1500
"""Longest reasoning text shown per entry (the rest is cut with an ellipsis)."""
TRIPS = 5
"""Best and worst round trips shown in a run report."""

PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}

CSS = """
:root { color-scheme: dark; }
body { background: #111111; color: #dddddd; margin: 0;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.7em; margin: 0.2em 0; color: #ffffff; }
h2 { font-size: 1.25em; margin: 1.8em 0 0.6em; padding-bottom: 4px;
  border-bottom: 1px solid #333333; color: #ffffff; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; color: #cccccc; }
a { color: #8fa8ff; }
nav a { margin-right: 14px; }
.muted { color: #999999; }
.verdict { font-weight: 600; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.93em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #2c2c2c; vertical-align: top; }
th { text-align: left; color: #bbbbbb; font-weight: 600; background: #1a1a1a; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:hover td { background: #1c1c1c; }
table.meta th { background: none; width: 13em; }
.chart { margin: 8px 0 18px; border: 1px solid #262626; }
.note { color: #bbbbbb; font-style: italic; }
.excerpt { margin: 10px 0 16px; }
.excerpt .head { color: #aaaaaa; font-size: 0.9em; }
.excerpt pre { white-space: pre-wrap; word-wrap: break-word; background: #1a1a1a;
  border-left: 3px solid #636efa; padding: 8px 12px; margin: 4px 0; font: inherit; }
.gain { color: #00cc96; } .loss { color: #ef553b; }
"""

MISSING = "—"
"""How a missing value reads in a report."""


# ---------------------------------------------------------------- formatting --------
def esc(value: Any) -> str:
    """Any value as escaped HTML text (None as an empty string)."""
    return html.escape("" if value is None else str(value))


_missing = formatting.is_missing


def when(value: Any) -> str:
    """A time as text ("—" when missing)."""
    return formatting.when(value, MISSING)


def format_value(unit: str, value: Any, currency: str = "") -> str:
    """A metric value as text for its unit (percent, money, ratio, count, time, ...)."""
    return formatting.by_unit(unit, value, currency, MISSING)


def format_metric(key: str, value: Any, currency: str = "") -> str:
    """A metric (a key of ``ttg_lab.metrics.reference.METRICS``) formatted by its unit."""
    return format_value(charts.metric_unit(key), value, currency)


def money(value: Any, currency: str = "") -> str:
    return formatting.money(value, currency, MISSING)


def percent(value: Any, signed: bool = True) -> str:
    return formatting.percent(value, signed, MISSING)


def _cell(value: str, numeric: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in ("num" if numeric else "", css) if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{value}</td>"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None
) -> str:
    """An HTML table of already-escaped cells; ``numeric`` columns are right-aligned."""
    numeric = list(numeric or [False] * len(headers))
    head = "".join(
        f'<th class="num">{h}</th>' if n else f"<th>{h}</th>"
        for h, n in zip(headers, numeric, strict=True)
    )
    body = "".join(
        "<tr>" + "".join(_cell(c, n) for c, n in zip(row, numeric, strict=True)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _meta_table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="meta"><tbody>{body}</tbody></table>'


def _signed_class(value: Any) -> str:
    if _missing(value):
        return ""
    return "gain" if float(value) > 0 else "loss" if float(value) < 0 else ""


# ---------------------------------------------------------------- page ----------------
def figure_html(fig: go.Figure, div_id: str, height: int = 460) -> str:
    """A figure's div (id ``chart-<div_id>``, apart from section anchors) and drawing
    script; plotly.js itself is in the page head."""
    fig.update_layout(height=height)
    body: str = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=f"chart-{div_id}",
        config=PLOTLY_CONFIG,
        default_width="100%",
        default_height=f"{height}px",
        validate=True,
    )
    return f'<div class="chart">{body}</div>'


def page(title: str, sections: Sequence[tuple[str, str, str]], intro: str) -> str:
    """A whole HTML document: head with CSS and the inline plotly.js bundle, then a
    navigation bar and ``sections`` (anchor, heading, body HTML)."""
    nav = "".join(f'<a href="#{a}">{esc(h)}</a>' for a, h, _ in sections)
    parts = "".join(f'<section id="{a}"><h2>{esc(h)}</h2>{b}</section>' for a, h, b in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};</script>'
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
        f"</head><body><main>{intro}<nav>{nav}</nav>{parts}"
        f'<p class="muted">Written {datetime.now():%Y-%m-%d %H:%M} by TTG Lab.</p>'
        "</main></body></html>\n"
    )


def _write(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path.resolve()


def _slug(value: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", value).strip("-")[:60]
    return slug or "model"


# ---------------------------------------------------------------- run pieces ---------
def _currency(info: dict[str, Any]) -> str:
    return get_market(info["snapshot"]["model"]["market"]).currency


def _costs_text(costs: dict[str, Any]) -> str:
    if not costs:
        return "—"
    parts = [
        f"{costs.get('commission_bps', 0):g} bp commission",
        f"{costs.get('slippage_bps', 0):g} bp slippage",
    ]
    if costs.get("per_share"):
        parts.append(f"{costs['per_share']:g} per share")
    if costs.get("min_per_order"):
        parts.append(f"minimum {costs['min_per_order']:g} per order")
    return ", ".join(parts)


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


def _header_rows(info: dict[str, Any], metrics: dict[str, Any]) -> list[tuple[str, str]]:
    snap = info["snapshot"]
    model = snap["model"]
    currency = _currency(info)
    tickers = snap.get("tickers") or []
    shown = ", ".join(tickers[:15]) + (f" … ({len(tickers)} symbols)" if len(tickers) > 15 else "")
    params = ", ".join(f"{k}={v}" for k, v in (model.get("parameters") or {}).items())
    status = esc(info["status"]) + (f" — {esc(info['error'])}" if info.get("error") else "")
    return [
        ("model", f"{esc(model.get('name'))} <span class='muted'>({esc(info['model'])})</span>"),
        ("run", f"#{esc(info['run_number'])} (id {esc(info['id'])})"),
        ("period", f"{esc(when(info['start']))} .. {esc(when(info['end']))}"),
        ("mode", f"{esc(info['mode'])} ({esc(snap.get('interval'))} bars)"),
        ("status", f"{status}; {esc(info.get('steps_done'))}/{esc(info.get('steps_total'))} steps"),
        ("market", f"{esc(model.get('market'))} ({esc(currency)})"),
        ("AI model", f"{esc(model.get('ai_model_id'))} via the {esc(snap.get('agent_path'))} path"),
        ("parameters", esc(params) or "—"),
        ("initial cash", esc(money(model.get("initial_cash"), currency))),
        ("tickers", esc(shown) or "whole market"),
        ("costs", f"{esc(_costs_text(snap.get('costs') or {}))}; fill at {esc(snap.get('fill'))}"),
        ("seed", esc(snap.get("seed"))),
        ("rules", _rules_text(snap.get("rules") or [])),
        (
            "LLM usage",
            f"{esc(format_metric('llm_calls', metrics.get('llm_calls')))} calls, "
            f"{esc(format_metric('llm_cost', metrics.get('llm_cost')))}",
        ),
        ("vs benchmark", f"<span class='verdict'>{esc(verdict(metrics))}</span>"),
        (
            "versions",
            f"package {esc(snap.get('package_version'))}, prompt "
            f"{esc(snap.get('prompt_version') or '—')}, data "
            f"{esc(str(snap.get('data_fingerprint') or '')[:12])}",
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
            f"<span class='{_signed_class(t['pnl'])}'>{esc(money(t['pnl'], currency))}</span>",
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


def _has_rules(info: dict[str, Any], decisions: pd.DataFrame) -> bool:
    """Whether attribution is worth showing: a rule beyond the built-in default, or a
    rule that fired."""
    rules = info["snapshot"].get("rules") or []
    if any(r.get("origin") != "builtin" for r in rules):
        return True
    return bool(rules) and not decisions.empty and bool(decisions["firings"].map(bool).any())


def _chart_or_note(build: Any, div_id: str) -> str:
    """A chart, or the reason it cannot be drawn (a deliberate error from the lab)."""
    try:
        return figure_html(build(), div_id)
    except TTGLabError as exc:
        return f"<p class='note'>{esc(exc)}</p>"


# ---------------------------------------------------------------- reports ------------
def run_report(lab: Lab, run_id: int, path: str | Path | None = None) -> Path:
    """Write one run's report as a self-contained HTML file and return its path.

    Default path: ``<reports_dir>/run-<id>-<model>.html``. Contains the run's header
    and snapshot, every metric, equity against the benchmark, drawdown, allocation,
    rule attribution (when the run has rules), trades on the most traded symbol's
    price, the reasoning linked to the largest fills, the gate's decisions and the best
    and worst round trips.
    """
    handle = lab.run(run_id)
    info = handle.info()
    metrics = lab.metrics(run_id)
    currency = _currency(info)
    ledger, equity = handle.ledger(), handle.equity()
    decisions = lab.rules.decisions(run_id)
    label = f"{info['model']} #{info['run_number']}"
    sections: list[tuple[str, str, str]] = [
        ("metrics", "Metrics", metrics_table(metrics, currency))
    ]
    charts_html = _chart_or_note(lambda: charts.equity_curves(lab, [run_id]), "equity")
    charts_html += _chart_or_note(lambda: charts.drawdown(lab, run_id), "drawdown")
    charts_html += _chart_or_note(lambda: charts.allocation(lab, run_id), "allocation")
    sections.append(("charts", "Equity, drawdown, allocation", charts_html))
    if _has_rules(info, decisions):
        sections.append(
            (
                "attribution",
                "Rule attribution",
                _chart_or_note(
                    lambda: charts.rule_attribution(lab.attribution(run_id)), "attribution"
                )
                + "<p class='muted'>Counterfactual replay of the recorded orders without each "
                "rule; exact for agents whose orders do not depend on earlier fills.</p>",
            )
        )
    symbol = charts.most_traded_symbol(lab, run_id)
    trades = (
        _chart_or_note(lambda: charts.trades_on_price(lab, run_id, symbol), "trades")
        if symbol
        else "<p class='note'>The run filled no orders.</p>"
    )
    sections.append(("trades", f"Trades on {symbol or 'price'}", trades))
    excerpts = reasoning_excerpts(handle.reasoning(), ledger)
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
        f"<h1>{esc(label)}</h1><p class='muted'>{esc(when(info['start']))} .. "
        f"{esc(when(info['end']))} · {esc(info['mode'])} · {esc(info['status'])} · total return "
        f"<span class='{_signed_class(metrics.get('total_return'))}'>"
        f"{esc(format_metric('total_return', metrics.get('total_return')))}</span></p>"
        + _meta_table(_header_rows(info, metrics))
    )
    document = page(f"Run report: {label}", sections, intro)
    target = (
        Path(path)
        if path is not None
        else lab.settings.reports_dir / f"run-{run_id}-{_slug(str(info['model']))}.html"
    )
    return _write(document, target)


def _comparison_board(infos: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> pd.DataFrame:
    """A leaderboard frame with one row per run (``model`` is the run's model), with the
    mean return and its interval where several runs share a model, mode and period."""
    rows = []
    for info, m in zip(infos, metrics, strict=True):
        row: dict[str, Any] = dict.fromkeys(BOARD_COLUMNS)
        row.update({k: m.get(k) for k in BOARD_COLUMNS if k in m})
        row.update(
            model=info["model"],
            name=info["snapshot"]["model"].get("name"),
            ai_model_id=info["snapshot"]["model"].get("ai_model_id"),
            market=info["snapshot"]["model"].get("market"),
            mode=info["mode"],
            runs=1,
            period_start=info["start"],
            period_end=info["end"],
            latest_run=info["id"],
            best_run=info["id"],
            best_return=m.get("total_return"),
            vs_benchmark=verdict(m),
        )
        rows.append(row)
    board = pd.DataFrame(rows, columns=BOARD_COLUMNS)
    keys = list(
        zip(board["model"], board["mode"], board["period_start"], board["period_end"], strict=True)
    )
    for key in set(keys):
        members = [i for i, k in enumerate(keys) if k == key]
        returns = [board.at[i, "total_return"] for i in members]
        values = np.array([r for r in returns if not _missing(r)], dtype=float)
        if len(values) >= 2:
            low, high = iid_mean_interval(values)
            for i in members:
                board.at[i, "runs"] = len(members)
                board.at[i, "mean_return"] = float(values.mean())
                board.at[i, "mean_ci_low"], board.at[i, "mean_ci_high"] = low, high
    return board


def _runs_table(infos: list[dict[str, Any]]) -> str:
    rows = []
    for info in infos:
        snap = info["snapshot"]
        rules = ", ".join(str(r.get("name")) for r in snap.get("rules") or []) or "none"
        rows.append(
            [
                esc(info["id"]),
                f"{esc(snap['model'].get('name'))} "
                f"<span class='muted'>({esc(info['model'])})</span>",
                esc(info["run_number"]),
                esc(snap["model"].get("ai_model_id")),
                esc(info["mode"]),
                esc(f"{when(info['start'])} .. {when(info['end'])}"),
                esc(info["status"]),
                esc(money(snap["model"].get("initial_cash"), _currency(info))),
                esc(_costs_text(snap.get("costs") or {})),
                esc(rules),
            ]
        )
    headers = ["id", "model", "run", "AI model", "mode", "period", "status", "cash", "costs"]
    numeric = [True, False, True, False, False, False, False, True, False, False]
    return table([*headers, "rules"], rows, numeric)


def comparison_report(lab: Lab, run_ids: Sequence[int], path: str | Path | None = None) -> Path:
    """Write a comparison of several runs as a self-contained HTML file; returns its path.

    Default path: ``<reports_dir>/comparison-<ids>.html``. Contains the runs, their
    metrics side by side, overlaid equity curves each against its own market's benchmark, and
    leaderboard bars of their returns and Sharpe ratios.
    """
    ids = list(dict.fromkeys(int(i) for i in run_ids))
    if len(ids) < 2:
        raise ValidationError("a comparison needs at least two different run ids")
    infos = [lab.run(run_id).info() for run_id in ids]
    metrics = [lab.metrics(run_id) for run_id in ids]
    labels = [f"{i['model']} #{i['run_number']}" for i in infos]
    currencies = [_currency(i) for i in infos]
    headers = [
        "metric",
        *(
            f"{esc(label)}<br><span class='muted'>run {i['id']}</span>"
            for label, i in zip(labels, infos, strict=True)
        ),
    ]
    rows = [
        [f"<code>{esc(m.key)}</code>"]
        + [
            esc(format_value(m.unit, ms.get(m.key), c))
            for ms, c in zip(metrics, currencies, strict=True)
        ]
        for m in METRICS
    ]
    side_by_side = table(headers, rows, [False] + [True] * len(ids))
    board = _comparison_board(infos, metrics)
    bars = _chart_or_note(lambda: charts.leaderboard_bars(board, "total_return"), "board-return")
    bars += _chart_or_note(lambda: charts.leaderboard_bars(board, "sharpe"), "board-sharpe")
    sections = [
        ("runs", "Runs", _runs_table(infos)),
        ("equity", "Equity", _chart_or_note(lambda: charts.equity_curves(lab, ids), "equity")),
        ("metrics", "Metrics side by side", side_by_side),
        ("board", "Leaderboard of these runs", bars),
    ]
    title = f"Comparison of {len(ids)} runs"
    intro = f"<h1>{esc(title)}</h1><p class='muted'>{esc(', '.join(labels))}</p>"
    document = page(title, sections, intro)
    if path is not None:
        target = Path(path)
    else:
        name = "-".join(str(i) for i in ids[:8])
        if len(ids) > 8:
            name += "-" + hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:8]
        target = lab.settings.reports_dir / f"comparison-{name}.html"
    return _write(document, target)


__all__ = ["comparison_report", "format_metric", "format_value", "run_report"]
