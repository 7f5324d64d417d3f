"""The trading agent's prompt: who it is, what it may know now, and how to answer.

Everything in it is known at the simulated clock: cash and positions, the previous
close and today's open of each ticker, and how the last step's market-on-close orders
filled. The prompt carries no wall-clock time, so a replayed run sends exactly the same
requests.
"""

from __future__ import annotations

import hashlib
import string
from typing import Any

from ttg_lab.engine.context import RunContext
from ttg_lab.errors import ValidationError

FINISH_SIGNAL = "<FINISH_SIGNAL>"
"""What an agent writes to end its decision step."""

PROMPT_VERSION = "ttg-trader-2"
"""Bump when the wording below changes; recorded in every run's snapshot."""

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
    "prices": "a line per tradable ticker: previous close / today's open",
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


def prompt_values(ctx: RunContext, model: dict[str, Any]) -> dict[str, str]:
    """Every placeholder's text at this step (what the default prompt is made of)."""
    view = ctx.view
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
        "prices": "\n".join(
            f"{symbol}: {_fmt(view.last_close(symbol))} / {_fmt(view.open(symbol))}"
            for symbol in sorted(ctx.tickers)
        ),
        "rules": str(model.get("custom_rules") or ""),
        "instructions": str(model.get("custom_instructions") or ""),
        "finish_signal": FINISH_SIGNAL,
    }


def system_prompt(ctx: RunContext, model: dict[str, Any]) -> str:
    """The system message of one decision step: the model's own ``prompt_template``
    filled in, or the default (``ttg-trader-2``)."""
    values = prompt_values(ctx, model)
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
