"""Recorded LLM calls: every request and answer stored with tokens, latency and cost,
and a replay mode that answers from the record with no network at all.

The recorder is a LangChain agent middleware around each model call. Calls are written
when they happen, in their own transaction, so the spend of a step that crashed still
counts (as wasted, see :mod:`ttg_lab.store.usage`). Replay looks each call up by (step,
call number) among the calls of the attempt that committed that step and checks its
request fingerprint: a missing or different call is a :class:`ReplayError`, never a
silent live call.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, BaseMessage
from sqlalchemy import select

from ttg_lab.engine.context import StepRecord
from ttg_lab.errors import TTGLabError
from ttg_lab.llm.messages import (
    dump_message,
    estimate_answer_tokens,
    estimate_tokens,
    load_message,
    plain_message,
    request_fingerprint,
)
from ttg_lab.secrets import redact
from ttg_lab.store.database import Store
from ttg_lab.store.schema import CallStatus, LLMCall, RunStep
from ttg_lab.store.usage import served_step

CostFn = Callable[[int, int], float]


class ReplayError(TTGLabError):
    """A replayed run asked for a call the record does not have (or not in that form)."""


class CallCutOffError(TTGLabError):
    """A model call cancelled before its answer came (what its record says)."""


@dataclass
class RecordedCall:
    fingerprint: str
    response: dict[str, Any]


def load_record(store: Store, run_id: int) -> dict[tuple[int, int], RecordedCall]:
    """The calls of a run's committed steps, by (step, call number): each step's calls
    from the attempt that committed it (never those of a step lost and done again)."""
    with store.session() as session:
        rows = session.execute(
            select(
                LLMCall.step_index,
                LLMCall.call_index,
                LLMCall.request_fingerprint,
                LLMCall.response,
            )
            .join(RunStep, served_step())
            .where(LLMCall.run_id == run_id, LLMCall.status != "error")
        ).all()
    if not rows:
        raise ReplayError(f"run {run_id} has no recorded LLM calls to replay")
    return {(s, c): RecordedCall(fp, resp) for s, c, fp, resp in rows}


def tool_mode_of(request: ModelRequest) -> str:
    """How the model of ``request`` calls tools: ``json`` for JSON actions, else native."""
    return str(getattr(request.model, "tool_mode", "native"))


def read_by_server(error: Exception | None) -> bool:
    """Whether a failed call's prompt was likely read (and billed) by the server: a call
    timed out or cut off waiting for its answer. A refused request (an HTTP error such as
    400 or 429) was not, and counts nothing."""
    if isinstance(error, CallCutOffError):
        return True
    openai = sys.modules.get("openai")  # loaded whenever an OpenAI-compatible model ran
    return openai is not None and isinstance(error, openai.APITimeoutError)


def token_counts(
    messages: list[BaseMessage],
    tools: list[Any],
    answer: AIMessage | None,
    error: Exception | None = None,
) -> tuple[int, int, bool]:
    """Prompt and completion tokens of a call, and whether they are our estimate: the
    server's usage when the answer has it; else (some OpenAI-compatible servers send
    none) :func:`~ttg_lab.llm.messages.estimate_tokens` of the request and the answer,
    so spend and token caps still count the call. A call that timed out counts the
    estimate of its prompt (its answer, unseen, counts nothing)."""
    if answer is None:
        if read_by_server(error):
            return estimate_tokens(messages, tools), 0, True
        return 0, 0, False
    usage = answer.usage_metadata
    if usage is None:
        return estimate_tokens(messages, tools), estimate_answer_tokens(answer), True
    return int(usage.get("input_tokens", 0) or 0), int(usage.get("output_tokens", 0) or 0), False


class CallPosition(Protocol):
    """Where a call belongs: a run's step (a RunContext) or a chat message."""

    step_index: int
    record: StepRecord


class CallRecorder(AgentMiddleware):
    """Records (or replays) every model call of one run."""

    def __init__(
        self,
        store: Store,
        run_id: int,
        attempt: int,
        model_id: str,
        sampling: dict[str, Any],
        cost: CostFn,
        context: CallPosition,
        replay: dict[tuple[int, int], RecordedCall] | None = None,
        chat_session_id: int | None = None,
    ) -> None:
        super().__init__()
        self.chat_session_id = chat_session_id
        self.store = store
        self.run_id = run_id
        self.attempt = attempt
        self.model_id = model_id
        self.sampling = sampling
        self.cost = cost
        self.context = context
        self.replay = replay
        self._step = -1
        self._call = 0
        self._mode = "native"

    def _next_call(self) -> int:
        """The number of this call in its step: answered calls so far + 1 (a failed call
        and its retry share the number, so a replay sees the same numbering)."""
        if self._step != self.context.step_index:
            self._step, self._call = self.context.step_index, 0
        return self._call + 1

    def _begin(self, request: ModelRequest) -> tuple[int, str, list[BaseMessage], float]:
        messages: list[BaseMessage] = [
            *([request.system_message] if request.system_message else []),
            *request.messages,
        ]
        call = self._next_call()
        self._mode = tool_mode_of(request)
        fingerprint = request_fingerprint(
            self.model_id, messages, request.tools, self.sampling, self._mode
        )
        return call, fingerprint, messages, time.perf_counter()

    def _from_record(
        self,
        request: ModelRequest,
        call: int,
        fingerprint: str,
        messages: list[BaseMessage],
        started: float,
    ) -> ModelResponse:
        answer = self._replayed(call, fingerprint)
        self._write(call, fingerprint, messages, request.tools, answer, started, "replayed")
        self._call = call
        return ModelResponse(result=[answer])

    def _done(
        self,
        request: ModelRequest,
        response: ModelResponse,
        call: int,
        fingerprint: str,
        messages: list[BaseMessage],
        started: float,
    ) -> ModelResponse:
        last = next((m for m in reversed(response.result) if isinstance(m, AIMessage)), None)
        if last is not None:
            self._write(call, fingerprint, messages, request.tools, last, started, "ok")
        self._call = call
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        call, fingerprint, messages, started = self._begin(request)
        if self.replay is not None:
            return self._from_record(request, call, fingerprint, messages, started)
        try:
            response = await handler(request)
        except Exception as exc:
            self._write(call, fingerprint, messages, request.tools, None, started, "error", exc)
            raise
        except asyncio.CancelledError:
            # cut off by the step's time limit: the server got the request and may bill it
            cut = CallCutOffError("cut off before the answer came (the step's time limit)")
            self._write(call, fingerprint, messages, request.tools, None, started, "error", cut)
            raise
        return self._done(request, response, call, fingerprint, messages, started)

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelResponse:
        """The same, for agents driven synchronously (the analyst)."""
        call, fingerprint, messages, started = self._begin(request)
        if self.replay is not None:
            return self._from_record(request, call, fingerprint, messages, started)
        try:
            response = handler(request)
        except Exception as exc:
            self._write(call, fingerprint, messages, request.tools, None, started, "error", exc)
            raise
        return self._done(request, response, call, fingerprint, messages, started)

    def _replayed(self, call: int, fingerprint: str) -> AIMessage:
        step = self.context.step_index
        recorded = self.replay.get((step, call)) if self.replay else None
        if recorded is None:
            raise ReplayError(
                f"no recorded LLM call for step {step}, call {call}: replay stops "
                "here instead of calling the network"
            )
        if recorded.fingerprint != fingerprint:
            raise ReplayError(
                f"step {step}, call {call} asks something the record does not "
                "have (prompt, data or tools changed since the recording)"
            )
        message = load_message(recorded.response)
        assert isinstance(message, AIMessage)
        return message

    def _write(
        self,
        call: int,
        fingerprint: str,
        messages: list[BaseMessage],
        tools: list[Any],
        answer: AIMessage | None,
        started: float,
        status: CallStatus,
        error: Exception | None = None,
    ) -> None:
        prompt_tokens, completion_tokens, estimated = token_counts(messages, tools, answer, error)
        cost = 0.0 if status == "replayed" else self.cost(prompt_tokens, completion_tokens)
        record = self.context.record
        record.llm_calls += 1
        record.prompt_tokens += prompt_tokens
        record.completion_tokens += completion_tokens
        record.llm_cost += cost
        row = dict(
            run_id=self.run_id,
            chat_session_id=self.chat_session_id,
            step_index=self.context.step_index,
            attempt=self.attempt,
            call_index=call,
            ai_model_id=self.model_id,
            request_fingerprint=fingerprint,
            request={
                "messages": [plain_message(m) for m in messages],
                "tools": sorted(t.name if hasattr(t, "name") else str(t) for t in tools),
                "sampling": self.sampling,
                "tool_mode": self._mode,
                **({"token_counts": "estimated"} if estimated else {}),
            },
            response=dump_message(answer) if answer is not None else {},
            tool_calls=[
                {"id": c.get("id"), "name": c["name"], "args": c["args"]}
                for c in (answer.tool_calls if answer is not None else [])
            ],
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=(time.perf_counter() - started) * 1000,
            cost=cost,
            status=status,
            error=redact(f"{type(error).__name__}: {error}")[:4000] if error else None,
        )

        def insert() -> None:
            with self.store.session() as session:
                session.add(LLMCall(**row))

        self.store.retrying(insert, f"recording LLM call {call} of step {self.context.step_index}")
