"""Chat models for AI model ids: provider presets, validated parameters, the client.

A provider preset knows an OpenAI-compatible server family: its default endpoint, the
key it needs (or none), the tool-calling styles it supports and how it takes a JSON
schema. ``ollama/qwen2.5:7b``, ``local/smollm2``, ``vllm/<id>``, ``lmstudio/<id>``,
``llamacpp/<id>`` and ``openai-compatible/<id>`` pick their preset by prefix and send the
rest as the model name; any other id is an OpenRouter id (the default provider). The API
key is read from the environment when the client is made and is never stored, logged or
put in a snapshot.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ttg_lab.agents.params import Param, ParamSpec, validate_parameters
from ttg_lab.errors import ConfigError, ValidationError
from ttg_lab.llm.catalog import load_catalog
from ttg_lab.llm.cutoffs import model_cutoff
from ttg_lab.llm.limits import Limits, limiter_for
from ttg_lab.llm.prompt import check_template
from ttg_lab.registry import Registry

if TYPE_CHECKING:  # the client's modules load only when a run calls a model
    import ssl

    from ttg_lab.llm.client import TolerantChatOpenAI

ToolMode = Literal["auto", "native", "json"]
TOOL_MODES: tuple[ToolMode, ...] = ("auto", "native", "json")
"""``native``: the server's tool calls; ``json``: one JSON object of actions per answer,
parsed into the same tool calls; ``auto``: the preset's preferred mode, switching to json
for the rest of a run when native calls keep failing to parse."""

ResponseFormat = Literal["json_schema", "json_object_schema", "none"]
"""How a server takes a JSON schema for the answer: OpenAI's ``{"type": "json_schema"}``,
llama-cpp-python's ``{"type": "json_object", "schema": ...}``, or not at all."""

ToolChoice = Literal["required", "auto"]
TOOL_CHOICES: tuple[ToolChoice, ...] = ("required", "auto")
"""What a model may ask of the server when tools are offered, strongest first."""

DEFAULT_MAX_TOKENS = 512
"""Answer budget of a new run whose model sets no ``max_tokens``."""

NO_KEY = "not-needed"
"""What the client sends as a key to a server that needs none (the SDK wants one)."""


@dataclass(frozen=True)
class Provider:
    """A family of OpenAI-compatible servers and what they accept."""

    name: str
    base_url: str | None  # None: the model must give base_url
    api_key_env: str | None  # None: no key needed (a model may still name one)
    tool_modes: tuple[Literal["native", "json"], ...]  # supported, preferred first
    response_format: ResponseFormat
    tool_choice_required: bool  # accepts tool_choice "required"
    tool_choice_object: bool  # accepts the object form naming one function
    concurrency: int  # requests at once, by default
    requests_per_minute: int | None  # None: no limit
    prefixed: bool  # addressed as <name>/<model>; otherwise the default for other ids
    free: bool  # price 0 is known unless the model's parameters give one
    doc: str

    @property
    def preferred_mode(self) -> Literal["native", "json"]:
        return self.tool_modes[0]


PROVIDERS: Registry[Provider] = Registry("LLM provider")
"""Provider presets by name (``ttg_lab.options.llm_providers()`` lists them)."""

DEFAULT_PROVIDER = "openrouter"


def _preset(name: str, base_url: str | None, doc: str, **kw: Any) -> None:
    values: dict[str, Any] = {
        "api_key_env": None,
        "tool_modes": ("native", "json"),
        "response_format": "json_schema",
        "tool_choice_required": True,
        "tool_choice_object": True,
        "concurrency": 1,
        "requests_per_minute": None,
        "prefixed": True,
        "free": True,
        **kw,
    }
    PROVIDERS.register(name, Provider(name=name, base_url=base_url, doc=doc, **values))


_catalog = load_catalog()
_preset(
    DEFAULT_PROVIDER,
    _catalog.default_base_url,
    "OpenRouter: catalog ids such as openai/gpt-5 (any id without a preset prefix)",
    api_key_env=_catalog.default_api_key_env,
    concurrency=16,
    requests_per_minute=600,
    prefixed=False,
    free=False,
)
_preset(
    "openai-compatible",
    None,
    "any OpenAI-compatible server: give base_url (and api_key_env if it needs a key)",
    concurrency=8,
    free=False,
)
_preset(
    "ollama",
    "http://127.0.0.1:11434/v1",
    "Ollama: models with tool support (ollama pull qwen2.5:7b)",
    tool_choice_required=False,
    tool_choice_object=False,
)
_preset(
    "vllm",
    "http://127.0.0.1:8000/v1",
    "vLLM: vllm serve <id> --enable-auto-tool-choice --tool-call-parser <parser>",
    concurrency=16,
)
_preset(
    "lmstudio",
    "http://127.0.0.1:1234/v1",
    "LM Studio's local server (lms server start)",
    tool_choice_object=False,
)
_preset(
    "llamacpp",
    "http://127.0.0.1:8080/v1",
    "llama.cpp's llama-server --jinja (tools need the model's chat template)",
    tool_choice_object=False,
)
_preset(
    "local",
    "http://127.0.0.1:8181/v1",
    "ttg-lab llm serve (llama-cpp-python): JSON actions by default",
    tool_modes=("json", "native"),
    response_format="json_object_schema",
    tool_choice_required=False,
)
del _catalog

