"""The catalog of AI models: OpenAI-compatible ids, endpoints, token prices and training
cutoffs (each with where its provider states it)."""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from ttg_lab.errors import ValidationError

CATALOG_PATH = Path(__file__).with_name("catalog.json")

CUTOFF_FORMATS = "a month YYYY-MM or a day YYYY-MM-DD"
"""How a knowledge cutoff is written (in the catalog and in a model's parameters)."""


def cutoff_last_day(value: object, what: str) -> date:
    """The last day a cutoff ``value`` covers: the day itself, or a month's last day
    (``2024-11`` is 2024-11-30). Anything else is refused, naming ``what`` and the value."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", value):
        raise ValidationError(f"{what} must be {CUTOFF_FORMATS}, got {value!r}")
    try:
        if len(value) == 7:
            year, month = int(value[:4]), int(value[5:])
            return date(year, month, calendar.monthrange(year, month)[1])
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{what} is no real month or day: {value!r}") from None


@dataclass(frozen=True)
class CatalogModel:
    """One AI model the lab knows, with its price per million tokens (USD) and its
    knowledge cutoff (``YYYY-MM`` or ``YYYY-MM-DD``; None: unknown) with its source."""

    id: str
    name: str
    aitrader_signature: str
    input_per_mtok: float
    output_per_mtok: float
    context_window: int
    knowledge_cutoff: str | None = None
    cutoff_source: str = ""

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1e6


@dataclass(frozen=True)
class Catalog:
    default_base_url: str
    default_api_key_env: str
    models: dict[str, CatalogModel]

    def get(self, model_id: str) -> CatalogModel | None:
        return self.models.get(model_id)


@cache
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """The catalog file, read once."""
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    models = {m["id"]: CatalogModel(**m) for m in raw["models"]}
    for model in models.values():
        if model.knowledge_cutoff is not None:
            cutoff_last_day(model.knowledge_cutoff, f"the catalog's knowledge_cutoff of {model.id}")
    return Catalog(raw["default_base_url"], raw["default_api_key_env"], models)
