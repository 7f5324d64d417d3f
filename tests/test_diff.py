"""The decision-level diff of two runs (``lab.diff``, ``ttg-lab diff``): where two runs'
orders, gate verdicts and positions part, the first divergence with each side's reasoning,
and the P&L difference attributed to the differing decisions by counterfactual replay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from test_cli import ttg

import ttg_lab
from ttg_lab.attribution import RecordedOrder, RecordedRun, replay
from ttg_lab.diff import DIFF_COLUMNS
from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.lab import Lab
from ttg_lab.rules.constraints import RuleSet
from ttg_lab.store.schema import RunStep

TICKERS = ["AAPL", "MSFT", "NVDA", "AMD", "INTC", "AMZN"]
PERIOD = {"start": "2025-06-10", "end": "2025-07-31"}


def one_rule_apart(lab: Lab, rule: str, parameters: dict[str, Any]) -> tuple[int, int]:
    """Two buy-and-hold runs over one period and seed, the first with ``rule``."""
    ruled = lab.models.create("ruled", ai_model_id="baseline/buy_and_hold", tickers=TICKERS)
    free = lab.models.create("free", ai_model_id="baseline/buy_and_hold", tickers=TICKERS)
    lab.rules.add(ruled, rule, parameters)
    a = lab.start_run(ruled, path="direct", background=False, seed=7, **PERIOD)
    b = lab.start_run(free, path="direct", background=False, seed=7, **PERIOD)
    assert a.status == b.status == "completed"
    return a.id, b.id


@pytest.mark.parametrize(
    ("rule", "parameters"),
    [
        ("no chips", {"blocked_symbols": ["NVDA", "AMD", "INTC"]}),
        ("small orders", {"max_order_value": 600}),
    ],
)
def test_the_diff_of_runs_one_rule_apart_equals_the_rules_attribution(
    lab: Lab, rule: str, parameters: dict[str, Any]
) -> None:
    a, b = one_rule_apart(lab, rule, parameters)
    found = lab.diff(a, b)
    effect = lab.run(a).attribution().set_index("rule").loc[rule, "pnl_effect"]
    assert effect != pytest.approx(0.0, abs=1.0)  # the rule did something worth measuring
    assert found.explained == pytest.approx(effect, rel=1e-9, abs=1e-6)
    assert found.difference == pytest.approx(effect, rel=1e-9, abs=1e-6)
    assert found.unexplained == pytest.approx(0.0, abs=1e-6)
    assert found.caveats == ()  # same costs, fill, cash and universe; both replays exact
    assert sum(s.pnl_effect for s in found.steps) == pytest.approx(found.explained, abs=1e-6)
    # the rule acted when buy-and-hold bought: the first step differs in its verdicts
    assert found.first is not None and found.first.step.step == 0
    assert {"orders", "verdicts", "positions"} <= set(found.first.step.differs)
    ruled_verdicts = [v for v in found.first.step.a.verdicts if rule in v.rules]
    assert ruled_verdicts and all(v.verdict in ("reject", "resize") for v in ruled_verdicts)
    assert not any(rule in v.rules for v in found.first.step.b.verdicts)


def test_steps_where_only_positions_differ_are_listed_and_explain_nothing(lab: Lab) -> None:
    a, b = one_rule_apart(lab, "no chips", {"blocked_symbols": ["NVDA"]})
    found = lab.diff(a, b)
    later = [s for s in found.steps if s.step > 0]
    assert later, "the holdings stay apart after the blocked buy"
    assert all(s.differs == ("positions",) and s.pnl_effect == 0.0 for s in later)
    assert found.steps_compared == lab.run(a).info.steps_done == len(found.steps)
    table = found.frame()
    assert list(table.columns) == DIFF_COLUMNS and len(table) == len(found.steps)
    assert "NVDA" in table.loc[0, "holdings_b"] and "NVDA" not in table.loc[0, "holdings_a"]


def test_a_run_against_itself_differs_nowhere(lab: Lab) -> None:
    a, _ = one_rule_apart(lab, "no chips", {"blocked_symbols": ["NVDA"]})
    found = lab.diff(a, a)
    assert found.steps == () and found.first is None
    assert found.difference == found.explained == found.unexplained == 0.0


def test_a_diff_refuses_runs_that_are_not_comparable(lab: Lab) -> None:
    model = lab.models.create("bh", ai_model_id="baseline/buy_and_hold", tickers=TICKERS)
    june = lab.start_run(
        model, path="direct", background=False, start="2025-06-10", end="2025-06-30"
    )
    july = lab.start_run(
        model, path="direct", background=False, start="2025-07-01", end="2025-07-31"
    )
    october = {"start": "2025-10-01", "end": "2025-10-10"}
    daily = lab.start_run(model, path="direct", background=False, **october)
    hourly = lab.start_run(model, path="direct", background=False, mode="intraday", **october)
    with pytest.raises(ValidationError, match="not comparable: period start 2025-06-10") as err:
        lab.diff(june.id, july.id)
    assert "2025-07-01" in str(err.value)
    with pytest.raises(ValidationError, match="not comparable: mode daily in run"):
        lab.diff(daily.id, hourly.id)
    with pytest.raises(NotFoundError, match="no run 999"):
        lab.diff(june.id, 999)


def test_a_diff_refuses_runs_whose_steps_are_not_the_same_bars(lab: Lab) -> None:
    a, b = one_rule_apart(lab, "no chips", {"blocked_symbols": ["NVDA"]})
    with lab.store.session() as session:  # as if b had run on other data (a revised calendar)
        step = session.scalars(
            select(RunStep).where(RunStep.run_id == b, RunStep.step_index == 3)
        ).one()
        moved = step.ts + timedelta(days=1)
        step.ts = moved
        session.commit()
    with pytest.raises(ValidationError, match=f"step 3 is at .* in run {a}, at {moved} in run {b}"):
        lab.diff(a, b)
    with lab.store.session() as session:
        session.execute(delete(RunStep).where(RunStep.run_id == b, RunStep.step_index == 3))
        session.commit()
    with pytest.raises(ValidationError, match=f"step 3 is at .* in run {a}, missing in run {b}"):
        lab.diff(a, b)


def test_a_user_cannot_diff_someone_elses_run(lab: Lab, db_url: str) -> None:
    a, b = one_rule_apart(lab, "no chips", {"blocked_symbols": ["NVDA"]})
    lab.users.add("carol@example.org", "Carol")
    carol = ttg_lab.open(db_url, user="carol")
    try:
        with pytest.raises(NotFoundError, match=f"no run {a}"):
            carol.diff(a, b)
    finally:
        carol.close()


def test_runs_under_different_cost_models_are_diffed_with_a_caveat(lab: Lab) -> None:
    model = lab.models.create("bh", ai_model_id="baseline/buy_and_hold", tickers=TICKERS)
    free = lab.start_run(model, path="direct", background=False, costs="zero", **PERIOD)
    paid = lab.start_run(model, path="direct", background=False, costs="default", **PERIOD)
    found = lab.diff(free.id, paid.id)
    costs, gap = found.caveats  # and the replay under A's zero costs misses B's value
    assert costs.startswith("the runs differ in cost model (CostModel(commission_bps=0.0")
    assert f"run {paid.id}'s decisions are replayed under run {free.id}'s" in costs
    assert gap.startswith(f"run {free.id}'s replay with run {paid.id}'s decisions ends at")
    assert f"not at run {paid.id}'s final value {paid.info.final_value:,.2f}" in gap
    # the fees are not a decision: what they cost is left unexplained, not hidden
    assert found.difference > 0 and found.unexplained > 0
    assert found.explained + found.unexplained == pytest.approx(found.difference, abs=1e-9)


def _replayed(lab: Lab, run_id: int) -> float:
    """Run ``run_id``'s filled orders replayed with no rules (what the diff replays)."""
    info = lab.run(run_id).info
    ledger = lab.run(run_id).ledger()
    filled = ledger[ledger["status"] == "filled"]
    orders = [
        RecordedOrder(int(r.step_index), str(r.action), str(r.symbol), float(r.quantity))
        for r in filled.itertuples()
    ]
    recorded = RecordedRun(info.snapshot, (info.start, info.end), info.steps_done, 0.0, orders)
    return replay(lab.store, recorded, RuleSet())[0]