EXAMPLE_LOCAL_IDS: tuple[str, ...] = ("local/smollm2", "ollama/qwen2.5:7b")
"""Ids of local models offered as examples where a list of AI models is shown."""


def provider_of(ai_model_id: str) -> tuple[Provider, str]:
    """The preset an id picks and the model name its server knows: ``ollama/qwen2.5:7b``
    is ``qwen2.5:7b`` on Ollama; an id without a preset prefix is an OpenRouter id."""
    prefix, slash, rest = ai_model_id.partition("/")
    if slash and prefix in PROVIDERS and PROVIDERS.get(prefix).prefixed:
        if not rest.strip() or rest != rest.strip():
            raise ValidationError(
                f"AI model id {ai_model_id!r} names no model after {prefix}/ "
                f"(e.g. {prefix}/qwen2.5:7b)"
            )
        return PROVIDERS.get(prefix), rest
    return PROVIDERS.get(DEFAULT_PROVIDER), ai_model_id


LLM_PARAMS: ParamSpec = {
    "temperature": Param(float, None, 0.0, 2.0, "sampling temperature"),
    "max_tokens": Param(
        int, None, 1, 200_000, f"most tokens in one answer (new runs: {DEFAULT_MAX_TOKENS})"
    ),
    "top_p": Param(float, None, 0.0, 1.0, "nucleus sampling"),
    "reasoning_effort": Param(
        str, None, doc="reasoning effort", choices=("minimal", "low", "medium", "high")
    ),
    "frequency_penalty": Param(float, None, -2.0, 2.0),
    "presence_penalty": Param(float, None, -2.0, 2.0),
    "seed": Param(int, None, 0, 2**31 - 1, "provider-side sampling seed"),
    "timeout": Param(float, 60.0, 1.0, 600.0, "seconds before one request times out"),
    "max_retries": Param(int, 3, 0, 10, "retries on timeouts, 429 and 5xx, with backoff"),
    "max_concurrency": Param(
        int, None, 1, 1024, "requests in flight at once at the provider (its preset's default)"
    ),
    "requests_per_minute": Param(
        int, None, 1, 1_000_000, "requests started per minute at the provider (preset's default)"
    ),
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
    "tool_mode": Param(
        str, None, doc="auto (new runs), native or json tool calls", choices=TOOL_MODES
    ),
    "tool_choice": Param(
        str, None, doc="ask the server for tool calls: required or auto", choices=TOOL_CHOICES
    ),
    "prompt_template": Param(str, None, doc="the model's own system prompt template"),
    "knowledge_cutoff": Param(
        str,
        None,
        doc="last month or day of the model's training data, YYYY-MM or YYYY-MM-DD "
        "(overrides the catalog's)",
    ),
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
class ToolModeConfig:
    """How a chat model calls tools in a run: the mode it starts in, whether failing
    native calls move it to JSON actions (``auto``), and how its server takes a schema."""

    start: Literal["native", "json"] = "native"
    switches: bool = False
    response_format: ResponseFormat = "none"


@dataclass(frozen=True)
class LLMSettings:
    """Everything needed to call one AI model, minus the key itself."""

    model_id: str
    provider: Provider
    served_model: str  # the model's name on its server
    base_url: str
    api_key_env: str | None  # None: the server needs no key
    params: dict[str, Any]
    input_per_mtok: float
    output_per_mtok: float

    @property
    def limits(self) -> Limits:
        """The endpoint's limits: the model's parameters, else its provider's defaults."""
        given = self.params.get("max_concurrency")
        rpm = self.params.get("requests_per_minute")
        return Limits(
            given if given is not None else self.provider.concurrency,
            rpm if rpm is not None else self.provider.requests_per_minute,
        )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1e6

    @property
    def sampling(self) -> dict[str, Any]:
        return {k: self.params[k] for k in SAMPLING_KEYS if self.params.get(k) is not None}

    @property
    def tool_mode(self) -> Literal["native", "json"]:
        """The mode a run starts in: a recorded ``auto`` is the preset's preferred mode;
        no mode at all is a run from before tool modes, which used native calls."""
        mode = self.params.get("tool_mode")
        if mode == "auto":
            return self.provider.preferred_mode
        return "json" if mode == "json" else "native"

    @property
    def switches_mode(self) -> bool:
        """Whether failing native calls move the run to JSON actions (``auto``)."""
        return self.params.get("tool_mode") == "auto" and "json" in self.provider.tool_modes


def price_known(model_id: str, parameters: dict[str, Any]) -> bool:
    """Whether the model's token prices are known: its parameters give both, the catalog
    lists it, or its provider is free (a local model: 0 is a known price)."""
    provider, _ = provider_of(model_id)
    if provider.free or (not provider.prefixed and load_catalog().get(model_id) is not None):
        return True
    return all(parameters.get(k) is not None for k in ("input_per_mtok", "output_per_mtok"))


def llm_settings(model_id: str, parameters: dict[str, Any] | None) -> LLMSettings:
    """Validated settings for ``model_id``: catalog models get their prices from the
    catalog, models of a free (local) preset cost 0 unless priced, any other id needs its
    prices; a custom prompt template must use known placeholders only, a knowledge cutoff
    must be YYYY-MM or YYYY-MM-DD."""
    provider, served = provider_of(model_id)
    params = validate_parameters(LLM_PARAMS, parameters, model_id)
    known = load_catalog().get(model_id) if not provider.prefixed else None
    if not price_known(model_id, params):
        raise ValidationError(
            f"{model_id!r} is not in the catalog; give input_per_mtok and output_per_mtok "
            "(USD per million tokens, 0 for a free local model) so its cost is accounted"
        )
    base_url = params["base_url"] or provider.base_url
    if base_url is None:
        raise ValidationError(
            f"{model_id!r} uses the {provider.name} provider: give base_url "
            "(e.g. http://127.0.0.1:8000/v1)"
        )
    if params["prompt_template"] is not None:
        check_template(params["prompt_template"])
    model_cutoff(model_id, params)  # a given knowledge_cutoff must be a month or a day

    def price(name: str, listed: float | None) -> float:
        given = params[name]
        return float(given) if given is not None else listed or 0.0

    return LLMSettings(
        model_id=model_id,
        provider=provider,
        served_model=served,
        base_url=base_url,
        api_key_env=params["api_key_env"] or provider.api_key_env,
        params=params,
        input_per_mtok=price("input_per_mtok", known.input_per_mtok if known else None),
        output_per_mtok=price("output_per_mtok", known.output_per_mtok if known else None),
    )


def run_parameters(model_id: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A new run's parameters as its snapshot records them: the answer budget and the
    tool mode made explicit (``max_tokens`` 512, ``tool_mode`` auto, unless set), so a
    replay of the run sends the same and an old snapshot keeps what it had."""
    params = dict(parameters)
    if params.get("max_tokens") is None:
        params["max_tokens"] = DEFAULT_MAX_TOKENS
    if params.get("tool_mode") is None:
        params["tool_mode"] = "auto"
    llm_settings(model_id, params)  # still valid
    return params


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: building one reads the whole CA
    bundle (about 30 ms of CPU), which every run paid at its start; a context serves any
    number of connections, threads and event loops."""
    import importlib
    import importlib.util

    # what the SDK's clients are made of: httpx2 since openai 3, httpx before
    http = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")
    context: ssl.SSLContext = http.create_ssl_context()
    return context


def make_chat_model(settings: LLMSettings) -> TolerantChatOpenAI:
    """The client for the settings, with the key from the environment (a server that
    needs none gets a placeholder). It copes with the known quirks of real servers
    (:mod:`ttg_lab.llm.client`), holds a slot of its endpoint's limiter for each request
    (:mod:`ttg_lab.llm.limits`) and gets an async HTTP client of its own: langchain-openai
    otherwise shares one per endpoint across the process, and its pooled connections
    belong to the event loop that opened them, which a finished run has closed."""
    import openai
    from pydantic import SecretStr

    from ttg_lab.llm.client import TolerantChatOpenAI

    if settings.api_key_env is None:
        key = NO_KEY
    else:
        key = os.environ.get(settings.api_key_env, "")
        if not key:
            raise ConfigError(
                f"{settings.model_id} needs an API key: set the environment variable "
                f"{settings.api_key_env}"
            )
    provider = settings.provider
    params = settings.params
    http = openai.DefaultAsyncHttpxClient(timeout=params["timeout"], verify=tls_context())
    return TolerantChatOpenAI(
        model=settings.served_model,
        base_url=settings.base_url,
        api_key=SecretStr(key),
        timeout=params["timeout"],
        max_retries=0,  # the client decides every retry (ttg_lab.llm.client)
        retries=params["max_retries"],
        limiter=limiter_for(provider.name, settings.base_url, settings.limits),
        http_async_client=http,
        tool_choice_wanted=params["tool_choice"],
        tool_choice_refused=frozenset(
            form
            for form, ok in (
                ("required", provider.tool_choice_required),
                ("object", provider.tool_choice_object),
            )
            if not ok
        ),
        step_timeout=params["step_timeout"],
        **settings.sampling,
    )
