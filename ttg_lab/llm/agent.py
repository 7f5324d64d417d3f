"""The trading agent on the LLM path: a LangChain agent whose tools are the MCP services.

One :class:`ChatAgent` per run. On its first step it opens in-memory MCP sessions to the
four services (bound to the run's own context), loads their tools and builds the agent
once; later steps reuse both. A step is one conversation: the system prompt with what is
known at the clock, the opening message, then model calls and tool calls until the model
answers without tools (or the call limit ends the step). Every model call is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import (
    AgentMiddleware,
    ModelCallLimitMiddleware,
    ModelRequest,
    ModelResponse,
    ModelRetryMiddleware,
    ToolCallRequest,
    hook_config,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.tools import load_mcp_tools
from langgraph.types import Command

from ttg_lab.engine.budget import Budget, CallPrice, run_spend
from ttg_lab.engine.context import RunContext
from ttg_lab.errors import TTGLabError
from ttg_lab.llm.limits import step_deadline
from ttg_lab.llm.messages import estimate_tokens, plain_message
from ttg_lab.llm.prompt import PROMPT_VERSION, step_message, system_prompt
from ttg_lab.llm.providers import ToolModeConfig
from ttg_lab.llm.recording import CallRecorder
from ttg_lab.llm.sections import reasoning_entries
from ttg_lab.mcp_services.memory import build_services, memory_session
from ttg_lab.store.database import Store
from ttg_lab.tools.registry import TRADE_TOOLS

PERMANENT_HTTP = frozenset(range(400, 500)) - {408, 409, 429}
SWITCH_AFTER = 2
"""Consecutive answers whose native tool calls all failed to parse before ``auto`` moves
a run to JSON actions."""
MODEL_RETRIES = 2
"""Retries of a failed model call (on top of the provider client's own retries)."""


def is_transient(error: Exception) -> bool:
    """Worth retrying: garbage answers, dropped connections and server errors; not our own
    deliberate errors (a replay miss) nor refusals such as a bad key (HTTP 4xx), which
    would fail the same way again."""
    if isinstance(error, TTGLabError):
        return False
    return getattr(error, "status_code", None) not in PERMANENT_HTTP


class StepTimeoutError(TTGLabError):
    """A decision step took longer than its time limit."""


class ModelCallError(TTGLabError):
    """The model gave no usable answer (its retries spent, or a permanent refusal)."""


class NamedModelFailures(AgentMiddleware):
    """Outermost around model calls: a call that still fails says which model failed and
    whether it was retried, so a run's error never reads as a bare ``IndexError``."""

    def __init__(self, model_id: str) -> None:
        super().__init__()
        self.model_id = model_id

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        try:
            return await handler(request)
        except TTGLabError:
            raise
        except Exception as exc:
            tried = f"after {MODEL_RETRIES} retries" if is_transient(exc) else "not retried"
            raise ModelCallError(
                f"{self.model_id} gave no usable answer ({tried}): {type(exc).__name__}: {exc}"
            ) from exc


class OrderedTrading(AgentMiddleware):
    """Runs the tool calls of one model answer one after another, in the model's order
    (the agent graph would run them concurrently, and the order of fills matters for
    cash), and gives every trade an order id derived from the step and the call id, so a
    repeated call (a retry, a replayed message) can never trade twice."""

    def __init__(self, context: RunContext) -> None:
        super().__init__()
        self.context = context
        self._next: dict[str, int] = {}
        self._turns: asyncio.Condition | None = None

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        call = request.tool_call
        if call["name"] in TRADE_TOOLS and isinstance(call.get("args"), dict):
            own = call["args"].get("order_id")
            order_id = f"s{self.context.step_index}-{own or call.get('id') or 'x'}"[:100]
            call = {**call, "args": {**call["args"], "order_id": order_id}}
            request = request.override(tool_call=call)
        key, position = self._position(request)
        key = f"{self.context.step_index}:{key}"
        if self._turns is None:
            self._turns = asyncio.Condition()
        turns = self._turns
        async with turns:
            await turns.wait_for(lambda: self._next.get(key, 0) >= position)
        try:
            return await handler(request)
        finally:
            async with turns:
                self._next[key] = max(self._next.get(key, 0), position + 1)
                turns.notify_all()

    def forget(self) -> None:
        """Drop the turn counters of earlier steps."""
        self._next.clear()

    @staticmethod
    def _position(request: ToolCallRequest) -> tuple[str, int]:
        """Which model answer the call belongs to, and its place in that answer."""
        call_id = request.tool_call.get("id")
        messages = (
            (request.state or {}).get("messages", []) if isinstance(request.state, dict) else []
        )
        for message in reversed(messages):
            if isinstance(message, AIMessage):
                ids = [c.get("id") for c in message.tool_calls]
                if call_id in ids:
                    return f"{message.id}:{len(messages)}", ids.index(call_id)
        return str(call_id), 0


class MalformedCallsGoBack(AgentMiddleware):
    """When a model answers only with malformed tool calls, send it back to the model:
    the agent factory turns them into error messages the model reads and can correct."""

    @hook_config(can_jump_to=["model"])
    async def aafter_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.invalid_tool_calls and not last.tool_calls:
            return {"jump_to": "model"}
        return None


class ToolModes(AgentMiddleware):
    """Which model answers each call: the run's client (native tool calls) or the same
    client in JSON-action mode. Under ``auto`` a run starts native and, after
    :data:`SWITCH_AFTER` consecutive answers whose tool calls all failed to parse, uses
    JSON actions for the rest of the run. The switch follows only the answers, so a
    replay (answers from the record) switches at the same call."""

    def __init__(self, model: BaseChatModel, config: ToolModeConfig, context: RunContext) -> None:
        super().__init__()
        self.model = model
        self.style = config.response_format
        self._json_model: BaseChatModel | None = None
        self.mode = config.start
        self.switches = config.switches and config.start == "native"
        self.context = context
        self.failures = 0

    def json_model(self) -> BaseChatModel:
        """The client in JSON-action mode, built (and its module, which imports the OpenAI
        client, loaded) only once a call needs it: a native run never pays for it."""
        if self._json_model is None:
            from ttg_lab.llm.json_actions import JsonActionModel

            self._json_model = JsonActionModel(inner=self.model, style=self.style)
        return self._json_model

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        if self.mode == "json":
            request = request.override(model=self.json_model())
        response = await handler(request)
        if self.switches and self.mode == "native":
            self._observe(response)
        return response

    def _observe(self, response: ModelResponse) -> None:
        last = next((m for m in reversed(response.result) if isinstance(m, AIMessage)), None)
        if last is None:
            return
        if last.invalid_tool_calls and not last.tool_calls:
            self.failures += 1
        elif last.tool_calls:
            self.failures = 0
        if self.failures >= SWITCH_AFTER:
            self.mode = "json"
            self.context.record.events.append(
                (
                    "mode",
                    f"tool mode: {self.failures} answers in a row had only malformed native "
                    "tool calls; JSON actions from here on",
                )
            )


class BudgetGuard(AgentMiddleware):
    """Before every model call (each retry too): the call is not made when the run's
    spend so far plus the call's worst case would pass the run's budget; the
    :class:`~ttg_lab.engine.budget.BudgetExceededError` ends the step uncommitted."""

    def __init__(self, store: Store, run_id: int, budget: Budget, price: CallPrice) -> None:
        super().__init__()
        self.store = store
        self.run_id = run_id
        self.budget = budget
        self.price = price

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        messages: list[BaseMessage] = [
            *([request.system_message] if request.system_message else []),
            *request.messages,
        ]
        worst = self.price.worst_case(estimate_tokens(messages, request.tools))
        self.budget.check(run_spend(self.store, self.run_id), worst)
        return await handler(request)


class ChatAgent:
    """Runs decision steps of one run through a LangChain agent over MCP tools."""

    def __init__(
        self,
        model: BaseChatModel,
        recorder: CallRecorder,
        snapshot_model: dict[str, Any],
        max_steps: int = 10,
        step_timeout: float = 600.0,
        retry_delay: float = 1.0,
        tools: ToolModeConfig | None = None,
        guard: BudgetGuard | None = None,
        prompt_version: str | None = PROMPT_VERSION,
    ) -> None:
        self.model = model
        self.prompt_version = prompt_version
        self.guard = guard
        self.tool_modes = tools or ToolModeConfig()
        self.recorder = recorder
        self.snapshot_model = snapshot_model
        self.max_steps = max_steps
        self.step_timeout = step_timeout
        self.retry_delay = retry_delay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._stack: AsyncExitStack | None = None
        self._graph: Any = None
        self.tools: list[BaseTool] = []

    def run_step(self, ctx: RunContext) -> None:
        """One decision step. The agent's event loop lives in a thread of its own, so a run
        works the same from a script, a notebook (whose loop is already running) or a
        background thread."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttg-agent")
        self._worker.submit(self._in_loop, ctx).result()

    def _in_loop(self, ctx: RunContext) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._step(ctx))

    def close(self) -> None:
        """Close the MCP sessions, the event loop and its thread (end of run)."""
        if self._worker is None:
            return
        self._worker.submit(self._close_loop).result()
        self._worker.shutdown()
        self._worker = None

    def _close_loop(self) -> None:
        if self._loop is None:
            return
        if self._stack is not None:
            self._loop.run_until_complete(self._stack.aclose())
        client = getattr(self.model, "http_async_client", None)
        if client is not None:  # its connections belong to this loop
            self._loop.run_until_complete(client.aclose())
        self._loop.close()
        self._loop = None

    async def _open(self, ctx: RunContext) -> None:
        self._stack = AsyncExitStack()
        tools: list[BaseTool] = []
        for service, server in build_services(lambda: ctx).items():
            session = await self._stack.enter_async_context(memory_session(server))
            tools += await load_mcp_tools(session, server_name=service)
        self.tools = tools
        self.ordering = OrderedTrading(ctx)
        # after_model hooks run last-listed first: MalformedCallsGoBack must come before
        # the call limit, or its jump back to the model skips the limit's call counter
        middleware: list[Any] = [
            NamedModelFailures(str(self.snapshot_model.get("ai_model_id", "the model"))),
            ModelRetryMiddleware(
                max_retries=MODEL_RETRIES,
                retry_on=is_transient,
                initial_delay=self.retry_delay,
                on_failure="error",
                jitter=False,
            ),
            ToolModes(self.model, self.tool_modes, ctx),
            *([self.guard] if self.guard is not None else []),
            self.recorder,
            MalformedCallsGoBack(),
            ModelCallLimitMiddleware(run_limit=self.max_steps, exit_behavior="end"),
            self.ordering,
        ]
        self._graph = create_agent(self.model, tools, middleware=middleware)

    async def _step(self, ctx: RunContext) -> None:
        if self._graph is None:
            await self._open(ctx)
        self.ordering.forget()
        start = {
            "clock": ctx.clock.isoformat(sep=" "),
            "cash": ctx.portfolio.cash,
            "positions": ctx.portfolio.snapshot(),
        }
        opening: list[BaseMessage] = [
            SystemMessage(system_prompt(ctx, self.snapshot_model, self.prompt_version)),
            HumanMessage(step_message(ctx)),
        ]
        try:
            with step_deadline(self.step_timeout):  # waits for a provider's slot end there
                result = await asyncio.wait_for(
                    self._graph.ainvoke(
                        {"messages": opening}, config={"recursion_limit": 4 * self.max_steps + 10}
                    ),
                    timeout=self.step_timeout,
                )
        except TimeoutError:
            raise StepTimeoutError(
                f"decision step exceeded its time limit of {self.step_timeout:g} s"
            ) from None
        messages: list[BaseMessage] = result["messages"]
        ctx.record.messages.extend(plain_message(m) for m in messages[1:])
        ctx.record.reasoning.extend(reasoning_entries(ctx, messages, start))
