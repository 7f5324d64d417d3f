"""Keep secrets out of everything the lab writes.

API keys come from the environment only. A secret is the value of an environment
variable whose name marks it as one (``..._KEY``, ``_TOKEN``, ``_SECRET``, ``_PASSWORD``),
or any text shaped like a well-known provider's API key, even one not in the
environment. Text a user types that is stored (names, descriptions, instructions, rule
text, settings, analyst questions, experiment names and tags, dataset names...) is
refused when it holds one (:func:`ttg_lab.text.refuse_secrets`); any text the lab shows or writes
that could echo one (provider errors, tracebacks, LLM answers, CLI output) passes
through :func:`redact`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
MIN_SECRET_LENGTH = 8
KEY_SHAPES = re.compile(
    r"\b(?:"
    r"sk-[A-Za-z0-9_-]*[A-Za-z0-9]{20}[A-Za-z0-9_-]*"  # OpenAI, OpenRouter, Anthropic, DeepSeek
    r"|AIza[0-9A-Za-z_-]{35}"  # Google
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}"  # GitHub
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r")",
    re.IGNORECASE,
)
"""What well-known API keys look like: refused and masked even when not in the
environment (a key typed by hand, a colleague's key)."""


def secret_values() -> list[str]:
    """Values of environment variables whose names mark them as secrets."""
    return sorted((value for _, value in _secret_variables()), key=len, reverse=True)


def _secret_variables() -> list[tuple[str, str]]:
    """(name, value) of the environment's secrets, longest value first."""
    found = [
        (k, v)
        for k, v in os.environ.items()
        if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH
    ]
    return sorted(found, key=lambda kv: len(kv[1]), reverse=True)


def secret_in(text: str) -> str | None:
    """What secret ``text`` holds, named without its value ("the value of $NAME", "an API
    key"), or None."""
    for name, value in _secret_variables():
        if value in text:
            return f"the value of ${name}"
    return "an API key" if KEY_SHAPES.search(text) else None


def redact(text: str) -> str:
    """``text`` with every secret value (and its visible head/tail fragments) and every
    key-shaped text masked."""
    for value in secret_values():
        text = text.replace(value, "***")
        for fragment in (value[:8], value[-6:]):
            if len(fragment) >= 6 and fragment in text:
                text = text.replace(fragment, "***")
    return KEY_SHAPES.sub("***", text)


def redact_data(value: Any) -> Any:
    """``value`` (JSON-able data) with :func:`redact` applied to every piece of text."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value
