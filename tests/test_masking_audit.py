"""The masking audit: it finds every real ticker, company name, real date and unscaled price
in what a run's model read or wrote, says where, and passes what masking translated.

Detectors are checked on crafted records; whole runs (unmasked, masked on the chat path,
deliberately leaky, the real local model) and the command line follow.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from ttg_lab.audit import Leak, LeakDetector, recorded_texts
from ttg_lab.market.masking import Mask, make_mask
from ttg_lab.market.names import company_names
from ttg_lab.store.schema import LLMCall

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
        answer="apple inc. looks strong into 2025/06/12",
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
        ("name", "apple inc."),
        ("date", "2025/06/12"),
    }
    where = {leak.value: leak.where for leak in leaks}
    assert where["AAPL"] == "call 5 (step 2) request message 1 (system)"
    assert where["BTC"] == "call 5 (step 2) request message 3 (tool)"
    assert where["apple inc."] == "call 5 (step 2) response"


def test_tickers_are_whole_case_sensitive_words(detector: LeakDetector) -> None:
    recorded = call({"role": "human", "content": "AAPLX, aapl, MSFTs, 16005190 and 6005191"})
    assert leaks_of(detector, recorded) == []


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
