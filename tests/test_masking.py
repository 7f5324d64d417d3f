"""Masked runs: the Mask (pseudonyms, price factors, date shift, text) and every outlet of a
masked run."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import test_mcp_http
from sqlalchemy import select
from test_cli import ttg
from test_mcp_http import call, signed, url_of

import ttg_lab
from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.broker.fills import CloseFill
from ttg_lab.broker.portfolio import Portfolio
from ttg_lab.config import resolve_settings
from ttg_lab.engine.context import RunContext
from ttg_lab.engine.events import RunEvent
from ttg_lab.engine.snapshot import RunSnapshot
from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.llm.prompt import step_message, system_prompt
from ttg_lab.market.asof import PriceIndex
from ttg_lab.market.markets import get_market
from ttg_lab.market.masking import FACTORS, Mask, make_mask, shipped_symbols
from ttg_lab.market.names import company_names
from ttg_lab.market.shipped import read_shipped
from ttg_lab.mcp_services.manager import ServiceManager
from ttg_lab.mcp_services.tool_functions import tool_function
from ttg_lab.news.items import make_news
from ttg_lab.news.search import NewsIndex
from ttg_lab.run import Experiment, Run
from ttg_lab.runs.options import RunOptions
from ttg_lab.store.schema import LLMCall, TradingRun
from ttg_lab.tools.price import get_price_local
from ttg_lab.tools.registry import TOOLS

ROOT = Path(__file__).resolve().parents[1]
US = ["AAPL", "MSFT", "NVDA", "QQQ"]
CRYPTO = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
CN = ["600519.SH", "601318.SH"]
ALL = US + CRYPTO + CN


def mask_of(symbols: list[str], seed: int = 7, **kwargs: object) -> Mask:
    return make_mask(seed, symbols, {s: company_names(s) for s in symbols}, **kwargs)  # type: ignore[arg-type]


def test_mask_is_deterministic_in_seed_and_symbols() -> None:
    a, b = mask_of(ALL), mask_of(list(reversed(ALL)))
    assert a.pseudonyms == b.pseudonyms and a.factors == b.factors and a.years == b.years
    others = [mask_of(ALL, seed) for seed in range(8)]
    assert len({tuple(m.pseudonyms.values()) for m in others}) > 1


def test_pseudonyms_are_distinct_never_shipped_and_keep_a_pairs_quote() -> None:
    shipped = shipped_symbols()
    assert {"AAPL", "BTC", "BTC-USDT", "600519.SH"} <= shipped
    for seed in range(30):
        mask = mask_of(ALL, seed)
        pseudos = list(mask.pseudonyms.values())
        assert len(set(pseudos)) == len(pseudos)
        for real, pseudo in mask.pseudonyms.items():
            base, _, quote = pseudo.partition("-")
            assert re.fullmatch(r"[A-Z]{3,4}", base), pseudo
            assert base not in shipped and pseudo not in shipped
            assert quote == real.partition("-")[2] if "-" in real else not quote


def test_round_trips_symbols_prices_quantities_and_times() -> None:
    mask = mask_of(ALL)
    for real in ALL:
        pseudo = mask.symbol(real)
        assert mask.real_symbol(pseudo) == real
        assert mask.real_symbol(f" {pseudo.lower()} ") == real
        k = mask.factors[real]
        assert k in FACTORS
        assert mask.price(real, 123.45) == pytest.approx(123.45 * k)
        assert mask.real_price(real, mask.price(real, 123.45)) == 123.45
        assert mask.real_quantity(real, mask.quantity(real, 300.0)) == 300.0
        assert mask.real_quantity(real, 3.0) == 3.0 * k  # a whole masked order is whole
        assert mask.price(real, 50.0) * mask.quantity(real, 7.0) == pytest.approx(350.0)
    for when in (datetime(2025, 6, 10, 10, 30), date(2024, 2, 29), date(2025, 12, 25)):
        shifted = mask.when(when)
        assert shifted.year - when.year in (28, 56)
        assert mask.real_when(shifted) == when
        assert (shifted.weekday(), shifted.month, shifted.day) == (
            when.weekday(),
            when.month,
            when.day,
        )


def test_unknown_pseudonyms_and_real_tickers_are_refused_in_masked_terms() -> None:
    mask = mask_of(US)
    for given in ("XYZ", "AAPL", "", "MSFT "):
        with pytest.raises(ValidationError, match="unknown symbol") as err:
            mask.real_symbol(given)
        assert "AAPL" not in str(err.value).replace(given, "") or given == "AAPL"
        assert "MSFT" not in str(err.value).replace(given.strip(), "")


def test_a_lot_market_gets_factors_that_divide_its_lot() -> None:
    for seed in range(40):
        mask = mask_of(CN, seed, lot_size=100)
        assert all(100 % k == 0 for k in mask.factors.values())


def test_a_period_shifted_past_2099_is_refused() -> None:
    seeds = {mask_of(US, s).years: s for s in range(40)}
    assert set(seeds) == {28, 56}
    with pytest.raises(ValidationError, match="2099"):
        mask_of(US, seeds[56], last_day=date(2050, 1, 3))
    assert mask_of(US, seeds[28], last_day=date(2050, 1, 3)).years == 28


def test_text_masks_tickers_names_quantities_and_every_date_form() -> None:
    mask = mask_of(ALL)
    aapl, btc, moutai = mask.symbol("AAPL"), mask.symbol("BTC-USDT"), mask.symbol("600519.SH")
    k = mask.factors["AAPL"]
    years = mask.years
    text = (
        "On June 10, 2025 Apple Inc. (AAPL) rose, APPLE too; CRYPTO:BTC and BTC-USDT fell; "
        "600519.SH (600519, 贵州茅台) 2025年6月10日; at 2025-06-10 10:30 and 10 June 2025; "
        "cut to 300 AAPL; in 2024 a price of 2025.50; the 20250610 report; "
        "buy 1e+08 AAPL, got -5 AAPL, sold 1,000 AAPL; allocation: AAPL x40, AAPL x2y."
    )
    masked = mask.text(text)
    for leak in (
        "AAPL",
        "Apple",
        "APPLE",
        "BTC",
        "600519",
        "贵州茅台",
        "2025-",
        "2025年",
        ", 2025",
        "2024",
    ):
        assert leak not in masked, (leak, masked)
    y = 2025 + years
    for kept in (
        f"June 10, {y}",
        f"10 June {y}",
        f"{y}-06-10 10:30",
        f"{y}年6月10日",
        f"{y}0610",
        f"{2024 + years}",
        f"({aapl})",
        f"CRYPTO:{btc.split('-')[0]}",
        btc,
        moutai,
        f"{aapl} Corp",
        f"cut to {300 / k:.12g} {aapl}",
        f"buy {1e8 / k:.12g} {aapl}",
        f"got {-5 / k:.12g} {aapl}",
        f"sold {1000 / k:.12g} {aapl}",
        f"allocation: {aapl} x{40 / k:.12g}, {aapl} x2y",
        "2025.50",  # a price is not a year
    ):
        assert kept in masked, (kept, masked)
    back = mask.real_text(f"{aapl} Corp and {btc} on {y}-06-10, {aapl.lower()}")
    assert back == "Apple Inc. and BTC-USDT on 2025-06-10, AAPL"


def test_text_masks_the_shipped_news_and_aitrader_logs() -> None:
    with gzip.open(ROOT / "data" / "news" / "news.jsonl.gz", "rt", encoding="utf-8") as f:
        items = [json.loads(line) for line in f]
    logs = ROOT / "tests" / "fixtures" / "aitrader"
    texts = [f"{i['title']} {i['summary']} {i['content']}" for i in items]
    texts += [p.read_text(encoding="utf-8") for p in sorted(logs.rglob("log.jsonl"))]
    symbols = ["COIN", "PYPL", "MSFT", "NVDA", "MSTR", "V", "BTC-USDT", "ETH-USDT", "601939.SH"]
    names = {s: company_names(s) for s in symbols} | {"COIN": ("Coinbase Global", "Coinbase")}
    mask = make_mask(7, symbols, names)
    checked = 0
    for text in texts:
        masked = mask.text(text)
        words = set(re.findall(r"[A-Za-z0-9]+", masked))
        for real in symbols:
            for word in {real, real.split("-")[0], real.split(".")[0]}:
                assert word not in words, (word, masked[:300])
        for name in ("Microsoft", "Nvidia", "Bitcoin", "Ethereum", "Coinbase"):
            assert name.lower() not in masked.lower(), name
        assert not re.search(r"(?<![\d.,$])2025-\d\d-\d\d", masked)
        checked += text != masked
    assert checked > len(texts) // 2


def test_answer_masks_symbols_prices_quantities_and_times() -> None:
    mask = mask_of(US)
    pseudo, k = mask.symbol("NVDA"), mask.factors["NVDA"]
    answer = {
        "symbol": "NVDA",
        "time": "2025-06-10",
        "bars": [{"time": "2025-06-09", "open": 100.0, "close": 101.0, "volume": 8000}],
        "quantity": 40,
        "cash": 1000.0,
        "value": 4000.0,
        "reason": "cannot sell 80 NVDA: 40 NVDA held",
        "positions": [{"symbol": "AAPL", "quantity": 2.0, "price": 10.0}],
    }
    out = mask.answer(answer)
    y = 2025 + mask.years
    assert out["symbol"] == pseudo and out["time"] == f"{y}-06-10"
    assert out["bars"] == [
        {"time": f"{y}-06-09", "open": 100.0 * k, "close": 101.0 * k, "volume": 8000 / k}
    ]
    assert out["quantity"] == 40 / k and out["cash"] == 1000.0 and out["value"] == 4000.0
    assert out["reason"] == f"cannot sell {80 / k:.12g} {pseudo}: {40 / k:.12g} {pseudo} held"
    ka = mask.factors["AAPL"]
    assert out["positions"] == [
        {"symbol": mask.symbol("AAPL"), "quantity": 2.0 / ka, "price": 10.0 * ka}
    ]


# -- a masked run: options, snapshot, store, CLI -------------------------------------------

PERIOD: dict[str, Any] = {"start": "2025-06-10", "end": "2025-06-20"}


def test_masked_is_refused_on_the_direct_path_and_when_not_a_bool() -> None:
    with pytest.raises(ValidationError, match="masked run needs the chat path, got path='direct'"):
        RunOptions(masked=True, path="direct")
    with pytest.raises(ValidationError, match="masked must be True or False, got 'yes'"):
        RunOptions(masked="yes")  # type: ignore[arg-type]
    assert RunOptions(masked=True).masked and not RunOptions().masked


def test_a_direct_masked_run_is_refused_before_anything_is_written(lab: Lab) -> None:
    lab.models.create("bh", ai_model_id="baseline/buy_and_hold", tickers=["AAPL"])
    with pytest.raises(ValidationError, match="chat path"):
        lab.start_run("bh", background=False, masked=True, path="direct", **PERIOD)
    assert lab.runs().table().empty


def test_a_masked_run_is_recorded_masked_and_its_mask_rebuilds_the_same(lab: Lab) -> None:
    lab.models.create("bh", ai_model_id="baseline/buy_and_hold", tickers=["AAPL", "MSFT"])
    run = lab.start_run("bh", background=False, masked=True, seed=5, **PERIOD)
    plain = lab.start_run("bh", background=False, seed=5, **PERIOD)
    assert isinstance(run, Run) and isinstance(plain, Run)
    assert run.masked and run.info.masked and not plain.masked
    with lab.store.session() as session:
        flags = dict(session.execute(select(TradingRun.id, TradingRun.masked)).all())
    assert flags == {run.id: True, plain.id: False}
    snap = run.info.snapshot
    stored = snap.to_json()
    assert (stored["masked"], stored["mask_seed"]) == (True, 5)
    assert "masked" not in plain.info.snapshot.to_json()  # an unmasked run keeps its shape
    mask = snap.mask()
    assert mask is not None and set(mask.pseudonyms) == {"AAPL", "MSFT"}
    again = RunSnapshot.from_json(stored)  # what a resume reads
    assert again.mask() == mask and again.context(snap.index(lab.store)).mask == mask
    assert plain.info.snapshot.context(snap.index(lab.store)).mask is None
    old = {k: v for k, v in stored.items() if k not in ("masked", "mask_seed")}
    assert not RunSnapshot.from_json(old).masked  # snapshots from before masking


def test_the_run_command_takes_masked_and_refuses_it_on_the_direct_path(db_url: str) -> None:
    lab = ttg_lab.open(db_url)
    lab.models.create("bh", ai_model_id="baseline/buy_and_hold", tickers=["AAPL"])
    try:
        period = ["--start", "2025-06-10", "--end", "2025-06-13"]
        direct = ttg(db_url, "run", "bh", "--masked", "--path", "direct", *period, check=False)
        assert direct.returncode == 1 and "masked run needs the chat path" in direct.stdout
        assert lab.runs().table().empty
        done = ttg(db_url, "run", "bh", "--masked", *period)
        assert "masked)" in done.stdout
        assert [r.masked for r in lab.runs()] == [True]
    finally:
        lab.close()


# -- the outlets: tools, prompt, the baseline on the chat path ----------------------------

TOOL_SYMBOLS = ["AAPL", "MSFT", "NVDA"]


class ToolFailed(Exception):
    """What the agent reads when a tool call fails."""


@pytest.fixture(scope="module")
def us_index() -> PriceIndex:
    frame = read_shipped("us_daily", resolve_settings().data_dir)
    return PriceIndex(frame[frame["symbol"].isin(TOOL_SYMBOLS)], "us", "1d")


def masked_context(index: PriceIndex, news: NewsIndex | None = None) -> RunContext:
    ctx = RunContext(
        run_id=1,
        market=get_market("us"),
        index=index,
        tickers=frozenset(TOOL_SYMBOLS),
        portfolio=Portfolio(100_000.0),
        costs=COST_PRESETS["zero"],
        news=news,
        mask=mask_of(TOOL_SYMBOLS),
    )
    ctx.advance(0, index.calendar[10])
    return ctx


def day(when: datetime, years: int = 0) -> str:
    return f"{when.year + years}-{when:%m-%d}"


def tool(name: str, ctx: RunContext) -> Any:
    return tool_function(TOOLS.get(name), lambda: ctx, ToolFailed)


def test_tools_take_masked_arguments_and_answer_in_masked_terms(us_index: PriceIndex) -> None:
    ctx = masked_context(us_index)
    mask = ctx.mask
    assert mask is not None
    aapl, k, y = mask.symbol("AAPL"), mask.factors["AAPL"], mask.years
    before = us_index.calendar[9]
    real_bar = get_price_local(replace(ctx, mask=None), "AAPL", day(before))
    bar = tool("get_price_local", ctx)(symbol=aapl.lower(), date=day(before, y))
    assert bar["symbol"] == aapl and bar["time"] == day(before, y)
    assert bar["close"] == pytest.approx(real_bar["close"] * k)
    assert bar["volume"] == pytest.approx(real_bar["volume"] / k)
    history = tool("get_price_history", ctx)(symbol=aapl, bars=3)
    assert [row["time"] for row in history["bars"]] == [day(t, y) for t in us_index.calendar[7:10]]
    bought = tool("buy", ctx)(symbol=aapl, quantity=10)
    assert (bought["status"], bought["symbol"], bought["quantity"]) == ("filled", aapl, 10.0)
    assert bought["price"] == pytest.approx(ctx.view.open("AAPL") * k)
    assert ctx.record.ledger[-1].symbol == "AAPL"  # stored real
    assert ctx.record.ledger[-1].quantity == 10 * k
    assert ctx.record.ledger[-1].fill_price == pytest.approx(ctx.view.open("AAPL"))
    sold = tool("sell", ctx)(symbol=aapl, quantity=11)
    assert sold["reason"] == f"cannot sell 11 {aapl}: 10 {aapl} held"
    assert "AAPL" in ctx.record.ledger[-1].reason  # the stored reason stays real
    portfolio = tool("get_portfolio", ctx)()
    assert portfolio["positions"][0]["symbol"] == aapl
    assert portfolio["positions"][0]["quantity"] == 10.0
    assert portfolio["equity"] == pytest.approx(
        ctx.portfolio.equity({"AAPL": ctx.view.open("AAPL")})
    )
    sent = json.dumps([bar, history, bought, sold, portfolio])
    assert not re.search(r"\bAAPL\b|2025-", sent)


def test_tool_errors_are_in_masked_terms(us_index: PriceIndex) -> None:
    ctx = masked_context(us_index)
    mask = ctx.mask
    assert mask is not None
    aapl, y = mask.symbol("AAPL"), mask.years
    refusals = {
        "a real ticker": (
            lambda: tool("get_price_local", ctx)(symbol="AAPL"),
            "unknown symbol AAPL",
        ),
        "look-ahead": (
            lambda: tool("get_price_local", ctx)(symbol=aapl, date=day(us_index.calendar[11], y)),
            day(us_index.calendar[11], y),
        ),
    }
    for what, (attempt, expected) in refusals.items():
        with pytest.raises(ToolFailed) as failed:
            attempt()
        text = str(failed.value)
        assert expected.split(" got")[0] in text, (what, text)
        assert "2025-" not in text and not re.search(r"\b(MSFT|NVDA)\b", text), (what, text)
        if what != "a real ticker":
            assert "AAPL" not in text, (what, text)
    k = mask.factors["AAPL"]
    refused = tool("buy", ctx)(symbol=aapl, quantity=1 / (2 * k))  # the gate's real 0.5
    assert refused["reason"] == f"whole units only in the us market, got {0.5 / k:g} {aapl}"
    assert refused["requested_quantity"] == pytest.approx(1 / (2 * k))


def test_news_search_runs_on_real_terms_and_its_hits_are_masked(us_index: PriceIndex) -> None:
    items = [
        make_news(
            source="test",
            url="https://news.example/2025/06/09/apple",
            title="Apple (AAPL) rallies on June 9, 2025",
            summary="Apple Inc. shares rose on 2025-06-09.",
            content="",
            published_at=datetime(2025, 6, 9, 12),
            symbols=("AAPL",),
        ),
        make_news(
            source="test",
            url="https://news.example/tesla",
            title="Tesla deliveries",
            summary="electric cars",
            content="",
            published_at=datetime(2025, 6, 9, 12),
            symbols=("TSLA",),
        ),
    ]
    ctx = masked_context(us_index, NewsIndex(items))
    mask = ctx.mask
    assert mask is not None
    aapl = mask.symbol("AAPL")
    answer = tool("get_information", ctx)(query=f"{aapl} Corp rally")
    assert [hit["url"] for hit in answer["results"]] == [  # Tesla's does not match
        f"https://news.example/{2025 + mask.years}/06/09/{aapl} Corp"  # names in any case
    ]
    assert (
        answer["results"][0]["title"]
        == f"{aapl} Corp ({aapl}) rallies on June 9, {2025 + mask.years}"
    )
    sent = json.dumps(answer)
    assert aapl in sent and not re.search(r"\bAAPL\b|Apple|2025", sent), sent


def test_the_prompt_of_a_masked_run_is_in_masked_terms(us_index: PriceIndex) -> None:
    ctx = masked_context(us_index)
    mask = ctx.mask
    assert mask is not None
    ctx.portfolio.apply_fill("buy", "NVDA", 40.0, 100.0, 0.0)
    ctx.risk.close_fills = [
        CloseFill("o1", "buy", "MSFT", 80.0, 40.0, 400.0, 1.0, "resized", "cut to 40 MSFT")
    ]
    model = {"name": "AAPL swing", "custom_rules": "Never hold more than 500 MSFT."}
    prompt = system_prompt(ctx, model) + "\n" + step_message(ctx)
    nvda, msft, y = mask.symbol("NVDA"), mask.symbol("MSFT"), mask.years
    today = day(us_index.calendar[10], y)
    assert f"The time is {today}" in prompt and f"{today} 00:00" in prompt
    assert f"Positions: {nvda} {40 / mask.factors['NVDA']:g}" in prompt
    close = ctx.view.last_close("AAPL")
    assert f"{mask.symbol('AAPL')}: {prompt_number(close * mask.factors['AAPL'])} / " in prompt
    assert f"buy {80 / mask.factors['MSFT']:g} {msft}: filled" in prompt
    assert f"at {400 * mask.factors['MSFT']:.4f}" in prompt
    assert f"more than {500 / mask.factors['MSFT']:g} {msft}" in prompt
    assert not re.search(r"\b(AAPL|MSFT|NVDA)\b|2025", prompt), prompt


def prompt_number(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def test_a_masked_baseline_books_what_an_unmasked_one_books_and_sends_no_real_ticker(
    lab: Lab,
) -> None:
    tickers = ["AAPL", "MSFT", "NVDA"]
    lab.models.create("mom", ai_model_id="baseline/momentum", tickers=tickers)
    period: dict[str, Any] = {"start": "2025-06-10", "end": "2025-08-15", "seed": 3}
    masked = lab.start_run("mom", background=False, masked=True, **period)
    plain = lab.start_run("mom", background=False, **period)
    assert isinstance(masked, Run) and isinstance(plain, Run)
    assert masked.status == plain.status == "completed"
    columns = ["step_index", "ts", "action", "symbol", "quantity", "fill_price", "fees", "status"]
    ledger = masked.ledger()[columns]
    assert len(ledger[ledger["status"] == "filled"]) >= 4  # it traded
    pd.testing.assert_frame_equal(ledger, plain.ledger()[columns])
    assert masked.info.final_value == pytest.approx(plain.info.final_value, abs=1e-6)
    pd.testing.assert_frame_equal(masked.equity(), plain.equity())

    def sent(run: Run) -> str:
        with lab.store.session() as session:
            calls = session.execute(
                select(LLMCall.request, LLMCall.response).where(LLMCall.run_id == run.id)
            ).all()
        assert calls
        return json.dumps([tuple(c) for c in calls], ensure_ascii=False)

    leaks = r"\b(AAPL|MSFT|NVDA)\b|Apple|Microsoft|Nvidia|NVIDIA|2025-\d\d"
    assert re.search(leaks, sent(plain))  # the check can fail
    text = sent(masked)
    assert not re.search(leaks, text), re.search(leaks, text)
    mask = masked.info.snapshot.mask()
    assert mask is not None and all(mask.symbol(s) in text for s in tickers)


def test_masked_repeats_of_an_a_share_model_trade_whole_lots_as_unmasked_ones_do(lab: Lab) -> None:
    """Lots of 100 in masked units stay whole (factors divide the lot); every repeat is
    masked with its own seed; the ledger equals the unmasked repeats'."""
    tickers = ["600519.SH", "601318.SH"]
    lab.models.create("cnbh", ai_model_id="baseline/buy_and_hold", market="cn", tickers=tickers)
    period: dict[str, Any] = {"start": "2025-06-11", "end": "2025-06-30", "repeats": 2}
    masked = lab.start_run("cnbh", background=False, masked=True, **period)
    plain = lab.start_run("cnbh", background=False, **period)
    assert isinstance(masked, Experiment) and isinstance(plain, Experiment)
    columns = ["ts", "action", "symbol", "quantity", "fill_price", "status"]
    for run, twin in zip(masked.runs, plain.runs, strict=True):
        assert run.masked and not twin.masked
        mask = run.info.snapshot.mask()
        assert mask is not None and mask.seed == run.info.snapshot.seed
        assert all(100 % k == 0 for k in mask.factors.values())
        ledger = run.ledger()[columns]
        assert (ledger["status"] == "filled").any()
        pd.testing.assert_frame_equal(ledger, twin.ledger()[columns])
    seeds = [run.info.snapshot.mask_seed for run in masked.runs]
    assert seeds[1] == seeds[0] + 1


def test_a_resumed_masked_run_keeps_its_mask_and_a_replay_is_masked_too(lab: Lab) -> None:
    lab.models.create("mom", ai_model_id="baseline/momentum", tickers=["AAPL", "MSFT"])
    period: dict[str, Any] = {"start": "2025-06-10", "end": "2025-08-15", "masked": True, "seed": 4}
    whole = lab.start_run("mom", background=False, **period)

    def stop_at_third_step(event: RunEvent) -> None:
        if event.kind == "step" and event.data["done"] == 3:
            lab.run(event.run_id).stop()

    stopped = lab.start_run("mom", background=False, on_event=stop_at_third_step, **period)
    assert isinstance(whole, Run) and isinstance(stopped, Run)
    assert stopped.status == "stopped" and stopped.info.steps_done == 3
    stopped.resume(background=False)
    assert stopped.status == "completed"
    with lab.store.session() as session:
        prompts = {
            step: json.dumps(request)
            for step, request in session.execute(
                select(LLMCall.step_index, LLMCall.request).where(LLMCall.run_id == stopped.id)
            ).all()
        }
    mask = stopped.info.snapshot.mask()
    assert mask is not None and max(prompts) > 3
    for step, text in prompts.items():  # before and after the resume: the same pseudonyms
        assert all(f"{mask.symbol(s)}: " in text for s in ("AAPL", "MSFT")), step
        assert not re.search(r"\b(AAPL|MSFT)\b|2025-", text), step
    columns = ["step_index", "ts", "action", "symbol", "quantity", "fill_price", "status"]
    pd.testing.assert_frame_equal(stopped.ledger()[columns], whole.ledger()[columns])
    days = {"start": period["start"], "end": period["end"]}
    replay = lab.start_run("mom", background=False, replay_from=whole.id, **days)
    assert isinstance(replay, Run) and replay.masked
    pd.testing.assert_frame_equal(replay.ledger()[columns], whole.ledger()[columns])
    unmasked = lab.start_run("mom", background=False, **PERIOD)
    with pytest.raises(ValidationError, match=f"run {unmasked.id} was not masked"):
        lab.start_run("mom", background=False, replay_from=unmasked.id, masked=True, **PERIOD)


