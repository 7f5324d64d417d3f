"""The ttg-lab command as a user runs it: real processes on a private store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ttg_lab

TTG_LAB = Path(sys.executable).parent / "ttg-lab"
"""The console script installed next to this interpreter."""


def ttg(
    db_url: str, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TTG_LAB_DB_URL": db_url, "COLUMNS": "200", **(env or {})}
    result = subprocess.run(
        [str(TTG_LAB), *args], capture_output=True, text=True, env=env, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"ttg-lab {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.mark.slow
def test_init_then_demo_prints_the_baselines(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    out = ttg(url, "init").stdout
    assert "loaded us_daily: 10,200 bars" in out
    assert "up to date" in ttg(url, "init").stdout  # idempotent

    out = ttg(url, "demo").stdout
    assert "2025-06-10 .. 2025-10-30" in out
    for name in (
        "demo-buy-and-hold-qqq",
        "demo-momentum",
        "demo-mean-reversion",
        "demo-random",
        "demo-cash",
    ):
        assert name in out
    assert "100,000.00" in out  # the cash baseline ends where it started

    runs = ttg(url, "runs").stdout
    assert sum(1 for line in runs.splitlines() if "demo-" in line and "completed" in line) == 6


def test_errors_are_one_clear_line(db_url: str) -> None:
    result = ttg(db_url, "models", "create", "x", "--cash", "-5", check=False)
    assert result.returncode == 1
    assert "error: initial cash must be above 0" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr

    result = ttg(db_url, "run", "nobody", check=False)
    assert result.returncode == 1 and "no model 'nobody'" in result.stdout


def test_models_and_runs_from_the_command_line(db_url: str) -> None:
    ttg(
        db_url,
        "models",
        "create",
        "cli mom",
        "--ai-model",
        "baseline/momentum",
        "--param",
        "top_k=3",
        "--tickers",
        "AAPL,MSFT,NVDA,AMZN,META",
    )
    assert "cli-mom" in ttg(db_url, "models", "list").stdout
    out = ttg(
        db_url, "run", "cli-mom", "--start", "2025-07-01", "--end", "2025-08-29", "--costs", "zero"
    ).stdout
    assert "completed" in out
    out = ttg(db_url, "data", "list").stdout
    assert "us_hourly" in out and "crypto_daily" in out


@pytest.mark.slow
def test_mcp_services_from_the_command_line(db_url: str, tmp_path: Path) -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    base = probe.getsockname()[1]
    probe.close()
    try:
        out = ttg(db_url, "mcp", "start", "math", "price", "--base-port", str(base)).stdout
        assert out.count("True") >= 4 and "2 of 2 healthy" in out  # running and healthy, twice
        status = ttg(db_url, "mcp", "status").stdout
        assert f"http://127.0.0.1:{base}/mcp" in status and "get_price_local" in status
        refused = ttg(db_url, "mcp", "start", "--host", "0.0.0.0", check=False)
        assert refused.returncode == 1 and "without a token" in refused.stdout
    finally:
        out = ttg(db_url, "mcp", "stop").stdout
    assert "math" in out and "price" in out
    assert "none were running" in ttg(db_url, "mcp", "stop").stdout


@pytest.mark.slow
def test_mcp_start_waits_until_the_services_answer_or_says_they_are_still_starting(
    tmp_path: Path,
) -> None:
    """With too short a wait the command says which services are still starting and
    where their logs are (exit 1); asked again it waits until they answer (exit 0)."""
    import socket

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    logs = Path(os.environ["TTG_LAB_STATE_DIR"]) / "logs"
    try:
        early = ttg(
            url, "mcp", "start", "math", "--base-port", str(base), "--wait", "0", check=False
        )
        assert early.returncode == 1, early.stdout
        assert "still starting after 0 s: math" in early.stdout, early.stdout
        assert str(logs / "mcp-math.log") in early.stdout.replace("\n", "")
        later = ttg(url, "mcp", "start", "math", "--wait", "300").stdout
        assert "1 of 1 healthy" in later and "mcp-token-local" in later.replace("\n", "")
        assert "healthy" in ttg(url, "mcp", "status").stdout
    finally:
        ttg(url, "mcp", "stop")


def test_replay_from_the_command_line(db_url: str) -> None:
    ttg(
        db_url,
        "models",
        "create",
        "replayable",
        "--ai-model",
        "baseline/momentum",
        "--param",
        "top_k=3",
        "--tickers",
        "AAPL,MSFT,NVDA,AMZN",
    )
    ttg(db_url, "run", "replayable", "--start", "2025-07-01", "--end", "2025-08-15")
    out = ttg(db_url, "replay", "1").stdout
    assert "ledgers identical" in out


def test_run_resume_and_replay_exit_1_unless_the_run_completed(db_url: str) -> None:
    """A run refused at the start writes nothing; a run that fails, its resume that
    fails again and a replay with nothing to replay all exit 1 with the reason."""
    lab = ttg_lab.open(db_url)
    lab.models.create(
        "unreachable",
        ai_model_id="openai/gpt-5",
        parameters={
            "base_url": "http://127.0.0.1:9/v1",  # nothing listens there
            "api_key_env": "TTG_DEAD_KEY",
            "max_retries": 0,
            "retry_delay": 0,
            "timeout": 1,
        },
    )
    period = ["--start", "2025-07-01", "--end", "2025-07-03"]
    try:
        refused = ttg(db_url, "run", "unreachable", *period, check=False)
        assert refused.returncode == 1
        assert "needs an API key: set the environment variable TTG_DEAD_KEY" in refused.stdout
        assert lab.runs().table().empty  # nothing written

        keyed = {"TTG_DEAD_KEY": "sk-dead-0000"}
        failed = ttg(db_url, "run", "unreachable", *period, check=False, env=keyed)
        assert failed.returncode == 1 and "ModelCallError" in failed.stdout
        again = ttg(db_url, "resume", "1", check=False, env=keyed)
        assert again.returncode == 1 and "ModelCallError" in again.stdout
        assert lab.run(1).status == "failed"
        replay = ttg(db_url, "replay", "1", check=False)
        assert replay.returncode == 1
        assert "run 1 has no recorded LLM calls to replay" in replay.stdout
        assert len(lab.runs()) == 1  # no phantom replay run
    finally:
        lab.close()


def test_rules_profile_and_settings_from_the_command_line(db_url: str) -> None:
    ttg(
        db_url,
        "models",
        "create",
        "ruled",
        "--ai-model",
        "baseline/buy_and_hold",
        "--tickers",
        "AAPL,MSFT,NVDA",
    )
    ttg(
        db_url,
        "rules",
        "add",
        "ruled",
        "no nvda",
        "--param",
        'blocked_symbols=["NVDA"]',
        "--category",
        "compliance",
    )
    ttg(db_url, "rules", "add", "ruled", "cap", "--param", "max_position_pct=20", "--priority", "8")
    bad = ttg(
        db_url, "rules", "add", "ruled", "oops", "--param", "max_position_pct=500", check=False
    )
    assert bad.returncode == 1 and "max_position_pct must be in" in bad.stdout
    listed = ttg(db_url, "rules", "list", "ruled").stdout
    assert "no nvda" in listed and "cap" in listed and "oops" not in listed

    ttg(db_url, "profile", "set", "max_open_positions=2", "risk_tolerance=conservative")
    assert "max_open_positions: 2" in ttg(db_url, "profile", "show").stdout
    ttg(db_url, "settings", "set", "rules.ceilings", '{"max_order_pct": 50}')
    assert '"max_order_pct": 50' in ttg(db_url, "settings", "show").stdout

    ttg(db_url, "run", "ruled", "--start", "2025-06-10", "--end", "2025-06-20", "--path", "direct")
    table = ttg(db_url, "rules", "attribution", "1").stdout
    for name in ("no nvda", "cap", "user profile", "global ceiling"):
        assert name in table
    ttg(db_url, "rules", "remove", "ruled", "cap")
    assert "cap" not in ttg(db_url, "rules", "list", "ruled").stdout.replace("compliance", "")


def test_chat_with_the_analyst_from_the_command_line(db_url: str) -> None:
    ttg(db_url, "models", "create", "talker", "--ai-model", "baseline/momentum", "--cash", "100000")
    ttg(db_url, "run", "talker", "--path", "direct")
    out = ttg(db_url, "chat", "1", "-q", "how did it do?", "-q", "which rules would help?").stdout
    assert "offline analyst on run 1" in out and "returned" in out and "suggestion" in out
    assert "[trade:" in out


@pytest.mark.slow
def test_batch_from_the_command_line(db_url: str, tmp_path: Path) -> None:
    experiment = tmp_path / "small.yaml"
    experiment.write_text(
        "name: small\nconcurrency: 2\nbase: {path: direct}\n"
        "grid:\n  ai_model_id: [baseline/momentum, baseline/cash]\n"
        "  period: [{start: 2025-07-01, end: 2025-08-29}]\n"
    )
    env_reports = {"TTG_LAB_REPORTS_DIR": str(tmp_path / "reports")}
    os.environ.update(env_reports)
    try:
        out = ttg(db_url, "batch", str(experiment)).stdout
        assert "2 done, 0 failed, 0 skipped" in out
        assert "2 done, 0 failed, 2 skipped" in ttg(db_url, "batch", str(experiment)).stdout
        rerun = ttg(db_url, "batch", "--rerun", "1").stdout
        assert "identical ledger" in rerun
        bad = tmp_path / "bad.yaml"
        bad.write_text("name: bad\ngrid: {period: [{start: 2025-09-01, end: 2025-08-01}]}\n")
        refused = ttg(db_url, "batch", str(bad), check=False)
        assert refused.returncode == 1 and "is before start" in refused.stdout
    finally:
        os.environ.pop("TTG_LAB_REPORTS_DIR")


@pytest.mark.slow
def test_run_with_repeats_prints_the_experiment_and_exits_1_unless_every_repeat_completed(
    db_url: str,
) -> None:
    lab = ttg_lab.open(db_url)
    lab.models.create("rand", ai_model_id="baseline/random", tickers=["AAPL", "MSFT", "NVDA"])
    lab.models.create(
        "unreachable",
        ai_model_id="openai/gpt-5",
        parameters={"base_url": "http://127.0.0.1:9/v1", "api_key_env": "TTG_DEAD_KEY"}
        | {"max_retries": 0, "retry_delay": 0, "timeout": 1},
    )
    period = ["--start", "2025-06-10", "--end", "2025-06-20"]
    try:
        out = ttg(
            db_url, "run", "rand", "--path", "direct", "--seed", "4", "--repeats", "3", *period
        )
        (experiment,) = lab.experiments()
        assert f"experiment {experiment.id}: rand x3" in out.stdout and "seeds 4..6" in out.stdout
        for run in experiment.runs:
            assert f"run {run.id}: completed" in out.stdout
        assert "experiment" in ttg(db_url, "runs").stdout
        board = ttg(db_url, "leaderboard").stdout
        assert "n_runs" in board and "mean_ci_low" in board  # the repeats behind the row

        refused = ttg(db_url, "run", "rand", "--repeats", "0", *period, check=False)
        assert refused.returncode == 1 and "repeats must be a whole number" in refused.stdout
        keyed = {"TTG_DEAD_KEY": "sk-dead-0000"}
        failed = ttg(
            db_url, "run", "unreachable", "--repeats", "2", *period, check=False, env=keyed
        )
        assert failed.returncode == 1 and "failed" in failed.stdout
        assert len(lab.experiments()) == 2
    finally:
        lab.close()
