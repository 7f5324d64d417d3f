"""The offline OpenAI stub is faithful enough for the real ``openai`` and ``ChatOpenAI`` clients.

Every test talks HTTP to a stub on 127.0.0.1; nothing reaches the internet.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr
from support.openai_server import (
    ChatRequest,
    Fault,
    OpenAIStubServer,
    Script,
    Text,
    ToolCalls,
    estimate_tokens,
)

# Also registered from tests/conftest.py by the lead; registering twice is harmless.

PRICE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_price",
        "description": "Latest close for a symbol.",
        "parameters": {
            "type": "object",
            "properties": {"symbol": {"type": "string"}},
            "required": ["symbol"],
        },
    },
}
NEWS_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_news",
        "description": "Recent headlines about a topic.",
        "parameters": {
            "type": "object",
            "properties": {"topic": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["topic"],
        },
    },
}


@pytest.fixture(autouse=True)
def _no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep LangSmith tracing off so nothing tries to leave the machine."""
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2"):
        monkeypatch.setenv(name, "false")


def chat_model(server: OpenAIStubServer, **kwargs: Any) -> ChatOpenAI:
    """A real ``ChatOpenAI`` pointed at the stub."""
    options: dict[str, Any] = {"model": "x", "max_retries": 0, "timeout": 5.0}
    options.update(kwargs)
    return ChatOpenAI(base_url=server.base_url, api_key=SecretStr("test-key"), **options)


@pytest.fixture()
def sdk_client() -> Iterator[Callable[..., openai.OpenAI]]:
    """Factory for real ``openai.OpenAI`` clients pointed at a stub; closed after the test."""
    clients: list[openai.OpenAI] = []

    def make(server: OpenAIStubServer, **kwargs: Any) -> openai.OpenAI:
        options: dict[str, Any] = {"max_retries": 0, "timeout": 5.0}
        options.update(kwargs)
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def merged(chunks: Sequence[BaseMessage]) -> AIMessageChunk:
    """Aggregate streamed chunks the way LangChain does."""
    ai_chunks = [c for c in chunks if isinstance(c, AIMessageChunk)]
    assert ai_chunks and len(ai_chunks) == len(chunks)
    return add_ai_message_chunks(ai_chunks[0], *ai_chunks[1:])


# ----------------------------------------------------------------------------- basics


def test_sdk_sees_openai_shaped_completion(
    openai_stub: OpenAIStubServer, sdk_client: Callable[..., openai.OpenAI]
) -> None:
    openai_stub.reset(Script([Text("Buy 10 AAPL.", prompt_tokens=42, completion_tokens=7)]))
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are a trader."},
        {"role": "user", "content": "What now?"},
    ]
    resp = sdk_client(openai_stub).chat.completions.create(
        model="stub-gpt-small", messages=messages, temperature=0.2, max_tokens=64, top_p=0.9
    )
    assert resp.object == "chat.completion"
    assert resp.id == "chatcmpl-stub-1"
    assert resp.model == "stub-gpt-small"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "Buy 10 AAPL."
    assert resp.choices[0].message.tool_calls is None
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (42, 7)
    assert resp.usage.total_tokens == 49

    (req,) = openai_stub.requests
    assert req.call_number == 1
    assert req.model == "stub-gpt-small"
    assert req.messages == messages
    assert (req.temperature, req.max_tokens, req.top_p, req.stream) == (0.2, 64, 0.9, False)
    assert req.tools == []


def test_usage_is_estimated_when_not_scripted(
    openai_stub: OpenAIStubServer, sdk_client: Callable[..., openai.OpenAI]
) -> None:
    text = "x" * 40
    prompt = "p" * 400
    openai_stub.reset(Script([Text(text)]))
    resp = sdk_client(openai_stub).chat.completions.create(
        model="m", messages=[{"role": "user", "content": prompt}]
    )
    assert resp.usage is not None
    assert resp.usage.completion_tokens == estimate_tokens(text) == 10
    assert resp.usage.prompt_tokens == estimate_tokens(prompt) == 100
    assert resp.usage.total_tokens == 110


