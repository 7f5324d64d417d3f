"""The trading agent's prompt: who it is, what it may know now, and how to answer.

Everything in it is known at the simulated clock: cash and positions, the previous
close and today's open of each ticker, and how the last step's market-on-close orders
filled. The prompt carries no wall-clock time, so a replayed run sends exactly the same
requests.

A masked run's prompt is in masked terms (see :mod:`ttg_lab.market.masking`): its time,
tickers, prices, positions, fills and the model's own texts go through the run's mask.
"""

from __future__ import annotations

import hashlib
import string
from bisect import bisect_left
from dataclasses import replace
from datetime import datetime
from typing import Any

from ttg_lab.broker.fills import CloseFill
from ttg_lab.engine.context import RunContext
from ttg_lab.errors import ValidationError
from ttg_lab.market.asof import AsOfView
from ttg_lab.market.masking import Mask

FINISH_SIGNAL = "<FINISH_SIGNAL>"
"""What an agent writes to end its decision step."""

PROMPT_VERSION = "ttg-trader-3"
"""Bump when the wording below changes; recorded in every run's snapshot. ``ttg-trader-3``
is ``ttg-trader-2`` with a lean price table (:data:`LEAN_TICKERS`): the same bytes for a
universe of up to that many tickers."""

LEAN_TICKERS = 20
"""The most tickers not held that a lean price table lists: the universe's most traded at
the previous bar (close x volume, known at the clock; ties by name). Held tickers are
always listed; the rest of the universe stays tradable through the price tools."""

SECTIONS = ("PLAN", "ANALYSIS", "DECISION", "REFLECTION")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")


PLACEHOLDERS: dict[str, str] = {
    "name": "the model's name",
    "market": "the market's name",
    "currency": "the market's currency",
    "time": "the simulated time (a day, or a day and hour)",
    "bars": "daily or hourly",
    "fills": "how orders fill",
    "cash": "cash, two decimals",
    "positions": "positions held, or none",
    "close_fills": "the previous step's market-on-close fills, one per line (may be empty)",
    "prices": "a line per ticker held or among the universe's most traded (at most "
    f"{LEAN_TICKERS} not held): previous close / today's open, then how many more are "
    "tradable through the price tools",
    "rules": "the model's text rules (may be empty)",
    "instructions": "the model's instructions (may be empty)",
    "finish_signal": f"what ends a step ({FINISH_SIGNAL})",
}
"""What a model's own ``prompt_template`` may use, as ``{name}``."""


def check_template(template: str) -> None:
    """Refuse a template using anything but :data:`PLACEHOLDERS` (by name, no format
    specs), so a typo is found when the model is made, not at its first step."""
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as exc:
        raise ValidationError(f"prompt_template is not a valid template: {exc}") from None
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS:
            known = ", ".join(PLACEHOLDERS)
            raise ValidationError(
                f"prompt_template uses unknown placeholder {{{name}}}; known: {known} "
                "(write {{ and }} for braces)"
            )
        if spec or conversion:
            raise ValidationError(f"prompt_template placeholder {{{name}}} takes no format")


def prompt_version(parameters: dict[str, Any] | None) -> str:
    """Which template a model's prompts come from: :data:`PROMPT_VERSION` for the default,
    ``custom-<sha256[:12]>`` of the model's own ``prompt_template``, so two runs are known
    to have used the same prompt exactly when their versions are equal."""
    template = (parameters or {}).get("prompt_template")
    if not template:
        return PROMPT_VERSION
    return "custom-" + hashlib.sha256(str(template).encode()).hexdigest()[:12]


def is_lean(version: str | None) -> bool:
    """Whether prompts of ``version`` have a lean price table: the current default and
    custom templates do; runs of earlier versions list every ticker (so they replay)."""
    return version == PROMPT_VERSION or (version or "").startswith("custom-")


def traded_value(view: AsOfView, symbol: str) -> float:
    """The previous bar's close x volume (0 when unknown): how much the ticker trades."""
    bars = view.index.bars(symbol)
    i = bisect_left(bars.ts, view.clock)
    return float(bars.close[i - 1] * bars.volume[i - 1]) if i > 0 else 0.0


def price_table(ctx: RunContext, lean: bool) -> tuple[list[str], int]:
    """The tickers a prompt's price table lists, sorted, and how many of the universe it
    leaves out: all of them, or when ``lean`` and the universe is larger than
    :data:`LEAN_TICKERS`, those held and the :data:`LEAN_TICKERS` most traded others."""
    universe = sorted(ctx.tickers)
    if not lean or len(universe) <= LEAN_TICKERS:
        return universe, 0
    held = {s for s, quantity in ctx.portfolio.positions.items() if quantity and s in ctx.tickers}
    others = sorted(
        (s for s in universe if s not in held), key=lambda s: (-traded_value(ctx.view, s), s)
    )
    listed = sorted(held | set(others[:LEAN_TICKERS]))
    return listed, len(universe) - len(listed)


