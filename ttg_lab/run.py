"""A run, for the user: what :meth:`ttg_lab.lab.Lab.start_run`, ``lab.run(id)`` and
``lab.runs()`` give.

``run.info`` is the run as stored now (a frozen :class:`~ttg_lab.engine.reader.RunInfo`,
its snapshot typed), ``run.ledger()``/``equity()``/``reasoning()`` its frames,
``run.metrics()``, ``run.report(path)`` and ``run.plot.equity()`` what judges it, and
``run.wait()``/``stop()``/``subscribe()``/``resume()``/``replay()`` control it. The
execution in this process (thread, events, stop signal) is the run service's
:class:`~ttg_lab.runs.handle.RunHandle`, which a Run wraps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ttg_lab.attribution import attribution
from ttg_lab.clock import WALL_CLOCK, Clock
from ttg_lab.engine.events import Subscriber
from ttg_lab.engine.reader import (
    RunInfo,
    equity_frame,
    ledger_frame,
    read_run,
    reasoning_frame,
)
from ttg_lab.errors import ValidationError
from ttg_lab.leaderboard import RepeatsSummary, repeats_summary
from ttg_lab.llm.cutoffs import TrainingFlag, run_training_flag
from ttg_lab.market.cache import data_fingerprint, price_index
from ttg_lab.market.markets import get_market
from ttg_lab.metrics.stored import benchmark_closes, run_metrics
from ttg_lab.runs.experiments import ExperimentInfo
from ttg_lab.runs.forward import BarSource
from ttg_lab.runs.handle import RunHandle
from ttg_lab.runs.options import RunOptions
from ttg_lab.runs.service import RunService
from ttg_lab.store.database import Store
from ttg_lab.store.schema import RunStatus

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ttg_lab.charts.figures import ChartRun

# plotly (the charts, the reports) loads on the first chart or report, not with the lab.


class Run:
    """One run of a model: read it at any time, control it while this process runs it."""

    def __init__(self, service: RunService, handle: RunHandle, reports_dir: Path) -> None:
        self._service = service
        self._handle = handle
        self._reports_dir = reports_dir
        self.id = handle.id

    # -- what it is ---------------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The store the run lives in."""
        return self._service.store

    @property
    def info(self) -> RunInfo:
        """The run as stored now: progress, results, costs, its snapshot (typed)."""
        return read_run(self.store, self.id)

    @property
    def training_flag(self) -> TrainingFlag:
        """Whether the run lies inside its model's training window: ``inside``, ``after``
        (a forward run always), ``unknown``, or None for a baseline (see
        :mod:`ttg_lab.llm.cutoffs`)."""
        return run_training_flag(self.info)

    @property
    def masked(self) -> bool:
        """Whether the run's model saw masked symbols, prices and dates (see
        :mod:`ttg_lab.market.masking`); what is stored is real either way."""
        return self.info.masked

    @property
    def status(self) -> RunStatus:
        """The run's status, read from the store."""
        return self._handle.status

    @property
    def running(self) -> bool:
        """Whether this process is executing the run now."""
        return self._handle.running

    def __repr__(self) -> str:
        info = self.info
        return f"<Run {self.id}: {info.model} #{info.run_number} {info.status}>"

    def _repr_html_(self) -> str:
        info = self.info
        value = "—" if info.final_value is None else f"{info.final_value:,.2f}"
        return (
            f"<b>Run {self.id}</b>: {escape(info.model)} #{info.run_number} "
            f"<i>{escape(info.status)}</i> · {info.mode} {info.start:%Y-%m-%d} .. "
            f"{info.end:%Y-%m-%d} · {info.steps_done}/{info.steps_total} steps · "
            f"final value {value}"
        )

    # -- what it wrote ------------------------------------------------------------------
    def ledger(self) -> pd.DataFrame:
        """Every action of the run in order (:data:`~ttg_lab.engine.ledger.LEDGER_COLUMNS`)."""
        return ledger_frame(self.store, self.id)

    def equity(self) -> pd.DataFrame:
        """The portfolio marked to market at each step's close."""
        return equity_frame(self.store, self.id)

    def reasoning(self) -> pd.DataFrame:
        """The agent's reasoning entries in order."""
        return reasoning_frame(self.store, self.id)

    def decisions(self) -> pd.DataFrame:
        """Every gate decision of the run, in order."""
        return self._service.rules.decisions(self.id)

    # -- what judges it -----------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """Every metric of the run (see ``ttg_lab.metrics.reference``), freshly computed."""
        return run_metrics(self.store, self.id)

    def attribution(self) -> pd.DataFrame:
        """Per rule: orders blocked, resized and forced, and the P&L effect of the rule
        measured by counterfactual replay (see :mod:`ttg_lab.attribution`)."""
        return attribution(self.store, self.id)

    @property
    def report_path(self) -> Path:
        """Where a report of this run goes by default: ``<reports_dir>/run-<id>-<model>.html``."""
        from ttg_lab.reports.run import default_report_path

        return default_report_path(self._reports_dir, self.info)

    def report(self, path: str | Path | None = None) -> Any:
        """The run's self-contained HTML report: written to ``path`` (returns the Path), or
        returned as HTML text when ``path`` is None (see :mod:`ttg_lab.reports.run`)."""
        from ttg_lab.reports.html import write
        from ttg_lab.reports.run import render_run_report

        document = render_run_report(self)
        return document if path is None else write(document, Path(path))

    def chart(
        self, *, fills: bool = False, prices: bool = False, benchmark: bool = False
    ) -> ChartRun:
        """The run as the figures draw it, with its fills, its price index and its
        benchmark when asked for."""
        from ttg_lab.charts.figures import Benchmark, ChartRun

        store, info = self.store, self.info
        market, interval = info.market, info.interval
        equity = self.equity()
        equity["ts"] = pd.to_datetime(equity["ts"])
        ledger = self.ledger() if fills else None
        filled = None if ledger is None else ledger[ledger["status"] == "filled"]
        index = (
            price_index(store, market, interval, data_fingerprint(store, market, interval))
            if prices or benchmark
            else None
        )
        bench = None
        if benchmark and index is not None:
            symbol = get_market(market).benchmark
            entry = (
                index.bar_value(symbol, equity["ts"].iloc[0].to_pydatetime(), "open")
                if len(equity)
                else None
            )
            bench = Benchmark(symbol, benchmark_closes(store, market, interval), entry)
        return ChartRun(
            id=info.id,
            model=info.model,
            run_number=info.run_number,
            market=market,
            interval=interval,
            initial_cash=info.initial_cash,
            start=info.start,
            end=info.end,
            equity=equity,
            fills=None if filled is None else filled.reset_index(drop=True),
            prices=index if prices else None,
            benchmark=bench,
        )

    @property
    def plot(self) -> RunPlots:
        """The run's charts: ``run.plot.equity()``, ``.drawdown()``, ``.allocation()``,
        ``.trades()``."""
        return RunPlots(self.chart)

    # -- control ------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> RunStatus:
        """Block until this process's execution of the run ends (or ``timeout``); returns
        the status (see :meth:`~ttg_lab.runs.handle.RunHandle.wait`)."""
        return self._handle.wait(timeout)

    def stop(self) -> None:
        """Ask the run to stop; it ends ``stopped`` before its next step."""
        self._handle.stop()

    def subscribe(self, callback: Subscriber, replay: bool = True) -> Callable[[], None]:
        """Receive the run's events (past ones first when ``replay``); returns an
        unsubscribe function."""
        unsubscribe: Callable[[], None] = self._handle.subscribe(callback, replay)
        return unsubscribe

    def resume(
        self,
        background: bool = True,
        on_event: Subscriber | None = None,
        *,
        max_cost_usd: float | None = None,
        max_tokens: int | None = None,
        clock: Clock = WALL_CLOCK,
        source: BarSource | None = None,
    ) -> Run:
        """Continue a crashed, stopped or failed run from its last committed step (a run
        stopped by its budget: with a higher ``max_cost_usd`` or ``max_tokens``); this
        Run then follows the new execution (returned for chaining). A forward run first
        catches up the bars it missed (``clock`` and ``source`` as ``Lab.start_run``
        takes them)."""
        self._handle = self._service.resume(
            self.id, background, on_event, max_cost_usd, max_tokens, clock, source
        )
        return self

    def replay(self, background: bool = True, on_event: Subscriber | None = None) -> Run:
        """A new run that replays this one's recorded LLM answers: no network, same ledger."""
        info = self.info
        snap = info.snapshot
        options = RunOptions(snap.costs, snap.fill, snap.seed, path="chat", replay_from=self.id)
        handle = self._service.start(
            info.model, info.mode, info.start, info.end, options, background, on_event
        )
        return Run(self._service, handle, self._reports_dir)