def test_a_forward_run_may_be_masked() -> None:
    options = RunOptions(forward=True, masked=True)
    assert options.masked and options.forward


services = test_mcp_http.services  # the fixture: the four HTTP services of the lab


@pytest.mark.slow
def test_a_masked_runs_view_over_http_answers_in_masked_terms(
    services: ServiceManager, lab: Lab
) -> None:
    """The HTTP services serve the same tool functions: a masked run's view is masked."""
    lab.models.create("viewed", ai_model_id="baseline/buy_and_hold", tickers=["AAPL", "MSFT"])
    run = lab.start_run("viewed", background=False, masked=True, **PERIOD)
    assert isinstance(run, Run)
    mask = run.info.snapshot.mask()
    assert mask is not None
    headers = signed(services, {"X-TTG-Run": str(run.id)})
    error, portfolio = asyncio.run(call(url_of(services, "trade"), "get_portfolio", {}, headers))
    assert not error
    assert {p["symbol"] for p in portfolio["positions"]} == {
        mask.symbol("AAPL"),
        mask.symbol("MSFT"),
    }
    error, bar = asyncio.run(
        call(
            url_of(services, "price"), "get_price_history", {"symbol": mask.symbol("AAPL")}, headers
        )
    )
    assert not error and bar["symbol"] == mask.symbol("AAPL")
    error, refused = asyncio.run(
        call(url_of(services, "price"), "get_price_local", {"symbol": "AAPL"}, headers)
    )
    assert error and "unknown symbol AAPL" in refused
    assert not re.search(r"\b(AAPL|MSFT)\b|2025-", json.dumps([portfolio, bar]))
