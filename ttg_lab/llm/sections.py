"""Typed reasoning entries from one step's conversation, split into its sections.

Agents are asked to write PLAN / ANALYSIS / DECISION / REFLECTION sections. Tagged text
is split on those headings; untagged text is typed by its place: text next to tool calls
is analysis, the closing answer is the decision. Decision entries link the step's orders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from ttg_lab.engine.context import RunContext
from ttg_lab.llm.messages import FINISH_SIGNAL, text_of
from ttg_lab.llm.prompt import SECTIONS

HEADING = re.compile(r"^\s*\**\s*(" + "|".join(SECTIONS) + r")\s*\**\s*:\s*", re.I | re.M)


def split_sections(text: str, default: str) -> list[tuple[str, str]]:
    """(type, content) pieces of ``text``; text before any heading gets ``default``."""
    text = text.replace(FINISH_SIGNAL, "").strip()
    if not text:
        return []
    pieces: list[tuple[str, str]] = []
    matches = list(HEADING.finditer(text))
    head = text[: matches[0].start()].strip() if matches else text
    if head:
        pieces.append((default, head))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end() : end].strip()
        if body:
            pieces.append((match.group(1).lower(), body))
    return pieces


def seen_in_tools(messages: Sequence[BaseMessage]) -> dict[str, Any]:
    """Prices and news titles the agent looked up during the step."""
    prices: dict[str, Any] = {}
    news: list[str] = []
    for message in messages:
        if not isinstance(message, ToolMessage) or message.status == "error":
            continue
        try:
            data = json.loads(text_of(message.content))
        except (json.JSONDecodeError, TypeError):
            continue
        if not isinstance(data, dict):
            continue
        if message.name == "get_price_local" and "symbol" in data:
            prices[f"{data['symbol']}@{data.get('time')}"] = {
                k: data[k] for k in ("open", "high", "low", "close") if data.get(k) is not None
            }
        elif message.name == "get_information":
            news += [r.get("title", "") for r in data.get("results", []) if isinstance(r, dict)]
    return {"prices": prices, "news": news[:20]}


def reasoning_entries(
    ctx: RunContext, messages: Sequence[BaseMessage], start: dict[str, Any]
) -> list[dict[str, Any]]:
    """Reasoning entries of a step with the context the agent saw and its order ids."""
    context = {**start, **seen_in_tools(messages)}
    order_ids = list(ctx.record.requests)  # every order of the step, filled or waiting
    entries: list[dict[str, Any]] = []
    ai_messages = [m for m in messages if isinstance(m, AIMessage)]
    for i, message in enumerate(ai_messages):
        final = i == len(ai_messages) - 1 and not message.tool_calls
        default = "decision" if final else "analysis"
        for kind, content in split_sections(text_of(message.content), default):
            entry = {"type": kind, "content": content, "context": context}
            if kind == "decision":
                entry["order_ids"] = order_ids
            entries.append(entry)
    return entries
