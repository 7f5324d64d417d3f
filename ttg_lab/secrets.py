"""Keep secrets out of everything the lab writes.

API keys come from the environment only. Any text the lab stores or shows that could
echo one (provider error messages, tracebacks) passes through :func:`redact`.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
MIN_SECRET_LENGTH = 8


def secret_values() -> list[str]:
    """Values of environment variables whose names mark them as secrets."""
    return sorted(
        (v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH),
        key=len,
        reverse=True,
    )


def redact(text: str) -> str:
    """``text`` with every secret value (and its visible head/tail fragments) masked."""
    for value in secret_values():
        text = text.replace(value, "***")
        for fragment in (value[:8], value[-6:]):
            if len(fragment) >= 6 and fragment in text:
                text = text.replace(fragment, "***")
    return text


def refuse_secrets(value: Any, what: str, key: str = "") -> None:
    """Raise when ``value`` (any JSON-able data) holds a secret from the environment, or
    ``key`` names one: keys belong in environment variables, never in the store."""
    from ttg_lab.errors import ValidationError

    if key and SECRET_NAME.search(key.replace(".", "_")):
        raise ValidationError(
            f"{what}: {key!r} looks like a secret; keep keys in environment variables"
        )
    text = json.dumps(value, default=str)
    if any(secret in text for secret in secret_values()):
        raise ValidationError(
            f"{what}: contains a secret from the environment; refer to it by variable name"
        )