@dataclass(frozen=True)
class RunPlots:
    """The charts of one run (plotly figures from :mod:`ttg_lab.charts.figures`)."""

    chart: Callable[..., ChartRun]

    def equity(self, benchmark: bool = True, normalise: bool = True) -> go.Figure:
        """Equity against the market's benchmark (see :func:`figures.equity_curves`)."""
        from ttg_lab.charts import figures

        return figures.equity_curves([self.chart(benchmark=benchmark)], normalise)

    def drawdown(self) -> go.Figure:
        """The underwater curve (see :func:`figures.drawdown`)."""
        from ttg_lab.charts import figures

        return figures.drawdown(self.chart())

    def allocation(self, top: int = 10) -> go.Figure:
        """Cash and position values at each bar (see :func:`figures.allocation`)."""
        from ttg_lab.charts import figures

        figures.check_top(top)
        return figures.allocation(self.chart(prices=True), top)

    def trades(self, symbol: str | None = None) -> go.Figure:
        """A symbol's bars with the run's fills (the most traded symbol by default)."""
        from ttg_lab.charts import figures

        run = self.chart(fills=True, prices=True)
        symbol = symbol or figures.most_traded_symbol(run.filled())
        if symbol is None:
            raise ValidationError(f"run {run.id} filled no orders: name a symbol to plot")
        return figures.trades_on_price(run, symbol)


