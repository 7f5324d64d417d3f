"""The comparison report of several runs: a board of their metrics against the benchmark,
equity curves and leaderboard bars, as one self-contained HTML file."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ttg_lab import charts
from ttg_lab.engine.reader import RunInfo
from ttg_lab.errors import ValidationError
from ttg_lab.leaderboard import BOARD_COLUMNS, mixed_costs_note, verdict
from ttg_lab.llm.cutoffs import run_training_flag
from ttg_lab.metrics.bootstrap import iid_mean_interval
from ttg_lab.metrics.reference import METRICS
from ttg_lab.reports.html import (
    chart_or_note,
    esc,
    format_value,
    is_missing,
    money,
    page,
    table,
    when,
    write,
)
from ttg_lab.reports.run import costs_text, currency_of, repriced_of, repriced_text

if TYPE_CHECKING:
    from ttg_lab.lab import Lab
    from ttg_lab.run import Run


def _comparison_board(infos: list[RunInfo], metrics: list[dict[str, Any]]) -> pd.DataFrame:
    """A leaderboard frame with one row per run (``model`` is the run's model), with the
    mean return and its interval where several runs share a model, mode and period."""
    rows = []
    for info, m in zip(infos, metrics, strict=True):
        row: dict[str, Any] = dict.fromkeys(BOARD_COLUMNS)
        row.update({k: m.get(k) for k in BOARD_COLUMNS if k in m})
        row.update(
            model=info.model,
            name=info.snapshot.model.name,
            ai_model_id=info.snapshot.model.ai_model_id,
            market=info.market,
            mode=info.mode,
            runs=1,
            period_start=info.start,
            period_end=info.end,
            latest_run=info.id,
            best_run=info.id,
            best_return=m.get("total_return"),
            vs_benchmark=verdict(m),
            cost_model=info.snapshot.costs.name,
            costs_differ=len({i.snapshot.costs for i in infos}) > 1,
        )
        rows.append(row)
    board = pd.DataFrame(rows, columns=BOARD_COLUMNS)
    keys = list(
        zip(board["model"], board["mode"], board["period_start"], board["period_end"], strict=True)
    )
    for key in set(keys):
        members = [i for i, k in enumerate(keys) if k == key]
        returns = [board.at[i, "total_return"] for i in members]
        values = np.array([r for r in returns if not is_missing(r)], dtype=float)
        if len(values) >= 2:
            low, high = iid_mean_interval(values)
            for i in members:
                board.at[i, "runs"] = len(members)
                board.at[i, "mean_return"] = float(values.mean())
                board.at[i, "mean_ci_low"], board.at[i, "mean_ci_high"] = low, high
    return board


def _runs_table(infos: list[RunInfo]) -> str:
    rows = []
    for info in infos:
        snap = info.snapshot
        rules = ", ".join(str(r.get("name")) for r in snap.rules.to_list()) or "none"
        rows.append(
            [
                esc(info.id),
                f"{esc(snap.model.name)} <span class='muted'>({esc(info.model)})</span>",
                esc(info.run_number),
                esc(snap.model.ai_model_id),
                esc(info.mode),
                esc(f"{when(info.start)} .. {when(info.end)}"),
                esc(info.status),
                esc(money(snap.model.initial_cash, currency_of(info))),
                esc(costs_text(snap.costs)),
                esc(rules),
                esc(run_training_flag(info).label),
            ]
        )
    headers = ["id", "model", "run", "AI model", "mode", "period", "status", "cash", "costs"]
    numeric = [True, False, True, False, False, False, False, True, False, False]
    return table([*headers, "rules", "training window"], rows, [*numeric, False])


def _repriced_html(runs: list[Run], infos: list[RunInfo], metrics: list[dict[str, Any]]) -> str:
    """Each imported run's figures re-priced under the default cost model beside its own."""
    rows = []
    for run, info, m in zip(runs, infos, metrics, strict=True):
        repriced = repriced_of(info, run.equity(), run.ledger())
        if repriced is not None:
            rows.append(
                f"<li>run {esc(info.id)}: {esc(repriced_text(repriced, m, currency_of(info)))}</li>"
            )
    if not rows:
        return ""
    return (
        "<p>Imported runs (AI-Trader traded without fees), re-priced:</p><ul>"
        + "".join(rows)
        + "</ul>"
    )


def comparison_report(lab: Lab, run_ids: Sequence[int], path: str | Path | None = None) -> Path:
    """Write a comparison of several runs as a self-contained HTML file; returns its path.

    Default path: ``<reports_dir>/comparison-<ids>.html``. Contains the runs, their
    metrics side by side, overlaid equity curves each against its own market's benchmark, and
    leaderboard bars of their returns and Sharpe ratios.
    """
    ids = list(dict.fromkeys(int(i) for i in run_ids))
    if len(ids) < 2:
        raise ValidationError("a comparison needs at least two different run ids")
    runs = [lab.run(run_id) for run_id in ids]
    infos = [run.info for run in runs]
    metrics = [run.metrics() for run in runs]
    labels = [f"{i.model} #{i.run_number}" for i in infos]
    currencies = [currency_of(i) for i in infos]
    headers = [
        "metric",
        *(
            f"{esc(label)}<br><span class='muted'>run {i.id}</span>"
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
    bars = chart_or_note(lambda: charts.leaderboard_bars(board, "total_return"), "board-return")
    bars += chart_or_note(lambda: charts.leaderboard_bars(board, "sharpe"), "board-sharpe")
    sections = [
        (
            "runs",
            "Runs",
            _runs_table(infos) + _repriced_html(runs, infos, metrics),
        ),
        ("equity", "Equity", chart_or_note(lambda: charts.equity_curves(lab, ids), "equity")),
        ("metrics", "Metrics side by side", side_by_side),
        ("board", "Leaderboard of these runs", bars),
    ]
    title = f"Comparison of {len(ids)} runs"
    intro = f"<h1>{esc(title)}</h1><p class='muted'>{esc(', '.join(labels))}</p>"
    note = mixed_costs_note(board)
    if note:
        intro += f"<p class='note'>These runs were {esc(note)}.</p>"
    document = page(title, sections, intro)
    if path is not None:
        target = Path(path)
    else:
        name = "-".join(str(i) for i in ids[:8])
        if len(ids) > 8:
            name += "-" + hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:8]
        target = lab.config.reports_dir / f"comparison-{name}.html"
    return write(document, target)
