"""Security: API keys come from the environment only and are never written anywhere;
names, tickers, rule parameters, chat text and LLM tool arguments are data, never SQL or
code; the MCP services and the dashboard bind to 127.0.0.1 unless exposed with a token;
text shown in the dashboard and in reports is escaped."""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import ipywidgets as w
import pytest
from click.testing import CliRunner
from sqlalchemy import String, Text, func, inspect, select
from sqlalchemy.types import JSON
from support.openai_server import ChatRequest, Fault, OpenAIStubServer, Reply, ToolCalls
from support.openai_server import Text as Say

import ttg_lab
from ttg_lab import dashboard
from ttg_lab.cli import main as cli
from ttg_lab.engine.reader import RunReader
from ttg_lab.engine.stored_reasoning import search_reasoning
from ttg_lab.errors import ConfigError, TTGLabError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.mcp_services.manager import TOKEN_ENV, ServiceManager, check_exposure
from ttg_lab.mcp_services.sessions import SessionRegistry
from ttg_lab.reports import comparison_report
from ttg_lab.store.schema import (
    Base,
    ChatMessage,
    LedgerEntry,
    ModelRule,
    TradingModel,
    TradingRun,
)
from ttg_lab.users import add_user, list_users
from widgets.analyst import AnalystController
from widgets.app import Dashboard
from widgets.common import Controller, status_html

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KEY_ENV = "TTG_SECURITY_LLM_KEY"
ROUTER_ENV = "OPENROUTER_API_KEY"  # the catalog's default key variable


def sentinel() -> str:
    """A unique fake API key."""
    return "sk-" + secrets.token_hex(24)


LLM_KEY, ROUTER_KEY, MCP_TOKEN = sentinel(), sentinel(), "tok-" + secrets.token_hex(16)
"""Fake secrets of this module (the MCP service is started with all three around)."""

SQL = "x'); DROP TABLE trading_runs;--"
CODE = "__import__('os').system('touch {pwned}')"
TEMPLATE = "{{7*7}} ${7*7} {0.__class__} %(x)s"
XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


# ------------------------------------------------------------------------ helpers


def needles(*keys: str) -> list[str]:
    """Each key, and its head and tail (what a careless mask would leave)."""
    return [part for key in keys for part in (key, key[:12], key[-12:])]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def trader(
    fault_at: dict[int, Reply] | None = None, say: str = "", symbol: str = "AAPL"
) -> Callable[[ChatRequest], Reply]:
    """Each step: read the news, buy 1 ``symbol``, finish (reasoning includes ``say``);
    ``fault_at`` replaces given call numbers."""
    faults = dict(fault_at or {})

    def respond(request: ChatRequest) -> Reply:
        if request.call_number in faults:
            return faults.pop(request.call_number)
        answered = sum(1 for m in request.messages if m["role"] == "tool")
        if answered == 0:
            return ToolCalls([("get_information", {"query": "AAPL news"})], content=f"PLAN: {say}")
        if answered == 1:
            return ToolCalls(
                [
                    ("buy", {"symbol": symbol, "quantity": 1}),
                    ("buy", {"symbol": "AAPL", "quantity": 1}),
                ],
                content=f"ANALYSIS: {say}",
            )
        return Say(f"DECISION: {say}\nREFLECTION: fine.\n<FINISH_SIGNAL>")

    return respond


def llm_params(stub: OpenAIStubServer, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": stub.base_url,
        "api_key_env": KEY_ENV,
        "max_retries": 1,
        "timeout": 5.0,
        "retry_delay": 0.01,
        **extra,
    }


def llm_model(lab: Lab, stub: OpenAIStubServer, name: str, **extra: Any) -> Any:
    return lab.models.create(
        name, ai_model_id="openai/gpt-5", tickers=["AAPL"], parameters=llm_params(stub, **extra)
    )


def use_llm_analyst(lab: Lab, stub: OpenAIStubServer) -> None:
    """The analyst answers with an LLM (default key variable) behind ``stub``."""
    lab.settings.set("analyst.ai_model_id", "openai/gpt-5")
    lab.settings.set(
        "analyst.parameters", {"base_url": stub.base_url, "max_retries": 1, "retry_delay": 0.01}
    )


def text_columns(lab: Lab) -> Iterator[tuple[str, str]]:
    """(table, row as JSON) over the text and JSON columns of every table in the store."""
    with lab.store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if columns:
                for row in conn.execute(select(*columns)):
                    yield table.name, json.dumps(list(row), default=str)


def table_counts(lab: Lab) -> dict[str, int]:
    with lab.store.engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in Base.metadata.sorted_tables
        }


def mcp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, LLM_KEY)  # after conftest's fixture cleared the online keys
    monkeypatch.setenv(ROUTER_ENV, ROUTER_KEY)


@pytest.fixture(scope="module")
def mcp_service(
    template_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceManager]:
    """The math service in its own process, exposed to nobody but guarded by a token given
    as an option (not in the environment), with this module's fake keys in its
    environment. Started without waiting, so it boots while other tests work."""
    import shutil

    folder = tmp_path_factory.mktemp("mcp")
    shutil.copy(template_db, folder / "lab.db")
    lab = ttg_lab.open(f"sqlite:///{folder / 'lab.db'}", init=False)
    manager = ServiceManager(replace(lab.config, state_dir=folder / "state"))
    lab.close()
    with pytest.MonkeyPatch.context() as patch:
        mcp_env(patch)
        patch.delenv(TOKEN_ENV, raising=False)
        manager.start(["math"], ports={"math": free_port()}, token=MCP_TOKEN, wait=0)
    try:
        yield manager
    finally:
        manager.stop()


def mcp_url(manager: ServiceManager) -> str:
    status = next(s for s in manager.status() if s.service == "math")
    return f"http://{status.host}:{status.port}"


def wait_listening(manager: ServiceManager, timeout: float = 60.0) -> str:
    """The service's base URL once it answers at all (any status)."""
    url = mcp_url(manager)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=1.0)
            return url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"the MCP service did not come up: {manager.log_dir}")


@pytest.fixture()
def sqlite_lab(sqlite_url: str) -> Iterator[Lab]:
    """A lab on SQLite only (for tests whose subject is not the database)."""
    lab = ttg_lab.open(sqlite_url)
    yield lab
    lab.close()


@pytest.fixture()
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Everything logged in this process (any library, any level) also goes to a file."""
    path = tmp_path / "state" / "logs" / "lab-debug.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


# ------------------------------------------------------------------- 1. secrets


@pytest.mark.slow
def test_api_keys_are_never_written_to_store_logs_reports_or_notebooks(
    sqlite_url: str,
    openai_stub: OpenAIStubServer,
    mcp_service: ServiceManager,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    debug_log: Path,
) -> None:
    """LLM runs, the LLM analyst, reports, the command line, an MCP service and a
    papermill notebook, with providers echoing the keys in errors: the keys (and their
    heads and tails) are nowhere in the store, the state folder, logs or reports."""
    mcp_env(monkeypatch)
    reports = tmp_path / "reports"
    monkeypatch.setenv("TTG_LAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TTG_LAB_REPORTS_DIR", str(reports))
    monkeypatch.setenv("TTG_LAB_DB_URL", sqlite_url)
    outputs: dict[str, str] = {}
    lab = ttg_lab.open(sqlite_url)
    try:
        # an LLM run whose provider fails once echoing the key (retried), then trades
        openai_stub.reset(trader({1: Fault("status", status=500, message=f"broke {LLM_KEY}")}))
        ok = lab.start_run(llm_model(lab, openai_stub, "keyed"), end="2025-06-12", costs="zero")
        assert ok.wait(60) == "completed", ok.info.error
        # a run the provider refuses, echoing the key in its error
        openai_stub.reset(lambda _: Fault("status", status=401, message=f"bad key {LLM_KEY}"))
        refused = llm_model(lab, openai_stub, "refused", max_retries=0)
        failed = lab.start_run(refused, end="2025-06-12")
        assert failed.wait(60) == "failed"
        assert "AuthenticationError" in str(failed.info.error)

        # the LLM analyst, its provider failing once with the key
        use_llm_analyst(lab, openai_stub)
        openai_stub.reset(
            lambda r: (
                Fault("status", status=500, message=f"no {ROUTER_KEY}")
                if r.call_number == 1
                else Say(f"It bought AAPL [run:{ok.id}].")
            )
        )
        answer = lab.analyst(ok.id).ask("How did it do?")
        assert answer.source == "llm" and "AAPL" in answer.text

        # the failed run's report (it shows the run's error), from the command line
        report = CliRunner().invoke(cli, ["--db", sqlite_url, "report", str(failed.id)])
        assert report.exit_code == 0, report.output
        outputs["report"] = report.output

        # the MCP service: requests with and without its token
        url = wait_listening(mcp_service)
        outputs["mcp"] = httpx.get(f"{url}/health").text + httpx.post(f"{url}/mcp").text

        # a papermill-executed notebook running an LLM model with the key around
        openai_stub.reset(trader({1: Fault("status", status=500, message=f"oops {LLM_KEY}")}))
        executed = tmp_path / "state" / "run_experiment-out.ipynb"
        import papermill

        papermill.execute_notebook(
            str(NOTEBOOKS / "run_experiment.ipynb"),
            str(executed),
            parameters={
                "model": "notebook llm",
                "ai_model_id": "openai/gpt-5",
                "path": "chat",
                "start": "2025-06-10",
                "end": "2025-06-11",
                "parameters_json": json.dumps(llm_params(openai_stub)),
            },
            kernel_name="python3",
            cwd=str(NOTEBOOKS),
            progress_bar=False,
            execution_timeout=120,
        )
        assert '"status": "completed"' in executed.read_text()
        rows = list(text_columns(lab))
    finally:
        lab.close()

    # the keys are nowhere: not in any text or JSON column, not in any file written
    words = needles(LLM_KEY, ROUTER_KEY)
    assert {"llm_calls", "trading_runs", "chat_messages", "models"} <= {t for t, _ in rows}
    assert any("***" in text for table, text in rows if table == "llm_calls")  # echoed, masked
    found = [f"table {table}: {w}" for table, text in rows for w in words if w in text]
    written = [
        *(p for p in tmp_path.rglob("*") if p.is_file()),  # store, state, logs, reports
        *(p for p in mcp_service.settings.state_dir.rglob("*") if p.is_file()),
    ]
    assert debug_log in written and executed in written
    assert mcp_service.log_dir / "mcp-math.log" in written
    assert len(list(reports.glob("*.html"))) == 2  # one here, one by the notebook
    for path in written:
        data = path.read_bytes()
        found += [f"{path}: {w}" for w in words if w.encode() in data]
    found += [
        f"output of {name}: {w}" for name, text in outputs.items() for w in words if w in text
    ]
    assert not found, "\n".join(found)
    assert "error" in debug_log.read_text().lower()  # the failures were logged, masked


def test_the_chat_command_shows_provider_errors_without_the_key(
    lab: Lab, openai_stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    mcp_env(monkeypatch)
    model = lab.models.create("talker", ai_model_id="baseline/momentum", tickers=["AAPL"])
    run = lab.start_run(model, end="2025-06-12", path="direct", background=False)
    use_llm_analyst(lab, openai_stub)
    openai_stub.reset(lambda _: Fault("status", status=401, message=f"bad key {ROUTER_KEY}"))
    url = lab.config.db_url
    result = CliRunner().invoke(cli, ["--db", url, "chat", str(run.id), "-q", "why?"])
    shown = result.output + repr(result.exception)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), shown
    assert not [w for w in needles(ROUTER_KEY) if w in shown]


def test_keys_are_never_taken_from_model_parameters(lab: Lab) -> None:
    """A key given as a model parameter is refused with a clear error, and the key
    variable must be a variable name, never the key itself."""
    for params in ({"api_key": LLM_KEY}, {"openai_api_key": LLM_KEY}, {"key": LLM_KEY}):
        with pytest.raises(ValidationError, match="unknown parameter"):
            lab.models.create("leak", ai_model_id="openai/gpt-5", parameters=params)
    with pytest.raises(ValidationError, match="api_key_env has an invalid value"):
        lab.models.create("leak", ai_model_id="openai/gpt-5", parameters={"api_key_env": LLM_KEY})
    with pytest.raises(ValidationError, match="unknown parameter"):
        lab.analyst(
            lab.start_run(
                lab.models.create("quiet", ai_model_id="baseline/cash"),
                end="2025-06-11",
                path="direct",
                background=False,
            ).id,
            model="openai/gpt-5",
            parameters={"api_key": LLM_KEY},
        )
    assert lab.models.list()[0].name == "quiet"


def test_settings_refuse_api_keys(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    mcp_env(monkeypatch)
    with pytest.raises(ValidationError):
        lab.settings.set("openrouter.api_key", "sk-typed-into-settings-123")
    with pytest.raises(ValidationError):
        lab.settings.set("analyst.parameters", {"base_url": f"https://x/?key={ROUTER_KEY}"})
    assert not any(w in json.dumps(lab.settings.all()) for w in needles(ROUTER_KEY))


def test_model_parameters_refuse_a_key_from_the_environment(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    mcp_env(monkeypatch)
    with pytest.raises(ValidationError):
        lab.models.create(
            "url key",
            ai_model_id="openai/gpt-5",
            parameters={"base_url": f"https://openrouter.ai/api/v1?key={LLM_KEY}"},
        )


def test_panels_never_show_or_log_a_key(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing panel action logs its traceback and shows its error with keys masked."""
    mcp_env(monkeypatch)
    ctl = Controller(lab)
    with caplog.at_level(logging.DEBUG), ctl.action():
        raise RuntimeError(f"provider said: bad key {LLM_KEY}")
    assert "RuntimeError" in caplog.text and "went wrong" in ctl.error
    assert not [w for w in needles(LLM_KEY) if w in caplog.text]

    analyst = AnalystController(lab)

    class Failing:
        run_id = 1

        def ask_stream(self, question: str) -> Iterator[str]:
            raise TTGLabError(f"the provider refused key {ROUTER_KEY}")
            yield ""

    analyst.analyst, analyst.run_id, analyst.question = Failing(), 1, "why?"
    analyst.ask(wait=True)
    assert "provider refused" in status_html(analyst)
    assert not [w for w in needles(ROUTER_KEY) if w in status_html(analyst)]


