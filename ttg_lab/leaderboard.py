"""The leaderboard: every model's latest and best run, the spread of repeated runs, and
each model against buy-and-hold of its benchmark over the same bars.

Numbers come from the metrics stored with each run, so a board over thousands of runs
is one query and some arithmetic. The repeats behind the latest run (its experiment's
runs, or for a run on its own the model's other runs on their own over the same period
and mode) give ``repeats`` and the mean return with a bootstrap 95% interval (none from
fewer than 2). The comparison with the benchmark says whether the difference is
significant (a block-bootstrap interval of the mean bar excess return that excludes
zero), not just which number is larger.

A model's forward runs (traded bar by bar as the bars came, so after every model's
training cutoff) get a row of their own, marked ``forward``: they are never ranked
together with its backtests.

Each row's ``training_window`` says whether its LLM runs start inside the model's
training data (``inside``: it may have read those prices and that news), ``after`` its
knowledge cutoff (forward runs always are) or against an ``unknown`` cutoff; baselines
have none (empty). A model's runs of different windows never share a row, and by
default the board ranks three groups apart, in this order: runs after the cutoff (with
the baselines), runs of unknown cutoff, runs inside the training window
(``training_apart=False`` ranks them all together).

Masked runs (``masked``: the model saw pseudonyms, shifted dates and scaled prices) are
another experiment condition: a model's masked and unmasked runs never share a row, and
by default, within each training group, the masked rows rank apart after the unmasked
ones (``masked_apart=False`` ranks them together). A row holding runs of a memorisation
gap (:mod:`ttg_lab.metrics.gap`) shows the newest one in ``memorisation_gap``: the
return difference unmasked - masked with its 95% interval and verdict, a lower bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sqlalchemy import or_, select

from ttg_lab.broker.costs import resolve_cost_model
from ttg_lab.dates import day_of, inclusive_end, parse_optional_date
from ttg_lab.errors import ValidationError
from ttg_lab.llm.cutoffs import TrainingFlag, TrainingWindow, training_flag
from ttg_lab.llm.spend import run_llm_costs
from ttg_lab.market.markets import MARKETS
from ttg_lab.metrics.bootstrap import iid_mean_interval
from ttg_lab.metrics.comparisons import BoardEntry, board_statistics
from ttg_lab.store.database import Store
from ttg_lab.store.schema import TradingModel, TradingRun

STATISTICS_COLUMNS: tuple[str, ...] = (
    "group",
    "rank",
    "n_runs",
    "n_steps",
    "p_value",
    "p_holm",
    "holm_verdict",
    "cohens_d",
    "sharpe_diff",
    "psr",
    "dsr",
    "trials",
    "min_trl",
    "spa_p_value",
    "stepm_beats",
)
"""The board's statistics (:mod:`ttg_lab.metrics.comparisons`): the row's group (market,
mode, period) and rank in it, the runs and bars behind the tests, the p-value against
buy-and-hold raw and Holm-corrected within the group with its verdict and effect sizes,
PSR, DSR over the group's trials, MinTRL, and with ``snooping`` SPA and StepM."""

BOARD_COLUMNS: list[str] = [
    "model",
    "name",
    "ai_model_id",
    "market",
    "mode",
    "forward",
    "masked",
    "training_window",
    "knowledge_cutoff",
    "runs",
    "period_start",
    "period_end",
    "latest_run",
    "total_return",
    "annual_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "volatility",
    "trades",
    "best_run",
    "best_return",
    "experiment",
    "repeats",
    "mean_return",
    "mean_ci_low",
    "mean_ci_high",
    "benchmark",
    "benchmark_return",
    "excess_return",
    "excess_ci_low",
    "excess_ci_high",
    "vs_benchmark",
    "llm_cost",
    "return_per_llm_dollar",
    "tokens_per_trade",
    "cost_model",
    "costs_differ",
    "repriced_under",
    "repriced_final_value",
    "repriced_return",
    "repriced_sharpe",
    "memorisation_gap",
    *STATISTICS_COLUMNS,
]

