"""The trading agent's prompt: who it is, what it may know now, and how to answer.

Everything in it is known at the simulated clock: cash and positions, the previous
close and today's open of each ticker, and how the last step's market-on-close orders
filled. The prompt carries no wall-clock time, so a replayed run sends exactly the same
requests.
"""

from __future__ import annotations

from typing import Any

from ttg_lab.engine.context import RunContext

FINISH_SIGNAL = "<FINISH_SIGNAL>"
"""What an agent writes to end its decision step."""

PROMPT_VERSION = "ttg-trader-2"
"""Bump when the wording below changes; recorded in every run's snapshot."""

SECTIONS = ("PLAN", "ANALYSIS", "DECISION", "REFLECTION")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")


def system_prompt(ctx: RunContext, model: dict[str, Any]) -> str:
    """The system message of one decision step."""
    view = ctx.view
    when = (
        ctx.clock.strftime("%Y-%m-%d")
        if ctx.index.interval == "1d"
        else ctx.clock.strftime("%Y-%m-%d %H:%M")
    )
    fills = (
        "Orders are market-on-close: they are accepted now and fill at the current bar's "
        "close plus costs once you have decided; you learn their fills at the next step"
        if ctx.fills_later
        else "Orders fill at the current bar's open plus costs"
    )
    lines = [
        f"You are {model['name']}, a trading agent in the {ctx.market.name} market "
        f"(prices in {ctx.market.currency}).",
        f"The time is {when} ({'daily' if ctx.index.interval == '1d' else 'hourly'} bars). "
        f"You may act only through the tools. {fills}; every order is checked against the "
        "model's rules and may be refused with a reason. You cannot see the future: asking "
        "for later prices or news is refused.",
        "",
        f"Cash: {ctx.portfolio.cash:.2f}",
        "Positions: "
        + (", ".join(f"{s} {q:g}" for s, q in sorted(ctx.portfolio.positions.items())) or "none"),
    ]
    if ctx.risk.close_fills:
        lines.append("Your market-on-close orders of the previous step, at its close:")
        lines += [f"- {fill.describe()}" for fill in ctx.risk.close_fills]
    lines += ["", "Tradable tickers (previous close / today's open):"]
    for symbol in sorted(ctx.tickers):
        lines.append(f"{symbol}: {_fmt(view.last_close(symbol))} / {_fmt(view.open(symbol))}")
    if model.get("custom_rules"):
        lines += ["", "Rules you must follow:", model["custom_rules"]]
    if model.get("custom_instructions"):
        lines += ["", "Instructions:", model["custom_instructions"]]
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
