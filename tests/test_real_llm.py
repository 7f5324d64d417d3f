"""A real model drives a real run: SmolLM2-135M served by ``ttg-lab llm serve smollm2``
trades 3 tickers for 3 daily steps through the whole chat path (langchain-openai, the
LangChain agent, MCP tools, gate, ledger, store), once with native tool calls and once
in JSON-action mode.

Whatever the model says, the test holds it to the protocol, not the trading: the run ends
completed, or failed with a reason, in bounded time; every request the server answered is
a recorded call with the server's own token counts; reasoning is stored; every recorded
tool call names a real tool with arguments that parsed (anything else was answered as an
invalid call); a replay from the record writes the identical ledger.

One server for the module and as few model calls as possible (it runs on a 2-core CI
machine): a 48-token answer budget, 2 model calls per step. SQLite only: the store path
is covered on both databases by the stub-server tests; this one is about the real model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
from support.local_llm import Served, require_local_llm, serve_smollm2
from test_llm_quirks import calls_of

from ttg_lab.lab import Lab
from ttg_lab.store.schema import LLMCall

TICKERS = ["AAPL", "MSFT", "NVDA"]
START, END = "2025-07-01", "2025-07-03"  # 3 trading days
STEPS = 3
MAX_CALLS = 2  # model calls per step
STEP_TIMEOUT = 90.0
WALL_LIMIT = STEPS * STEP_TIMEOUT + 60.0
"""No run may take longer than its steps' time limits and the set-up around them."""
SERVED_REQUEST = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" \d+')


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """SmolLM2 on a free port, its state (and log) in a folder of its own."""
    require_local_llm()
    server = serve_smollm2(tmp_path_factory.mktemp("llm-state"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite only (see the module's docstring)."""
    return str(request.param)


class ServedRequests:
    """Chat requests a server has answered (its access log), less our own probes."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.probes = 0

    def count(self) -> int:
        """Counted after a one-token request of our own: the server answers one request at
        a time, so a request a run left in flight (cut off by a time limit) is logged by
        then."""
        probe = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(
            f"{self.served.url}/chat/completions",
            json={**probe, "max_tokens": 1},
            timeout=STEP_TIMEOUT,
        )
        answer.raise_for_status()
        self.probes += 1
        log = (self.served.state_dir / "logs" / "llm-server.log").read_text(errors="replace")
        return len(SERVED_REQUEST.findall(log)) - self.probes


def answers_to(call: LLMCall, later: list[LLMCall]) -> dict[str, dict[str, Any]]:
    """The tool messages, by tool call id, that the next call of the same step sent back."""
    following = [c for c in later if c.step_index == call.step_index and c.id > call.id]
    if not following:
        return {}
    messages = following[0].request["messages"]
    return {m["tool_call_id"]: m for m in messages if m["role"] == "tool"}


@pytest.mark.parametrize("tool_mode", ["native", "json"])
def test_a_real_model_run_keeps_the_protocol_and_replays_to_the_same_ledger(
    tool_mode: str, served: Served, lab: Lab
) -> None:
    model = lab.models.create(
        f"smollm2 {tool_mode}",
        ai_model_id="local/smollm2",
        tickers=TICKERS,
        parameters={
            "base_url": served.url,
            "tool_mode": tool_mode,
            "max_tokens": 48,
            "max_steps": MAX_CALLS,
            "max_retries": 0,  # one request per recorded call: the log count below holds
            "retry_delay": 0.0,
            "temperature": 0.0,
            "seed": 7,
            "timeout": 60.0,
            "step_timeout": STEP_TIMEOUT,
        },
    )
    served_requests = ServedRequests(served)
    before = served_requests.count()
    started = time.monotonic()
    run = lab.start_run(model, start=START, end=END, costs="zero")
    status = run.wait(WALL_LIMIT + 30)
    took = time.monotonic() - started
    info = run.info
    print(f"\n{tool_mode}: {status} in {took:.1f} s, {info.steps_done}/{info.steps_total} steps")

    # ends completed, or failed naming why, in bounded time
    assert info.steps_total == STEPS
    assert status in ("completed", "failed"), info.error
    assert status == "completed" or (info.error or "").strip()
    assert took < WALL_LIMIT

    # every request the server answered is a recorded call (a request cut off by a time
    # limit is recorded as an error, whether or not the server logged it), in the mode
    # asked for
    calls = calls_of(lab, run.id)
    for c in calls:
        print(
            f"  step {c.step_index} call {c.call_index} {c.status} {c.latency_ms / 1000:.1f} s"
            f" {c.prompt_tokens}+{c.completion_tokens} tokens {(c.error or '')[:120]}"
        )
    ok = [c for c in calls if c.status == "ok"]
    answered = served_requests.count() - before
    assert len(ok) <= answered <= len(calls)
    assert {c.request["tool_mode"] for c in calls} == {tool_mode}
    assert ok and all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in ok)
    assert all(c.completion_tokens <= 48 for c in ok)
    for step in range(info.steps_done):
        assert 1 <= sum(c.step_index == step for c in ok) <= MAX_CALLS

    # every tool call names a real tool with parsed arguments; anything else went back to
    # the model as an invalid call (or the step's call limit ended the step)
    for call in ok:
        replies = answers_to(call, ok)
        for tool_call in call.tool_calls:
            assert tool_call["name"] in call.request["tools"]
            assert isinstance(tool_call["args"], dict)
            if replies:
                assert tool_call["id"] in replies
        for invalid in call.response["data"].get("invalid_tool_calls") or []:
            if replies:
                assert replies[invalid["id"]]["status"] == "error"

    # reasoning is stored: what the model wrote in the committed steps
    wrote = any(
        (c.response["data"].get("content") or "").strip()
        for c in ok
        if c.step_index < info.steps_done
    )
    reasoning = run.reasoning()
    assert not wrote or not reasoning.empty
    assert set(reasoning["step_index"]) <= set(range(info.steps_done))

    # replay from the record: no server request, the identical ledger
    replay = lab.run(run.id).replay()
    assert replay.wait(120) in ("completed", "failed")
    assert served_requests.count() - before == answered
    assert replay.info.steps_done == info.steps_done
    pd.testing.assert_frame_equal(run.ledger(), replay.ledger())