SUMMARY_COLUMNS: tuple[str, ...] = (
    "model",
    "group",
    "benchmark",
    "forward",
    "masked",
    "training_window",
    "memorisation_gap",
    "n_runs",
    "n_steps",
    "total_return",
    "sharpe",
    "p_holm",
    "holm_verdict",
    "psr",
    "dsr",
    "mean_ci_low",
    "mean_ci_high",
    "llm_cost",
    "costs_differ",
    "repriced_return",
)
"""The board's columns a summary shows by default (the command line's table, which must
fit 160 characters, and the dashboard's panel): what ranks the row and how far to trust
it (the runs and bars behind it, the benchmark and the Holm-corrected verdict against it,
PSR and DSR), its training window and its cost flags; every other column is a choice
away."""
SORTABLE = {
    "total_return",
    "annual_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "volatility",
    "excess_return",
    "mean_return",
    "best_return",
    "llm_cost",
    "return_per_llm_dollar",
    "trades",
    "runs",
    "repeats",
    "model",
}


BoardVerdict = Literal[
    "beats the benchmark (significant)",
    "trails the benchmark (significant)",
    "no significant difference",
    "too few bars to tell",
    "no benchmark for these bars",
]
"""What the leaderboard says of a model's runs against buy-and-hold of its benchmark."""

VERDICTS: tuple[BoardVerdict, ...] = get_args(BoardVerdict)
"""Every leaderboard verdict, in the order of :data:`BoardVerdict`."""

ACROSS: tuple[str, ...] = ("markets", "modes", "periods")
"""What the board keeps apart by default and ``across=`` may rank across: rows of other
markets, other modes, other periods (a forward run's open period among them)."""

TRAINING_RANK: dict[TrainingWindow | None, int] = {None: 0, "after": 0, "unknown": 1, "inside": 2}
"""The board's groups ranked apart, in order: runs after the cutoff with the baselines
(nothing they did can be memorised), then unknown cutoffs, then inside the training data."""


def verdict(metrics: dict[str, Any]) -> BoardVerdict:
    """A plain statement about the run against buy-and-hold of its benchmark."""
    if metrics.get("benchmark_return") is None:
        return "no benchmark for these bars"
    beats = metrics.get("beats_benchmark")
    if beats is True:
        return "beats the benchmark (significant)"
    if beats is False:
        return "trails the benchmark (significant)"
    if metrics.get("excess_ci_low") is None:
        return "too few bars to tell"
    return "no significant difference"


@dataclass(frozen=True)
class RepeatsSummary:
    """The total returns of an experiment's completed repeats: how many, their mean, and
    its bootstrap 95% interval (None from fewer than 2 repeats: no interval)."""

    repeats: int
    mean_return: float | None
    ci_low: float | None
    ci_high: float | None


def repeats_summary(returns: list[float]) -> RepeatsSummary:
    """How many returns, their mean and its iid bootstrap 95% interval (none from fewer
    than 2): the one rule for an interval from repeats, for experiments and the board."""
    if not returns:
        return RepeatsSummary(0, None, None, None)
    if len(returns) < 2:
        return RepeatsSummary(1, float(returns[0]), None, None)
    low, high = iid_mean_interval(np.array(returns, dtype=float))
    return RepeatsSummary(len(returns), float(np.mean(returns)), low, high)


