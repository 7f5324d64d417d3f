"""Real servers' quirks, each reproduced by our OpenAI-compatible server on 127.0.0.1 and
met by a run through the real path (langchain-openai, the LangChain agent, MCP tools,
gate, ledger, store): the run ends completed, or failed with the reason named.

Where a quirk has a real recording (tests/fixtures/llm/smollm2/: SmolLM2-135M on
llama-cpp-python), the server plays the REAL answer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select
from support.openai_server import (
    ChatRequest,
    Fault,
    OpenAIStubServer,
    Quirks,
    Raw,
    Reply,
    Text,
    ToolCalls,
    _prompt_text,
    estimate_tokens,
)

from ttg_lab.engine.events import RunEvent
from ttg_lab.lab import Lab
from ttg_lab.llm.client import TRIMMED
from ttg_lab.store.schema import LLMCall
from ttg_lab.store.usage import run_usage

DAY = "2025-07-01"
FINISH = "DECISION: bought AAPL.\nREFLECTION: fine.\n<FINISH_SIGNAL>"


PRICE = ("get_price_local", {"symbol": "AAPL"})
NEWS = ("get_information", {"query": "Apple AAPL stock"})


def native_trader(
    lookups: int = 1, lookup: tuple[str, dict[str, Any]] = PRICE
) -> Callable[[ChatRequest], Reply]:
    """Each step: ``lookups`` look-ups, buy 1 AAPL, finish (native tool calls; the
    tool-calling answers have no text, so they go back with content null)."""

    def respond(request: ChatRequest) -> Reply:
        answered = sum(m["role"] == "tool" for m in request.messages)
        if answered == 0:
            return ToolCalls([lookup] * lookups)
        if answered == lookups:
            return ToolCalls([("buy", {"symbol": "AAPL", "quantity": 1})])
        return Text(FINISH, completion_tokens=5)

    return respond


def json_trader(first: Reply | None = None) -> Callable[[ChatRequest], Reply]:
    """The same in JSON actions: ``first`` (e.g. a real broken answer) opens each step."""

    def respond(request: ChatRequest) -> Reply:
        turns = sum(m["role"] == "assistant" for m in request.messages)
        if turns == 0 and first is not None:
            return first
        if not any("Result of buy" in str(m["content"]) for m in request.messages):
            buy = {"tool": "buy", "arguments": {"symbol": "AAPL", "quantity": 1}}
            return Text(json.dumps({"actions": [buy], "final": "PLAN: buy one AAPL."}))
        return Text(json.dumps({"actions": [], "final": FINISH}), completion_tokens=5)

    return respond


def make_model(
    lab: Lab, server: OpenAIStubServer, ai_model_id: str = "local/smollm2", **params: Any
) -> Any:
    prices = {} if ai_model_id.startswith("local/") else {"input_per_mtok": 0.0}
    if prices:
        prices["output_per_mtok"] = 0.0
    return lab.models.create(
        f"quirks {ai_model_id} {len(lab.models.list())}",
        ai_model_id=ai_model_id,
        tickers=["AAPL", "MSFT"],
        parameters={
            "base_url": server.base_url,
            "max_retries": 0,
            "timeout": 5.0,
            "retry_delay": 0.01,
            **prices,
            **params,
        },
    )


def calls_of(lab: Lab, run_id: int) -> list[LLMCall]:
    with lab.store.session() as session:
        return list(
            session.scalars(
                select(LLMCall)
                .where(LLMCall.run_id == run_id)
                .order_by(LLMCall.step_index, LLMCall.id)
            )
        )


def bought(run: Any) -> list[float]:
    fills = run.ledger().query("status == 'filled'")
    assert set(fills["action"]) <= {"buy"}
    return list(fills["quantity"])


@pytest.mark.parametrize(
    "quirks",
    [
        Quirks(string_arguments=True),
        Quirks(html_escaped_arguments=True),
        Quirks(string_arguments=True, html_escaped_arguments=True),
    ],
    ids=["string", "html", "both"],
)
def test_string_or_html_escaped_arguments_still_trade(
    quirks: Quirks, lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader(), quirks)
    model = make_model(lab, openai_stub, "openai-compatible/any", tool_mode="native")
    run = lab.start_run(model, start=DAY, end=DAY, costs="zero")
    assert run.wait(60) == "completed", run.info.error
    assert bought(run) == [1.0]
    calls = calls_of(lab, run.id)
    assert [c["name"] for c in calls[1].tool_calls] == ["buy"]
    assert calls[1].tool_calls[0]["args"]["symbol"] == "AAPL"
    assert not any(c.response.get("data", {}).get("invalid_tool_calls") for c in calls)


def test_content_null_goes_out_as_empty_text(lab: Lab, openai_stub: OpenAIStubServer) -> None:
    """The REAL first answer (tool call, content null) and the REAL HTTP 500 llama-cpp-python
    gives when that message comes back with content null."""
    first = Raw.recorded("step_tools_object")
    replies: list[Reply] = [first]

    def respond(request: ChatRequest) -> Reply:
        if replies:
            return replies.pop(0)
        return native_trader()(request)

    openai_stub.reset(respond, Quirks(content_null_500=True))
    model = make_model(lab, openai_stub, tool_mode="native")
    run = lab.start_run(model, start=DAY, end=DAY, costs="zero")
    assert run.wait(60) == "completed", run.info.error
    assert bought(run) == [1.0]
    sent = [m for r in openai_stub.requests for m in r.messages if m["role"] == "assistant"]
    assert sent and all(m["content"] == "" for m in sent if m.get("tool_calls"))


@pytest.mark.parametrize("source", ["server", "preset"])
def test_a_refused_tool_choice_falls_back_once_per_client(
    source: str, lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    """``required`` refused by the server (HTTP 400 naming tool_choice), or known refused by
    the preset (llama-cpp-python answers it with an empty HTTP 500): sent as ``auto``."""
    ai_model_id = "openai-compatible/any" if source == "server" else "local/smollm2"
    openai_stub.reset(native_trader(), Quirks(refuse_tool_choice=frozenset({"required"})))
    model = make_model(lab, openai_stub, ai_model_id, tool_mode="native", tool_choice="required")
    run = lab.start_run(model, start=DAY, end="2025-07-02", costs="zero")
    assert run.wait(60) == "completed", run.info.error
    assert bought(run) == [1.0, 1.0]
    choices = [r.tool_choice for r in openai_stub.requests]
    assert choices.count("required") == (1 if source == "server" else 0)
    assert choices[-6:] == ["auto"] * 6


def test_context_overflow_trims_the_oldest_tool_results_once(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader(lookups=4, lookup=NEWS))
    model = make_model(lab, openai_stub, "openai-compatible/any", tool_mode="native")
    plain = lab.start_run(model, start=DAY, end=DAY, costs="zero")
    assert plain.wait(60) == "completed", plain.info.error
    sizes = [
        estimate_tokens(_prompt_text(r)) + (r.max_tokens or r.max_completion_tokens or 0)
        for r in openai_stub.requests
    ]
    assert sizes[0] < sizes[1] < sizes[2]

    # the second and third requests no longer fit; trimmed, they do
    openai_stub.reset(native_trader(lookups=4, lookup=NEWS), Quirks(context_window=sizes[1] - 1))
    trimmed = lab.start_run(model, start=DAY, end=DAY, costs="zero")
    assert trimmed.wait(60) == "completed", trimmed.info.error
    pd.testing.assert_frame_equal(
        plain.ledger()[["action", "symbol", "quantity", "fill_price"]],
        trimmed.ledger()[["action", "symbol", "quantity", "fill_price"]],
    )
    retried = [r for r in openai_stub.requests if any(m["content"] == TRIMMED for m in r.messages)]
    assert len(retried) == 2
    tool_texts = [m["content"] for m in retried[0].messages if m["role"] == "tool"]
    assert tool_texts[:3] == [TRIMMED] * 3 and tool_texts[3] != TRIMMED

    # the opening request alone is too long: nothing to trim, the step fails saying so
    openai_stub.reset(native_trader(), Quirks(context_window=sizes[0] - 1))
    failed = lab.start_run(model, start=DAY, end=DAY, costs="zero")
    assert failed.wait(60) == "failed"
    assert "exceeds" in failed.info.error and "context window" in failed.info.error


def test_a_server_without_tools_fails_native_and_trades_in_json_actions(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(native_trader(), Quirks(no_tools=True))
    native = make_model(lab, openai_stub, "openai-compatible/any", tool_mode="native")
    run = lab.start_run(native, start=DAY, end=DAY, costs="zero")
    assert run.wait(60) == "failed"
    assert "does not support tools" in run.info.error

    openai_stub.reset(json_trader(), Quirks(no_tools=True))
    json_model = make_model(lab, openai_stub, "openai-compatible/any", tool_mode="json")
    run = lab.start_run(json_model, start=DAY, end=DAY, costs="zero")
    assert run.wait(60) == "completed", run.info.error
    assert bought(run) == [1.0]
    first = openai_stub.requests[0]
    assert not first.tools and "Answer with one JSON object" in first.messages[0]["content"]
    schema = first.raw["response_format"]["json_schema"]["schema"]
    assert "buy" in schema["properties"]["actions"]["items"]["properties"]["tool"]["enum"]
    assert all(
        m["role"] in ("system", "user", "assistant") for m in openai_stub.requests[-1].messages
    )
    assert {c.request["tool_mode"] for c in calls_of(lab, run.id)} == {"json"}


def test_json_actions_recover_from_the_real_broken_answer_and_replay(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    """``local/smollm2`` (auto = JSON actions on the local preset): the REAL SmolLM2 answer
    (broken JSON with &#39; escapes) is an invalid action the model is told about."""
    openai_stub.reset(json_trader(first=Raw.recorded("json_actions")))
    model = make_model(lab, openai_stub)  # no tool_mode, no max_tokens: a new run's defaults
    run = lab.start_run(model, start=DAY, end=DAY, costs="zero")
    assert run.wait(60) == "completed", run.info.error
    assert bought(run) == [1.0]
    params = run.info.snapshot.model.parameters
    assert params["tool_mode"] == "auto" and params["max_tokens"] == 512
    first, second = openai_stub.requests[:2]
    assert first.model == "smollm2" and 512 in (first.max_tokens, first.max_completion_tokens)
    assert first.raw["response_format"]["type"] == "json_object"  # llama-cpp-python's style
    assert "could not be used" in second.messages[-1]["content"]
    calls = calls_of(lab, run.id)
    assert [c.request["tool_mode"] for c in calls] == ["json"] * 3
    assert calls[0].prompt_tokens == 958  # the server's own count, recorded

    openai_stub.stop()
    replay = lab.run(run.id).replay()
    assert replay.wait(60) == "completed", replay.info.error
    pd.testing.assert_frame_equal(
        run.ledger()[["action", "symbol", "quantity", "fill_price", "order_id"]],
        replay.ledger()[["action", "symbol", "quantity", "fill_price", "order_id"]],
    )


def test_auto_moves_to_json_actions_after_two_unparseable_native_answers(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    def respond(request: ChatRequest) -> Reply:
        if request.tools:  # native: arguments that never parse
            return ToolCalls([("buy", '{"symbol": "AAPL", "quantity": ')])
        return json_trader()(request)

    openai_stub.reset(respond)
    model = make_model(lab, openai_stub, "openai-compatible/any", tool_mode="auto")
    events: list[RunEvent] = []
    run = lab.start_run(model, start=DAY, end="2025-07-02", costs="zero", on_event=events.append)
    assert run.wait(60) == "completed", run.info.error
    assert bought(run) == [1.0, 1.0]
    modes = [c.request["tool_mode"] for c in calls_of(lab, run.id)]
    assert modes[:2] == ["native", "native"] and set(modes[2:]) == {"json"}
    assert [e.step_index for e in events if e.kind == "mode"] == [0]

    openai_stub.stop()
    replay = lab.run(run.id).replay()
    assert replay.wait(60) == "completed", replay.info.error
    assert bought(replay) == [1.0, 1.0]
    replayed = [c.request["tool_mode"] for c in calls_of(lab, replay.id)]
    assert replayed == modes


def test_a_slow_model_gets_the_time_its_measured_speed_needs(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    """1 s timeout, 0.02 s per token: the 80-token answer (1.6 s) only arrives because the
    timeout follows the speed measured on the earlier, short answers."""

    def respond(request: ChatRequest) -> Reply:
        answered = sum(m["role"] == "tool" for m in request.messages)
        if answered == 0:
            return ToolCalls([("get_price_local", {"symbol": "AAPL"})], completion_tokens=10)
        if answered == 1:
            return ToolCalls([("buy", {"symbol": "AAPL", "quantity": 1})], completion_tokens=80)
        return Text(FINISH, completion_tokens=5)

    openai_stub.reset(respond, Quirks(seconds_per_token=0.02))
    model = make_model(
        lab, openai_stub, "openai-compatible/any", tool_mode="native", timeout=1.0, max_tokens=100
    )
    run = lab.start_run(model, start=DAY, end=DAY, costs="zero")
    assert run.wait(60) == "completed", run.info.error
    assert bought(run) == [1.0]


def test_a_hung_server_ends_the_run_within_the_step_limit(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    openai_stub.reset(lambda _r: Fault("delay", seconds=60))
    model = make_model(lab, openai_stub, "openai-compatible/any", timeout=600.0, step_timeout=2.0)
    started = time.monotonic()
    run = lab.start_run(model, start=DAY, end=DAY, costs="zero")
    assert run.wait(60) == "failed"
    assert time.monotonic() - started < 20
    assert "time limit of 2 s" in run.info.error


def test_a_call_cut_off_by_the_step_limit_is_still_recorded(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    """The server got the request (and may bill it): the record says so, as an error
    naming the step's time limit, counted with the step's wasted calls."""
    openai_stub.reset(lambda _r: Fault("delay", seconds=60))
    model = make_model(lab, openai_stub, "openai-compatible/any", timeout=600.0, step_timeout=2.0)
    run = lab.start_run(model, start=DAY, end=DAY, costs="zero")
    assert run.wait(60) == "failed"
    calls = calls_of(lab, run.id)
    assert len(calls) == len(openai_stub.requests) == 1
    assert calls[0].status == "error" and calls[0].step_index == 0
    assert "cut off" in (calls[0].error or "") and "time limit" in (calls[0].error or "")
    with lab.store.session() as session:
        used, wasted = run_usage(session, run.id)
    assert (used.calls, wasted.calls) == (0, 1)


def test_the_answer_budget_goes_as_max_tokens_which_every_server_reads(
    lab: Lab, openai_stub: OpenAIStubServer
) -> None:
    """langchain-openai names the budget ``max_completion_tokens``, which llama-cpp-python's
    server (and servers older than that name) silently ignores: SmolLM2 then wrote 408
    tokens against a budget of 48. ``max_tokens`` is the name all of them read."""
    openai_stub.reset(native_trader())
    model = make_model(lab, openai_stub, tool_mode="native", max_tokens=48)
    run = lab.start_run(model, start=DAY, end=DAY, costs="zero")
    assert run.wait(60) == "completed", run.info.error
    assert openai_stub.requests
    assert all(r.max_tokens == 48 for r in openai_stub.requests)
    assert all("max_completion_tokens" not in r.raw for r in openai_stub.requests)
