"""Which agent runs a model: validation of its parameters and construction per run.

Two paths exist. ``chat`` (the default) runs every model, baselines included, as a chat
model behind a LangChain agent calling the MCP tools, so the offline baselines exercise
exactly the path an LLM takes. ``direct`` runs a baseline policy by calling the tool
functions directly: the same decisions, much faster, for large sweeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttg_lab.agents.base import Agent, DirectAgent, is_baseline, make_policy, policy_class
from ttg_lab.agents.params import validate_parameters
from ttg_lab.errors import ValidationError
from ttg_lab.store.database import Store
from ttg_lab.tools.context import RunContext

AGENT_PATHS: tuple[str, ...] = ("chat", "direct")


def validate_agent(ai_model_id: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Validated parameters (defaults filled in) for ``ai_model_id``."""
    if not isinstance(ai_model_id, str) or not ai_model_id.strip():
        raise ValidationError("AI model id must not be empty")
    if is_baseline(ai_model_id):
        cls = policy_class(ai_model_id)
        return validate_parameters(cls.params, parameters, ai_model_id)
    from ttg_lab.llm.providers import llm_settings

    return llm_settings(ai_model_id, parameters).params


def check_path(ai_model_id: str, path: str) -> str:
    if path not in AGENT_PATHS:
        raise ValidationError(f"agent path must be one of {', '.join(AGENT_PATHS)}, got {path!r}")
    if path == "direct" and not is_baseline(ai_model_id):
        raise ValidationError(f"{ai_model_id} is an LLM: it can only run on the chat path")
    return path


@dataclass(frozen=True)
class AgentRequest:
    """What a run needs to build its agent."""

    store: Store
    run_id: int
    attempt: int
    model: dict[str, Any]  # the snapshot's model config
    context: RunContext
    path: str = "chat"
    replay_from: int | None = None


def no_cost(prompt_tokens: int, completion_tokens: int) -> float:
    """Offline baselines cost nothing."""
    return 0.0


def build_agent(request: AgentRequest) -> Agent:
    """The agent of one run (built once per run)."""
    ai_model_id = request.model["ai_model_id"]
    parameters = request.model["parameters"]
    if request.path == "direct":
        return DirectAgent(make_policy(ai_model_id, parameters))

    from ttg_lab.llm.agent import ChatAgent
    from ttg_lab.llm.baseline_chat import BaselineChatModel
    from ttg_lab.llm.providers import llm_settings, make_chat_model
    from ttg_lab.llm.recording import CallRecorder, load_record
    from ttg_lab.llm.replay import OfflineModel

    replay = load_record(request.store, request.replay_from) if request.replay_from else None
    model: Any
    cost: Callable[[int, int], float]
    if is_baseline(ai_model_id):
        sampling: dict[str, Any] = {}
        max_steps, timeout, retry_delay = 10, 600.0, 0.0
        model = BaselineChatModel(
            policy=make_policy(ai_model_id, parameters), context=request.context
        )

        cost = no_cost
    else:
        settings = llm_settings(ai_model_id, parameters)
        sampling = settings.sampling
        max_steps, timeout = settings.params["max_steps"], settings.params["step_timeout"]
        retry_delay = settings.params["retry_delay"]
        cost = settings.cost
        model = make_chat_model(settings) if replay is None else None
    if replay is not None:
        model = OfflineModel()  # replay never calls a model: answers come from the record
    recorder = CallRecorder(
        request.store,
        request.run_id,
        request.attempt,
        ai_model_id,
        sampling,
        cost,
        request.context,
        replay,
    )
    return ChatAgent(
        model,
        recorder,
        request.model,
        max_steps=max_steps,
        step_timeout=timeout,
        retry_delay=retry_delay,
    )