def leaderboard(
    store: Store,
    market: str | None = None,
    mode: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    sort: str = "sharpe",
    owners: list[int] | None = None,
    training_apart: bool = True,
    across: bool | str | Iterable[str] = False,
    snooping: bool = False,
    masked_apart: bool = True,
) -> pd.DataFrame:
    """One row per model with completed runs matching the filters (one more for its
    forward runs, marked ``forward``, one per training window its runs fall in, and one
    for its masked runs, marked ``masked``), best first by ``sort``: within each training
    group (after, unknown, inside) unless ``training_apart`` is False, and in each the
    unmasked rows apart from the masked ones unless ``masked_apart`` is False. Within
    those, rows rank only against rows of the same market, mode and period (their
    ``group``); ``across`` names what to rank across
    (some of :data:`ACROSS`, as names or one comma-separated text; True: all of them),
    and the group then reads ``any market`` and so on. The p-values are Holm-corrected
    and the DSR deflated over the rows ranked together; ``snooping`` adds each group's
    SPA and StepM (1,000 bootstrap replications).

    ``start`` and ``end`` are days: runs whose period starts on or after ``start``'s day and
    ends on or before ``end``'s day (a time with a UTC offset needs ``market``).
    """
    if sort not in SORTABLE:
        raise ValidationError(
            f"cannot sort by {sort!r}; choose one of {', '.join(sorted(SORTABLE))}"
        )
    mixed = across_dimensions(across)
    query = (
        select(
            TradingRun.id,
            TradingRun.model_id,
            TradingRun.mode,
            TradingRun.period_start,
            TradingRun.period_end,
            TradingRun.metrics,
            TradingRun.experiment_id,
            TradingRun.forward,
            TradingRun.masked,
            TradingRun.strategy_snapshot["costs"].label("costs"),
            TradingRun.strategy_snapshot["agent_path"].as_string().label("agent_path"),
            TradingRun.strategy_snapshot[("model", "ai_model_id")].as_string().label("run_ai"),
            TradingRun.strategy_snapshot[("model", "parameters", "knowledge_cutoff")]
            .as_string()
            .label("run_cutoff"),
            TradingModel.signature,
            TradingModel.name,
            TradingModel.ai_model_id,
            TradingModel.market,
        )
        .join(TradingModel, TradingModel.id == TradingRun.model_id)
        .where(TradingRun.status == "completed")
    )
    if market:
        query = query.where(TradingModel.market == market)
    if mode:
        query = query.where(TradingRun.mode == mode)
    timezone = MARKETS[market].timezone if market in MARKETS else None
    begin = parse_optional_date(start, "leaderboard start", timezone)
    finish = parse_optional_date(end, "leaderboard end", timezone)
    if begin is not None:  # the bounds are days: a run's period is a span of days
        query = query.where(TradingRun.period_start >= day_of(begin))
    if finish is not None:
        query = query.where(TradingRun.period_end <= inclusive_end(day_of(finish)))
    if owners is not None:  # these owners' models and the shared ones
        query = query.where(or_(TradingModel.owner_id.in_(owners), TradingModel.shared.is_(True)))
    with store.session() as session:
        rows = session.execute(query.order_by(TradingRun.id)).all()
    by_model: dict[tuple[int, bool, TrainingWindow | None, bool], list[Any]] = {}
    cutoffs: dict[tuple[int, bool, TrainingWindow | None, bool], str | None] = {}
    for row in rows:
        if row.metrics and "error" not in row.metrics:
            flag = _training_flag(row)
            key = (row.model_id, bool(row.forward), flag.window, bool(row.masked))
            by_model.setdefault(key, []).append(row)
            cutoffs[key] = flag.cutoff.text if flag.cutoff else None
    board = [
        {**_model_row(runs), "training_window": key[2], "knowledge_cutoff": cutoffs[key]}
        for key, runs in by_model.items()
    ]
    apart = [  # the groups ranked apart: training window, then unmasked before masked
        2 * TRAINING_RANK[key[2]] * training_apart + (key[3] and masked_apart) for key in by_model
    ]
    for entry in board:
        entry["group"] = _group(entry, mixed)
    families = [  # the rows ranked, corrected and deflated together
        f"{rank} {entry['group']}" for rank, entry in zip(apart, board, strict=True)
    ]
    _statistics(store, board, list(by_model.values()), families, snooping)
    _cost_honesty(store, board, list(by_model.values()), families)
    _memorisation_gaps(store, board, list(by_model.values()))
    frame = pd.DataFrame(board, columns=BOARD_COLUMNS)
    if frame.empty:
        return frame
    frame["experiment"] = frame["experiment"].astype("Int64")  # an id, or none: never 1.0
    ascending = sort == "model" or sort == "llm_cost"
    group = "_apart"  # a sort key only: 0 for every row when ranked together
    frame[group] = apart
    family = pd.Series(families, index=frame.index)
    frame["rank"] = (
        frame.groupby(family)[sort]
        .rank(method="min", ascending=ascending, na_option="keep")
        .astype("Int64")
    )
    best = "_family_best"  # families in the order of their best row, then rows in each
    frame[best] = frame.groupby(family)[sort].transform("min" if ascending else "max")
    frame["_family"] = family
    return (
        frame.sort_values(
            [group, best, "_family", sort],
            ascending=[True, ascending, True, ascending],
            na_position="last",
            kind="stable",
        )
        .drop(columns=[group, best, "_family"])
        .reset_index(drop=True)
    )


