"""The catalog of AI models: OpenAI-compatible ids, endpoints and token prices."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).with_name("catalog.json")


@dataclass(frozen=True)
class CatalogModel:
    """One AI model the lab knows, with its price per million tokens (USD)."""

    id: str
    name: str
    aitrader_signature: str
    input_per_mtok: float
    output_per_mtok: float
    context_window: int

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
    return Catalog(raw["default_base_url"], raw["default_api_key_env"], models)
