"""The OpenAI-compatible client, with the known quirks of real servers handled once.

Outgoing: an assistant message without text is sent with ``content: ""`` (servers such
as llama-cpp-python refuse ``null`` with HTTP 500); a ``tool_choice`` form the server
refuses is sent as the next weaker one (object form -> ``"required"`` -> ``"auto"``),
remembered for the client's later calls; each request's timeout follows the model's
measured speed, bounded by the step's time limit. Incoming: tool arguments sent as a
JSON string inside the JSON string, or HTML-escaped, are decoded. A context window
exceeded trims the step's oldest tool results once and retries; if that is not enough
the call fails with :class:`ContextOverflowError`, which names the reason.
"""

from __future__ import annotations

import html
import json
import re
import time
from typing import Any

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_openai import ChatOpenAI
from pydantic import PrivateAttr

from ttg_lab.errors import TTGLabError

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


class ContextOverflowError(TTGLabError):
    """The step's conversation does not fit the model's context window, even trimmed."""


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

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        trimmed = False
        for _ in range(len(WEAKER_CHOICE) + 2):
            started = time.perf_counter()
            try:
                result = await super()._agenerate(messages, stop, run_manager, **kwargs)
            except openai.APIStatusError as exc:
                messages, trimmed = self._recover(exc, messages, trimmed)
                continue
            self._measure(result, time.perf_counter() - started)
            return result
        return await super()._agenerate(messages, stop, run_manager, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        trimmed = False
        for _ in range(len(WEAKER_CHOICE) + 2):
            started = time.perf_counter()
            try:
                result = super()._generate(messages, stop, run_manager, **kwargs)
            except openai.APIStatusError as exc:
                messages, trimmed = self._recover(exc, messages, trimmed)
                continue
            self._measure(result, time.perf_counter() - started)
            return result
        return super()._generate(messages, stop, run_manager, **kwargs)
