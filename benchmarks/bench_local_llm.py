"""A real small model on the whole chat path: SmolLM2-135M served by ``ttg-lab llm serve``.

For each tool mode (native tool calls, JSON actions) one run of ``--steps`` daily decision
steps on 3 tickers through LangChain, the MCP tools, the gate, the ledger and the store.
Prints per mode: how the run ended, seconds per decision step, prompt and completion
tokens per step (the server's counts), and the parse-failure rate (invalid tool calls /
all tool calls the model made).

Needs the ``local-llm`` extra (``.ci/install-local-llm``). Example:
``python benchmarks/bench_local_llm.py --steps 3``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from _common import fresh_lab
from sqlalchemy import select

from ttg_lab.config import resolve_settings
from ttg_lab.lab import Lab
from ttg_lab.store.schema import LLMCall

TICKERS = ["AAPL", "MSFT", "NVDA"]
START = "2025-07-01"


@dataclass(frozen=True)
class ModeResult:
    """What one run in one tool mode measured."""

    mode: str
    status: str
    steps: int
    steps_total: int
    seconds_per_step: float
    prompt_tokens_per_step: float
    completion_tokens_per_step: float
    tool_calls: int
    invalid_calls: int

    @property
    def parse_failure_rate(self) -> float:
        made = self.tool_calls + self.invalid_calls
        return self.invalid_calls / made if made else 0.0


def trading_days(count: int) -> str:
    """The date of the ``count``-th trading day from START in the shipped US data."""
    bars = pd.read_parquet(resolve_settings().data_dir / "market" / "us_daily.parquet")
    days = sorted({ts.date() for ts in pd.to_datetime(bars["ts"]) if ts >= pd.Timestamp(START)})
    return days[count - 1].isoformat()


def serve(state_dir: Path, port: int, threads: int) -> dict[str, str]:
    """``ttg-lab llm serve smollm2`` in the background; the environment that reaches it."""
    env = {**os.environ, "TTG_LAB_STATE_DIR": str(state_dir)}
    command = [sys.executable, "-m", "ttg_lab.cli", "llm", "serve", "smollm2"]
    command += ["--port", str(port), "--threads", str(threads)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
    return env


def run_mode(lab: Lab, url: str, mode: str, steps: int, args: argparse.Namespace) -> ModeResult:
    model = lab.models.create(
        f"smollm2 {mode}",
        ai_model_id="local/smollm2",
        tickers=TICKERS,
        parameters={
            "base_url": url,
            "tool_mode": mode,
            "max_tokens": args.max_tokens,
            "max_steps": args.max_calls,
            "temperature": 0.0,
            "seed": 7,
            "step_timeout": args.step_timeout,
        },
    )
    started = time.perf_counter()
    run = lab.start_run(model, start=START, end=trading_days(steps), costs="zero")
    status = run.wait()
    seconds = time.perf_counter() - started
    with lab.store.session() as session:
        calls = list(session.scalars(select(LLMCall).where(LLMCall.run_id == run.id)))
    info = run.info
    attempted = max(1, len({c.step_index for c in calls}))
    answered = [c for c in calls if c.status == "ok"]
    return ModeResult(
        mode=mode,
        status=status if status == "completed" else f"{status}: {(info.error or '')[:60]}",
        steps=info.steps_done,
        steps_total=info.steps_total,
        seconds_per_step=seconds / attempted,
        prompt_tokens_per_step=sum(c.prompt_tokens for c in calls) / attempted,
        completion_tokens_per_step=sum(c.completion_tokens for c in calls) / attempted,
        tool_calls=sum(len(c.tool_calls) for c in answered),
        invalid_calls=sum(
            len(c.response.get("data", {}).get("invalid_tool_calls") or []) for c in answered
        ),
    )


def table(results: list[ModeResult]) -> str:
    lines = [
        f"{'mode':<7} {'steps':>5} {'s/step':>7} {'prompt/step':>11} {'compl/step':>10} "
        f"{'tool calls':>10} {'invalid':>7} {'fail rate':>9}  status",
    ]
    for r in results:
        lines.append(
            f"{r.mode:<7} {f'{r.steps}/{r.steps_total}':>5} {r.seconds_per_step:>7.1f} "
            f"{r.prompt_tokens_per_step:>11.0f} {r.completion_tokens_per_step:>10.0f} "
            f"{r.tool_calls:>10} {r.invalid_calls:>7} {r.parse_failure_rate:>9.0%}  {r.status}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="daily decision steps per mode")
    parser.add_argument("--modes", nargs="+", default=["native", "json"])
    parser.add_argument("--max-tokens", type=int, default=64, help="answer budget per call")
    parser.add_argument("--max-calls", type=int, default=3, help="model calls per step")
    parser.add_argument("--step-timeout", type=float, default=300.0)
    parser.add_argument("--threads", type=int, default=1, help="server threads")
    parser.add_argument("--port", type=int, default=8199)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")

    state_dir = Path(tempfile.mkdtemp(prefix="ttg-bench-llm-"))
    env = serve(state_dir, args.port, args.threads)
    lab = fresh_lab()
    try:
        url = f"http://127.0.0.1:{args.port}/v1"
        results = [run_mode(lab, url, mode, args.steps, args) for mode in args.modes]
    finally:
        lab.close()
        stop = [sys.executable, "-m", "ttg_lab.cli", "llm", "stop"]
        subprocess.run(stop, env=env, check=False, capture_output=True, timeout=60)
    print(
        f"SmolLM2-135M via ttg-lab llm serve ({args.threads} thread(s)), {len(TICKERS)} "
        f"tickers, max_tokens {args.max_tokens}, {args.max_calls} calls/step"
    )
    print(table(results))


if __name__ == "__main__":
    main()
