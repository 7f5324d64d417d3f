"""Throughput: many LLM runs at once in one process, under the provider's limits.

The limiter (:mod:`ttg_lab.llm.limits`) on its own, from many threads each with its own
event loop; then real runs (langchain-openai against our OpenAI-compatible server on
127.0.0.1, MCP tools, gate, ledger, store on SQLite and PostgreSQL): the concurrency limit
is never exceeded, a 429's Retry-After is honoured and recorded, a rate limit that never
ends fails the step in bounded time naming it, and only the client retries.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import threading
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from support.openai_server import ChatRequest, OpenAIStubServer, Quirks, Reply, Text
from test_llm_quirks import make_model

from ttg_lab.lab import Lab
from ttg_lab.llm import limits
from ttg_lab.llm.client import retry_after
from ttg_lab.llm.limits import Limits, LimitWaitError, ProviderLimiter, limiter_for
from ttg_lab.llm.providers import llm_settings, make_chat_model
from ttg_lab.store.schema import LLMCall, RunStep

START, END = "2025-07-01", "2025-07-03"  # three trading days
FINISH = "DECISION: hold.\nREFLECTION: fine.\n<FINISH_SIGNAL>"


def one_call_per_step(_request: ChatRequest) -> Reply:
    """Each step is one model call: the model holds and finishes."""
    return Text(FINISH, completion_tokens=5)


def throughput_model(lab: Lab, server: OpenAIStubServer, **params: Any) -> Any:
    return make_model(lab, server, "openai-compatible/any", tool_mode="native", **params)


def in_threads(count: int, work: Any) -> None:
    """Run ``work(i)`` in ``count`` threads at once, each in an event loop of its own."""
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            asyncio.run(work(i))
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


# ------------------------------------------------------------------------ the limiter


def test_limiter_never_lets_more_than_its_concurrency_in_across_threads_and_loops() -> None:
    limiter = ProviderLimiter("test", Limits(concurrency=3, requests_per_minute=None))
    lock = threading.Lock()
    active = [0, 0]  # now, most

    async def work(_i: int) -> None:
        for _ in range(5):
            async with limiter.slot(10.0):
                with lock:
                    active[0] += 1
                    active[1] = max(active[1], active[0])
                await asyncio.sleep(0.01)
                with lock:
                    active[0] -= 1

    in_threads(8, work)
    assert active[1] == 3 == limiter.max_in_flight


def test_limiter_starts_at_most_rpm_requests_in_any_window() -> None:
    window, rpm = 0.5, 4
    limiter = ProviderLimiter("test", Limits(concurrency=100, requests_per_minute=rpm), window)
    starts: list[float] = []
    lock = threading.Lock()

    async def work(_i: int) -> None:
        for _ in range(4):
            async with limiter.slot(10.0):
                with lock:
                    starts.append(time.monotonic())

    began = time.monotonic()
    in_threads(3, work)
    starts.sort()
    for i in range(len(starts) - rpm):
        assert starts[i + rpm] - starts[i] >= window - 0.01, starts
    assert time.monotonic() - began >= 2 * window  # 12 requests, 4 per window


def test_limiter_wait_is_bounded_and_names_the_provider_and_gives_its_place_back() -> None:
    limiter = ProviderLimiter("stub http://x", Limits(concurrency=1, requests_per_minute=None))
    held = threading.Event()
    release = threading.Event()

    async def holder(_i: int) -> None:
        async with limiter.slot(1.0):
            held.set()
            await asyncio.to_thread(release.wait, 5)

    thread = threading.Thread(target=lambda: asyncio.run(holder(0)))
    thread.start()
    assert held.wait(5)

    async def late() -> None:
        async with limiter.slot(0.3):
            pytest.fail("got a slot held by another request")

    began = time.monotonic()
    with pytest.raises(LimitWaitError, match=r"no free slot at stub http://x \(at most 1 at once"):
        asyncio.run(late())
    assert 0.25 <= time.monotonic() - began < 2
    release.set()
    thread.join(5)

    async def next_one() -> None:
        async with limiter.slot(0.5):
            pass

    asyncio.run(next_one())  # the timed-out waiter left the queue


def test_limiter_cool_down_holds_every_request_of_the_endpoint() -> None:
    limiter = ProviderLimiter("test", Limits(concurrency=4, requests_per_minute=None))
    limiter.cool_down(0.3)
    began = time.monotonic()

    async def work(_i: int) -> None:
        async with limiter.slot(5.0):
            assert time.monotonic() - began >= 0.29

    in_threads(3, work)


def test_retry_after_reads_seconds_milliseconds_and_http_dates() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "0.25"}) == 0.25
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (retry_after({"retry-after": date}) or 0) <= 30
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_the_stub_answers_after_its_delay_and_no_tcp_round_trip_more() -> None:
    """The benchmark's 500 ms are 500 ms: an answer without delay takes milliseconds
    (a delayed ACK held each one back 40 ms)."""
    with OpenAIStubServer(one_call_per_step) as server, httpx.Client() as client:
        seconds = []
        for _ in range(15):
            began = time.perf_counter()
            answer = client.post(
                f"{server.base_url}/chat/completions",
                headers={"Authorization": "Bearer sk-test"},
                json={"model": "m", "messages": [{"role": "user", "content": "hi" * 500}]},
            )
            seconds.append(time.perf_counter() - began)
            assert answer.status_code == 200
    assert sorted(seconds)[len(seconds) // 2] < 0.03, seconds


# ------------------------------------------------------------------------------- runs


def test_concurrent_runs_never_exceed_the_providers_concurrency(lab: Lab) -> None:
    with OpenAIStubServer(one_call_per_step, Quirks(answer_delay=0.2)) as server:
        models = [throughput_model(lab, server, max_concurrency=3) for _ in range(6)]
        began = time.monotonic()
        runs = [lab.start_run(m, start=START, end=END, costs="zero") for m in models]
        for run in runs:
            run.wait(60)
        wall = time.monotonic() - began
        assert [r.status for r in runs] == ["completed"] * 6, [r.info.error for r in runs]
        assert [r.info.steps_done for r in runs] == [3] * 6
        assert len(server.requests) == 18  # one call per step
        assert server.max_in_flight == 3  # the limit, reached and never passed
        assert wall < 18 * 0.2  # not one after another
        with lab.store.session() as session:
            answers = session.scalars(
                select(LLMCall.response).where(LLMCall.run_id.in_([r.id for r in runs]))
            ).all()
        queued = [a["data"]["response_metadata"].get("queued_s", 0.0) for a in answers]
        assert any(q > 0 for q in queued)  # the waits for a slot are on record


def test_32_runs_at_once_all_complete_each_step_committed_once(lab: Lab) -> None:
    """32 runs in one process, each in its own thread: no 'database is locked', no run
    lost, every step one committed row with its one model call."""
    with OpenAIStubServer(one_call_per_step, Quirks(answer_delay=0.05)) as server:
        models = [throughput_model(lab, server, max_concurrency=16) for _ in range(32)]
        runs = [lab.start_run(m, start=START, end="2025-07-02", costs="zero") for m in models]
        for run in runs:
            run.wait(120)
        assert [r.status for r in runs] == ["completed"] * 32, [r.info.error for r in runs]
        assert server.max_in_flight <= 16
        ids = [r.id for r in runs]
        with lab.store.session() as session:
            steps = session.scalars(select(RunStep.run_id).where(RunStep.run_id.in_(ids))).all()
            calls = session.scalars(select(LLMCall.status).where(LLMCall.run_id.in_(ids))).all()
        assert sorted(steps) == sorted(ids * 2)
        assert calls == ["ok"] * 64


def test_a_429_waits_its_retry_after_and_the_run_completes_with_the_wait_recorded(
    lab: Lab,
) -> None:
    quirks = Quirks(too_many=2, retry_after="0.6")
    with OpenAIStubServer(one_call_per_step, quirks) as server:
        model = throughput_model(lab, server, max_retries=3)
        run = lab.start_run(model, start=START, end=START, costs="zero", background=False)
        assert run.status == "completed", run.info.error
        first, second, third = server.arrivals[:3]
        assert second - first >= 0.6 and third - second >= 0.6
        assert len(server.requests) == 3
        with lab.store.session() as session:
            call = session.scalars(select(LLMCall).where(LLMCall.run_id == run.id)).one()
        assert call.status == "ok"
        assert call.response["data"]["response_metadata"]["retries"] == [
            {"error": "HTTP 429", "waited_s": 0.6},
            {"error": "HTTP 429", "waited_s": 0.6},
        ]


def test_a_429_forever_fails_the_step_naming_the_rate_limit_and_only_the_client_retries(
    lab: Lab,
) -> None:
    quirks = Quirks(too_many=10**6, retry_after="0.05")
    with OpenAIStubServer(one_call_per_step, quirks) as server:
        model = throughput_model(lab, server, max_retries=3)
        began = time.monotonic()
        run = lab.start_run(model, start=START, end=END, costs="zero", background=False)
        assert time.monotonic() - began < 10
        assert run.status == "failed"
        assert "RateLimitedError" in (run.info.error or "")
        assert "is rate limited: HTTP 429 to all 4 attempts" in (run.info.error or "")
        assert len(server.requests) == 4  # 1 + max_retries, no retry of the retries
        assert run.info.steps_done == 0


def test_a_retry_after_past_the_steps_time_limit_fails_at_once(lab: Lab) -> None:
    quirks = Quirks(too_many=10**6, retry_after="120")
    with OpenAIStubServer(one_call_per_step, quirks) as server:
        model = throughput_model(lab, server, max_retries=3, step_timeout=30.0)
        began = time.monotonic()
        run = lab.start_run(model, start=START, end=START, costs="zero", background=False)
        assert time.monotonic() - began < 5
        assert run.status == "failed"
        assert "Retry-After of 120 s is past the step's time limit" in (run.info.error or "")
        assert len(server.requests) == 1


def test_a_run_starts_at_most_its_requests_per_minute(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = 0.8
    monkeypatch.setattr(limits, "RPM_WINDOW", window)  # the real mechanism, a short window
    with OpenAIStubServer(one_call_per_step) as server:
        models = [throughput_model(lab, server, requests_per_minute=2) for _ in range(2)]
        runs = [lab.start_run(m, start=START, end=END, costs="zero") for m in models]
        for run in runs:
            run.wait(30)
        assert [r.status for r in runs] == ["completed"] * 2, [r.info.error for r in runs]
        arrivals = server.arrivals
        assert len(arrivals) == 6
        jitter = 0.1  # a request starts when it gets its slot; it arrives a little later
        for i in range(len(arrivals) - 2):
            assert arrivals[i + 2] - arrivals[i] >= window - jitter, arrivals
        assert arrivals[-1] - arrivals[0] >= 2 * window - jitter


def test_chat_models_share_one_tls_context_so_a_run_start_does_not_reload_the_ca_bundle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building a TLS context reads the CA bundle (about 30 ms of CPU): paid once per
    process, not by every run's client (32 runs started at once paid it 32 times)."""
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    settings = llm_settings(
        "openai-compatible/any",
        {"base_url": "http://127.0.0.1:9/v1", "input_per_mtok": 0.0, "output_per_mtok": 0.0},
    )
    make_chat_model(settings)
    first = len(made)  # ours, and langchain-openai's own (cached) synchronous client's
    for _ in range(4):
        make_chat_model(settings)
    assert len(made) == first