class RunList(list[Run]):
    """Runs as ``lab.runs()`` lists them, newest first; ``.table()`` is the overview."""

    def __init__(self, runs: list[Run], table: pd.DataFrame) -> None:
        super().__init__(runs)
        self._table = table

    def table(self) -> pd.DataFrame:
        """One row per run as listed (id, model, run number, status, mode, period, steps,
        trades, final value and return, drawdown, error)."""
        return self._table.copy()

    def _repr_html_(self) -> str:
        return str(self._table.to_html(index=False))


class Experiment:
    """Repeats of one model over one period and mode (seeds ``seed + i``), started by
    ``lab.start_run(..., repeats=N)``: ``runs`` in repeat order, ``wait()``, ``stop()``,
    ``status``, ``summary()`` across the repeats."""

    def __init__(self, info: ExperimentInfo, runs: RunList) -> None:
        self.info = info
        self.id = info.id
        self.runs = runs

    def __repr__(self) -> str:
        info = self.info
        return f"<Experiment {self.id}: {info.model} x{info.repeats} {self.status}>"

    @property
    def status(self) -> RunStatus:
        """``running`` while any repeat runs, else ``failed`` when any failed, ``stopped``
        when any stopped, ``completed`` when all completed."""
        statuses = {run.status for run in self.runs}
        for status in ("running", "failed", "stopped"):
            if status in statuses:
                return status
        return "completed"

    def wait(self, timeout: float | None = None) -> RunStatus:
        """Block until every repeat this process executes ends (``timeout``: seconds for
        all of them); returns :attr:`status`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for run in self.runs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            run.wait(left)
        return self.status

    def stop(self) -> None:
        """Ask every repeat still running here to stop; each ends ``stopped`` before its
        next step (resumable with :meth:`resume`)."""
        for run in self.runs:
            if run.status == "running":
                run.stop()

    def resume(self, background: bool = True) -> Experiment:
        """Continue every repeat that did not complete (crashed, stopped or failed) from
        its last committed step; completed repeats are not run again. Returns this
        Experiment, whose runs follow the new executions."""
        for run in self.runs:
            if run.status != "completed":
                run.resume(background)
        return self

    def summary(self) -> RepeatsSummary:
        """The completed repeats' total returns: count, mean and its 95% interval."""
        return repeats_summary(
            [
                run.info.final_return
                for run in self.runs
                if run.status == "completed" and run.info.final_return is not None
            ]
        )