def prompt_values(
    ctx: RunContext, model: dict[str, Any], version: str | None = PROMPT_VERSION
) -> dict[str, str]:
    """Every placeholder's text at this step (what the default prompt is made of) for
    prompts of ``version``."""
    view, shown = ctx.view, _Shown(ctx.mask)
    listed, left_out = price_table(ctx, is_lean(version))
    prices = [  # in the order of the names shown, so a mask does not tell the real order
        f"{shown.symbol(s)}: {_fmt(shown.price(s, view.last_close(s)))} / "
        f"{_fmt(shown.price(s, view.open(s)))}"
        for s in sorted(listed, key=shown.symbol)
    ]
    held = ctx.portfolio.positions
    positions = [
        f"{shown.symbol(s)} {shown.quantity(s, held[s]):g}" for s in sorted(held, key=shown.symbol)
    ]
    if left_out:
        prices.append(
            f"({left_out} more tickers of your universe are tradable: look up their prices "
            "with get_price_local before trading them)"
        )
    daily = ctx.index.interval == "1d"
    return {
        "name": shown.text(str(model["name"])),
        "market": ctx.market.name,
        "currency": ctx.market.currency,
        "time": shown.when(ctx.clock).strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M"),
        "bars": "daily" if daily else "hourly",
        "fills": "Orders are market-on-close: they are accepted now and fill at the current "
        "bar's close plus costs once you have decided; you learn their fills at the next step"
        if ctx.fills_later
        else "Orders fill at the current bar's open plus costs",
        "cash": f"{ctx.portfolio.cash:.2f}",
        "positions": ", ".join(positions) or "none",
        "close_fills": "\n".join(
            f"- {shown.fill(fill).describe()}" for fill in ctx.risk.close_fills
        ),
        "prices": "\n".join(prices),
        "rules": shown.text(str(model.get("custom_rules") or "")),
        "instructions": shown.text(str(model.get("custom_instructions") or "")),
        "finish_signal": FINISH_SIGNAL,
    }


def system_prompt(
    ctx: RunContext, model: dict[str, Any], version: str | None = PROMPT_VERSION
) -> str:
    """The system message of one decision step: the model's own ``prompt_template``
    filled in, or the default, as prompts of ``version`` (the run's snapshot's) were."""
    values = prompt_values(ctx, model, version)
    template = (model.get("parameters") or {}).get("prompt_template")
    if template:
        return _Shown(ctx.mask).text(str(template)).format(**values)
    lines = [
        f"You are {values['name']}, a trading agent in the {values['market']} market "
        f"(prices in {values['currency']}).",
        f"The time is {values['time']} ({values['bars']} bars). "
        f"You may act only through the tools. {values['fills']}; every order is checked "
        "against the model's rules and may be refused with a reason. You cannot see the "
        "future: asking for later prices or news is refused.",
        "",
        f"Cash: {values['cash']}",
        f"Positions: {values['positions']}",
    ]
    if values["close_fills"]:
        lines.append("Your market-on-close orders of the previous step, at its close:")
        lines.append(values["close_fills"])
    lines += ["", "Tradable tickers (previous close / today's open):"]
    if values["prices"]:
        lines.append(values["prices"])
    if values["rules"]:
        lines += ["", "Rules you must follow:", values["rules"]]
    if values["instructions"]:
        lines += ["", "Instructions:", values["instructions"]]
    lines += [
        "",
        "Write your reasoning in sections starting with PLAN:, ANALYSIS:, DECISION: and "
        "REFLECTION:. Use the tools to look up prices or news and to trade. When you are "
        f"done for this step, reply without tool calls and end with {FINISH_SIGNAL}.",
    ]
    return "\n".join(lines)


def step_message(ctx: RunContext) -> str:
    """The user message that opens a decision step."""
    clock = _Shown(ctx.mask).when(ctx.clock)
    return f"Analyse the market and update the portfolio for {clock:%Y-%m-%d %H:%M}."


class _Shown:
    """What a prompt shows of the run: real, or through a masked run's mask."""

    def __init__(self, mask: Mask | None) -> None:
        self.mask = mask

    def symbol(self, symbol: str) -> str:
        return symbol if self.mask is None else self.mask.symbol(symbol)

    def price(self, symbol: str, price: float | None) -> float | None:
        return price if self.mask is None or price is None else self.mask.price(symbol, price)

    def quantity(self, symbol: str, quantity: float) -> float:
        return quantity if self.mask is None else self.mask.quantity(symbol, quantity)

    def when(self, clock: datetime) -> datetime:
        return clock if self.mask is None else self.mask.when(clock)

    def text(self, text: str) -> str:
        return text if self.mask is None else self.mask.text(text)

    def fill(self, fill: CloseFill) -> CloseFill:
        """A market-on-close fill as the model learns it."""
        if self.mask is None:
            return fill
        sym = fill.symbol
        return replace(
            fill,
            symbol=self.symbol(sym),
            requested=self.quantity(sym, fill.requested),
            quantity=self.quantity(sym, fill.quantity),
            price=self.price(sym, fill.price),
            reason=self.text(fill.reason),
        )