def test_a_wait_for_a_slot_is_recorded_and_not_taken_for_the_models_slowness() -> None:
    """The request timeout grows with the model's measured speed; time spent queueing for
    the provider's slots is not the model's, so it must not count (it is recorded apart)."""
    with OpenAIStubServer(one_call_per_step) as server:
        settings = llm_settings(
            "openai-compatible/any",
            {
                "base_url": server.base_url,
                "input_per_mtok": 0.0,
                "output_per_mtok": 0.0,
                "max_concurrency": 1,
                "timeout": 60.0,
            },
        )
        model = make_chat_model(settings)
        limiter = limiter_for("openai-compatible", server.base_url, settings.limits)
        held = threading.Event()

        def hold() -> None:
            with limiter.slot_blocking(5.0):
                held.set()
                time.sleep(0.6)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(5)
        answer = model.invoke("hello")
        holder.join(5)
    assert model.request_timeout_for(1000) == 60.0  # 5 tokens in ms, not in 0.6 s
    assert answer.response_metadata["queued_s"] >= 0.4


def test_a_streamed_answer_is_retried_after_a_429_under_the_same_limits() -> None:
    """The analyst streams its answers: a stream whose request is refused before its
    first piece is sent again after the Retry-After, holding a slot of the limiter."""
    with OpenAIStubServer(one_call_per_step, Quirks(too_many=1, retry_after="0.3")) as server:
        settings = llm_settings(
            "openai-compatible/any",
            {"base_url": server.base_url, "input_per_mtok": 0.0, "output_per_mtok": 0.0},
        )
        model = make_chat_model(settings)
        began = time.monotonic()
        pieces = list(model.stream("hello"))
        assert time.monotonic() - began >= 0.3
        first, second = server.arrivals
        assert second - first >= 0.3
        assert model.limiter is not None and model.limiter.max_in_flight == 1
    assert pieces[0].response_metadata["retries"] == [{"error": "HTTP 429", "waited_s": 0.3}]
    assert "FINISH_SIGNAL" in "".join(str(p.content) for p in pieces)
