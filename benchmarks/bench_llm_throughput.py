"""LLM runs at once in one process against a provider that answers after a fixed delay.

Our OpenAI-compatible test server (tests/support/openai_server.py, on 127.0.0.1, in a
process of its own as a provider would be, so it takes no CPU from the runs' process)
answers every request after ``--delay`` seconds (500 ms) with a decision that ends the
step, so each daily step is exactly one model call. ``--runs`` runs (32) of ``--steps`` daily
steps (10) each, on 3 tickers through the full chat path (LangChain, MCP tools, gate,
ledger, store on SQLite), first one after another, then all started at once in the
background under the provider's concurrency limit (``--limit``, 16). Prints both wall
times, the speed-up (target >= 0.8 x the limit: 12.8x at 16), the most requests the
server saw in flight (must be <= the limit) and the calls per step.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from _common import fresh_lab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.openai_server import ChatRequest, OpenAIStubServer, Quirks, Reply, Text

from ttg_lab.config import resolve_settings
from ttg_lab.lab import Lab
from ttg_lab.run import Run

TICKERS = ["AAPL", "MSFT", "NVDA"]
START = "2025-07-01"
FINISH = "DECISION: hold.\nREFLECTION: nothing to do.\n<FINISH_SIGNAL>"


def holds(_request: ChatRequest) -> Reply:
    """One answer per step: hold and finish (no tool call, so one call per step)."""
    return Text(FINISH, completion_tokens=8)


def trading_days(count: int) -> str:
    """The date of the ``count``-th trading day from START in the shipped US data."""
    bars = pd.read_parquet(resolve_settings().data_dir / "market" / "us_daily.parquet")
    days = sorted({ts.date() for ts in pd.to_datetime(bars["ts"]) if ts >= pd.Timestamp(START)})
    return days[count - 1].isoformat()


def serve(delay: float) -> None:
    """The provider's process: serves until its input ends; ``reset`` forgets what it saw,
    ``stats`` prints the requests it got and the most it had in flight at once."""
    with OpenAIStubServer(holds, Quirks(answer_delay=delay)) as server:
        print(server.base_url, flush=True)
        for line in sys.stdin:
            if line.strip() == "reset":
                server.reset(holds, Quirks(answer_delay=delay))
                print("ok", flush=True)
            elif line.strip() == "stats":
                print(len(server.requests), server.max_in_flight, flush=True)


class Provider:
    """The stub server in a child process, asked over its standard input and output."""

    def __init__(self, delay: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self._ask(None)

    def _ask(self, command: str | None) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def reset(self) -> None:
        self._ask("reset")

    def stats(self) -> tuple[int, int]:
        """Requests received, and the most in flight at once, since the last reset."""
        requests, most = self._ask("stats").split()
        return int(requests), int(most)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


def models(lab: Lab, server: Provider, label: str, count: int, limit: int) -> list[str]:
    names = []
    for i in range(count):
        info = lab.models.create(
            f"tput {label} {i}",
            ai_model_id="openai-compatible/bench",
            tickers=TICKERS,
            parameters={
                "base_url": server.base_url,
                "input_per_mtok": 0.0,
                "output_per_mtok": 0.0,
                "tool_mode": "native",
                "max_concurrency": limit,
                "timeout": 30.0,
            },
        )
        names.append(info.signature)
    return names


def check(runs: list[Run], steps: int) -> None:
    for run in runs:
        info = run.info
        if info.status != "completed" or info.steps_done != steps:
            print(f"  !! run {run.id}: {info.status} {info.steps_done}/{steps}: {info.error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--limit", type=int, default=16, help="provider concurrency limit")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds per answer")
    parser.add_argument("--skip-sequential", action="store_true", help="runs x steps x delay")
    parser.add_argument("--serve", type=float, help=argparse.SUPPRESS)  # the provider's process
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    end = trading_days(args.steps)
    lab = fresh_lab()
    server = Provider(args.delay)
    try:
        one, many = (models(lab, server, s, args.runs, args.limit) for s in ("seq", "par"))
        print(
            f"{args.runs} runs x {args.steps} daily steps, answers after {args.delay:g} s, "
            f"concurrency limit {args.limit}, SQLite"
        )
        if args.skip_sequential:
            sequential = args.runs * args.steps * args.delay
            print(f"one after another: {sequential:7.2f} s (not run: runs x steps x delay)")
        else:
            began = time.perf_counter()
            done = [
                lab.start_run(m, start=START, end=end, costs="zero", background=False) for m in one
            ]
            sequential = time.perf_counter() - began
            check(done, args.steps)
            calls, _ = server.stats()
            print(
                f"one after another: {sequential:7.2f} s "
                f"({calls / (args.runs * args.steps):.2f} calls per step, "
                f"{sequential / (args.runs * args.steps) - args.delay:.3f} s per step "
                "beyond the answer's delay)"
            )
        server.reset()
        began = time.perf_counter()
        running = [lab.start_run(m, start=START, end=end, costs="zero") for m in many]
        started = time.perf_counter() - began
        for run in running:
            run.wait()
        together = time.perf_counter() - began
        check(running, args.steps)
        calls, most = server.stats()
        ideal = args.runs * args.steps * args.delay / min(args.limit, args.runs)
        print(
            f"all at once:       {together:7.2f} s (starting them {started:.2f} s; "
            f"{calls / (args.runs * args.steps):.2f} calls per step; "
            f"ideal at the limit {ideal:.2f} s)"
        )
        speedup = sequential / together
        target = 0.8 * min(args.limit, args.runs)
        print(
            f"speed-up {speedup:5.1f}x (target >= {target:.1f}x: "
            f"{'met' if speedup >= target else 'NOT met'}); "
            f"max in flight {most} (limit {args.limit}: "
            f"{'respected' if most <= args.limit else 'EXCEEDED'})"
        )
    finally:
        server.close()
        lab.close()


if __name__ == "__main__":
    main()
