"""Data panel (admins only): fetch bars from a data provider, or update every fetched
dataset, with a progress bar, the provider's rate-limit waits said, a Stop button and the
report symbol by symbol.

A fetch runs in a thread, so the kernel stays responsive; its progress reaches the panel
through :func:`widgets.dispatch.call_soon` as a run's events do. The form's fields are
checked at the trait: a bad value is refused naming it, and a fetch is refused while a
field holds a refused value. Keys are never shown: providers read them from the
environment.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from ttg_lab import TTGLabError, ValidationError, options
from ttg_lab.options import (
    UNIVERSES,
    WALL_CLOCK,
    BarConflictError,
    Clock,
    FetchProgress,
    FetchReport,
    checked_base_url,
    data_providers,
    get_market,
    parse_date,
)
from ttg_lab.secrets import redact
from ttg_lab.store.access import is_admin, require_admin
from widgets.common import Controller, field_value, set_options, status_html, table_html
from widgets.dispatch import call_soon

FETCHING = "fetching market data"
UPDATING = "updating market data"
STOPPED = "not fetched (stopped)"


@dataclass(frozen=True)
class ReportRow:
    """One symbol of a fetch as the panel's table shows it."""

    dataset: str
    symbol: str
    added: int
    skipped: int
    replaced: int
    conflicts: int
    sent: int
    cached: int
    error: str
    note: str

    @classmethod
    def rows(cls, report: FetchReport) -> list[ReportRow]:
        """Every symbol of ``report``: fetched, failed, or left by a stop."""
        dataset = f"{report.provider} {report.market} {report.interval}"
        rows = []
        for result in report.results:
            merge = result.merge
            error = result.error
            conflicted = error.result if isinstance(error, BarConflictError) else merge
            rows.append(
                cls(
                    dataset,
                    result.symbol,
                    merge.added if merge else 0,
                    merge.skipped if merge else 0,
                    merge.replaced if merge else 0,
                    len(conflicted.conflicts) if conflicted else 0,
                    result.sent,
                    result.reused,
                    redact(str(error)) if error is not None else "",
                    redact("; ".join(result.notes)),
                )
            )
        rows += [cls(dataset, s, 0, 0, 0, 0, 0, 0, STOPPED, "") for s in report.stopped]
        return rows


def _known_provider(spec: str) -> None:
    """Refuse a provider spec whose name (before ``:``) no provider has."""
    name = spec.partition(":")[0].strip()
    known = data_providers()
    if name not in known:
        raise ValidationError(f"unknown data provider {name!r}; known: {', '.join(known)}")


def _refusing(check: Callable[[], object]) -> None:
    """Run ``check``; the lab's error (naming the value) becomes the trait's refusal."""
    try:
        check()
    except TTGLabError as exc:
        raise traitlets.TraitError(str(exc)) from None


def _known_interval(value: str) -> None:
    if value not in options.INTERVALS:
        raise ValidationError(f"interval {value!r}: choose one of {', '.join(options.INTERVALS)}")


def _known_universe(value: str) -> None:
    if value and value not in UNIVERSES:
        raise ValidationError(
            f"unknown universe {value!r}; known universes: {', '.join(UNIVERSES)}"
        )


def symbols_of(text: str) -> list[str] | None:
    """The symbols typed (separated by commas or spaces); None when none are."""
    return [s for s in re.split(r"[,\s]+", text) if s] or None


