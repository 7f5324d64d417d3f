"""Sessions of the HTTP services: which context a tool call from outside acts on.

An external MCP client names its session in request headers:

- ``X-TTG-Session: NAME`` — a sandbox with its own cash and positions, created on first
  use from ``X-TTG-Market`` (us), ``X-TTG-Mode`` (daily|intraday), ``X-TTG-Cash``
  (10000) and ``X-TTG-Clock`` (default: the first bar of the data). A later
  ``X-TTG-Clock`` moves the clock forward to the first bar at or after it; it never
  moves back.
- ``X-TTG-Run: ID`` — a read-only view of a stored run at its latest committed step:
  prices, news and its portfolio at that clock; trading is refused. Only runs the
  service's user may see, and only on a service guarded by that user's token.

Sessions never share state: two names are two portfolios and two clocks.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Mapping
from datetime import datetime

from fastmcp.server.dependencies import get_http_headers

from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.dates import day_of, parse_date
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.reader import RunReader
from ttg_lab.errors import PermissionDeniedError, ValidationError
from ttg_lab.market.bars import MODES
from ttg_lab.market.markets import get_market

SESSION_HEADER = "x-ttg-session"
RUN_HEADER = "x-ttg-run"
MARKET_HEADER = "x-ttg-market"
MODE_HEADER = "x-ttg-mode"
CLOCK_HEADER = "x-ttg-clock"
CASH_HEADER = "x-ttg-cash"
DEFAULT_CASH = 10_000.0


class SessionRegistry:
    """The sandbox and run sessions of one service process, reading through the reader
    of the user it serves."""

    def __init__(self, reader: RunReader, run_views: bool = True) -> None:
        self.reader = reader
        self.run_views = run_views
        """Whether run views are served (only behind the user's token)."""
        self._sandboxes: dict[str, RunContext] = {}
        self._lock = threading.Lock()

    def resolve(self) -> RunContext:
        """The context of the HTTP request being served (for the tool wrappers)."""
        return self.context_for(get_http_headers(include_all=True))

    def context_for(self, headers: Mapping[str, str]) -> RunContext:
        headers = {k.lower(): v for k, v in headers.items()}
        if headers.get(RUN_HEADER):
            return self._run_view(headers[RUN_HEADER])
        name = headers.get(SESSION_HEADER, "default").strip() or "default"
        with self._lock:
            ctx = self._sandboxes.get(name)
            if ctx is None:
                ctx = self._new_sandbox(headers)
                self._sandboxes[name] = ctx
            elif CLOCK_HEADER in headers:
                self._move_clock(ctx, headers[CLOCK_HEADER])
        return ctx

    def sessions(self) -> list[str]:
        with self._lock:
            return sorted(self._sandboxes)

    def _new_sandbox(self, headers: Mapping[str, str]) -> RunContext:
        market = get_market(headers.get(MARKET_HEADER, "us"))
        mode = headers.get(MODE_HEADER, "daily")
        if mode not in MODES:
            raise ValidationError(f"{MODE_HEADER} must be one of {', '.join(MODES)}, got {mode!r}")
        interval = MODES[mode]
        try:
            cash = float(headers.get(CASH_HEADER, DEFAULT_CASH))
        except ValueError:
            raise ValidationError(f"{CASH_HEADER} must be a number") from None
        if not math.isfinite(cash) or cash <= 0:
            raise ValidationError(f"{CASH_HEADER} must be a positive number, got {cash:g}")
        index = self.reader.price_index(market.code, interval)
        ctx = RunContext(
            run_id=0,
            market=market,
            index=index,
            tickers=frozenset(s for s in index.symbols if s != market.benchmark),
            portfolio=Portfolio(cash),
            costs=COST_PRESETS["default"],
            news=self.reader.news_index(),
        )
        ctx.advance(0, self._snap(ctx, headers.get(CLOCK_HEADER)))
        return ctx

    def _snap(self, ctx: RunContext, text: str | None) -> datetime:
        """The first bar time at or after ``text`` (the data's first bar when absent)."""
        calendar = ctx.index.calendar
        if text is None:
            return calendar[0]
        wanted = parse_date(text, CLOCK_HEADER, ctx.market.timezone)
        if ctx.index.interval == "1d":
            wanted = day_of(wanted)  # a daily bar is named by its day
        i = bisect_left(calendar, wanted)
        if i == len(calendar):
            raise ValidationError(
                f"no bar at or after {text} (data ends {calendar[-1]:%Y-%m-%d %H:%M})"
            )
        return calendar[i]

    def _move_clock(self, ctx: RunContext, text: str) -> None:
        clock = self._snap(ctx, text)
        if clock < ctx.clock:
            raise ValidationError(
                f"the session clock is {ctx.clock:%Y-%m-%d %H:%M}; it cannot move back to {text}"
            )
        if clock > ctx.clock:
            ctx.advance(ctx.step_index + 1, clock)

    def _run_view(self, text: str) -> RunContext:
        if not text.strip().isdigit():
            raise ValidationError(f"{RUN_HEADER} must be a run id, got {text!r}")
        if not self.run_views:
            raise PermissionDeniedError(
                "run views need the service's token: start it with `ttg-lab mcp start` "
                "(or pass --token) and send 'Authorization: Bearer <token>'"
            )
        run = self.reader.run(int(text))  # another user's run is not found
        last = self.reader.last_step(run.id)
        snap = run.snapshot
        portfolio = Portfolio(last.cash, dict(last.holdings)) if last else None
        index = self.reader.price_index(run.market, run.interval, snap.data_fingerprint)
        calendar = index.calendar_between(*run.period)
        ctx = snap.context(index, run.id, portfolio, news=self.reader.news_index(), read_only=True)
        ctx.advance(run.steps_done, calendar[min(run.steps_done, len(calendar) - 1)])
        return ctx