def test_default_fixture_says_ok_and_lists_models(
    openai_stub: OpenAIStubServer, sdk_client: Callable[..., openai.OpenAI]
) -> None:
    assert openai_stub.base_url.startswith("http://127.0.0.1:")
    assert openai_stub.base_url.endswith("/v1")
    client = sdk_client(openai_stub)
    ids = [m.id for m in client.models.list()]
    assert len(ids) >= 2
    assert chat_model(openai_stub).invoke("hello").content == "ok"
    assert chat_model(openai_stub).invoke("again").content == "ok"
    assert [r.call_number for r in openai_stub.requests] == [1, 2]


def test_responder_can_branch_on_the_request(openai_stub: OpenAIStubServer) -> None:
    def responder(req: ChatRequest) -> Text:
        last = req.messages[-1]["content"]
        return Text(f"call {req.call_number}: {last.upper()}")

    openai_stub.reset(responder)
    model = chat_model(openai_stub)
    assert model.invoke("abc").content == "call 1: ABC"
    assert model.invoke("xyz").content == "call 2: XYZ"


# ---------------------------------------------------------------------- tool calling


def test_chatopenai_tool_calls_round_trip(openai_stub: OpenAIStubServer) -> None:
    openai_stub.reset(
        Script(
            [
                ToolCalls(
                    [("get_price", {"symbol": "AAPL"}), ("get_news", {"topic": "fed", "limit": 3})],
                    prompt_tokens=120,
                    completion_tokens=30,
                ),
                Text("AAPL closed at 190; hold."),
            ]
        )
    )
    model = chat_model(openai_stub).bind_tools([PRICE_TOOL, NEWS_TOOL])
    first = model.invoke([HumanMessage("Check AAPL and the Fed.")])
    assert isinstance(first, AIMessage)
    assert first.tool_calls == [
        {"name": "get_price", "args": {"symbol": "AAPL"}, "id": "call_1_0", "type": "tool_call"},
        {
            "name": "get_news",
            "args": {"topic": "fed", "limit": 3},
            "id": "call_1_1",
            "type": "tool_call",
        },
    ]
    assert first.invalid_tool_calls == []
    assert first.response_metadata["finish_reason"] == "tool_calls"
    assert first.usage_metadata is not None
    assert first.usage_metadata["input_tokens"] == 120
    assert first.usage_metadata["output_tokens"] == 30
    assert first.usage_metadata["total_tokens"] == 150

    history = [
        HumanMessage("Check AAPL and the Fed."),
        first,
        ToolMessage("190.0", tool_call_id="call_1_0"),
        ToolMessage("No news.", tool_call_id="call_1_1"),
    ]
    second = model.invoke(history)
    assert second.content == "AAPL closed at 190; hold."

    req1, req2 = openai_stub.requests
    assert req1.tool_names == ["get_price", "get_news"]
    sent_back = req2.messages[1]
    assert sent_back["role"] == "assistant"
    assert [c["id"] for c in sent_back["tool_calls"]] == ["call_1_0", "call_1_1"]
    assert json.loads(sent_back["tool_calls"][0]["function"]["arguments"]) == {"symbol": "AAPL"}
    assert [(m["role"], m["tool_call_id"]) for m in req2.messages[2:]] == [
        ("tool", "call_1_0"),
        ("tool", "call_1_1"),
    ]


def test_invalid_tool_arguments_become_invalid_tool_calls(openai_stub: OpenAIStubServer) -> None:
    openai_stub.reset(
        Script([ToolCalls([("get_price", {"symbol": "MSFT"}), ("get_news", '{"topic": "fe')])])
    )
    msg = chat_model(openai_stub).bind_tools([PRICE_TOOL, NEWS_TOOL]).invoke("go")
    assert [c["name"] for c in msg.tool_calls] == ["get_price"]
    (bad,) = msg.invalid_tool_calls
    assert bad["name"] == "get_news"
    assert bad["args"] == '{"topic": "fe'
    assert bad["id"] == "call_1_1"
    assert bad["error"]