class DataController(Controller):
    """Fetch and update market data through ``lab.data`` (admins only), in a thread."""

    provider = traitlets.Unicode("alphavantage")
    """A registered provider, with its variant where it takes one (``ccxt:binance``)."""
    market = traitlets.Unicode("us")
    symbols = traitlets.Unicode("")
    """Symbols separated by commas or spaces; blank when a universe is fetched."""
    universe = traitlets.Unicode("")
    interval = traitlets.Unicode("1d")
    start = traitlets.Unicode("")
    end = traitlets.Unicode("")
    base_url = traitlets.Unicode("")
    """Blank: the provider's own address."""
    replace = traitlets.Bool(False)
    providers = traitlets.List(traitlets.Unicode())
    progress = traitlets.Instance(FetchProgress, allow_none=True)
    """The fetch's latest progress: symbols done of total, its message, a wait."""
    running = traitlets.Bool(False)
    rows = traitlets.List(traitlets.Instance(ReportRow))
    """The last fetch's report, symbol by symbol."""

    def __init__(self, lab: Any, clock: Clock = WALL_CLOCK) -> None:
        super().__init__(lab)
        self.clock = clock
        self.stop_event = threading.Event()
        self._worker: threading.Thread | None = None
        self._refused: dict[str, str] = {}
        self.refresh()

    @property
    def allowed(self) -> bool:
        return is_admin(self.lab.user)

    def refresh(self) -> None:
        """Read the registered providers again (a notebook may have added one)."""
        with self.action():
            self.providers = list(data_providers())

    @traitlets.validate("provider")
    def _check_provider(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"]).strip()
        _refusing(lambda: _known_provider(value))
        return value

    @traitlets.validate("market")
    def _check_market(self, proposal: dict[str, Any]) -> str:
        _refusing(lambda: get_market(proposal["value"]))
        return str(proposal["value"])

    @traitlets.validate("interval")
    def _check_interval(self, proposal: dict[str, Any]) -> str:
        _refusing(lambda: _known_interval(proposal["value"]))
        return str(proposal["value"])

    @traitlets.validate("universe")
    def _check_universe(self, proposal: dict[str, Any]) -> str:
        _refusing(lambda: _known_universe(proposal["value"]))
        return str(proposal["value"])

    @traitlets.validate("start", "end")
    def _check_day(self, proposal: dict[str, Any]) -> str:
        value, name = str(proposal["value"]), proposal["trait"].name
        zone = get_market(self.market).timezone
        if value.strip():
            _refusing(lambda: parse_date(value, f"{name} of the fetch", zone))
        return value

    @traitlets.validate("base_url")
    def _check_base_url(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if value.strip():
            _refusing(lambda: checked_base_url(value, "base URL"))
        return value

    def set_field(self, name: str, value: Any) -> bool:
        """Set field ``name`` as the form does: a refused value is said (and blocks a fetch
        until the field is corrected) instead of being lost."""
        with self.action():
            try:
                setattr(self, name, value)
            except traitlets.TraitError as exc:
                self._refused[name] = str(exc)
                raise ValidationError(str(exc)) from None
            self._refused.pop(name, None)
        return self.ok

    def fetch(self) -> bool:
        """Fetch the form's bars from its provider in a thread (admins). The form is read
        now: changing it during the fetch changes nothing of this one."""
        provider, market, interval, replace = (
            self.provider,
            self.market,
            self.interval,
            self.replace,
        )
        symbols, universe = symbols_of(self.symbols), field_value(self.universe)
        start, end, base_url = (
            field_value(self.start),
            field_value(self.end),
            field_value(self.base_url),
        )
        return self._start(
            FETCHING,
            lambda on_progress: [
                self.lab.data.fetch(
                    provider,
                    market,
                    symbols,
                    universe,
                    interval,
                    start,
                    end,
                    base_url,
                    replace,
                    on_progress,
                    clock=self.clock,
                    stop=self.stop_event,
                )
            ],
        )

    def update_all(self) -> bool:
        """Bring every dataset fetched from a provider up to its last complete bar; the
        base URL, when given, points the chosen provider elsewhere (admins)."""
        base_url = field_value(self.base_url)
        provider = self.provider if base_url is not None else None
        return self._start(
            UPDATING,
            lambda on_progress: self.lab.data.update(
                provider, base_url, on_progress, clock=self.clock, stop=self.stop_event
            ),
        )

    def _start(
        self, action: str, work: Callable[[Callable[[FetchProgress], None]], list[FetchReport]]
    ) -> bool:
        """Start ``work`` in a thread; False when it is refused (and why is said)."""
        started = False
        with self.action():
            require_admin(self.lab.user, action)
            if self.running:
                raise ValidationError("a fetch is still going; stop it first")
            if self._refused:
                field, reason = next(iter(self._refused.items()))
                raise ValidationError(f"correct the {field.replace('_', ' ')} first: {reason}")
            self.stop_event = threading.Event()
            self.rows, self.progress, self.running = [], None, True
            self.message = f"{action}..."
            self._worker = threading.Thread(target=self._run, args=(work,), daemon=True)
            self._worker.start()
            started = True
        return started  # not self.ok: the thread may have ended, and said why, by now

    def _run(self, work: Callable[[Callable[[FetchProgress], None]], list[FetchReport]]) -> None:
        """The thread: do ``work``, then show its report or why it failed."""
        try:
            reports = work(self._on_progress)
        except TTGLabError as exc:
            self._finish([], "", redact(str(exc)))
        except Exception as exc:  # the panel must never die with the thread
            self._finish([], "", f"the fetch failed ({type(exc).__name__}): {redact(str(exc))}")
        else:
            said = "; ".join(r.summary() for r in reports)
            self._finish(
                reports, said or "no dataset was fetched from a provider: nothing to update", ""
            )

    def _on_progress(self, event: FetchProgress) -> None:
        def apply() -> None:
            self.progress = event

        call_soon(apply)

    def _finish(self, reports: list[FetchReport], message: str, error: str) -> None:
        rows = [row for report in reports for row in ReportRow.rows(report)]

        def apply() -> None:
            self.rows, self.running = rows, False
            self.message, self.error = message, error

        call_soon(apply)

    def stop(self) -> bool:
        """Stop the fetch before its next request (or wait)."""
        with self.action("stopping before the next request"):
            if not self.running:
                raise ValidationError("no fetch is going")
            self.stop_event.set()
        return self.ok

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the fetch ends (for scripts and tests)."""
        if self._worker is not None:
            self._worker.join(timeout)


def progress_text(event: FetchProgress | None) -> str:
    """The progress line: symbols done of total, and what the fetch does or waits for."""
    if event is None:
        return ""
    return f"{event.done} of {event.total} symbol(s): {event.message}"


def view(ctl: DataController) -> w.Widget:
    if not ctl.allowed:
        return w.HTML('<div class="ttg-title">Data</div><div class="ttg-empty">Admins only.</div>')
    provider = w.Combobox(
        description="Provider",
        options=list(ctl.providers),
        placeholder="alphavantage, ccxt:binance, eastmoney",
        ensure_option=False,
        continuous_update=False,
    )
    market = w.Dropdown(description="Market", options=list(options.MARKETS))
    symbols = w.Text(description="Symbols", placeholder="AAPL, MSFT (or a universe)")
    universe = w.Dropdown(description="Universe", options=["", *UNIVERSES])
    interval = w.Dropdown(description="Interval", options=list(options.INTERVALS))
    start = w.Text(description="Start", placeholder="YYYY-MM-DD (default: 30 days back)")
    end = w.Text(description="End", placeholder="YYYY-MM-DD (default: today)")
    base_url = w.Text(description="Base URL", placeholder="blank: the provider's own")
    replace = w.Checkbox(description="replace bars the provider now answers otherwise")
    fields: tuple[tuple[w.ValueWidget, str], ...] = (
        (provider, "provider"),
        (market, "market"),
        (symbols, "symbols"),
        (universe, "universe"),
        (interval, "interval"),
        (start, "start"),
        (end, "end"),
        (base_url, "base_url"),
        (replace, "replace"),
    )
    for widget, name in fields:
        if isinstance(widget, w.Text):
            widget.continuous_update = False  # checked when typed, not at each key
        _bind(ctl, widget, name)
    go = w.Button(description="Fetch", button_style="success")
    update = w.Button(description="Update all", button_style="primary")
    stop = w.Button(description="Stop", button_style="danger")
    bar = w.IntProgress(min=0, max=1, description="Progress")
    label, status, table = w.HTML(), w.HTML(), w.HTML()

    def redraw(*_: Any) -> None:
        event = ctl.progress
        bar.max = max(event.total if event else 1, 1)
        bar.value = event.done if event else 0
        label.value = html.escape(redact(progress_text(event)))
        go.disabled = update.disabled = ctl.running
        stop.disabled = not ctl.running
        status.value = status_html(ctl)
        table.value = table_html(pd.DataFrame([asdict(row) for row in ctl.rows]))

    ctl.observe(redraw, names=["progress", "running", "rows", "message", "error"])
    ctl.observe(
        lambda change: set_options(provider, list(change["new"]), ctl.provider), names="providers"
    )
    go.on_click(lambda _: ctl.fetch())
    update.on_click(lambda _: ctl.update_all())
    stop.on_click(lambda _: ctl.stop())
    redraw()
    return w.VBox(
        [
            w.HTML('<div class="ttg-title">Data</div>'),
            w.HBox([provider, market, interval]),
            w.HBox([symbols, universe]),
            w.HBox([start, end]),
            w.HBox([base_url, replace]),
            w.HBox([go, update, stop]),
            bar,
            label,
            status,
            table,
        ]
    )


def _bind(ctl: DataController, widget: w.ValueWidget, name: str) -> None:
    """Show trait ``name`` in ``widget``; what is typed goes through
    :meth:`DataController.set_field`, so a refused value is said, not dropped."""
    widget.value = getattr(ctl, name)
    widget.observe(lambda change: ctl.set_field(name, change["new"]), names="value")
    ctl.observe(lambda change: setattr(widget, "value", change["new"]), names=name)
