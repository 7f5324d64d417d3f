"""An OpenAI-compatible chat-completions server that plays scripted LLM behaviour.

Tests start it on 127.0.0.1 (OS-chosen port) and point the real ``openai`` SDK or
``langchain_openai.ChatOpenAI`` at :attr:`OpenAIStubServer.base_url`. A *responder*
(any callable ``ChatRequest -> Reply``) decides every reply; :class:`Script` plays a
fixed list of replies in order. Replies are :class:`Text`, :class:`ToolCalls`, a
:class:`Fault` (HTTP errors, delays, garbage or truncated bodies, empty choices) or a
:class:`Raw` answer (a REAL recorded response of SmolLM2 on llama-cpp-python, from
``tests/fixtures/llm/smollm2/``). :class:`Quirks` switch on what real servers do to a
client, one switch per quirk (string or HTML-escaped arguments, ``content: null``
refused with HTTP 500, ``tool_choice`` forms refused, a context window, no tools at all,
slow answers).

Nothing here touches the network beyond the loopback interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeAlias

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

FaultKind = Literal["status", "delay", "garbage", "truncated", "empty_choices"]
_FAULT_KINDS: frozenset[str] = frozenset(
    {"status", "delay", "garbage", "truncated", "empty_choices"}
)

STUB_MODELS: tuple[str, ...] = ("stub-gpt-small", "stub-gpt-large")
"""Model ids listed by ``GET /v1/models`` (any model name is accepted for chat)."""


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class ChatRequest:
    """One ``POST /v1/chat/completions`` body as the server received it."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_choice: Any
    temperature: float | None
    max_tokens: int | None
    max_completion_tokens: int | None
    top_p: float | None
    stream: bool
    raw: dict[str, Any]
    call_number: int

    @classmethod
    def from_body(cls, body: dict[str, Any], call_number: int) -> ChatRequest:
        """Parse a decoded JSON request body."""
        return cls(
            model=str(body.get("model", "")),
            messages=list(body.get("messages") or []),
            tools=list(body.get("tools") or []),
            tool_choice=body.get("tool_choice"),
            temperature=body.get("temperature"),
            max_tokens=body.get("max_tokens"),
            max_completion_tokens=body.get("max_completion_tokens"),
            top_p=body.get("top_p"),
            stream=bool(body.get("stream", False)),
            raw=body,
            call_number=call_number,
        )

    @property
    def include_usage(self) -> bool:
        """Whether a streaming request asked for a final usage chunk."""
        options = self.raw.get("stream_options") or {}
        return bool(options.get("include_usage"))

    @property
    def tool_names(self) -> list[str]:
        """Names of the function tools offered in this request."""
        return [str(t.get("function", {}).get("name", "")) for t in self.tools]


# ---------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Text:
    """A plain assistant message (``finish_reason: "stop"``)."""

    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class ToolCalls:
    """An assistant message calling tools (``finish_reason: "tool_calls"``).

    Each call is ``(name, arguments)``; a dict is JSON-encoded, a string is sent
    verbatim (so tests can send invalid or truncated JSON). Ids are
    ``call_<call_number>_<i>``.
    """

    calls: list[tuple[str, dict[str, Any] | str]]
    content: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Fault:
    """A misbehaving reply.

    * ``"status"``: HTTP ``status`` with an OpenAI-style JSON error body; optional
      ``retry_after`` seconds header (floats allowed) and ``should_retry``
      (``x-should-retry`` header, which the openai SDK obeys).
    * ``"delay"``: wait ``seconds``, then answer with ``then`` (default ``Text("ok")``).
    * ``"garbage"``: HTTP 200, ``application/json``, body that is not JSON.
    * ``"truncated"``: HTTP 200 with the JSON body cut off half way (streaming: a
      few chunks, then the stream ends without ``finish_reason`` or ``[DONE]``).
    * ``"empty_choices"``: HTTP 200 with ``choices: []`` (and a usage block).
    """

    kind: FaultKind
    status: int = 500
    message: str | None = None
    retry_after: float | None = None
    should_retry: bool | None = None
    seconds: float = 0.0
    then: Reply | None = None

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {sorted(_FAULT_KINDS)}")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"status fault needs a 4xx/5xx status, got {self.status}")
        if self.seconds < 0:
            raise ValueError("delay seconds must be >= 0")


RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "smollm2"
"""Real exchanges with SmolLM2-135M on llama-cpp-python (benchmarks/record_smollm2.py)."""


def recording(name: str) -> dict[str, Any]:
    """The recorded exchange ``name`` (request, status, response, seconds)."""
    data: dict[str, Any] = json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))
    return data


@dataclass(frozen=True)
class Raw:
    """An HTTP answer sent exactly as given (status and JSON body)."""

    status: int
    body: dict[str, Any]

    @classmethod
    def recorded(cls, name: str) -> Raw:
        """The real answer of recording ``name``."""
        data = recording(name)
        return cls(int(data["status"]), data["response"])


@dataclass(frozen=True)
class Quirks:
    """What a real server does that a client must cope with (all off by default)."""

    string_arguments: bool = False  # tool arguments as a JSON string holding the JSON
    html_escaped_arguments: bool = False  # tool arguments with &quot; for "
    content_null_500: bool = False  # an assistant message with content null -> HTTP 500
    refuse_tool_choice: frozenset[str] = frozenset()  # "required" / "object" -> HTTP 400
    context_window: int | None = None  # prompt + max_tokens above it -> HTTP 400
    no_tools: bool = False  # any request offering tools -> HTTP 400
    seconds_per_token: float = 0.0  # answers take this long per completion token
    answer_delay: float = 0.0  # every answer takes this long (a provider's fixed latency)
    too_many: int = 0  # the first N chat requests -> HTTP 429
    retry_after: str | None = "1"  # the 429's Retry-After header (seconds or an HTTP date)
    no_usage: bool = False  # answers carry no usage block (token counts unknown)


Reply: TypeAlias = Text | ToolCalls | Fault | Raw
Responder: TypeAlias = Callable[[ChatRequest], Reply]


class Script:
    """A responder that plays ``replies`` in order, one per request.

    When the replies run out it answers HTTP 500 ``"script exhausted at call N"``
    with ``x-should-retry: false`` so the client fails at once.
    """

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.used = 0
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Reply:
        with self._lock:
            index = self.used
            self.used += 1
        if index < len(self.replies):
            return self.replies[index]
        return Fault(
            "status",
            status=500,
            message=(
                f"script exhausted at call {request.call_number} "
                f"(script had {len(self.replies)} replies)"
            ),
            should_retry=False,
        )

    @property
    def remaining(self) -> int:
        """Replies not yet played."""
        return max(0, len(self.replies) - self.used)


