"""Your own policy: a subclass of ttg_lab.Policy runs like a shipped baseline."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

import ttg_lab
from ttg_lab.engine.ledger import REPRODUCED_COLUMNS
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.store.schema import TradingRun

PERIOD = {"start": "2025-06-10", "end": "2025-07-10", "costs": "zero", "background": False}


class AllIn(ttg_lab.Policy):
    """Buy-and-hold of one ticker in five lines: everything at the first open."""

    def decide(self, market: ttg_lab.MarketView) -> list[ttg_lab.Order]:
        if market.positions:
            return []
        return [ttg_lab.Order("buy", s, market.max_units(s)) for s in market.prices]


@pytest.mark.parametrize("path", ["direct", "chat"])
def test_a_five_line_policy_books_what_the_equivalent_baseline_books(lab: Lab, path: str) -> None:
    """Same gate, ledger and metrics: on one ticker, AllIn is the shipped buy-and-hold."""
    shipped = lab.models.create("bh", ai_model_id="baseline/buy_and_hold", tickers=["AAPL"])
    assert ttg_lab.register_policy("AllIn", AllIn) == "policy/AllIn"
    mine = lab.models.create("AllIn", ai_model_id="policy/AllIn", tickers=["AAPL"])
    lab.rules.add(mine, "cap", {"max_position_pct": 60})
    lab.rules.add(shipped, "cap", {"max_position_pct": 60})  # the gate resizes both
    ours = lab.start_run(AllIn, path=path, **PERIOD)
    theirs = lab.start_run(shipped, path=path, **PERIOD)
    assert ours.info.model == mine.signature and ours.status == "completed"
    assert (ours.ledger()["reason"] != "").any()  # the rule resized the buy
    pd.testing.assert_frame_equal(
        ours.ledger()[REPRODUCED_COLUMNS], theirs.ledger()[REPRODUCED_COLUMNS]
    )
    pd.testing.assert_frame_equal(ours.equity(), theirs.equity())
    assert ours.metrics()["total_return"] == theirs.metrics()["total_return"]
    assert lab.models.get("AllIn").id == mine.id  # the class's model is reused


def test_a_policy_class_creates_its_model_and_a_registered_name_runs_by_id(lab: Lab) -> None:
    run = lab.start_run(AllIn, path="direct", **PERIOD)
    model = lab.models.get("AllIn")
    assert model.ai_model_id == "policy/AllIn" and run.status == "completed"
    assert ttg_lab.register_policy("all in", AllIn) == "policy/all in"
    named = lab.models.create("named", ai_model_id="policy/all in", tickers=["MSFT"])
    again = lab.start_run(named, path="direct", **PERIOD)
    assert set(again.ledger().query("status == 'filled'")["symbol"]) == {"MSFT"}


def test_bad_policies_are_refused_naming_the_problem(lab: Lab) -> None:
    with pytest.raises(ValidationError, match=r"subclass of ttg_lab\.Policy"):
        ttg_lab.register_policy("x", dict)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="'policy/nobody' is not registered in this process"):
        lab.models.create("ghost", ai_model_id="policy/nobody")

    class Wrong(ttg_lab.Policy):
        def decide(self, market: ttg_lab.MarketView) -> list[ttg_lab.Order]:
            return ["buy AAPL"]  # type: ignore[list-item]

    run = lab.start_run(Wrong, path="direct", **PERIOD)
    assert run.status == "failed" and "must return Orders or a Decision" in run.info.error


def test_resuming_a_policy_run_where_it_is_not_registered_says_so(lab: Lab, db_url: str) -> None:
    run = lab.start_run(AllIn, path="direct", **PERIOD)
    with lab.store.session() as session:
        row = session.get(TradingRun, run.id)
        assert row is not None
        row.status, row.worker = "failed", None  # as if its process had died
    code = (
        "import ttg_lab, sys\n"
        f"lab = ttg_lab.open({db_url!r}, init=False)\n"
        "try:\n"
        f"    lab.run({run.id}).resume(background=False)\n"
        "except ttg_lab.NotFoundError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    env = {**os.environ, "TTG_LAB_DB_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 3, done.stderr
    assert "policy 'policy/AllIn' is not registered in this process" in done.stdout
    assert "register_policy('AllIn', YourPolicy)" in done.stdout
