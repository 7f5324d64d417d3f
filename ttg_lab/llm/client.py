"""The OpenAI-compatible client, with the known quirks of real servers handled once.

Outgoing: an assistant message without text is sent with ``content: ""`` (servers such
as llama-cpp-python refuse ``null`` with HTTP 500); a ``tool_choice`` form the server
refuses is sent as the next weaker one (object form -> ``"required"`` -> ``"auto"``),
remembered for the client's later calls; each request's timeout follows the model's
measured speed, bounded by the step's time limit. Incoming: tool arguments sent as a
JSON string inside the JSON string, or HTML-escaped, are decoded. A context window
exceeded trims the step's oldest tool results once and retries; if that is not enough
the call fails with :class:`ContextOverflowError`, which names the reason.

Retries of a request are decided here, and only here (the SDK is told not to retry):
timeouts, dropped connections, HTTP 408/409/429 and 5xx are sent again up to
``retries`` times, after the server's ``Retry-After`` (seconds or an HTTP date) or else
an exponential backoff with jitter, never past the step's time limit. Each request holds
a slot of the provider's shared limiter (:mod:`ttg_lab.llm.limits`); a 429 cools the
whole endpoint down. The waits of an answer are kept in its ``response_metadata``
(``retries``, and ``queued_s`` spent waiting for slots), so the recorded call shows them;
a rate limit that outlasts the retries or the step fails with :class:`RateLimitedError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import json
import random
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field, PrivateAttr

from ttg_lab.errors import TTGLabError
from ttg_lab.llm.limits import ProviderLimiter, time_left

WEAKER_CHOICE: dict[str, str] = {"object": "required", "required": "auto"}
"""The form of ``tool_choice`` to fall back to when a server refuses one."""

OVERFLOW = re.compile(
    r"context[ _-]?(length|window|size)|maximum context|n_ctx|too many tokens|"
    r"prompt is too long|exceeds? the context",
    re.IGNORECASE,
)
"""Error texts servers give for a prompt longer than the model's context window."""

TRIMMED = "[trimmed: context window]"
"""What an oldest tool result reads once trimmed."""

ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|quot|amp|lt|gt|apos);")


FIRST_BACKOFF = 0.5
MAX_BACKOFF = 8.0
"""Seconds before the first retry without a ``Retry-After``, and the most; doubling."""


class ContextOverflowError(TTGLabError):
    """The step's conversation does not fit the model's context window, even trimmed."""


class RateLimitedError(TTGLabError):
    """The provider kept refusing with a rate limit (429, or 503 with ``Retry-After``)
    beyond the retries allowed or the step's time limit."""


@dataclass(frozen=True)
class Retry:
    """One failed attempt of a request and the seconds waited before the next."""

    error: str  # "HTTP 429", "APITimeoutError", ...
    waited_s: float


def retry_after(headers: Any) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, ``retry-after`` in seconds
    or as an HTTP date (None when it says nothing readable)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            pass
    parsed = email.utils.parsedate_tz(headers.get("retry-after") or "")
    if parsed is None:
        return None
    return max(0.0, float(email.utils.mktime_tz(parsed)) - time.time())


def backoff(failures: int) -> float:
    """Exponential backoff with jitter for the ``failures``-th retry (from 1)."""
    doubled: float = FIRST_BACKOFF * 2.0 ** (failures - 1)
    return min(MAX_BACKOFF, doubled) * random.uniform(0.75, 1.0)


def is_throttled(error: Exception) -> bool:
    """A rate limit: HTTP 429, or 503 with a ``Retry-After`` (an overloaded server)."""
    status = getattr(error, "status_code", None)
    if status == 429:
        return True
    response = getattr(error, "response", None)
    return status == 503 and retry_after(getattr(response, "headers", None)) is not None


