"""What a run would spend on its LLM, predicted before anything is spent.

:func:`estimate_run` takes what :meth:`~ttg_lab.runs.service.RunService.plan` makes of a
run (the model, the calendar its steps follow, the snapshot) and predicts its LLM calls,
prompt and completion tokens and cost in USD, saying where each figure comes from:

- steps: the run's own calendar (the same code path as the run);
- calls per step and tokens per call: the recorded answered calls of the model's completed
  runs when it has any, else of the owner's other models on the same AI model, else the
  least a step takes (:data:`CALLS_PER_STEP`: one call
  that acts, one that ends the step), the prompt rendered at the first step with the real
  as-of data (system prompt, opening message and the tools' schemas) and the answer budget;
- tokens are counted at :data:`~ttg_lab.llm.messages.CHARS_PER_TOKEN` characters a token
  (tiktoken is installed with the OpenAI client, but it downloads its encodings on first
  use, and nothing at run time goes to the network; the model's own tokenizer is not at
  hand either);
- price: the model's (catalog, provider preset or its own parameters).

Offline baselines (and policies) make their calls locally, and a replay answers from its
record: they cost nothing and use no tokens. Nothing is written to the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from sqlalchemy import func, select

from ttg_lab.agents.policy import is_policy
from ttg_lab.engine.budget import Budget
from ttg_lab.engine.snapshot import RunSnapshot
from ttg_lab.llm.messages import CHARS_PER_TOKEN, estimate_tokens
from ttg_lab.llm.prompt import step_message, system_prompt
from ttg_lab.llm.providers import DEFAULT_MAX_TOKENS, llm_settings
from ttg_lab.market.asof import PriceIndex
from ttg_lab.mcp_services.memory import tool_schemas_for
from ttg_lab.models import ModelInfo
from ttg_lab.store.database import Store
from ttg_lab.store.schema import LLMCall, TradingModel, TradingRun

CALLS_PER_STEP = 2
"""Calls per decision step assumed for a model with no past runs: one that acts (looks
up, trades), one that ends the step. A step may take up to the model's ``max_steps``."""

TOKENIZER = f"chars/{CHARS_PER_TOKEN}"
"""How tokens are counted here (see the module's docstring)."""


@dataclass(frozen=True)
class Estimate:
    """A run's predicted LLM calls, tokens and cost, each with its basis, and its caps."""

    model: str
    ai_model_id: str
    steps: int
    period: tuple[datetime, datetime]
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    first_prompt_tokens: int  # the rendered prompt at the first step (0: no LLM call)
    calls_basis: str
    tokens_basis: str
    cost_basis: str
    budget: Budget  # the run's caps (the global defaults filling the unset ones)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def over_cost_cap(self) -> bool:
        cap = self.budget.max_cost_usd
        return cap is not None and self.cost_usd > cap

    @property
    def over_token_cap(self) -> bool:
        cap = self.budget.max_tokens
        return cap is not None and self.tokens > cap

    def __str__(self) -> str:
        start, end = self.period
        caps = []
        for name, cap, over in (
            ("max_cost_usd", self.budget.max_cost_usd, self.over_cost_cap),
            ("max_tokens", self.budget.max_tokens, self.over_token_cap),
        ):
            if cap is None:
                caps.append(f"{name}: no cap")
            else:
                verdict = "the estimate EXCEEDS it" if over else "within it"
                caps.append(f"{name}={cap:g}: {verdict}")
        return "\n".join(
            [
                f"estimate for {self.model} ({self.ai_model_id}), {start:%Y-%m-%d} .. "
                f"{end:%Y-%m-%d}: {self.steps} decision steps (the run's calendar)",
                f"LLM calls: {self.calls} ({self.calls_basis})",
                f"prompt tokens: {self.prompt_tokens}, completion tokens: "
                f"{self.completion_tokens} ({self.tokens_basis})",
                *(
                    [
                        f"first prompt: {self.first_prompt_tokens} tokens (rendered at the "
                        f"first step, counted {TOKENIZER})"
                    ]
                    if self.first_prompt_tokens
                    else []
                ),
                f"cost: ${self.cost_usd:.6f} ({self.cost_basis})",
                "budget: " + "; ".join(caps),
                "nothing was run or written",
            ]
        )

    def __repr__(self) -> str:
        return (
            f"<Estimate {self.model}: {self.steps} steps, {self.calls} calls, "
            f"{self.tokens} tokens, ${self.cost_usd:.6f}>"
        )


@dataclass(frozen=True)
class PastCalls:
    """What the model's completed runs recorded: steps done, answered calls, tokens."""

    runs: int
    steps: int
    calls: int
    prompt_tokens: int
    completion_tokens: int