def _training_flag(row: Any) -> TrainingFlag:
    """A board row's training flag from its snapshot's model id and cutoff parameter (the
    model's id for a snapshot without one)."""
    parameters = {} if row.run_cutoff is None else {"knowledge_cutoff": row.run_cutoff}
    return training_flag(
        row.run_ai or row.ai_model_id, parameters, row.period_start, bool(row.forward)
    )


TITLED = "group"
"""The column each table names in its title rather than repeats in every row."""

SHARED = ("benchmark", "training_window")
"""Columns a table's title says instead when every row of it shares one value."""

WINDOW_TITLES = {
    "after": "after the knowledge cutoff",
    "unknown": "unknown knowledge cutoff",
    "inside": "inside the training window",
}
"""What a table's title says of a training window all its rows share."""


def _titled(rows: pd.DataFrame, apart: bool, masked: bool) -> tuple[str, pd.DataFrame]:
    """A table's title and rows: the group, and the benchmark and training window when
    every row shares one, are said in the title instead of in a column of each row, as
    are masked runs ranked apart."""
    parts = [str(rows[TITLED].iloc[0])]
    shown = rows.drop(columns=TITLED)
    for column in SHARED:
        values = rows[column]
        if values.notna().all() and values.nunique() == 1:
            value = str(values.iloc[0])
            parts.append(f"benchmark {value}" if column == "benchmark" else WINDOW_TITLES[value])
            shown = shown.drop(columns=column)
    if masked:
        parts.append("masked runs")
        shown = shown.drop(columns="masked")
    return " - ".join(parts) + (", ranked apart" if apart else ""), shown


def ranked_tables(
    board: pd.DataFrame, training_apart: bool = True, masked_apart: bool = True
) -> list[tuple[str, pd.DataFrame]]:
    """The board's rows ranked together, each under its title, for a face that shows a
    table per group: consecutive rows of one group (and, ranked apart, of one training
    window's rank, masked or not)."""
    by_window = {str(k): v for k, v in TRAINING_RANK.items() if k is not None}
    windows = [by_window.get(str(w), 0) * training_apart for w in board["training_window"]]
    masked = [bool(m) and masked_apart for m in board["masked"]]
    keys = list(zip(windows, masked, board[TITLED], strict=True))
    blocks: list[tuple[str, pd.DataFrame]] = []
    start = 0
    for end in range(1, len(keys) + 1):
        if end == len(keys) or keys[end] != keys[start]:
            window, masked_rows, _ = keys[start]
            rows = board.iloc[start:end]
            blocks.append(_titled(rows, bool(window) or masked_rows, masked_rows))
            start = end
    return blocks


SHOWN_EMPTY = frozenset({"model", "llm_cost"})
"""Columns a summary keeps even when empty: an unknown LLM cost reads "unknown"."""