def retryable(error: Exception) -> bool:
    """What the OpenAI SDK would retry: timeouts, dropped connections, 408, 409, 429
    and 5xx, unless the server says ``x-should-retry: false`` (or true)."""
    if isinstance(error, openai.APIConnectionError):  # timeouts too
        return True
    if not isinstance(error, openai.APIStatusError):
        return False
    said = error.response.headers.get("x-should-retry")
    if said in ("true", "false"):
        return said == "true"
    return error.status_code in (408, 409, 429) or error.status_code >= 500


def loads_lenient(text: str) -> Any:
    """JSON from a model: HTML entities decoded (``&#39;``, ``&quot;``) and a JSON string
    holding JSON unwrapped (arguments double-encoded); ``ValueError`` if it is none."""
    candidates = [text]
    if ENTITY.search(text):
        candidates.insert(0, html.unescape(text))
    error: ValueError | None = None
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError as exc:
            error = error or exc
            continue
        while isinstance(value, str):  # double-encoded: "{\"symbol\": ...}"
            try:
                value = json.loads(html.unescape(value))
            except ValueError:
                break
        return value
    assert error is not None
    raise error


def decoded_arguments(raw: Any) -> Any:
    """Tool arguments as the JSON text of an object where they can be read as one; left
    as they came otherwise (the agent reports them as a malformed call)."""
    if isinstance(raw, dict):
        return json.dumps(raw)
    if not isinstance(raw, str):
        return raw
    try:
        value = loads_lenient(raw)
    except ValueError:
        return raw
    return json.dumps(value) if isinstance(value, dict) else raw


def choice_form(choice: Any) -> str | None:
    """``"object"`` for the form naming one function, else the string itself."""
    if isinstance(choice, dict):
        return "object"
    return choice if isinstance(choice, str) else None


def trim_tool_results(messages: list[BaseMessage]) -> list[BaseMessage] | None:
    """The conversation with its oldest tool results cut (all but the latest; the only
    one if there is one), or None when there is nothing left to cut."""
    places = [
        i for i, m in enumerate(messages) if isinstance(m, ToolMessage) and m.content != TRIMMED
    ]
    if not places:
        return None
    cut = places[:-1] or places
    trimmed = list(messages)
    for i in cut:
        trimmed[i] = messages[i].model_copy(update={"content": TRIMMED})
    return trimmed


class TolerantChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` that copes with the quirks of real OpenAI-compatible servers."""

    tool_choice_wanted: str | None = None
    """``tool_choice`` to send whenever tools are offered (None: the server's default)."""
    tool_choice_refused: frozenset[str] = frozenset()
    """Forms the provider is known to refuse; the client adds those a server refuses."""
    step_timeout: float = 900.0
    """No request waits longer than a decision step may take."""
    retries: int = 0
    """Times a failed request is sent again (timeouts, 429, 5xx); the SDK retries none."""
    limiter: ProviderLimiter | None = Field(default=None, exclude=True)
    """The provider's limits shared by the process (None: unlimited)."""

    _refused: set[str] = PrivateAttr(default_factory=set)
    _sent_choice: str | None = PrivateAttr(default=None)
    _seconds_per_token: float | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        self._refused = set(self.tool_choice_refused)

    # -- outgoing -------------------------------------------------------------------------

    def _get_request_payload(
        self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = super()._get_request_payload(input_, stop=stop, **kwargs)
        for message in payload.get("messages", []):
            if message.get("role") == "assistant" and message.get("content") is None:
                message["content"] = ""
        self._sent_choice = None
        if payload.get("tools"):
            choice = payload.get("tool_choice") or self.tool_choice_wanted
            while choice_form(choice) in self._refused:
                choice = WEAKER_CHOICE.get(choice_form(choice) or "", "auto")
            if choice is not None:
                payload["tool_choice"] = choice
                self._sent_choice = choice_form(choice)
        # langchain-openai names the answer budget max_completion_tokens, which
        # llama-cpp-python's server (and servers older than that name) silently ignores,
        # so the model writes towards its context limit; every server reads max_tokens
        budget = payload.pop("max_completion_tokens", None) or payload.get("max_tokens")
        if budget is not None:
            payload["max_tokens"] = budget
        payload["timeout"] = self.request_timeout_for(budget)
        return payload

    def request_timeout_for(self, max_tokens: int | None) -> float:
        """The configured timeout, longer for a model measured too slow to write its whole
        answer budget in it (with room to spare), never beyond the step's limit."""
        base = float(self.request_timeout or 60.0)  # type: ignore[arg-type]
        if self._seconds_per_token is None or not max_tokens:
            return min(base, self.step_timeout)
        needed = 1.5 * max_tokens * self._seconds_per_token
        return min(max(base, needed), self.step_timeout)

    # -- incoming -------------------------------------------------------------------------

    def _create_chat_result(
        self,
        response: dict[str, Any] | openai.BaseModel,
        generation_info: dict[str, Any] | None = None,
    ) -> ChatResult:
        if isinstance(response, openai.BaseModel):
            response = response.model_dump(warnings=False)
        if isinstance(response, dict):
            for choice in response.get("choices") or []:
                message = choice.get("message") or {}
                for call in message.get("tool_calls") or []:
                    function = call.get("function") or {}
                    if "arguments" in function:
                        function["arguments"] = decoded_arguments(function["arguments"])
        return super()._create_chat_result(response, generation_info)

    def _measure(self, result: ChatResult, seconds: float) -> None:
        """Note the slowest speed seen: seconds per completion token (prompt time too)."""
        said = result.generations[0].message if result.generations else None
        usage = said.usage_metadata if isinstance(said, AIMessage) else None
        tokens = usage["output_tokens"] if usage else 0
        if tokens > 0:
            rate = seconds / tokens
            self._seconds_per_token = max(rate, self._seconds_per_token or 0.0)

    # -- recovery -------------------------------------------------------------------------

    def _recover(
        self, error: openai.APIStatusError, messages: list[BaseMessage], trimmed: bool
    ) -> tuple[list[BaseMessage], bool]:
        """What to send again after a refusal, or the error to fail with."""
        text = str(error)
        sent = self._sent_choice
        if sent in WEAKER_CHOICE and re.search(r"tool.?choice", text, re.IGNORECASE):
            self._refused.add(sent)
            return messages, trimmed
        if OVERFLOW.search(text):
            shorter = None if trimmed else trim_tool_results(messages)
            if shorter is None:
                raise ContextOverflowError(
                    f"the step's conversation exceeds {self.model_name}'s context window"
                    f"{' even with its oldest tool results trimmed' if trimmed else ''} "
                    f"(HTTP {error.status_code}: {text[:300]})"
                ) from error
            return shorter, True
        raise error

    def _next_wait(self, error: Exception, retries: list[Retry]) -> float | None:
        """Seconds to wait before sending the request again, or None to give it up
        (not worth retrying, or retries spent); a rate limit given up, or one that would
        wait past the step's time limit, raises :class:`RateLimitedError`."""
        if not retryable(error):
            return None
        throttled = is_throttled(error)
        response = getattr(error, "response", None)
        asked = retry_after(getattr(response, "headers", None))
        wait = asked if asked is not None else backoff(len(retries) + 1)
        status = getattr(error, "status_code", None)
        label = f"HTTP {status}" if status is not None else type(error).__name__
        if throttled and self.limiter is not None:
            self.limiter.cool_down(wait)
        left = time_left(self.step_timeout)
        if len(retries) < self.retries and wait < left:
            retries.append(Retry(label, round(wait, 3)))
            return wait
        if not throttled:
            return None
        why = (
            f"all {len(retries) + 1} attempts"
            if len(retries) >= self.retries
            else f"{len(retries) + 1} attempts, and its Retry-After of {wait:g} s is past "
            f"the step's time limit ({max(left, 0.0):.1f} s left)"
        )
        waited = sum(r.waited_s for r in retries)
        raise RateLimitedError(
            f"{self.model_name} is rate limited: {label} to {why} (waited {waited:.1f} s "
            f"in all): {str(error)[:300]}"
        ) from error

    def _slot(self) -> AbstractAsyncContextManager[None]:
        if self.limiter is None:
            return nullcontext()
        return self.limiter.slot(max(0.0, time_left(self.step_timeout)))

    @contextmanager
    def _slot_blocking(self) -> Iterator[None]:
        if self.limiter is None:
            yield
            return
        with self.limiter.slot_blocking(max(0.0, time_left(self.step_timeout))):
            yield

    def _answered(
        self, result: ChatResult, started: float, retries: list[Retry], queued: float
    ) -> ChatResult:
        """The answer, its model's speed noted (from when the request went out, not from
        when it began to wait for a slot) and its waits kept in its metadata."""
        self._measure(result, time.perf_counter() - started)
        if result.generations:
            metadata = result.generations[0].message.response_metadata
            if retries:
                metadata["retries"] = [asdict(r) for r in retries]
            if queued >= 0.001:
                metadata["queued_s"] = round(queued, 3)  # waiting for the provider's slots
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        trimmed = False
        recoveries = 0
        retries: list[Retry] = []
        queued = 0.0
        while True:
            asked = time.perf_counter()
            try:
                async with self._slot():
                    started = time.perf_counter()
                    queued += started - asked
                    result = await super()._agenerate(messages, stop, run_manager, **kwargs)
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                wait = self._next_wait(exc, retries)
                if wait is not None:
                    await asyncio.sleep(wait)
                    continue
                if not isinstance(exc, openai.APIStatusError) or recoveries > len(WEAKER_CHOICE):
                    raise
                messages, trimmed = self._recover(exc, messages, trimmed)
                recoveries += 1
                continue
            return self._answered(result, started, retries, queued)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        trimmed = False
        recoveries = 0
        retries: list[Retry] = []
        queued = 0.0
        while True:
            asked = time.perf_counter()
            try:
                with self._slot_blocking():
                    started = time.perf_counter()
                    queued += started - asked
                    result = super()._generate(messages, stop, run_manager, **kwargs)
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                wait = self._next_wait(exc, retries)
                if wait is not None:
                    time.sleep(wait)
                    continue
                if not isinstance(exc, openai.APIStatusError) or recoveries > len(WEAKER_CHOICE):
                    raise
                messages, trimmed = self._recover(exc, messages, trimmed)
                recoveries += 1
                continue
            return self._answered(result, started, retries, queued)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """A streamed answer under the same limits and retries: a request that fails
        before its first piece is sent again (as the SDK would); once pieces came, an
        error ends the answer."""
        retries: list[Retry] = []
        while True:
            wait: float | None = None
            with self._slot_blocking():
                pieces = super()._stream(messages, stop, run_manager, **kwargs)
                try:
                    first = next(pieces, None)
                except (openai.APIStatusError, openai.APIConnectionError) as exc:
                    wait = self._next_wait(exc, retries)
                    if wait is None:
                        raise
                if wait is None:
                    if first is not None:
                        yield _noted(first, retries)
                        yield from pieces
                    return
            time.sleep(wait)  # the slot is given back while waiting

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """The same for an asynchronous stream."""
        retries: list[Retry] = []
        while True:
            wait: float | None = None
            async with self._slot():
                pieces = super()._astream(messages, stop, run_manager, **kwargs)
                try:
                    first = await anext(pieces, None)
                except (openai.APIStatusError, openai.APIConnectionError) as exc:
                    wait = self._next_wait(exc, retries)
                    if wait is None:
                        raise
                if wait is None:
                    if first is not None:
                        yield _noted(first, retries)
                        async for piece in pieces:
                            yield piece
                    return
            await asyncio.sleep(wait)


def _noted(piece: ChatGenerationChunk, retries: list[Retry]) -> ChatGenerationChunk:
    """The first piece of a streamed answer, carrying the request's retries."""
    if retries:
        piece.message.response_metadata["retries"] = [asdict(r) for r in retries]
    return piece
