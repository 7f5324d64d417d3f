"""Which agent runs a model: validation of its parameters and construction per run.

Two paths exist. ``chat`` (the default) runs every model, baselines included, as a chat
model behind a LangChain agent calling the MCP tools, so the offline baselines exercise
exactly the path an LLM takes. ``direct`` runs a baseline policy by calling the tool
functions directly: the same decisions, much faster, for large sweeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ttg_lab.agents.base import DirectAgent, make_policy
from ttg_lab.agents.params import validate_parameters
from ttg_lab.agents.policy import Policy, is_policy, policy_class
from ttg_lab.engine.budget import Budget, CallPrice
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.snapshot import ModelConfig
from ttg_lab.engine.step import Agent
from ttg_lab.errors import ValidationError
from ttg_lab.store.database import Store

if TYPE_CHECKING:  # the chat path's modules load only when a run takes it
    from langchain_core.language_models import BaseChatModel

    from ttg_lab.llm.providers import ToolModeConfig
    from ttg_lab.llm.recording import RecordedCall

AGENT_PATHS: tuple[str, ...] = ("chat", "direct")


def validate_agent(ai_model_id: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Validated parameters (defaults filled in) for ``ai_model_id``."""
    if not isinstance(ai_model_id, str) or not ai_model_id.strip():
        raise ValidationError("AI model id must not be empty")
    if is_policy(ai_model_id):
        cls = policy_class(ai_model_id)
        return validate_parameters(cls.params, parameters, ai_model_id)
    from ttg_lab.llm.providers import llm_settings

    return llm_settings(ai_model_id, parameters).params


def run_parameters(ai_model_id: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A new run's parameters as its snapshot records them: an LLM's defaults that depend
    on when the run started (its answer budget, its tool mode) made explicit."""
    if is_policy(ai_model_id):
        return dict(parameters)
    from ttg_lab.llm import providers

    return providers.run_parameters(ai_model_id, parameters)


def seeded(model: ModelConfig, seed: int) -> ModelConfig:
    """A new run's model with the run's seed as the provider-side sampling seed (sent as
    the request's ``seed``), unless the model is a policy (it reads the run's seed itself)
    or fixes a seed of its own: repeats with seeds ``seed + i`` then differ reproducibly
    where the provider honours seeds, and the snapshot records what was sent."""
    if is_policy(model.ai_model_id) or model.parameters.get("seed") is not None:
        return model
    return replace(model, parameters={**model.parameters, "seed": seed})


def check_path(ai_model_id: str, path: str) -> str:
    if path not in AGENT_PATHS:
        raise ValidationError(f"agent path must be one of {', '.join(AGENT_PATHS)}, got {path!r}")
    if path == "direct" and not is_policy(ai_model_id):
        raise ValidationError(f"{ai_model_id} is an LLM: it can only run on the chat path")
    return path


def no_cost(prompt_tokens: int, completion_tokens: int) -> float:
    """Offline baselines cost nothing."""
    return 0.0


@dataclass(frozen=True)
class AgentRecipe:
    """An agent ready to be built for a run: everything that can refuse it (parameters,
    a missing API key, a replay source without a record) was checked when it was
    prepared, so a run is refused before anything of it is written."""

    store: Store
    model: ModelConfig  # the model as the run's snapshot keeps it
    path: str
    policy: Policy | None  # a baseline's decisions
    chat_model: BaseChatModel | None = None  # an LLM's client (None for baselines, replay)
    sampling: dict[str, Any] = field(default_factory=dict)
    cost: Callable[[int, int], float] = no_cost
    limits: tuple[int, float, float] = (10, 600.0, 0.0)  # max_steps, step_timeout, retry_delay
    tools: ToolModeConfig | None = None  # an LLM's tool modes (None: native, no switch)
    replay: dict[tuple[int, int], RecordedCall] | None = None  # the source's record
    budget: Budget = field(default_factory=Budget)  # the run's caps on an LLM's calls
    price: CallPrice | None = None  # an LLM's prices and answer budget (None: baselines)
    prompt_version: str | None = None  # the prompts of the run's snapshot (None: before versions)

    def build(self, run_id: int, attempt: int, context: RunContext) -> Agent:
        """The agent of run ``run_id`` under ``attempt`` (built once per execution)."""
        if self.path == "direct":
            assert self.policy is not None
            return DirectAgent(self.policy)

        from ttg_lab.llm.agent import BudgetGuard, ChatAgent
        from ttg_lab.llm.baseline_chat import BaselineChatModel
        from ttg_lab.llm.recording import CallRecorder
        from ttg_lab.llm.replay import OfflineModel

        model: Any = self.chat_model
        if self.replay is not None:
            model = OfflineModel()  # replay never calls a model: answers come from the record
        elif self.policy is not None:
            model = BaselineChatModel(policy=self.policy, context=context)
        recorder = CallRecorder(
            self.store,
            run_id,
            attempt,
            self.model.ai_model_id,
            self.sampling,
            self.cost,
            context,
            self.replay,
        )
        guard = None
        if self.budget.capped and self.price is not None and self.replay is None:
            guard = BudgetGuard(self.store, run_id, self.budget, self.price)
        max_steps, timeout, retry_delay = self.limits
        return ChatAgent(
            model,
            recorder,
            self.model.as_dict(),
            max_steps=max_steps,
            step_timeout=timeout,
            retry_delay=retry_delay,
            tools=self.tools,
            guard=guard,
            prompt_version=self.prompt_version,
        )


def prepare_agent(
    store: Store,
    model: ModelConfig,
    path: str = "chat",
    replay_from: int | None = None,
    budget: Budget | None = None,
    prompt_version: str | None = None,
) -> AgentRecipe:
    """The recipe of a run's agent, for the snapshot's ``model`` config, ``budget`` and
    ``prompt_version``; raises what would stop the agent from being built (bad
    parameters, no API key, nothing to replay)."""
    ai_model_id = model.ai_model_id
    parameters = model.parameters
    check_path(ai_model_id, path)
    if path == "direct":
        return AgentRecipe(store, model, path, make_policy(ai_model_id, parameters))

    from ttg_lab.llm.recording import load_record

    replay = load_record(store, replay_from) if replay_from else None
    if is_policy(ai_model_id):
        policy = make_policy(ai_model_id, parameters)
        return AgentRecipe(store, model, path, policy, replay=replay, prompt_version=prompt_version)
    from ttg_lab.llm.providers import (
        DEFAULT_MAX_TOKENS,
        ToolModeConfig,
        llm_settings,
        make_chat_model,
    )

    settings = llm_settings(ai_model_id, parameters)
    return AgentRecipe(
        store,
        model,
        path,
        None,
        chat_model=make_chat_model(settings) if replay is None else None,
        sampling=settings.sampling,
        cost=settings.cost,
        limits=(
            settings.params["max_steps"],
            settings.params["step_timeout"],
            settings.params["retry_delay"],
        ),
        tools=ToolModeConfig(
            settings.tool_mode, settings.switches_mode, settings.provider.response_format
        ),
        replay=replay,
        budget=budget or Budget(),
        price=CallPrice(
            settings.input_per_mtok,
            settings.output_per_mtok,
            settings.params["max_tokens"] or DEFAULT_MAX_TOKENS,
        ),
        prompt_version=prompt_version,
    )