def telling_columns(board: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """Those of ``columns`` that tell something in these rows, for a summary (a terminal
    or a panel has little room): a column empty in every row (no repeats, nothing
    re-priced) or a flag no row has (no forward or masked run) is left out."""
    return [
        c
        for c in columns
        if c in board.columns
        and (
            c in SHOWN_EMPTY
            or not (board[c].isna().all() or (board[c].dtype == bool and not board[c].any()))
        )
    ]


def mixed_costs_note(board: pd.DataFrame) -> str:
    """Why a board's rows are not like for like when they were priced under more than one
    cost model, naming each model's rows (``model (run N)``); empty when they share one."""
    if board.empty or not board["costs_differ"].any():
        return ""
    groups: dict[str, list[str]] = {}
    for model, run, name in zip(
        board["model"], board["latest_run"], board["cost_model"], strict=True
    ):
        groups.setdefault(str(name), []).append(f"{model} (run {run})")
    each = "; ".join(f"{name}: {', '.join(rows)}" for name, rows in sorted(groups.items()))
    return (
        f"priced under different cost models ({each}): their returns and Sharpe ratios "
        "are not like for like"
    )


def _cost_honesty(
    store: Store, board: list[dict[str, Any]], groups: list[list[Any]], families: list[str]
) -> None:
    """Each row's cost model (``mixed: ...`` when its runs differ) and ``costs_differ``
    when its runs, or the rows of its family (ranked with it), were priced under more than
    one cost model; its LLM cost as :mod:`~ttg_lab.llm.spend` vouches for it (None:
    unknown); and an imported run re-priced under the default cost model beside its own."""
    names = [sorted({resolve_cost_model(r.costs or {}).name for r in runs}) for runs in groups]
    in_family: dict[str, set[str]] = {}
    for family, row_names in zip(families, names, strict=True):
        in_family.setdefault(family, set()).update(row_names)
    latest = [runs[-1] for runs in groups]
    with store.session() as session:
        spend = run_llm_costs(session, [r.id for r in latest])
    for row, row_names, run, family in zip(board, names, latest, families, strict=True):
        mixed = "mixed: " + ", ".join(row_names)
        row["cost_model"] = row_names[0] if len(row_names) == 1 else mixed
        row["costs_differ"] = len(in_family[family]) > 1
        cost = spend[run.id]
        row["llm_cost"] = cost.usd
        if not cost.known:
            row["return_per_llm_dollar"] = None
        if run.agent_path == "imported":
            from ttg_lab.importers.aitrader.reprice import reprice_run  # the importer's weight

            repriced = reprice_run(store, run.id)
            row["repriced_under"] = repriced.cost_model
            row["repriced_final_value"] = repriced.final_value
            row["repriced_return"] = repriced.total_return
            row["repriced_sharpe"] = repriced.sharpe


def across_dimensions(across: bool | str | Iterable[str]) -> frozenset[str]:
    """What ``across`` ranks across, checked: True is all of :data:`ACROSS`, False none,
    a text is comma-separated names; an unknown name is refused by name."""
    if isinstance(across, bool):
        return frozenset(ACROSS if across else ())
    names = across.split(",") if isinstance(across, str) else list(across)
    chosen = frozenset(str(n).strip() for n in names if str(n).strip())
    unknown = sorted(chosen - set(ACROSS))
    if unknown:
        named = ", ".join(map(repr, unknown))
        raise ValidationError(f"cannot rank across {named}; choose from {', '.join(ACROSS)}")
    return chosen


def _memorisation_gaps(store: Store, board: list[dict[str, Any]], groups: list[list[Any]]) -> None:
    """Each row holding runs of a memorisation gap (its unmasked or its masked arm): the
    newest such gap as one line, ``+4.1% [1.2, 7.0] suspected (lower bound)``."""
    from ttg_lab.metrics.gap import stored_gap
    from ttg_lab.runs.experiments import board_gaps

    gaps = board_gaps(store, sorted({runs[0].model_id for runs in groups}))
    found: dict[int, str] = {}
    for row, runs in zip(board, groups, strict=True):
        experiments = {r.experiment_id for r in runs}
        for gap in gaps:  # newest first
            if {gap.unmasked.id, gap.masked.id} & experiments:
                if gap.id not in found:
                    found[gap.id] = stored_gap(store, gap).text()
                row["memorisation_gap"] = found[gap.id]
                break


def _group(row: dict[str, Any], across: frozenset[str]) -> str:
    """A board row's group: its market, mode and period (and ``forward``), the rows it
    is ranked against; what is ranked across reads ``any market`` (and so on)."""
    start, end = row["period_start"], row["period_end"]
    forward = " forward" if row["forward"] else ""
    parts = {
        "markets": ("any market", str(row["market"])),
        "modes": ("any mode", str(row["mode"])),
        "periods": ("any period", f"{start:%Y-%m-%d}..{end:%Y-%m-%d}{forward}"),
    }
    return " ".join(any_ if name in across else own for name, (any_, own) in parts.items())


def _statistics(
    store: Store,
    board: list[dict[str, Any]],
    groups: list[list[Any]],
    families: list[str],
    snooping: bool,
) -> None:
    """Each row's tests against buy-and-hold over its runs behind the repeats interval
    (latest first), corrected within its family (the rows ranked together)."""
    entries = [
        BoardEntry([r.id for r in reversed(_repeats_of(runs[-1], runs))], row["market"], family)
        for row, runs, family in zip(board, groups, families, strict=True)
    ]
    for row, found in zip(board, board_statistics(store, entries, snooping), strict=True):
        row.update({k: v for k, v in asdict(found).items() if k in STATISTICS_COLUMNS})


def _repeats_of(latest: Any, runs: list[Any]) -> list[Any]:
    """The runs the board's interval comes from: the latest run's experiment when it is a
    repeat of one, else the runs on their own over its period and mode."""
    if latest.experiment_id is not None:
        return [r for r in runs if r.experiment_id == latest.experiment_id]
    period = (latest.mode, latest.period_start, latest.period_end)
    return [
        r
        for r in runs
        if r.experiment_id is None and (r.mode, r.period_start, r.period_end) == period
    ]


def _model_row(runs: list[Any]) -> dict[str, Any]:
    latest = runs[-1]
    metrics = latest.metrics
    best = max(runs, key=lambda r: r.metrics.get("total_return") or -np.inf)
    repeats = repeats_summary(
        [
            r.metrics["total_return"]
            for r in _repeats_of(latest, runs)
            if r.metrics.get("total_return") is not None
        ]
    )
    return {
        "model": latest.signature,
        "name": latest.name,
        "ai_model_id": latest.ai_model_id,
        "market": latest.market,
        "mode": latest.mode,
        "forward": bool(latest.forward),
        "masked": bool(latest.masked),
        "runs": len(runs),
        "period_start": latest.period_start,
        "period_end": latest.period_end,
        "latest_run": latest.id,
        **{
            k: metrics.get(k)
            for k in (
                "total_return",
                "annual_return",
                "sharpe",
                "sortino",
                "max_drawdown",
                "volatility",
                "trades",
                "benchmark",
                "benchmark_return",
                "excess_return",
                "excess_ci_low",
                "excess_ci_high",
                "llm_cost",
                "return_per_llm_dollar",
                "tokens_per_trade",
            )
        },
        "best_run": best.id,
        "best_return": best.metrics.get("total_return"),
        "experiment": latest.experiment_id,
        "repeats": repeats.repeats,
        "mean_return": repeats.mean_return if repeats.ci_low is not None else None,
        "mean_ci_low": repeats.ci_low,
        "mean_ci_high": repeats.ci_high,
        "vs_benchmark": verdict(metrics),
    }
