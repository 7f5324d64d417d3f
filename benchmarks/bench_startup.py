"""Start-up: what a cold process pays, against ``python -c "import pandas"`` in the same run.

Prints the median of ``--repeat`` cold processes, wall and CPU time, each in seconds and as
a ratio to the pandas import (the cases take turns, so the machine's load weighs on all
alike; the targets apply to the wall-time ratio):
- ``python -c "import ttg_lab"``;
- a cold ``ttg-lab run`` of a 100-day momentum baseline on the direct path (whole process);
- the same on the chat path (chat model + LangChain agent + in-memory MCP tools).
Targets: direct <= 3x the pandas import, chat <= 10x. With ``--imports N`` it also lists
the N packages that cost the chat-path run most (``python -X importtime``, own time).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import ttg_lab

PERIOD = ("2025-06-10", "2025-10-30")
"""100 trading days of the shipped daily data."""
MODEL = "bench-momentum"
TTG_LAB = str(Path(sys.executable).parent / "ttg-lab")
PANDAS_CASE = 'python -c "import pandas"'
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)")


@dataclass(frozen=True)
class Case:
    """One cold process to time, and the ratio to the pandas import it must stay under."""

    name: str
    command: list[str]
    target: float | None = None


@dataclass(frozen=True)
class Timing:
    """Medians over the cold processes of one command: wall time, and CPU time (user +
    system), which a busy machine inflates much less than the wall time."""

    wall: float
    cpu: float


def cold_timings(commands: list[list[str]], env: dict[str, str], repeat: int) -> list[Timing]:
    """Timings of ``repeat`` fresh processes of each command. The commands take turns in
    every round, so a load that comes and goes weighs on all of them alike."""
    walls: list[list[float]] = [[] for _ in commands]
    cpus: list[list[float]] = [[] for _ in commands]
    for _ in range(repeat):
        for command, wall, cpu in zip(commands, walls, cpus, strict=True):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            wall.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return [
        Timing(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus, strict=True)
    ]


def biggest_imports(command: list[str], env: dict[str, str], top: int) -> list[tuple[str, float]]:
    """The ``top`` packages by their modules' own import time in one cold run of the
    Python script ``command[0]`` (the console script is one)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *command],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    own: Counter[str] = Counter()
    for line in (result.stderr + result.stdout).splitlines():
        match = IMPORT_LINE.search(line)
        if match:
            own[match.group(3).split(".")[0]] += int(match.group(1))
    return [(name, micros / 1e6) for name, micros in own.most_common(top)]


def prepare_store(folder: Path) -> str:
    """A fresh SQLite store with the shipped data and the momentum model; its URL."""
    url = f"sqlite:///{folder / 'startup.db'}"
    lab = ttg_lab.open(url)
    try:
        lab.models.create(MODEL, ai_model_id="baseline/momentum", initial_cash=100_000.0)
    finally:
        lab.close()
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="cold processes per case")
    parser.add_argument("--imports", type=int, default=0, help="list the N biggest imports")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ttg-startup-"))
    env = {**os.environ, "TTG_LAB_DB_URL": prepare_store(folder), "TTG_LAB_STATE_DIR": str(folder)}
    run = [TTG_LAB, "run", MODEL, "--start", PERIOD[0], "--end", PERIOD[1], "--path"]
    cases = [
        Case("import ttg_lab", [sys.executable, "-c", "import ttg_lab"]),
        Case("ttg-lab run, direct path", [*run, "direct"], target=3.0),
        Case("ttg-lab run, chat path", [*run, "chat"], target=10.0),
    ]
    pandas, *timings = cold_timings(
        [[sys.executable, "-c", "import pandas"], *(case.command for case in cases)],
        env,
        args.repeat,
    )
    print(f"median of {args.repeat} cold processes; 100-day momentum over {' .. '.join(PERIOD)}")
    print(f"{'':<32} {'wall':>6}   ratio {'cpu':>6}   ratio")
    print(f"{PANDAS_CASE:<32} {pandas.wall:6.2f} s  1.0x {pandas.cpu:6.2f} s  1.0x")
    for case, timing in zip(cases, timings, strict=True):
        ratio = timing.wall / pandas.wall
        verdict = ""
        if case.target is not None:
            verdict = f"  target <= {case.target:g}x: {'met' if ratio <= case.target else 'MISSED'}"
        print(
            f"{case.name:<32} {timing.wall:6.2f} s {ratio:4.1f}x "
            f"{timing.cpu:6.2f} s {timing.cpu / pandas.cpu:4.1f}x{verdict}"
        )
    if args.imports:
        print("\nbiggest imports of the chat-path run (own time, one process, -X importtime):")
        for name, own in biggest_imports([*run, "chat"], env, args.imports):
            print(f"  {name:<28} {own:6.3f} s")


if __name__ == "__main__":
    main()