def past_calls(store: Store, model_ids: list[int]) -> PastCalls:
    """The answered (not replayed, not failed) calls of the completed runs of the models
    ``model_ids``, and those runs' steps."""
    done = (TradingRun.model_id.in_(model_ids), TradingRun.status == "completed")
    with store.session() as session:
        runs, steps = session.execute(
            select(func.count(TradingRun.id), func.coalesce(func.sum(TradingRun.steps_done), 0))
            .where(*done)
            .where(TradingRun.id.in_(select(LLMCall.run_id).where(LLMCall.status == "ok")))
        ).one()
        calls, prompt, completion = session.execute(
            select(
                func.count(LLMCall.id),
                func.coalesce(func.sum(LLMCall.prompt_tokens), 0),
                func.coalesce(func.sum(LLMCall.completion_tokens), 0),
            )
            .join(TradingRun, TradingRun.id == LLMCall.run_id)
            .where(*done, LLMCall.status == "ok")
        ).one()
    return PastCalls(int(runs), int(steps), int(calls), int(prompt), int(completion))


def first_prompt(snapshot: RunSnapshot, index: PriceIndex, clock: datetime) -> int:
    """Tokens of the first call of a run: its system prompt and opening message rendered
    at ``clock`` with the real as-of data (the initial portfolio), and the tools offered."""
    ctx = snapshot.context(index)
    ctx.advance(0, clock)
    messages: list[BaseMessage] = [
        SystemMessage(system_prompt(ctx, snapshot.model.as_dict(), snapshot.prompt_version)),
        HumanMessage(step_message(ctx)),
    ]
    return estimate_tokens(messages, tool_schemas_for(ctx))


def history(store: Store, info: ModelInfo) -> tuple[PastCalls, str]:
    """The past calls an estimate of ``info`` goes by, and whose they are: the model's
    own completed runs, else those of its owner's other models on the same AI model."""
    own = past_calls(store, [info.id])
    if own.calls:
        return own, "the model's"
    with store.session() as session:
        siblings = session.scalars(
            select(TradingModel.id).where(
                TradingModel.owner_id == info.owner_id,
                TradingModel.ai_model_id == info.ai_model_id,
                TradingModel.id != info.id,
            )
        ).all()
    return past_calls(store, list(siblings)), f"other {info.ai_model_id} models'"


def estimate_run(
    store: Store, info: ModelInfo, calendar: list[datetime], snapshot: RunSnapshot
) -> Estimate:
    """The prediction for a run of ``info`` over ``calendar`` (its decision steps) with
    ``snapshot`` (see the module's docstring)."""
    config = snapshot.model
    steps = len(calendar)
    period = (calendar[0], calendar[-1])
    local = None
    if is_policy(config.ai_model_id):
        local = "an offline baseline: its calls are local, costing nothing and using no tokens"
    elif snapshot.replay_of is not None:
        local = f"a replay of run {snapshot.replay_of}: answered from its record, no calls"
    if local is not None:
        nothing = (0, 0, 0, 0.0, 0, local, local, local)
        return Estimate(config.name, config.ai_model_id, steps, period, *nothing, snapshot.budget)
    settings = llm_settings(config.ai_model_id, config.parameters)
    prompt_first = first_prompt(snapshot, snapshot.index(store), calendar[0])
    past, whose = history(store, info)
    if past.calls and past.steps:
        calls = round(steps * past.calls / past.steps)
        prompt = round(calls * past.prompt_tokens / past.calls)
        completion = round(calls * past.completion_tokens / past.calls)
        source = f"{whose} {past.runs} completed run(s): {past.calls} calls over {past.steps} steps"
        calls_basis = f"{past.calls / past.steps:.2f} calls a step, from {source}"
        tokens_basis = (
            f"{past.prompt_tokens / past.calls:.0f} prompt and "
            f"{past.completion_tokens / past.calls:.0f} completion tokens a call, from {source}"
        )
    else:
        answer = int(settings.params.get("max_tokens") or DEFAULT_MAX_TOKENS)
        calls = steps * CALLS_PER_STEP
        prompt, completion = calls * prompt_first, calls * answer
        calls_basis = (
            f"no past runs: {CALLS_PER_STEP} calls a step assumed (one acting, one ending "
            f"the step; at most {settings.params['max_steps']})"
        )
        tokens_basis = (
            f"no past runs: each call's prompt as the first step's rendered prompt "
            f"({prompt_first} tokens, counted {TOKENIZER}; later calls of a step also carry "
            f"tool results) and each answer its full answer budget ({answer} tokens)"
        )
    cost = settings.cost(prompt, completion)
    free = settings.provider.free and not (settings.input_per_mtok or settings.output_per_mtok)
    cost_basis = (
        f"${settings.input_per_mtok:g} / ${settings.output_per_mtok:g} per million prompt / "
        f"completion tokens: {config.ai_model_id}'s " + ("free local provider" if free else "price")
    )
    return Estimate(
        config.name,
        config.ai_model_id,
        steps,
        period,
        calls,
        prompt,
        completion,
        cost,
        prompt_first,
        calls_basis,
        tokens_basis,
        cost_basis,
        snapshot.budget,
    )