# ------------------------------------------------------------------- fault injection


def test_429_then_success_is_retried_by_the_client(openai_stub: OpenAIStubServer) -> None:
    openai_stub.reset(
        Script([Fault("status", status=429, retry_after=0.05), Text("after the rate limit")])
    )
    msg = chat_model(openai_stub, max_retries=2).invoke("hi")
    assert msg.content == "after the rate limit"
    assert [r.call_number for r in openai_stub.requests] == [1, 2]


def test_429_without_retries_raises_rate_limit_error(openai_stub: OpenAIStubServer) -> None:
    openai_stub.reset(Script([Fault("status", status=429, message="slow down", retry_after=1)]))
    with pytest.raises(openai.RateLimitError, match="slow down") as info:
        chat_model(openai_stub).invoke("hi")
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_raise_without_retries(openai_stub: OpenAIStubServer, status: int) -> None:
    openai_stub.reset(Script([Fault("status", status=status)]))
    with pytest.raises(openai.InternalServerError) as info:
        chat_model(openai_stub).invoke("hi")
    assert info.value.status_code == status
    assert len(openai_stub.requests) == 1


def test_delay_beyond_client_timeout_raises_timeout(openai_stub: OpenAIStubServer) -> None:
    openai_stub.reset(Script([Fault("delay", seconds=5.0)]))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat_model(openai_stub, timeout=0.3).invoke("hi")
    assert time.monotonic() - started < 2.0
    assert len(openai_stub.requests) == 1


def test_short_delay_then_scripted_reply(openai_stub: OpenAIStubServer) -> None:
    openai_stub.reset(Script([Fault("delay", seconds=0.05, then=Text("late but fine"))]))
    assert chat_model(openai_stub, timeout=2.0).invoke("hi").content == "late but fine"


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_broken_bodies_raise_json_errors(openai_stub: OpenAIStubServer, kind: str) -> None:
    openai_stub.reset(Script([Fault(kind)]))  # type: ignore[arg-type]
    with pytest.raises(json.JSONDecodeError):
        chat_model(openai_stub).invoke("hi")


def test_empty_choices(
    openai_stub: OpenAIStubServer, sdk_client: Callable[..., openai.OpenAI]
) -> None:
    openai_stub.reset(Script([Fault("empty_choices"), Fault("empty_choices")]))
    resp = sdk_client(openai_stub).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert resp.choices == []
    assert resp.usage is not None
    # ChatOpenAI has no generation to return and fails with a bare IndexError.
    with pytest.raises(IndexError):
        chat_model(openai_stub).invoke("hi")


def test_script_exhaustion_is_a_clear_500(openai_stub: OpenAIStubServer) -> None:
    openai_stub.reset(Script([Text("only one")]))
    model = chat_model(openai_stub, max_retries=2)
    assert model.invoke("one").content == "only one"
    with pytest.raises(openai.InternalServerError, match="script exhausted at call 2"):
        model.invoke("two")
    assert len(openai_stub.requests) == 2  # x-should-retry: false stopped the retries


# ------------------------------------------------------------------------------- auth


def test_missing_api_key_is_refused(
    openai_stub: OpenAIStubServer, sdk_client: Callable[..., openai.OpenAI]
) -> None:
    client = sdk_client(openai_stub)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"Authorization": openai.Omit()},
        )
    assert openai_stub.unauthorized_count == 1
    assert openai_stub.requests == []


