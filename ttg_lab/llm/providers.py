"""Chat models for AI model ids: OpenAI-compatible endpoints, validated parameters.

OpenRouter is the default endpoint; any OpenAI-compatible ``base_url`` and key variable
can be set per model. The API key is read from the environment when the client is made
and is never stored, logged or put in a snapshot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from ttg_lab.agents.params import Param, ParamSpec, validate_parameters
from ttg_lab.errors import ConfigError, ValidationError
from ttg_lab.llm.catalog import load_catalog

LLM_PARAMS: ParamSpec = {
    "temperature": Param(float, None, 0.0, 2.0, "sampling temperature"),
    "max_tokens": Param(int, None, 1, 200_000, "most tokens in one answer"),
    "top_p": Param(float, None, 0.0, 1.0, "nucleus sampling"),
    "reasoning_effort": Param(
        str, None, doc="reasoning effort", choices=("minimal", "low", "medium", "high")
    ),
    "frequency_penalty": Param(float, None, -2.0, 2.0),
    "presence_penalty": Param(float, None, -2.0, 2.0),
    "seed": Param(int, None, 0, 2**31 - 1, "provider-side sampling seed"),
    "timeout": Param(float, 60.0, 1.0, 600.0, "seconds before one request times out"),
    "max_retries": Param(int, 3, 0, 10, "retries on timeouts, 429 and 5xx, with backoff"),
    "retry_delay": Param(float, 1.0, 0.0, 60.0, "seconds before retrying a failed answer"),
    "max_steps": Param(int, 10, 1, 100, "model calls allowed per decision step"),
    "step_timeout": Param(float, 900.0, 1.0, 7200.0, "seconds one decision step may take"),
    "base_url": Param(str, None, doc="OpenAI-compatible endpoint", pattern=r"https?://\S+"),
    "api_key_env": Param(
        str,
        None,
        doc="environment variable holding the key (named ..._KEY, _TOKEN, _SECRET, _PASSWORD)",
        pattern=r"[A-Z_][A-Z0-9_]*(KEY|TOKEN|SECRET|PASSWORD)",
    ),
    "input_per_mtok": Param(float, None, 0.0, 1000.0, "USD per million prompt tokens"),
    "output_per_mtok": Param(float, None, 0.0, 1000.0, "USD per million completion tokens"),
}
"""Parameters every LLM model accepts; ``None`` means the provider's default."""

SAMPLING_KEYS = (
    "temperature",
    "max_tokens",
    "top_p",
    "reasoning_effort",
    "frequency_penalty",
    "presence_penalty",
    "seed",
)


@dataclass(frozen=True)
class LLMSettings:
    """Everything needed to call one AI model, minus the key itself."""

    model_id: str
    base_url: str
    api_key_env: str
    params: dict[str, Any]
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1e6

    @property
    def sampling(self) -> dict[str, Any]:
        return {k: self.params[k] for k in SAMPLING_KEYS if self.params.get(k) is not None}


def llm_settings(model_id: str, parameters: dict[str, Any] | None) -> LLMSettings:
    """Validated settings for ``model_id``; catalog models get their prices from the catalog."""
    params = validate_parameters(LLM_PARAMS, parameters, model_id)
    catalog = load_catalog()
    known = catalog.get(model_id)
    if known is None and (params["input_per_mtok"] is None or params["output_per_mtok"] is None):
        raise ValidationError(
            f"{model_id!r} is not in the catalog; give input_per_mtok and output_per_mtok "
            "(USD per million tokens, 0 for a free local model) so its cost is accounted"
        )
    return LLMSettings(
        model_id=model_id,
        base_url=params["base_url"] or catalog.default_base_url,
        api_key_env=params["api_key_env"] or catalog.default_api_key_env,
        params=params,
        input_per_mtok=params["input_per_mtok"]
        if params["input_per_mtok"] is not None
        else known.input_per_mtok
        if known
        else 0.0,
        output_per_mtok=params["output_per_mtok"]
        if params["output_per_mtok"] is not None
        else known.output_per_mtok
        if known
        else 0.0,
    )


def make_chat_model(settings: LLMSettings) -> BaseChatModel:
    """A ``ChatOpenAI`` client for the settings, with the key from the environment.

    It gets an async HTTP client of its own: langchain-openai otherwise shares one per
    endpoint across the process, and its pooled connections belong to the event loop
    that opened them, which a finished run has closed.
    """
    import openai
    from langchain_openai import ChatOpenAI

    key = os.environ.get(settings.api_key_env, "")
    if not key:
        raise ConfigError(
            f"{settings.model_id} needs an API key: set the environment variable "
            f"{settings.api_key_env}"
        )
    return ChatOpenAI(
        model=settings.model_id,
        base_url=settings.base_url,
        api_key=SecretStr(key),
        timeout=settings.params["timeout"],
        max_retries=settings.params["max_retries"],
        http_async_client=openai.DefaultAsyncHttpxClient(timeout=settings.params["timeout"]),
        **settings.sampling,
    )