TYPED_ENV = "TTG_TYPED_BROKER_PASSWORD"
"""A secret of the environment that does not look like any provider's key."""

CHOICE_COLUMNS: dict[str, str] = {
    "users.role": "admin | user",
    "models.market": "a known market",
    "trading_runs.mode": "daily | intraday",
    "model_rules.category": "a known category",
    "user_trading_profiles.experience": "a known level",
    "user_trading_profiles.risk_tolerance": "a known level",
    "signup_allowlist.role": "admin | user",
    "datasets.market": "a known market",
}
"""Columns a user chooses into from a fixed set: anything else is refused (masked)."""

MACHINE_COLUMNS: dict[str, str] = {
    "users.db_role": "made from the username",
    "trading_runs.status": "run state",
    "trading_runs.error": "the run's failure, masked (redact)",
    "trading_runs.worker": "host:pid",
    "trading_runs.metrics": "numbers",
    "run_steps.holdings": "symbols and quantities",
    "run_steps.risk_state": "numbers and dates",
    "run_steps.data_seen": "a hash of the bars the step saw",
    "ledger.action": "a trade action",
    "ledger.symbol": "a known symbol",
    "ledger.holdings": "symbols and quantities",
    "ledger.order_id": "made from the step and call",
    "ledger.status": "fill state",
    "ledger.reason": "the gate's answer",
    "agent_logs.messages": "the step's messages: prompts built from refused-checked text",
    "reasoning_entries.type": "a reasoning type",
    "reasoning_entries.content": "the agent's own words",
    "reasoning_entries.context": "what the agent saw",
    "reasoning_entries.order_ids": "order ids",
    "stock_prices.market": "the load's market",
    "stock_prices.symbol": "checked symbols",
    "stock_prices.interval": "1d | 60min",
    "datasets.interval": "1d | 60min",
    "datasets.fingerprint": "a hash",
    "datasets.symbols": "checked symbols",
    "chat_messages.role": "user | assistant",
    "chat_messages.tool_calls": "the analyst's tool calls, masked (redact_data)",
    "llm_calls.ai_model_id": "the model's checked id",
    "llm_calls.request_fingerprint": "a hash",
    "llm_calls.request": "the messages sent",
    "llm_calls.response": "the provider's answer",
    "llm_calls.tool_calls": "the model's tool calls",
    "llm_calls.status": "call state",
    "llm_calls.error": "the provider's error, masked (redact)",
    "news_items.source": "from a news file or provider",
    "news_items.url": "from a news file or provider",
    "news_items.title": "from a news file or provider",
    "news_items.summary": "from a news file or provider",
    "news_items.content": "from a news file or provider",
    "news_items.symbols": "from a news file or provider",
    "news_items.topics": "from a news file or provider",
    "gate_decisions.order_id": "made from the step and call",
    "gate_decisions.origin": "agent | rule:<name>",
    "gate_decisions.action": "a trade action",
    "gate_decisions.symbol": "the order's symbol",
    "gate_decisions.requested": "the quantity asked",
    "gate_decisions.verdict": "allow | resize | reject",
    "gate_decisions.firings": "rule names and reasons",
    "gate_decisions.portfolio": "cash and positions",
    "experiments.options": "the checked costs, fill and path",
}
"""Columns the lab writes itself (or imports from files), not text a user types."""


def typing_into(lab: Lab, tmp_path: Path) -> dict[str, Callable[[str], object]]:
    """For every stored column a user types free text into, a way to type ``text``
    into it through the API."""
    model = lab.models.create("typed", ai_model_id="baseline/cash", tickers=["AAPL"])
    run = lab.start_run(model, end="2025-06-11", path="direct", background=False)
    analyst = lab.analyst(run.id)
    csv = tmp_path / "bars.csv"
    csv.write_text("date,symbol,open,high,low,close,volume\n2025-06-10,ZZZ,10,11,9,10,100\n")

    def bars_at(folder: str) -> str:
        (tmp_path / folder).mkdir(exist_ok=True)
        return str(shutil.copy(csv, tmp_path / folder / "bars.csv"))

    cap = {"max_position_pct": 10}
    return {
        "users.email": lambda t: lab.users.add(f"{t}@lab.test", "Typist"),
        "users.username": lambda t: lab.users.add("typist@lab.test", "Typist", username=t),
        "users.display_name": lambda t: lab.users.sign_up("typist@lab.test", f"Typist {t}"),
        "models.name": lambda t: lab.models.create(f"model {t}"),
        "models.signature": lambda t: lab.models.create("signed", signature=t),
        "models.description": lambda t: lab.models.update(model, description=f"see {t}"),
        "models.tickers": lambda t: lab.models.create("picky", tickers=["AAPL", t]),
        "models.ai_model_id": lambda t: lab.models.create("agent", ai_model_id=t),
        "models.parameters": lambda t: lab.models.create(
            "llm", ai_model_id="openai/gpt-5", parameters={"base_url": f"https://x.test/?k={t}"}
        ),
        "models.custom_rules": lambda t: lab.models.update(model, custom_rules=f"not {t}"),
        "models.custom_instructions": lambda t: lab.models.create("told", custom_instructions=t),
        "trading_runs.strategy_snapshot": lambda t: lab.start_run(
            model, end="2025-06-11", path="direct", background=False, provenance={"tags": t}
        ),
        "datasets.name": lambda t: lab.data.load(str(csv), "us", name=f"bars {t}"),
        "datasets.source": lambda t: lab.data.load(bars_at(t), "us"),
        "model_rules.name": lambda t: lab.rules.add(model, f"rule {t}", cap),
        "model_rules.description": lambda t: lab.rules.add(model, "cap", cap, description=t),
        "model_rules.parameters": lambda t: lab.rules.add(model, "ban", {"blocked_symbols": [t]}),
        "model_rules.scope": lambda t: lab.rules.add(model, "cap", cap, scope={"symbols": [t]}),
        "user_trading_profiles.trading_hours": lambda t: lab.profile.update(
            trading_hours={"start": t, "end": "15:00"}
        ),
        "signup_allowlist.pattern": lambda t: lab.users.allow(f"{t}@lab.test"),
        "global_settings.key": lambda t: lab.settings.set(f"note.{t}", 1),
        "global_settings.value": lambda t: lab.settings.set("note", {"text": t}),
        "chat_messages.content": lambda t: analyst.ask(f"is {t} my key?"),
        "experiments.name": lambda t: lab.start_run(
            model, end="2025-06-11", path="direct", background=False, repeats=1, name=t
        ),
    }


def choosing_into(lab: Lab) -> dict[str, Callable[[str], object]]:
    """For every column of :data:`CHOICE_COLUMNS`, a way to give ``text`` as the choice."""
    model = lab.models.create("chooser", ai_model_id="baseline/cash", tickers=["AAPL"])
    cap = {"max_position_pct": 10}
    return {
        "users.role": lambda t: lab.users.add("role@lab.test", "Role", role=t),
        "models.market": lambda t: lab.models.create("market", market=t),
        "trading_runs.mode": lambda t: lab.start_run(model, mode=t, background=False),
        "experiments.mode": lambda t: lab.start_run(model, mode=t, background=False, repeats=2),
        "model_rules.category": lambda t: lab.rules.add(model, "cat", cap, category=t),
        "user_trading_profiles.experience": lambda t: lab.profile.update(experience=t),
        "user_trading_profiles.risk_tolerance": lambda t: lab.profile.update(risk_tolerance=t),
        "signup_allowlist.role": lambda t: lab.users.allow("@lab.test", role=t),
        "datasets.market": lambda t: lab.data.load(__file__, t),
    }


def test_keys_typed_into_any_stored_text_are_refused_and_never_echoed(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every column of the store is either free text a user types (then a key typed
    into it, from the environment or shaped like a provider's, is refused naming where,
    never quoting it), a fixed choice (refused, masked), or written by the lab: a new
    column must be classified here. Nothing typed is stored."""
    everything = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, String | Text | JSON)
    }
    typed, chosen = typing_into(lab, tmp_path), choosing_into(lab)
    classified = set(typed) | set(chosen) | set(MACHINE_COLUMNS)
    assert everything == classified, (
        f"classify: {sorted(everything - classified)}; gone: {sorted(classified - everything)}"
    )
    env_secret, shaped = "pw-" + secrets.token_hex(16), "sk-or-v1-" + secrets.token_hex(32)
    monkeypatch.setenv(TYPED_ENV, env_secret)
    before = table_counts(lab)
    for column, type_in in [*typed.items(), *chosen.items()]:
        for secret, named in ((env_secret, f"${TYPED_ENV}"), (shaped, "an API key")):
            with pytest.raises(TTGLabError) as refused:
                type_in(secret)
            message = str(refused.value)
            assert not [w for w in needles(secret) if w in message], (column, message)
            if column in typed:
                assert f"holds {'the value of ' if '$' in named else ''}{named}" in message, (
                    column,
                    message,
                )
    after = table_counts(lab)
    assert {t: n for t, n in after.items() if n != before[t]} == {}, "something was written"
    stored = [(t, row) for t, row in text_columns(lab)]
    assert not [t for t, row in stored for s in (env_secret, shaped) if s in row]


def test_experiments_and_imports_refuse_typed_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An experiment's name, tags and labels and an import's name suffix are text that
    ends up in the store and in report paths: a key there is refused, not quoted."""
    from ttg_lab.batch.experiment import ExperimentError, parse_experiment
    from ttg_lab.importers.aitrader import import_aitrader

    key = "sk-proj-" + secrets.token_hex(24)
    monkeypatch.setenv(TYPED_ENV, "pw-" + secrets.token_hex(16))
    base = {"mode": "daily", "path": "direct", "start": "2025-06-10", "end": "2025-06-20"}
    for doc in (
        {"name": f"sweep-{key}", "base": base, "grid": {"seed": [0]}},
        {"name": "sweep", "base": {**base, "tags": f"mine,{key}"}, "grid": {"seed": [0]}},
        {"name": "sweep", "base": base, "grid": {"model": [os.environ[TYPED_ENV]]}},
    ):
        with pytest.raises(ExperimentError, match="holds") as refused:
            parse_experiment(doc)
        assert key not in str(refused.value) and os.environ[TYPED_ENV] not in str(refused.value)
    with pytest.raises(ValidationError, match="the name suffix holds an API key") as refused:
        import_aitrader(None, tmp_path, owner_id=1, name_suffix=f" ({key})")  # type: ignore[arg-type]
    assert key not in str(refused.value)


def test_the_command_line_refuses_typed_keys_and_masks_stored_ones(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key typed into a rule name or an analyst question is refused without being
    echoed; text stored before these checks that holds one is shown masked."""
    mcp_env(monkeypatch)
    model = lab.models.create("cli keys", ai_model_id="baseline/cash", tickers=["AAPL"])
    run = lab.start_run(model, end="2025-06-11", path="direct", background=False)
    url = lab.config.db_url

    def ttg(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["--db", url, *args])
        return result.exit_code, result.output

    shaped = "sk-ant-api03-" + secrets.token_hex(24)
    for typed in (ROUTER_KEY, shaped):
        code, out = ttg("rules", "add", "cli-keys", f"cap {typed}", "--param", "max_position_pct=9")
        assert code == 1 and "holds" in out and not [w for w in needles(typed) if w in out], out
        code, out = ttg(
            "rules",
            "add",
            "cli-keys",
            "cap",
            "--param",
            "max_position_pct=9",
            "--description",
            f"key: {typed}",
        )
        assert code == 1 and not [w for w in needles(typed) if w in out], out
        code, out = ttg("chat", str(run.id), "-q", f"why is {typed} here?")
        assert code == 1 and "the question holds" in out, out
        assert not [w for w in needles(typed) if w in out], out
    with lab.store.session() as session:  # a rule saved before the check existed
        session.add(
            ModelRule(
                model_id=model.id,
                name=f"old {ROUTER_KEY}",
                category="risk",
                description=shaped,
                parameters={"max_position_pct": 9},
                scope={},
            )
        )
    code, out = ttg("rules", "list", "cli-keys")
    assert code == 0 and "old ***" in out, out
    assert not [w for w in needles(ROUTER_KEY, shaped) if w in out], out
    assert len(lab.analyst(run.id).history()) == 0


# ----------------------------------------------------------- 2. parameters, not code


def test_names_tickers_rules_and_chat_text_are_data(lab: Lab, tmp_path: Path) -> None:
    """Injection strings are stored and returned verbatim, or refused with a clear error;
    no table is dropped and no code runs."""
    code = CODE.format(pwned=tmp_path / "pwned")
    tables = set(inspect(lab.store.engine).get_table_names())
    hostile = [SQL, code, TEMPLATE, XSS]
    models = []
    for i, text in enumerate(hostile):
        model = lab.models.create(
            text,
            ai_model_id="baseline/buy_and_hold",
            tickers=["AAPL"],
            description=text,
            custom_instructions=text,
            custom_rules=text,
            signature=f"hostile-{i}",
        )
        stored = lab.models.get(model.id)
        assert (stored.name, stored.description, stored.custom_rules) == (text, text, text)
        rule = lab.rules.add(model, text, {"max_position_pct": 50}, description=text)
        assert (rule.name, rule.description) == (text, text)
        models.append(model)
    assert [m.name for m in lab.models.list() if m.signature.startswith("hostile")] == hostile

    for text in hostile:
        with pytest.raises(ValidationError, match="unknown ticker"):
            lab.models.create("bad tickers", tickers=["AAPL", text])
        with pytest.raises(ValidationError, match="must be a number"):
            lab.rules.add(models[0], "bad limit", {"max_position_pct": text})
        with pytest.raises(ValidationError, match="unknown rule parameter"):
            lab.rules.add(models[0], "bad key", {text: 5})
        with pytest.raises(ValidationError, match="risk_tolerance must be one of"):
            lab.profile.update(risk_tolerance=text)
        with pytest.raises(ValidationError, match="unknown parameter"):
            lab.models.create("bad param", parameters={text: 1})
    blocked = lab.rules.add(
        models[0], "blocked", {"blocked_symbols": [SQL]}, scope={"symbols": [SQL]}
    )
    assert all(isinstance(s, str) for s in blocked.parameters["blocked_symbols"])

    # settings, users and chat text, verbatim
    lab.settings.set(SQL, {"note": code, "template": TEMPLATE})
    assert lab.settings.all()[SQL] == {"note": code, "template": TEMPLATE}
    add_user(lab.store, lab.user, "o'brien--@lab.test", SQL)
    assert {"o'brien--@lab.test": SQL}.items() <= {
        str(u["email"]): u["display_name"] for u in list_users(lab.store, lab.user)
    }.items()
    run = lab.start_run(models[0], end="2025-06-20", path="direct", background=False)
    analyst = lab.analyst(run.id)
    for text in hostile:
        analyst.ask(text)
    asked = [m["content"] for m in analyst.history() if m["role"] == "user"]
    assert asked == hostile

    # reasoning search: every filter is a bound parameter, full-text syntax included
    for text in [*hostile, '"', "*", "NEAR(a b)", "a OR b -c", "%_\\"]:
        frame, total = search_reasoning(lab.store, run_id=run.id, text=text)
        assert total >= len(frame) >= 0
    assert search_reasoning(lab.store, run_id=run.id)[1] > 0

    # MCP session headers are data too
    registry = SessionRegistry(RunReader(lab.store, lab.user))
    assert registry.context_for({"X-TTG-Session": SQL}).run_id == 0
    assert SQL in registry.sessions()
    with pytest.raises(ValidationError, match="must be a run id"):
        registry.context_for({"X-TTG-Run": f"{run.id} OR 1=1"})
    with pytest.raises(ValidationError):
        registry.context_for({"X-TTG-Session": "s2", "X-TTG-Clock": SQL})

    assert set(inspect(lab.store.engine).get_table_names()) == tables
    assert not (tmp_path / "pwned").exists()
    with lab.store.session() as session:
        assert session.scalar(select(func.count()).select_from(TradingRun)) == 1
        assert session.scalar(select(func.count()).select_from(TradingModel)) == 4


def test_llm_tool_arguments_are_data(
    lab: Lab, openai_stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Tool arguments from an LLM (trader and analyst) carrying SQL or code are refused
    or answered as data; the run completes and the store is intact."""
    mcp_env(monkeypatch)
    code = CODE.format(pwned=tmp_path / "pwned")
    tables = set(inspect(lab.store.engine).get_table_names())

    def respond(request: ChatRequest) -> Reply:
        answered = sum(1 for m in request.messages if m["role"] == "tool")
        if "propose_rule" in request.tool_names:  # the analyst
            if answered == 0:
                return ToolCalls(
                    [
                        ("get_reasoning", {"text": SQL}),
                        ("compare_runs", {"other_run_id": SQL}),
                        ("propose_rule", {"name": SQL, "parameters": {"blocked_symbols": code}}),
                        ("propose_rule", {"name": code, "parameters": {SQL: 1}}),
                    ]
                )
            return Say(f"Done: {TEMPLATE}")
        if answered == 0:
            return ToolCalls(
                [
                    ("get_price_local", {"symbol": SQL}),
                    ("get_price_local", {"symbol": "AAPL", "date": code}),
                    ("get_information", {"query": f"{SQL} {code}"}),
                    ("add", {"a": SQL, "b": 1}),
                    ("buy", {"symbol": SQL, "quantity": 1}),
                    ("sell", {"symbol": "AAPL", "quantity": code}),
                ]
            )
        return Say(f"DECISION: {TEMPLATE}\n<FINISH_SIGNAL>")

    openai_stub.reset(respond)
    model = llm_model(lab, openai_stub, "tool abuser", max_retries=0)
    run = lab.start_run(model, end="2025-06-11", costs="zero")
    assert run.wait(60) == "completed", run.info.error
    ledger = run.ledger()
    refused = ledger[ledger["reason"].str.contains("unknown symbol", na=False)]
    assert len(refused) == 2 and set(refused["status"]) == {"rejected"}
    assert all(SQL.upper() in reason for reason in refused["reason"])  # quoted as data
    assert TEMPLATE in " ".join(run.reasoning()["content"])

    use_llm_analyst(lab, openai_stub)
    answer = lab.analyst(run.id).ask(SQL)
    results = " ".join(c["result"] for c in answer.tool_calls)
    assert len(answer.tool_calls) == 4 and "refused" in results
    assert answer.text == f"Done: {TEMPLATE}" and not answer.suggestions

    assert set(inspect(lab.store.engine).get_table_names()) == tables
    assert not (tmp_path / "pwned").exists()
    with lab.store.session() as session:
        assert session.scalar(select(func.count()).select_from(TradingRun)) == 1
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == len(ledger)
        assert SQL in session.scalars(select(ChatMessage.content)).all()


SQL_SINKS = {"text", "literal_column", "exec_driver_sql", "execute", "executemany", "executescript"}
SQL_WORDS = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|ALTER|CREATE|DROP|PRAGMA|WITH)\b")
AUDITED: dict[tuple[str, str], str] = {
    ("ttg_lab/store/database.py", "_sqlite_pragmas"): (
        "busy_timeout is int() of a configured number; PRAGMA takes no bound parameters"
    ),
    (
        "ttg_lab/store/migrations/versions/0006_users_signup_row_level_security.py",
        "_policies",
    ): "table names and conditions come from the module's own constants OWNED and SHARED",
    (
        "ttg_lab/store/migrations/versions/0006_users_signup_row_level_security.py",
        "_drop_policies",
    ): "table names come from the module's own constants OWNED and SHARED",
    (
        "ttg_lab/store/migrations/versions/0006_users_signup_row_level_security.py",
        "<module>",
    ): "OWNED_MODELS and OWNED_RUNS are policy conditions built from the constants ME, ADMIN",
}
"""Audited SQL built from identifiers (never from input), by (file, enclosing function)."""


def _dynamic_text(node: ast.AST) -> str | None:
    """The constant text of a string built at run time (f-string with fields, ``%``,
    ``+`` or ``.format``), or None for anything else."""
    if isinstance(node, ast.JoinedStr):
        if not any(isinstance(v, ast.FormattedValue) for v in node.values):
            return None
        return "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        parts = [node.left, node.right]
        texts = [
            p.value
            if isinstance(p, ast.Constant) and isinstance(p.value, str)
            else _dynamic_text(p)
            for p in parts
        ]
        if any(t is not None for t in texts) and not all(
            isinstance(p, ast.Constant) for p in parts
        ):
            return "".join(t or "" for t in texts)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
    ):
        return node.func.value.value
    return None


def _sql_problems(path: Path, source: str) -> list[tuple[str, str, int, str]]:
    """(file, function, line, what) for SQL or code execution built from run-time text."""
    relative = path.relative_to(ROOT).as_posix()
    problems = []
    tree = ast.parse(source)
    scopes: dict[ast.AST, str] = {}
    for scope in ast.walk(tree):
        if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(scope):
                scopes.setdefault(inner, scope.name)
    for node in ast.walk(tree):
        where = scopes.get(node, "<module>")
        if isinstance(node, ast.Call):
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else node.func.id
                if isinstance(node.func, ast.Name)
                else ""
            )
            if name in ("eval", "exec") and isinstance(node.func, ast.Name):
                problems.append((relative, where, node.lineno, f"{name}() call"))
            if name in SQL_SINKS and node.args and _dynamic_text(node.args[0]) is not None:
                problems.append((relative, where, node.lineno, f"{name}() of a built string"))
        text = _dynamic_text(node)
        if text is not None and SQL_WORDS.match(text):
            line = getattr(node, "lineno", 0)
            problems.append((relative, where, line, f"SQL built at run time: {text[:40]!r}"))
    return problems


def test_no_sql_or_code_is_built_from_text() -> None:
    """Static check of ttg_lab/ and widgets/: no ``text()``/``execute()`` of an f-string,
    ``%``, ``+`` or ``.format`` string, no SQL assembled at run time, no eval/exec —
    except the audited identifier-only cases in ``AUDITED``."""
    problems = []
    for folder in ("ttg_lab", "widgets"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            problems += _sql_problems(path, path.read_text(encoding="utf-8"))
    unaudited = [p for p in problems if (p[0], p[1]) not in AUDITED]
    assert not unaudited, "\n".join(
        f"{f}:{line} in {fn}: {what}" for f, fn, line, what in unaudited
    )
    assert {(p[0], p[1]) for p in problems} == set(AUDITED), "stale AUDITED entries"


def test_the_static_check_catches_built_sql() -> None:
    """The checker itself flags the patterns it is meant to."""
    bad = (
        "def f(conn, name, text):\n"
        "    conn.exec_driver_sql(f'SELECT * FROM models WHERE name = {name}')\n"
        "    conn.execute(text('DELETE FROM x WHERE id = %s' % name))\n"
        "    q = 'UPDATE models SET name = ' + name\n"
        "    conn.execute('SELECT {}'.format(name))\n"
        "    eval(name)\n"
    )
    found = _sql_problems(ROOT / "ttg_lab" / "fake.py", bad)
    assert {line for _, _, line, _ in found} == {2, 3, 4, 5, 6}


# --------------------------------------------------------------------- 3. binding


def test_mcp_services_and_dashboard_bind_to_loopback_by_default(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inspect as pyinspect

    from ttg_lab import cli as cli_module
    from ttg_lab.mcp_services import manager

    assert pyinspect.signature(ServiceManager.start).parameters["host"].default == "127.0.0.1"
    assert pyinspect.signature(dashboard.serve).parameters["host"].default == "127.0.0.1"
    for command in ("mcp start", "mcp serve", "dashboard"):
        group, _, sub = command.rpartition(" ")
        parent: Any = cli_module.main.commands[group] if group else cli_module.main
        option = next(p for p in parent.commands[sub].params if p.name == "host")
        assert option.default == "127.0.0.1", command
    assert "--Voila.ip=127.0.0.1" in dashboard.voila_command("127.0.0.1", 8866, None)

    for host in ("0.0.0.0", "", "::", "192.168.1.5"):
        with pytest.raises(ConfigError, match="without a token"):
            check_exposure(host, None)
    check_exposure("0.0.0.0", "a-token")

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv("TTG_LAB_DASHBOARD_TOKEN", raising=False)
    monkeypatch.setattr("ttg_lab.dashboard.subprocess.Popen", _forbidden)
    url = lab.config.db_url
    with pytest.raises(ConfigError, match="without a token"):
        dashboard.serve(url, host="0.0.0.0")
    with pytest.raises(ConfigError, match="without a token"):
        manager.serve("math", url, "0.0.0.0", free_port(), None, lab.user)
    for args in (["dashboard", "--host", "0.0.0.0"], ["mcp", "serve", "math", "--host", "::"]):
        result = CliRunner().invoke(cli, ["--db", url, *args])
        assert result.exit_code == 1 and "without a token" in result.output, result.output


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("nothing may be started when exposure is refused")


def test_the_dashboard_token_travels_in_the_environment(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exposed with a token, Voila gets the token through its environment, never on its
    command line (where every local user could read it)."""
    token = "dash-" + secrets.token_hex(12)
    started: list[tuple[list[str], dict[str, str]]] = []

    class FakeVoila:
        def __init__(self, command: list[str], env: dict[str, str], cwd: str) -> None:
            started.append((command, env))

        def wait(self) -> int:
            return 0

    monkeypatch.setattr("ttg_lab.dashboard.subprocess.Popen", FakeVoila)
    monkeypatch.setattr(dashboard, "is_prepared", lambda _lab: True)
    assert dashboard.serve(lab.config.db_url, "0.0.0.0", 8866, token) == 0
    ((command, env),) = started
    assert "--Voila.ip=0.0.0.0" in command
    assert not [part for part in command if token in part]
    assert env["JUPYTER_TOKEN"] == token
    assert "--Voila.auto_token=False" not in command  # authentication stays on


@pytest.mark.slow
def test_an_exposed_mcp_service_requires_its_token(mcp_service: ServiceManager) -> None:
    """A real request on 127.0.0.1: no token or a wrong one is 401; the manager, given
    the token as an option, finds the service healthy; the token is not on its command
    line."""
    url = wait_listening(mcp_service)
    assert httpx.get(f"{url}/health").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.get(f"{url}/health", headers=wrong).status_code == 401
    assert httpx.post(f"{url}/mcp", json={}, headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {MCP_TOKEN}"}
    health = httpx.get(f"{url}/health", headers=right)
    assert health.status_code == 200 and "add" in health.json()["tools"]
    (status,) = mcp_service.start(["math"], token=MCP_TOKEN, wait=30)
    assert status.host == "127.0.0.1" and status.healthy
    cmdline = Path(f"/proc/{status.pid}/cmdline").read_bytes().split(b"\0")
    assert b"127.0.0.1" in cmdline and not [p for p in cmdline if MCP_TOKEN.encode() in p]


# -------------------------------------------------------------------- 4. escaping

PAYLOAD = f"{XSS} {IMG}"
RAW_MARKUP = re.compile(r"<\s*(script|img)\b|onerror\s*=\s*alert\(1\)\s*>", re.IGNORECASE)


def html_values(widget: w.Widget) -> Iterator[tuple[str, str]]:
    """(widget class, HTML) of every HTML widget under ``widget``, and any description
    rendered as HTML."""
    if isinstance(widget, w.HTML | w.HTMLMath):
        yield type(widget).__name__, widget.value
    if getattr(widget, "description_allow_html", False):
        yield type(widget).__name__, widget.description
    for child in getattr(widget, "children", ()):
        yield from html_values(child)


@pytest.mark.slow
def test_dashboard_and_reports_escape_text_from_llms_news_and_users(
    sqlite_lab: Lab, openai_stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """News, reasoning, tool calls, refusals, chat answers, model, rule, user and setting
    names carrying markup are escaped in every panel's HTML and in the reports."""
    lab = sqlite_lab
    mcp_env(monkeypatch)
    news = tmp_path / "news.jsonl"
    news.write_text(
        json.dumps(
            {
                "url": "https://news.test/1",
                "title": f"AAPL {PAYLOAD}",
                "summary": PAYLOAD,
                "published_at": "2025-06-09T12:00:00",
                "symbols": ["AAPL"],
            }
        )
        + "\n"
    )
    assert lab.data.load_news(str(news)) == 1

    def respond(request: ChatRequest) -> Reply:
        if "propose_rule" in request.tool_names:  # the analyst
            if not any(m["role"] == "tool" for m in request.messages):
                rule = {"name": PAYLOAD, "parameters": {"max_position_pct": 10}, "rationale": IMG}
                return ToolCalls([("propose_rule", rule)])
            return Say(f"Answer {PAYLOAD}: see {PAYLOAD} [trade:1]")
        tool = [m for m in request.messages if m["role"] == "tool"]
        said = f"{PAYLOAD} news: {tool[0]['content'][:400]}" if tool else PAYLOAD
        return trader(say=said, symbol=IMG)(request)

    openai_stub.reset(respond)
    model = lab.models.create(
        f"Model {PAYLOAD}",
        ai_model_id="openai/gpt-5",
        tickers=["AAPL"],
        description=PAYLOAD,
        parameters=llm_params(openai_stub),
        signature="hostile",
    )
    lab.rules.add(model, f"rule {PAYLOAD}", {"max_position_pct": 90}, description=PAYLOAD)
    use_llm_analyst(lab, openai_stub)
    add_user(lab.store, lab.user, "mallory@lab.test", PAYLOAD)
    lab.settings.set(f"note {PAYLOAD}", {"text": PAYLOAD})
    lab.user.display_name = PAYLOAD

    board = Dashboard(lab)
    root = board.widget()
    for index in range(len(board.panels)):
        board.tabs.selected_index = index  # builds every panel's view
    c = board.controllers
    c["Run"].model, c["Run"].end, c["Run"].costs = "hostile", "2025-06-11", "zero"
    assert c["Run"].start_run(), c["Run"].error
    assert c["Run"].wait(60) == "completed"
    run_id = c["Run"].run_id
    assert any(IMG in line for line in c["Run"].terminal)  # the refused order, verbatim
    c["Monitor"].watch(run_id)
    c["Reasoning"].choose("hostile")
    c["Reasoning"].step(+1)
    c["Rules"].choose("hostile")
    c["Rules"].load_attribution(run_id)
    c["Leaderboard"].refresh()
    c["Performance"].run_ids = [run_id]
    assert c["Performance"].show(), c["Performance"].error
    c["Analyst"].open(run_id)
    c["Analyst"].question = PAYLOAD
    assert c["Analyst"].ask(wait=True)
    deadline = time.time() + 30
    while c["Analyst"].busy and time.time() < deadline:
        time.sleep(0.05)
    assert c["Analyst"].suggestions and c["Analyst"].history
    c["Admin"].refresh()
    c["Models"].new()
    c["Models"].name, c["Models"].tickers = "quoted", f"AAPL {XSS}"  # the error quotes it
    assert not c["Models"].save() and XSS.upper() in c["Models"].error

    shown = list(html_values(root))
    panels = {
        title
        for (title, _, _), slot in zip(board.panels, board.tabs.children, strict=True)
        if "&lt;img src=x onerror=alert(1)&gt;" in "".join(v for _, v in html_values(slot)).lower()
    }
    assert panels >= {"Models", "Run", "Monitor", "Reasoning", "Rules", "Analyst", "Admin"}
    everything = "".join(value for _, value in shown)
    for where in ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;"):
        assert everything.count(where) >= 10  # the text is there, escaped
    raw = [(kind, value) for kind, value in shown if RAW_MARKUP.search(value)]
    assert not raw, raw[0][1][:2000]
    for name, figure in c["Performance"].figures.items():
        chart = figure.to_html(include_plotlyjs=False)
        assert XSS not in chart and IMG not in chart, name

    monkeypatch.setenv("TTG_LAB_REPORTS_DIR", str(tmp_path / "reports"))
    other = lab.start_run(
        lab.models.create(PAYLOAD, ai_model_id="baseline/momentum", signature="hostile-2"),
        end="2025-06-20",
        path="direct",
        background=False,
    )
    for report in (
        lab.run(run_id).report(tmp_path / "run.html"),
        comparison_report(lab, [run_id, other.id], tmp_path / "compare.html"),
    ):
        page = report.read_text()
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        assert XSS not in page and IMG not in page and "<img" not in page