@pytest.mark.parametrize("header", [None, "Bearer", "Basic sk-secret-123"])
def test_bad_authorization_gets_401_without_echo(
    openai_stub: OpenAIStubServer, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    resp = httpx.post(f"{openai_stub.base_url}/chat/completions", json=body, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"
    assert "sk-secret" not in resp.text
    assert httpx.get(f"{openai_stub.base_url}/models", headers=headers).status_code == 401


def test_key_is_sent_by_chatopenai(openai_stub: OpenAIStubServer) -> None:
    chat_model(openai_stub).invoke("hi")
    assert openai_stub.unauthorized_count == 0
    assert len(openai_stub.requests) == 1


# -------------------------------------------------------------------------- streaming


def test_streaming_text_with_usage(openai_stub: OpenAIStubServer) -> None:
    text = "The market looks calm today, so hold."
    openai_stub.reset(Script([Text(text, prompt_tokens=11, completion_tokens=9)]))
    model = chat_model(openai_stub, streaming=True, stream_usage=True)
    chunks = list(model.stream("status?"))
    content_chunks = [c for c in chunks if c.content]
    assert len(content_chunks) > 3
    assert "".join(str(c.content) for c in chunks) == text
    full = merged(chunks)
    assert full.usage_metadata is not None
    assert (full.usage_metadata["input_tokens"], full.usage_metadata["output_tokens"]) == (11, 9)
    (req,) = openai_stub.requests
    assert req.stream and req.include_usage


def test_streaming_invoke_and_tool_calls(openai_stub: OpenAIStubServer) -> None:
    openai_stub.reset(
        Script(
            [
                Text("streamed answer"),
                ToolCalls(
                    [("get_price", {"symbol": "NVDA"}), ("get_news", {"topic": "chips"})],
                    content="Looking up.",
                ),
            ]
        )
    )
    model = chat_model(openai_stub, streaming=True)
    assert model.invoke("hi").content == "streamed answer"

    chunks = list(model.bind_tools([PRICE_TOOL, NEWS_TOOL]).stream("go"))
    full = merged(chunks)
    assert full.content == "Looking up."
    assert [(c["name"], c["args"], c["id"]) for c in full.tool_calls] == [
        ("get_price", {"symbol": "NVDA"}, "call_2_0"),
        ("get_news", {"topic": "chips"}, "call_2_1"),
    ]
    assert full.response_metadata["finish_reason"] == "tool_calls"
    assert openai_stub.requests[1].stream and not openai_stub.requests[1].include_usage


def test_truncated_stream_ends_without_finish_reason(openai_stub: OpenAIStubServer) -> None:
    """The clients do not notice a cut-off stream; callers must check finish_reason."""
    openai_stub.reset(Script([Fault("truncated", message="one two three four five six")]))
    msg = chat_model(openai_stub, streaming=True).invoke("hi")
    assert "one two three four five six".startswith(str(msg.content))
    assert msg.content != "one two three four five six"
    assert "finish_reason" not in msg.response_metadata


def test_async_client_works(openai_stub: OpenAIStubServer) -> None:
    openai_stub.reset(Script([Text("async ok"), ToolCalls([("get_price", {"symbol": "SPY"})])]))
    model = chat_model(openai_stub)

    async def run() -> tuple[AIMessage, AIMessage]:
        a = await model.ainvoke("hi")
        b = await model.bind_tools([PRICE_TOOL]).ainvoke("hi")
        return a, b

    a, b = asyncio.run(run())
    assert a.content == "async ok"
    assert b.tool_calls[0]["args"] == {"symbol": "SPY"}


# -------------------------------------------------------------------------- lifecycle


def test_lifecycle_is_clean_and_fast(sdk_client: Callable[..., openai.OpenAI]) -> None:
    server = OpenAIStubServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    started = time.monotonic()
    with server:
        assert time.monotonic() - started < 1.0
        url = server.base_url
        server.reset(Script([Fault("delay", seconds=30.0)]))

        def slow_call() -> None:
            with pytest.raises(openai.APIError):
                sdk_client(server, timeout=60.0).chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )

        caller = threading.Thread(target=slow_call)
        caller.start()
        while not server.requests:
            time.sleep(0.01)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 2.0  # the pending delay was aborted
    caller.join(5)
    assert not caller.is_alive()
    assert not any(t.name == "openai-stub-server" for t in threading.enumerate())
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", headers={"Authorization": "Bearer k"}, timeout=1.0)