class ScriptedLLM:
    """Decides each reply by calling ``responder`` (default: always ``Text("ok")``)."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder: Responder = responder or _always_ok

    def reply_to(self, request: ChatRequest) -> Reply:
        """Return the reply the responder chooses for ``request``."""
        reply = self.responder(request)
        if not isinstance(reply, Text | ToolCalls | Fault | Raw):
            raise TypeError(f"responder returned {type(reply).__name__}, expected a Reply")
        return reply


def _always_ok(_request: ChatRequest) -> Reply:
    return Text("ok")


# --------------------------------------------------------------------- token estimate


def estimate_tokens(text: str) -> int:
    """Rough token count used when a reply gives none: ``len(text) // 4``, at least 1."""
    return max(1, len(text) // 4)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                parts.append(json.dumps(part, default=str))
        return "".join(parts)
    return json.dumps(content, default=str)


def _prompt_text(request: ChatRequest) -> str:
    parts: list[str] = []
    for message in request.messages:
        parts.append(_content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            parts.append(str(function.get("name", "")) + str(function.get("arguments", "")))
    if request.tools:
        parts.append(json.dumps(request.tools))
    return "".join(parts)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# ------------------------------------------------------------------- response shaping


@dataclass
class _Completion:
    """A rendered assistant turn, ready to serialise in either format."""

    completion_id: str
    created: int
    model: str
    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: dict[str, int] = field(default_factory=dict)


def _render(
    reply: Text | ToolCalls, request: ChatRequest, quirks: Quirks | None = None
) -> _Completion:
    tool_calls: list[dict[str, Any]] = []
    quirks = quirks or Quirks()
    if isinstance(reply, ToolCalls):
        for i, (name, args) in enumerate(reply.calls):
            arguments = args if isinstance(args, str) else json.dumps(args, separators=(",", ":"))
            if quirks.html_escaped_arguments:
                arguments = html.escape(arguments)
            if quirks.string_arguments:
                arguments = json.dumps(arguments)
            tool_calls.append(
                {
                    "id": f"call_{request.call_number}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        content: str | None = reply.content or None
        finish = "tool_calls" if tool_calls else "stop"
    else:
        content = reply.content
        finish = "stop"
    completion_text = (content or "") + "".join(
        c["function"]["name"] + c["function"]["arguments"] for c in tool_calls
    )
    prompt = reply.prompt_tokens
    completion = reply.completion_tokens
    return _Completion(
        completion_id=f"chatcmpl-stub-{request.call_number}",
        created=int(time.time()),
        model=request.model,
        content=content,
        tool_calls=tool_calls,
        finish_reason=finish,
        usage=_usage(
            estimate_tokens(_prompt_text(request)) if prompt is None else prompt,
            estimate_tokens(completion_text) if completion is None else completion,
        ),
    )


def _completion_body(c: _Completion) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": c.content,
        "refusal": None,
        "annotations": [],
    }
    if c.tool_calls:
        message["tool_calls"] = c.tool_calls
    return {
        "id": c.completion_id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": c.finish_reason}
        ],
        "usage": c.usage,
    }


def _chunk(
    c: _Completion,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    *,
    include_usage: bool,
    usage: dict[str, int] | None = None,
) -> str:
    body: dict[str, Any] = {
        "id": c.completion_id,
        "object": "chat.completion.chunk",
        "created": c.created,
        "model": c.model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if include_usage:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


def _pieces(text: str, size: int = 0) -> list[str]:
    """Split ``text`` into stream fragments (words, or fixed ``size`` slices)."""
    if size:
        return [text[i : i + size] for i in range(0, len(text), size)]
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _stream_events(c: _Completion, include_usage: bool) -> list[str]:
    """All SSE events of a streamed completion, in OpenAI's order."""
    events = [_chunk(c, {"role": "assistant", "content": ""}, include_usage=include_usage)]
    events += [
        _chunk(c, {"content": piece}, include_usage=include_usage)
        for piece in _pieces(c.content or "")
    ]
    for index, call in enumerate(c.tool_calls):
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        events.append(_chunk(c, {"tool_calls": [head]}, include_usage=include_usage))
        for piece in _pieces(call["function"]["arguments"], size=8):
            delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            events.append(_chunk(c, delta, include_usage=include_usage))
    events.append(_chunk(c, {}, c.finish_reason, include_usage=include_usage))
    if include_usage:
        events.append(_chunk(c, None, include_usage=True, usage=c.usage))
    events.append("data: [DONE]\n\n")
    return events


_ERROR_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("timeout", None, "Request timed out."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def _error_response(
    status: int,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    should_retry: bool | None = None,
) -> JSONResponse:
    default = _ERROR_DEFAULTS.get(
        status,
        ("server_error", None, "Server error.")
        if status >= 500
        else ("invalid_request_error", None, "Request error."),
    )
    err_type, code, default_message = default
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    body = {
        "error": {
            "message": message or default_message,
            "type": err_type,
            "param": None,
            "code": code,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


# ------------------------------------------------------------------------------ server


class OpenAIStubServer:
    """Serve ``/v1/chat/completions`` and ``/v1/models`` on 127.0.0.1 from a thread.

    Use as a context manager or call :meth:`start` / :meth:`stop`. Every request
    needs ``Authorization: Bearer <non-empty>``; otherwise the answer is 401 (the
    key itself is never logged, stored or echoed).
    """

    def __init__(self, responder: Responder | None = None, quirks: Quirks | None = None) -> None:
        self.llm = ScriptedLLM(responder)
        self.quirks = quirks or Quirks()
        self._lock = threading.Lock()
        self._requests: list[ChatRequest] = []
        self._calls = 0
        self._unauthorized = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._arrivals: list[float] = []
        self._port: int | None = None
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._abort: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    # -- public API -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (only once started)."""
        if self._port is None:
            raise RuntimeError("OpenAIStubServer is not started")
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def requests(self) -> list[ChatRequest]:
        """Snapshot of every authorised chat request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def max_in_flight(self) -> int:
        """The most chat requests this server was answering at once."""
        with self._lock:
            return self._max_in_flight

    @property
    def arrivals(self) -> list[float]:
        """``time.monotonic()`` of each chat request's arrival, in order."""
        with self._lock:
            return list(self._arrivals)

    @property
    def unauthorized_count(self) -> int:
        """How many requests were refused with 401."""
        with self._lock:
            return self._unauthorized

    def reset(self, responder: Responder | None = None, quirks: Quirks | None = None) -> None:
        """Swap the responder (and the quirks), forget recorded requests and restart call
        numbering."""
        with self._lock:
            self.llm = ScriptedLLM(responder)
            self.quirks = quirks or Quirks()
            self._requests.clear()
            self._calls = 0
            self._unauthorized = 0
            self._max_in_flight = 0
            self._arrivals.clear()

    def start(self, timeout: float = 5.0) -> OpenAIStubServer:
        """Bind a free loopback port and serve in a daemon thread; return self."""
        if self._thread is not None:
            raise RuntimeError("OpenAIStubServer already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # answers go out at once: with Nagle on, uvicorn's separate writes of a response's
        # head and body wait for the client's delayed ACK, 40 ms more on every answer
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self._port,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="openai-stub-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("OpenAIStubServer failed to start") from self._startup_error
            time.sleep(0.002)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Shut uvicorn down (aborting pending delays) and join its thread."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            if self._loop is not None and self._abort is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):  # loop closed meanwhile
                    self._loop.call_soon_threadsafe(self._abort.set)
            server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError("OpenAIStubServer thread did not stop")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self._loop = self._abort = None

    def __enter__(self) -> OpenAIStubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._startup_error = exc

    async def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        self._loop = asyncio.get_running_loop()
        self._abort = asyncio.Event()
        await self._server.serve(sockets=[self._socket])

    def _authorised(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        ok = scheme.lower() == "bearer" and bool(token.strip())
        if not ok:
            with self._lock:
                self._unauthorized += 1
        return ok

    async def _models(self, request: Request) -> Response:
        if not self._authorised(request):
            return _error_response(401)
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "ttg-stub"}
            for m in STUB_MODELS
        ]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        if not self._authorised(request):
            return _error_response(401)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error_response(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error_response(400, "'messages' is a required property.")
        with self._lock:
            self._calls += 1
            chat = ChatRequest.from_body(body, self._calls)
            self._requests.append(chat)
            self._arrivals.append(time.monotonic())
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            llm = self.llm
        try:
            return await self._answer(llm, chat)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _answer(self, llm: ScriptedLLM, chat: ChatRequest) -> Response:
        if chat.call_number <= self.quirks.too_many:
            response = _error_response(429)
            if self.quirks.retry_after is not None:
                response.headers["retry-after"] = self.quirks.retry_after
            return response
        refused = _quirk_refusal(self.quirks, chat)
        if refused is not None:
            return refused
        try:
            reply = llm.reply_to(chat)
        except Exception as exc:
            return _error_response(
                500, f"stub responder raised {type(exc).__name__}: {exc}", should_retry=False
            )
        if self.quirks.answer_delay:
            assert self._abort is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._abort.wait(), timeout=self.quirks.answer_delay)
        return await self._respond(reply, chat)

    async def _respond(self, reply: Reply, chat: ChatRequest) -> Response:
        if isinstance(reply, Fault):
            return await self._fault(reply, chat)
        if isinstance(reply, Raw):
            return JSONResponse(reply.body, status_code=reply.status)
        completion = _render(reply, chat, self.quirks)
        if self.quirks.seconds_per_token:
            assert self._abort is not None
            wait = self.quirks.seconds_per_token * completion.usage["completion_tokens"]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._abort.wait(), timeout=wait)
        if chat.stream:
            usage = chat.include_usage and not self.quirks.no_usage
            return _sse(_stream_events(completion, usage))
        body = _completion_body(completion)
        if self.quirks.no_usage:
            del body["usage"]
        return JSONResponse(body)

    async def _fault(self, fault: Fault, chat: ChatRequest) -> Response:
        if fault.kind == "status":
            return _error_response(
                fault.status,
                fault.message,
                retry_after=fault.retry_after,
                should_retry=fault.should_retry,
            )
        if fault.kind == "delay":
            assert self._abort is not None
            try:
                await asyncio.wait_for(self._abort.wait(), timeout=fault.seconds)
            except TimeoutError:
                return await self._respond(fault.then or Text("ok"), chat)
            return _error_response(503, "stub server shutting down", should_retry=False)
        if fault.kind == "garbage":
            text = fault.message or "<html><body>502 Bad Gateway</body></html> not json {"
            if chat.stream:
                return _sse([f"data: {text}\n\n", "data: [DONE]\n\n"])
            return Response(text, media_type="application/json")
        completion = _render(Text(fault.message or "partial reply cut off"), chat)
        if fault.kind == "truncated":
            if chat.stream:
                events = _stream_events(completion, include_usage=False)
                return _sse(events[: max(2, len(events) // 2)])
            full = json.dumps(_completion_body(completion))
            return Response(full[: len(full) // 2], media_type="application/json")
        # empty_choices
        if chat.stream:
            tail = [_chunk(completion, None, include_usage=True, usage=completion.usage)]
            return _sse([*(tail if chat.include_usage else []), "data: [DONE]\n\n"])
        body = _completion_body(completion)
        body["choices"] = []
        return JSONResponse(body)


def _quirk_refusal(quirks: Quirks, chat: ChatRequest) -> Response | None:
    """The error a server with ``quirks`` answers ``chat`` with, if it refuses it."""
    if quirks.no_tools and chat.tools:
        return _error_response(400, f"{chat.model} does not support tools", should_retry=False)
    form = "object" if isinstance(chat.tool_choice, dict) else chat.tool_choice
    if form in quirks.refuse_tool_choice:
        return _error_response(
            400, f"tool_choice {form!r} is not supported by this server", should_retry=False
        )
    if quirks.content_null_500 and any(
        m.get("role") == "assistant" and m.get("content") is None for m in chat.messages
    ):
        real = Raw.recorded("followup_content_null")
        return JSONResponse(real.body, status_code=real.status)
    if quirks.context_window is not None:
        wanted = estimate_tokens(_prompt_text(chat)) + (
            chat.max_tokens or chat.max_completion_tokens or 0
        )
        if wanted > quirks.context_window:
            return _error_response(
                400,
                f"This model's maximum context length is {quirks.context_window} tokens. "
                f"However, you requested {wanted} tokens. Please reduce the length of the "
                "messages or completion.",
                should_retry=False,
            )
    return None


def _sse(events: list[str]) -> StreamingResponse:
    async def gen() -> AsyncIterator[str]:
        for event in events:
            yield event

    return StreamingResponse(
        gen(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )
