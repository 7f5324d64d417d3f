"""The masking audit: it finds every real ticker, company name, real date and unscaled price
in what a run's model read or wrote, says where, and passes what masking translated.

Detectors are checked on crafted records; whole runs (unmasked, masked on the chat path,
deliberately leaky, the real local model) and the command line follow.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from support.local_llm import require_local_llm, serve_smollm2
from support.openai_server import ChatRequest, OpenAIStubServer, Reply, Text, ToolCalls

from ttg_lab.analyst.masking import masked_answer, real_arguments
from ttg_lab.audit import Leak, LeakDetector, RecordedText, audit_run, recorded_texts
from ttg_lab.cli import main
from ttg_lab.cli.audit import LEAKS_SHOWN
from ttg_lab.engine.reader import RunInfo
from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.market.masking import Mask, make_mask
from ttg_lab.market.names import company_names
from ttg_lab.run import Run
from ttg_lab.store.schema import LedgerEntry, LLMCall

SYMBOLS = ["AAPL", "MSFT", "BTC-USDT", "600519.SH"]
WINDOW = (date(2024, 6, 10), date(2025, 6, 20))
PRICES = {
    "AAPL": [201.45, 203.5, 199.87],
    "MSFT": [470.38, 472.0],
    "BTC-USDT": [105432.1],
    "600519.SH": [1432.5],
}


@pytest.fixture
def mask() -> Mask:
    return make_mask(11, SYMBOLS, {s: company_names(s) for s in SYMBOLS})


@pytest.fixture
def detector(mask: Mask) -> LeakDetector:
    return LeakDetector(SYMBOLS, {s: company_names(s) for s in SYMBOLS}, WINDOW, PRICES, mask)


def call(*messages: dict[str, Any], answer: str = "", call_id: int = 5) -> LLMCall:
    """A recorded call as the recorder writes it: request messages, the response dumped."""
    return LLMCall(
        id=call_id,
        step_index=2,
        request={"messages": list(messages), "tools": ["get_price"]},
        response={"type": "ai", "data": {"content": answer, "tool_calls": [], "id": "run-1"}},
    )


def leaks_of(detector: LeakDetector, recorded: LLMCall) -> list[Leak]:
    return [leak for text in recorded_texts(recorded) for leak in detector.find(text)]


def kinds_and_values(leaks: list[Leak]) -> set[tuple[str, str]]:
    return {(leak.kind, leak.value) for leak in leaks}


def test_a_masked_conversation_has_no_leaks(detector: LeakDetector, mask: Mask) -> None:
    aapl = mask.symbol("AAPL")
    masked_price = mask.price("AAPL", 201.45)
    recorded = call(
        {"role": "system", "content": mask.text("You trade AAPL (Apple Inc.) and MSFT.")},
        {"role": "human", "content": f"{mask.text('2025-06-12')}: {aapl} open {masked_price:.2f}"},
        {
            "role": "tool",
            "content": json.dumps(mask.answer({"symbol": "AAPL", "close": 201.45}, "AAPL")),
        },
        answer=f"Buying 3 {aapl} at {masked_price:.2f}; a pineapple is not a ticker.",
    )
    assert leaks_of(detector, recorded) == []


def test_every_real_ticker_name_and_date_is_found_and_located(detector: LeakDetector) -> None:
    recorded = call(
        {"role": "system", "content": "You trade AAPL, Microsoft and 贵州茅台 (600519)."},
        {"role": "human", "content": "On June 10, 2025 (also 10 Jun 2025, 2025年6月10日)"},
        {"role": "tool", "content": '{"symbol": "BTC", "time": "2025-06-11 10:30"}'},
        {"role": "tool", "content": '{"symbol": "BTC-USDT", "note": "Bitcoin"}'},
        answer="apple inc. looks strong into 2025/06/12, 20250613 and the 16th of June 2025",
    )
    leaks = leaks_of(detector, recorded)
    assert kinds_and_values(leaks) == {
        ("ticker", "AAPL"),
        ("name", "Microsoft"),
        ("name", "贵州茅台"),
        ("ticker", "600519"),
        ("date", "June 10, 2025"),
        ("date", "10 Jun 2025"),
        ("date", "2025年6月10日"),
        ("ticker", "BTC"),
        ("date", "2025-06-11"),
        ("ticker", "BTC-USDT"),
        ("name", "Bitcoin"),
        ("name", "apple inc."),
        ("date", "2025/06/12"),
        ("date", "20250613"),
        ("date", "16th of June 2025"),
    }
    where = {leak.value: leak.where for leak in leaks}
    assert where["AAPL"] == "call 5 (step 2) request message 1 (system)"
    assert where["BTC"] == "call 5 (step 2) request message 3 (tool)"
    assert where["apple inc."] == "call 5 (step 2) response"


def test_tickers_are_whole_case_sensitive_words(detector: LeakDetector) -> None:
    recorded = call({"role": "human", "content": "AAPLX, aapl, MSFTs, 16005190 and 6005191"})
    assert leaks_of(detector, recorded) == []


def test_a_name_spelled_like_a_ticker_is_found_once_as_the_ticker() -> None:
    names = {"XRP-USDT": company_names("XRP-USDT")}  # "Ripple" and "XRP"
    detector = LeakDetector(["XRP-USDT"], names, WINDOW, {}, make_mask(3, ["XRP-USDT"], names))
    recorded = call({"role": "human", "content": "XRP-USDT, XRP and Ripple; xrp"})
    assert sorted((leak.kind, leak.value) for leak in leaks_of(detector, recorded)) == [
        ("name", "Ripple"),
        ("name", "xrp"),
        ("ticker", "XRP"),
        ("ticker", "XRP-USDT"),
    ]


def test_dates_outside_the_window_are_not_leaks(detector: LeakDetector) -> None:
    recorded = call(
        {"role": "human", "content": "2024-06-09, June 21, 2025, 2053-06-10, 2025-13-01"},
    )
    assert leaks_of(detector, recorded) == []
    inside = call({"role": "human", "content": "2024-06-10 and June 20th, 2025"})
    assert kinds_and_values(leaks_of(detector, inside)) == {
        ("date", "2024-06-10"),
        ("date", "June 20th, 2025"),
    }


def test_an_unscaled_price_in_a_tool_answer_or_prompt_line_is_found(
    detector: LeakDetector, mask: Mask
) -> None:
    aapl, msft = mask.symbol("AAPL"), mask.symbol("MSFT")
    answer = {"symbol": aapl, "bars": [{"open": 203.5, "close": mask.price("AAPL", 199.87)}]}
    recorded = call(
        {"role": "tool", "content": json.dumps(answer)},
        {"role": "human", "content": f"{msft} last close 470.38\nunrelated 201.45"},
    )
    leaks = leaks_of(detector, recorded)
    assert kinds_and_values(leaks) == {("price", "203.5"), ("price", "470.38")}
    assert {leak.where for leak in leaks} == {
        "call 5 (step 2) request message 1 (tool)",
        "call 5 (step 2) request message 2 (human)",
    }


def test_a_price_is_judged_against_its_own_symbol_at_the_precision_printed(
    detector: LeakDetector, mask: Mask
) -> None:
    aapl = mask.symbol("AAPL")
    recorded = call(
        # MSFT's price on an AAPL line; AAPL's 199.87 to one decimal, and not; too few digits
        {"role": "human", "content": f"{aapl} 470.38, {aapl} 199.9, {aapl} 199.8, {aapl} 20.5"},
    )
    assert kinds_and_values(leaks_of(detector, recorded)) == {("price", "199.9")}


def test_a_number_that_is_also_a_masked_price_is_not_a_leak(mask: Mask) -> None:
    k = mask.factors["AAPL"]
    prices = {"AAPL": [100.25, 100.25 * k]}  # doubled (or more) inside the window
    detector = LeakDetector(["AAPL"], {}, WINDOW, prices, mask)
    line = f"{mask.symbol('AAPL')} {100.25 * k:.2f}"
    assert leaks_of(detector, call({"role": "human", "content": line})) == []


def test_prices_the_model_wrote_itself_are_not_judged(detector: LeakDetector, mask: Mask) -> None:
    recorded = call(answer=f"{mask.symbol('AAPL')} might go back to 203.50")
    assert leaks_of(detector, recorded) == []


# -- whole runs ------------------------------------------------------------------------

TICKERS = ["AAPL", "MSFT", "NVDA"]
PERIOD = {"start": "2025-07-01", "end": "2025-07-08"}  # 5 trading days
LONG = {"start": "2025-06-10", "end": "2025-08-29"}  # long enough for round trips
ANALYSED = ["AAPL", "MSFT", "NVDA", "TSLA", "AMD", "PLTR"]  # a loser among their trips


def chat_run(lab: Lab, masked: bool, name: str = "bh") -> Run:
    """A buy-and-hold baseline on the chat path (its orders go through the trade tools),
    named after a company so the prompt holds a company name to mask."""
    model = lab.models.create(
        f"{name} Apple watcher", ai_model_id="baseline/buy_and_hold", tickers=TICKERS
    )
    run = lab.start_run(model, path="chat", background=False, masked=masked, **PERIOD)
    assert run.status == "completed", run.info.error
    return run


def mask_for(info: RunInfo) -> Mask:
    """The mask the run would have had (an unmasked run's too)."""
    names = {s: company_names(s) for s in info.snapshot.tickers}
    return make_mask(info.snapshot.seed, info.snapshot.tickers, names)


def test_the_audit_finds_every_kind_of_leak_in_an_unmasked_runs_records(lab: Lab) -> None:
    run = chat_run(lab, masked=False)
    found = audit_run(lab.store, run.info, mask_for(run.info))
    kinds = {leak.kind for leak in found.leaks}
    assert kinds == {"ticker", "name", "date", "price"}
    assert found.calls_checked == run.info.llm_calls > 0 and not found.clean
    assert Leak("ticker", "AAPL", "call 1 (step 0) request message 1 (system)") in [
        replace(leak, where=leak.where.replace(f"call {first_call(lab, run.id)} ", "call 1 "))
        for leak in found.leaks
    ]
    tool_prices = [leak for leak in found.leaks if leak.kind == "price" and "(tool)" in leak.where]
    assert tool_prices, "the trade tools' fill prices are real in an unmasked run"
    with pytest.raises(ValidationError, match=f"run {run.id} is not masked"):
        lab.audit_masking(run.id)


def first_call(lab: Lab, run_id: int) -> int:
    with lab.store.session() as session:
        found = session.scalar(select(func.min(LLMCall.id)).where(LLMCall.run_id == run_id))
    assert found is not None
    return found


def test_a_masked_chat_run_of_a_baseline_passes_the_audit(lab: Lab) -> None:
    run = chat_run(lab, masked=True)
    found = lab.audit_masking(run.id)
    assert found.leaks == ()
    assert found.clean and found.calls_checked == run.info.llm_calls > 0
    assert found.texts_checked > found.calls_checked


LEAKY_MASKS: dict[str, tuple[str, Any, set[str]]] = {
    "prices unscaled": ("price", lambda self, sym, value: value, {"price"}),
    "text untranslated": ("text", lambda self, value: value, {"ticker", "name"}),
    "dates unshifted": ("when", lambda self, value: value, {"date"}),
    "symbols kept": ("symbol", lambda self, real: real, {"ticker"}),
}
"""Ways a mask can fail, each by one of its translations doing nothing, and what the audit
must then find (at least)."""
LEAKY_MASKS_BY_METHOD = {method: identity for method, identity, _ in LEAKY_MASKS.values()}


@pytest.mark.parametrize("leak", list(LEAKY_MASKS))
def test_a_deliberately_leaky_mask_fails_the_audit_with_the_leaks_it_lets_through(
    leak: str, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    method, identity, kinds = LEAKY_MASKS[leak]
    monkeypatch.setattr(Mask, method, identity)
    run = chat_run(lab, masked=True)
    found = lab.audit_masking(run.id)
    assert not found.clean
    assert kinds <= {leak.kind for leak in found.leaks}
    assert all(leak.where.startswith("call ") for leak in found.leaks)


def test_unscaled_prices_are_found_in_the_prompt_and_the_tool_answers(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Mask, "price", lambda self, sym, value: value)
    found = lab.audit_masking(chat_run(lab, masked=True).id)
    assert {leak.kind for leak in found.leaks} == {"price"}
    wheres = {leak.where.split(") ", 1)[1] for leak in found.leaks}
    assert "request message 1 (system)" in wheres  # the prompt's price lines
    assert any(where.endswith("(tool)") for where in wheres)  # the trade tools' fills


# -- the command line ------------------------------------------------------------------


def audit_cli(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", db_url, *args], catch_exceptions=False)


def test_the_command_exits_0_on_a_clean_run_and_1_listing_the_leaks(
    lab: Lab, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = chat_run(lab, masked=True)
    result = audit_cli(db_url, "audit", "masking", str(clean.id))
    assert result.exit_code == 0, result.output
    assert f"run {clean.id}: " in result.output and "clean" in result.output

    with monkeypatch.context() as patched:
        for method in ("text", "price", "symbol"):
            patched.setattr(Mask, method, LEAKY_MASKS_BY_METHOD[method])
        leaky = chat_run(lab, masked=True, name="leaky")
    found = lab.audit_masking(leaky.id)
    assert len(found.leaks) > LEAKS_SHOWN
    result = audit_cli(db_url, "audit", "masking", str(leaky.id))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == found.summary()
    first = found.leaks[0]
    assert lines[1] == f"  {first.kind} {first.value!r} in {first.where}"
    assert len(lines) == 1 + LEAKS_SHOWN + 1
    assert lines[-1].startswith(f"  ... and {len(found.leaks) - LEAKS_SHOWN} more")


def test_the_command_refuses_unmasked_unknown_and_other_users_runs_in_one_line(
    lab: Lab, db_url: str
) -> None:
    plain = chat_run(lab, masked=False)
    lab.users.allow("@team.org")
    lab.users.sign_up("alice@team.org", "Alice")
    for args, message in (
        ((str(plain.id),), f"error: run {plain.id} is not masked"),
        (("999999",), "error: no run 999999"),
    ):
        result = audit_cli(db_url, "audit", "masking", *args)
        assert result.exit_code == 1 and result.output.startswith(message), result.output
        assert len(result.output.strip().splitlines()) == 1
    theirs = audit_cli(db_url, "--user", "alice", "audit", "masking", str(plain.id))
    assert theirs.exit_code == 1 and theirs.output.startswith(f"error: no run {plain.id}")


# -- the analyst -----------------------------------------------------------------------


def test_an_analysis_answer_goes_out_masked_and_its_arguments_come_back_real(mask: Mask) -> None:
    aapl, k = mask.symbol("AAPL"), mask.factors["AAPL"]
    answer = {
        "winners": [
            {"symbol": "AAPL", "quantity": 16.0, "entry": "2025-07-01", "entry_price": 200.0}
        ],
        "pnl_by_symbol": {"AAPL": 12.5},
        "open_positions_at_end": {"AAPL": 32.0},
        "entries": [{"date": "2025-07-01", "content": f"bought {aapl} on 2053-07-01"}],
        "rationale": "AAPL lost 3.00 over all its round trips",
    }
    out = masked_answer(mask, answer)
    trip = out["winners"][0]
    assert (trip["symbol"], trip["entry_price"], trip["quantity"]) == (aapl, 200.0 * k, 16 / k)
    assert trip["entry"] == mask.text("2025-07-01") != "2025-07-01"
    assert out["pnl_by_symbol"] == {aapl: 12.5}  # money is unchanged
    assert out["open_positions_at_end"] == {aapl: 32 / k}
    assert out["entries"][0]["content"] == answer["entries"][0]["content"]  # stored masked
    assert out["rationale"].startswith(aapl)

    back = real_arguments(mask, "analyze_trades", {"symbol": aapl, "start": trip["entry"]})
    assert back == {"symbol": "AAPL", "start": "2025-07-01"}
    rule = real_arguments(
        mask, "evaluate_rule", {"name": f"avoid {aapl}", "parameters": {"blocked_symbols": [aapl]}}
    )
    assert rule == {"name": "avoid AAPL", "parameters": {"blocked_symbols": ["AAPL"]}}
    with pytest.raises(ValidationError, match="unknown symbol AAPL"):
        real_arguments(mask, "analyze_trades", {"symbol": "AAPL"})  # refused in masked terms


def test_the_offline_analyst_of_a_masked_run_speaks_in_masked_terms(lab: Lab) -> None:
    model = lab.models.create(
        "mom", ai_model_id="baseline/momentum", tickers=ANALYSED, initial_cash=100_000.0
    )
    runs = [
        lab.start_run(model, path="chat", background=False, masked=True, seed=seed, **LONG)
        for seed in (1, 2)
    ]
    info = runs[0].info
    mask = info.snapshot.mask()
    assert mask is not None and all(r.status == "completed" for r in runs)
    detector = LeakDetector.for_run(lab.store, info, mask)
    pseudonyms = set(mask.pseudonyms.values())
    traded = runs[0].ledger()["symbol"].dropna().iloc[0]
    worst_day = mask.when(runs[0].ledger()["ts"].iloc[-1]).strftime("%Y-%m-%d")
    analyst = lab.analyst(info.id)
    with lab.store.session() as session:
        ledger_ids = set(
            session.scalars(select(LedgerEntry.id).where(LedgerEntry.run_id == info.id))
        )
    for question in (
        "How did the run do?",
        "What were its worst and best trades?",
        f"Worst trades in {mask.symbol(traded)}?",
        "Which rules would have helped?",
        f"What did the agent think on {worst_day}?",
        f"Compare with run {runs[1].info.run_number}",
    ):
        answer = analyst.ask(question)
        spoken = RecordedText(answer.text, question, given=True)
        assert list(detector.find(spoken)) == [], (question, answer.text)
        assert all(c.valid for c in answer.citations), answer.citations
        for citation in answer.citations:
            assert not list(detector.find(RecordedText(citation.label, question, given=True)))
            if citation.kind == "trade":
                assert int(citation.ref) in ledger_ids  # the real row
    summary = analyst.ask("How did it do?")
    assert pseudonyms & set(re.findall(r"[A-Z]{4}", summary.text)) and summary.citations


def test_the_llm_analyst_of_a_masked_run_reads_and_is_recorded_in_masked_terms(
    lab: Lab, openai_stub: OpenAIStubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = lab.models.create(
        "mom", ai_model_id="baseline/momentum", tickers=ANALYSED, initial_cash=100_000.0
    )
    run = lab.start_run(model, path="chat", background=False, masked=True, **LONG)
    mask = run.info.snapshot.mask()
    assert mask is not None
    traded = run.ledger()["symbol"].dropna().iloc[0]
    pseudo, day = mask.symbol(traded), mask.when(run.ledger()["ts"].iloc[0]).strftime("%Y-%m-%d")
    calls: list[tuple[str, dict[str, Any] | str]] = [
        ("analyze_trades", {"symbol": pseudo, "top": 1}),
        ("get_reasoning", {"date": day, "limit": 1}),
        ("calculate_metrics", {}),
        ("propose_rule", {"name": f"avoid {pseudo}", "parameters": {"blocked_symbols": [pseudo]}}),
    ]

    def respond(request: ChatRequest) -> Reply:
        since = request.messages[
            max(i for i, m in enumerate(request.messages) if m["role"] == "user") :
        ]
        done = sum(1 for m in since if m["role"] == "tool")
        if done < len(calls):
            return ToolCalls([calls[done]])
        return Text(f"{pseudo} carried the run [date:{day}].")

    openai_stub.reset(respond)
    monkeypatch.setenv("TTG_TEST_LLM_KEY", "sk-analyst-test")
    analyst = lab.analyst(
        run.id,
        model="openai/gpt-5",
        parameters={"base_url": openai_stub.base_url, "api_key_env": "TTG_TEST_LLM_KEY"},
    )
    answer = analyst.ask(f"Why did {pseudo} do well?")
    results = {c["name"]: json.loads(c["result"]) for c in answer.tool_calls}
    assert results["analyze_trades"]["round_trips"] > 0  # the pseudonym read the real trades
    assert results["get_reasoning"]["entries"]  # the masked day read the real day
    assert set(results["analyze_trades"]["pnl_by_symbol"]) == {pseudo}
    suggestion = next(iter(analyst.tools.suggestions.values()))
    assert suggestion.parameters["blocked_symbols"] == [traded]  # a real rule, if accepted
    assert results["propose_rule"]["parameters"]["blocked_symbols"] == [pseudo]
    found = lab.audit_masking(run.id)  # the analyst's calls are the run's recorded calls
    analyst_calls = sum(1 for r in openai_stub.requests if r.messages)
    assert found.calls_checked == run.info.llm_calls + analyst_calls
    assert found.leaks == ()


# -- the real local model --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])  # the store is covered above; this is the model
def test_a_masked_run_of_the_real_local_model_passes_the_audit(
    backend: str, lab: Lab, tmp_path: Path
) -> None:
    """SmolLM2 served by ``ttg-lab llm serve`` trades 3 masked tickers for 3 daily steps
    (2 model calls a step, 48-token answers): whatever it says, it was shown nothing real."""
    require_local_llm()
    served = serve_smollm2(tmp_path / "llm-state")
    try:
        model = lab.models.create(
            "smollm2 masked",
            ai_model_id="local/smollm2",
            tickers=TICKERS,
            parameters={
                "base_url": served.url,
                "max_tokens": 48,
                "max_steps": 2,
                "max_retries": 0,
                "temperature": 0.0,
                "seed": 7,
                "timeout": 60.0,
                "step_timeout": 90.0,
            },
        )
        run = lab.start_run(model, start="2025-07-01", end="2025-07-03", masked=True)
        assert run.wait(400) in ("completed", "failed"), run.info.error
    finally:
        served.stop()
    found = lab.audit_masking(run.id)
    print(f"\n{found.summary()}")
    assert found.calls_checked > 0 and found.texts_checked > found.calls_checked
    assert found.leaks == ()
