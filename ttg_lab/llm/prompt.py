"""The trading agent's prompt: who it is, what it may know now, and how to answer.

Everything in it is known at the simulated clock: cash and positions, the previous
close and today's open of each ticker, and how the last step's market-on-close orders
filled. The prompt carries no wall-clock time, so a replayed run sends exactly the same
requests.
"""

from __future__ import annotations

import hashlib
import string
from bisect import bisect_left
from typing import Any

from ttg_lab.engine.context import RunContext
from ttg_lab.errors import ValidationError
from ttg_lab.market.asof import AsOfView

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
    view = ctx.view
    listed, left_out = price_table(ctx, is_lean(version))
    prices = [f"{s}: {_fmt(view.last_close(s))} / {_fmt(view.open(s))}" for s in listed]
    if left_out:
        prices.append(
            f"({left_out} more tickers of your universe are tradable: look up their prices "
            "with get_price_local before trading them)"
        )
    daily = ctx.index.interval == "1d"
    return {
        "name": str(model["name"]),
        "market": ctx.market.name,
        "currency": ctx.market.currency,
        "time": ctx.clock.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M"),
        "bars": "daily" if daily else "hourly",
        "fills": "Orders are market-on-close: they are accepted now and fill at the current "
        "bar's close plus costs once you have decided; you learn their fills at the next step"
        if ctx.fills_later
        else "Orders fill at the current bar's open plus costs",
        "cash": f"{ctx.portfolio.cash:.2f}",
        "positions": ", ".join(f"{s} {q:g}" for s, q in sorted(ctx.portfolio.positions.items()))
        or "none",
        "close_fills": "\n".join(f"- {fill.describe()}" for fill in ctx.risk.close_fills),
        "prices": "\n".join(prices),
        "rules": str(model.get("custom_rules") or ""),
        "instructions": str(model.get("custom_instructions") or ""),
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
        return str(template).format(**values)
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
    return f"Analyse the market and update the portfolio for {ctx.clock:%Y-%m-%d %H:%M}."