def test_two_imported_aitrader_models_diff_with_their_reasoning(lab: Lab) -> None:
    assert lab.data.load_shipped()["aitrader_runs"] > 0
    gpt, claude, us = (
        lab.runs(f"aitrader-{name}").table()["id"].iloc[0].item()
        for name in ("gpt-5-crypto-daily", "claude-3-7-sonnet-crypto-daily", "gpt-5-us-hourly")
    )
    found = lab.diff(gpt, claude)
    assert found.first is not None
    first = found.first.step
    assert "orders" in first.differs and first.a.orders != first.b.orders
    reasoning = {r.step_index: r.content for r in lab.run(gpt).reasoning().itertuples()}
    assert [n.content for n in found.first.reasoning_a] == [reasoning[first.step]]
    assert found.first.reasoning_b  # each side says why it traded as it did
    # replaying A with all of B's differing decisions is B's own replay: the swaps add up
    assert found.replayed_with_b == pytest.approx(_replayed(lab, claude), rel=1e-12)
    assert found.replayed_a == pytest.approx(_replayed(lab, gpt), rel=1e-12)
    assert sum(s.pnl_effect for s in found.steps) == pytest.approx(found.explained, abs=1e-6)
    assert found.unexplained == pytest.approx(
        found.difference - found.explained, abs=1e-9
    )  # what the replay of imported runs does not reproduce is said, not hidden
    gaps = [c for c in found.caveats if "the gap is in the unexplained part" in c]
    assert len(gaps) == (abs(found.replayed_a - found.final_a) > 0.005) + (
        abs(found.replayed_with_b - found.final_b) > 0.005
    )
    with pytest.raises(ValidationError, match="not comparable: market crypto in run"):
        lab.diff(gpt, us)


def test_ttg_lab_diff_prints_the_divergence_the_steps_and_the_attribution(
    lab: Lab, db_url: str
) -> None:
    a, b = one_rule_apart(lab, "no chips", {"blocked_symbols": ["NVDA", "AMD", "INTC"]})
    found = lab.diff(a, b)
    out = ttg(db_url, "diff", str(a), str(b)).stdout
    assert f"first divergence: step 0 ({found.first.step.ts:%Y-%m-%d %H:%M})" in out  # type: ignore[union-attr]
    assert "gate: buy" in out and "reject by no chips" in out
    assert "differing steps" in out and "pnl_effect" in out
    assert f"explained by the differing decisions: {found.explained:,.2f}" in out
    refused = ttg(db_url, "diff", str(a), "999", check=False)
    assert refused.returncode == 1 and "error: no run 999" in refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr
