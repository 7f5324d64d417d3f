"""Where two runs' decisions part, and what each parting was worth.

:func:`diff` lines two comparable runs up step by step (same market, mode, period and bars)
and finds the steps where their orders (ledger), their gate verdicts (gate decisions) or
their positions (holdings at the step's close) differ; the first such step comes with the
reasoning each side recorded there.

The P&L difference is attributed by counterfactual replay, with the machinery rule
attribution uses (:func:`ttg_lab.attribution.replay`): run A's filled orders are replayed
with A's prices, costs and fills, and then with B's filled orders put in at the steps where
the decisions differ, one step after another in time. What the swap at a step changes in
the final value is that step's ``pnl_effect`` (positive: A's decision there did better than
B's); the effects add up to ``explained``, the difference the decisions make. What the
replay does not reproduce (different costs, fills or cash, a run the replay cannot match)
is ``unexplained``. Orders are replayed as filled, so no rule is applied again: the gate's
verdicts are part of the decisions being compared. How the total is split among the steps
depends on the order of the swaps (earlier decisions change what later ones are worth);
the total does not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd
from sqlalchemy import select

from ttg_lab.attribution import RecordedOrder, RecordedRun, replay
from ttg_lab.engine.reader import RunInfo, read_run
from ttg_lab.errors import ValidationError
from ttg_lab.rules.constraints import RuleSet
from ttg_lab.store.database import Store
from ttg_lab.store.schema import GateDecisionRow, LedgerEntry, ReasoningEntry, RunStep

DiffKind = Literal["orders", "verdicts", "positions"]
"""What can differ at a step: the ledger's orders, the gate's verdicts, the holdings."""

DIFF_COLUMNS = [
    "step",
    "ts",
    "differs",
    "orders_a",
    "orders_b",
    "verdicts_a",
    "verdicts_b",
    "holdings_a",
    "holdings_b",
    "pnl_effect",
]
"""The columns of :meth:`RunDiff.frame`: one row per step where the runs differ."""


@dataclass(frozen=True)
class Order:
    """One ledger row of a step that is not a no-trade: a fill or a refused order."""

    action: str
    symbol: str
    quantity: float
    status: str  # filled | rejected

    def __str__(self) -> str:
        return f"{self.action} {self.quantity:g} {self.symbol} {self.status}"


@dataclass(frozen=True)
class GateVerdict:
    """The gate's answer to one order: who asked, what, the verdict and which rules fired."""

    origin: str  # agent | rule:<name> | close
    action: str
    symbol: str
    requested: float | str  # the number asked for, or the text of what was not a number
    quantity: float
    verdict: str
    rules: tuple[str, ...]

    def __str__(self) -> str:
        asked = f"{self.requested:g}" if isinstance(self.requested, float) else self.requested
        fired = f" by {', '.join(self.rules)}" if self.rules else ""
        who = "" if self.origin == "agent" else f" ({self.origin})"
        return f"{self.action} {asked} {self.symbol}{who}: {self.verdict}{fired}"


@dataclass(frozen=True)
class Note:
    """One reasoning entry an agent recorded at a step."""

    type: str  # plan | analysis | decision | reflection
    content: str


@dataclass(frozen=True)
class StepSide:
    """What one run did at a step."""

    orders: tuple[Order, ...] = ()
    verdicts: tuple[GateVerdict, ...] = ()
    holdings: dict[str, float] = field(default_factory=dict)

    def filled(self) -> list[Order]:
        return [order for order in self.orders if order.status == "filled"]


@dataclass(frozen=True)
class StepDiff:
    """One step where the runs differ: what differs, each side, and the P&L the differing
    decisions explain (0.0 where only the positions differ, as a result of earlier steps)."""

    step: int
    ts: datetime
    differs: tuple[DiffKind, ...]
    a: StepSide
    b: StepSide
    pnl_effect: float = 0.0

    @property
    def decisions_differ(self) -> bool:
        return "orders" in self.differs or "verdicts" in self.differs


@dataclass(frozen=True)
class Divergence:
    """The first step where the runs differ, with the reasoning each side recorded there."""

    step: StepDiff
    reasoning_a: tuple[Note, ...]
    reasoning_b: tuple[Note, ...]

    def describe(self) -> str:
        """One line: the step, its time and what differs."""
        s = self.step
        return f"step {s.step} ({s.ts:%Y-%m-%d %H:%M}): {', '.join(s.differs)} differ"


@dataclass(frozen=True)
class RunDiff:
    """Two runs compared decision by decision (see the module docstring)."""

    run_a: int
    run_b: int
    model_a: str
    model_b: str
    steps_compared: int
    final_a: float
    final_b: float
    replayed_a: float
    """A's final value replayed from its filled orders (equals ``final_a`` when the replay
    reproduces the run)."""
    replayed_with_b: float
    """A's replay with B's decisions at every step where they differ."""
    steps: tuple[StepDiff, ...]
    first: Divergence | None
    caveats: tuple[str, ...] = ()
    """What makes the attribution less than exact: the runs' costs, fills, cash or universe
    differ (B's decisions are replayed under A's), or a replay misses its run's value."""

    @property
    def difference(self) -> float:
        """Final value of A minus that of B, as stored."""
        return self.final_a - self.final_b

    @property
    def explained(self) -> float:
        """The part of the difference the differing decisions explain (the steps' sum)."""
        return self.replayed_a - self.replayed_with_b

    @property
    def unexplained(self) -> float:
        """The rest: what the decisions do not explain (costs, fills, cash, replay gaps)."""
        return self.difference - self.explained

    def frame(self) -> pd.DataFrame:
        """The differing steps as a table (:data:`DIFF_COLUMNS`), texts ready to show."""
        rows = [
            (
                s.step,
                s.ts,
                ", ".join(s.differs),
                "; ".join(map(str, s.a.orders)),
                "; ".join(map(str, s.b.orders)),
                "; ".join(map(str, s.a.verdicts)),
                "; ".join(map(str, s.b.verdicts)),
                _holdings_text(s.a.holdings),
                _holdings_text(s.b.holdings),
                s.pnl_effect,
            )
            for s in self.steps
        ]
        return pd.DataFrame(rows, columns=DIFF_COLUMNS)


@dataclass
class _Loaded:
    """What the diff reads of one run."""

    info: RunInfo
    times: dict[int, datetime]
    holdings: dict[int, dict[str, float]]
    orders: dict[int, list[Order]]
    verdicts: dict[int, list[GateVerdict]]
    final: float

    def side(self, step: int) -> StepSide:
        return StepSide(
            tuple(self.orders.get(step, ())),
            tuple(self.verdicts.get(step, ())),
            self.holdings.get(step, {}),
        )


def diff(store: Store, run_a: int, run_b: int) -> RunDiff:
    """Runs ``run_a`` and ``run_b`` compared step by step, with the P&L difference
    attributed to the steps where their decisions differ (not checked: the caller checked
    who may see the runs). Raises ValidationError when the runs are not comparable."""
    a, b = _load(store, run_a), _load(store, run_b)
    _check_comparable(a, b)
    compared = a.info.steps_done
    differing = []
    for step in range(compared):
        side_a, side_b = a.side(step), b.side(step)
        kinds: list[DiffKind] = []
        if side_a.orders != side_b.orders:
            kinds.append("orders")
        if side_a.verdicts != side_b.verdicts:
            kinds.append("verdicts")
        if side_a.holdings != side_b.holdings:
            kinds.append("positions")
        if kinds:
            differing.append(StepDiff(step, a.times[step], tuple(kinds), side_a, side_b))
    steps, replayed_a, replayed_with_b = _attribute(store, a, differing)
    first = None
    if steps:
        at = steps[0].step
        first = Divergence(steps[0], _reasoning(store, run_a, at), _reasoning(store, run_b, at))
    return RunDiff(
        run_a,
        run_b,
        a.info.model,
        b.info.model,
        compared,
        a.final,
        b.final,
        replayed_a,
        replayed_with_b,
        tuple(steps),
        first,
        _caveats(a, b, replayed_a, replayed_with_b),
    )


def _attribute(
    store: Store, a: _Loaded, differing: list[StepDiff]
) -> tuple[list[StepDiff], float, float]:
    """Each differing step with its P&L effect, A's replay, and A's replay with all of B's
    differing decisions: B's orders are swapped in one decision step at a time, in time
    order, and each step's effect is what its swap takes off A's replayed final value."""
    chosen = {step: a.side(step).filled() for step in range(a.info.steps_done)}
    value = _replay(store, a, chosen)
    replayed_a = value
    steps = []
    for s in differing:
        if s.decisions_differ:
            chosen[s.step] = s.b.filled()
            swapped = _replay(store, a, chosen)
            s = StepDiff(s.step, s.ts, s.differs, s.a, s.b, value - swapped)
            value = swapped
        steps.append(s)
    return steps, replayed_a, value


def _replay(store: Store, a: _Loaded, chosen: dict[int, list[Order]]) -> float:
    """A's final value with ``chosen`` filled orders at each step, replayed under A's
    snapshot with no rules (the orders are already the gate's outcome)."""
    orders = [
        RecordedOrder(step, order.action, order.symbol, order.quantity)
        for step, filled in chosen.items()
        for order in filled
    ]
    info = a.info
    recorded = RecordedRun(info.snapshot, (info.start, info.end), info.steps_done, a.final, orders)
    return replay(store, recorded, RuleSet())[0]


REPLAY_TOLERANCE = 0.005
"""A replay within this of a run's stored final value reproduces it (half a cent)."""


def _caveats(a: _Loaded, b: _Loaded, replayed_a: float, replayed_b: float) -> tuple[str, ...]:
    """Why the attribution may not be exact, each said once."""
    snap_a, snap_b, id_a, id_b = a.info.snapshot, b.info.snapshot, a.info.id, b.info.id
    notes = [
        f"the runs differ in {what} ({left} in run {id_a}, {right} in run {id_b}): "
        f"run {id_b}'s decisions are replayed under run {id_a}'s"
        for what, left, right in (
            ("cost model", snap_a.costs, snap_b.costs),
            ("fill", snap_a.fill, snap_b.fill),
            ("initial cash", snap_a.initial_cash, snap_b.initial_cash),
        )
        if left != right
    ]
    if set(snap_a.tickers) != set(snap_b.tickers):
        common = len(set(snap_a.tickers) & set(snap_b.tickers))
        notes.append(
            f"the runs trade different universes ({len(snap_a.tickers)} symbols in run {id_a}, "
            f"{len(snap_b.tickers)} in run {id_b}, {common} in both): run {id_b}'s decisions "
            f"are replayed in run {id_a}'s"
        )
    for what, replayed, run in (
        (f"the replay of run {id_a}'s orders", replayed_a, a),
        (f"run {id_a}'s replay with run {id_b}'s decisions", replayed_b, b),
    ):
        if abs(replayed - run.final) > REPLAY_TOLERANCE:
            notes.append(
                f"{what} ends at {replayed:,.2f}, not at run {run.info.id}'s final value "
                f"{run.final:,.2f}: the gap is in the unexplained part"
            )
    return tuple(notes)


def _check_comparable(a: _Loaded, b: _Loaded) -> None:
    """Refuse runs whose steps are not the same bars: another market, mode or period, a
    different number of steps done, or a step at another time."""
    for what, left, right in (
        ("market", a.info.snapshot.model.market, b.info.snapshot.model.market),
        ("mode", a.info.mode, b.info.mode),
        ("interval", a.info.snapshot.interval, b.info.snapshot.interval),
        ("period start", a.info.start, b.info.start),
        ("period end", a.info.end, b.info.end),
        ("steps done", a.info.steps_done, b.info.steps_done),
    ):
        if left != right:
            raise ValidationError(
                f"runs {a.info.id} and {b.info.id} are not comparable: {what} {left} in run "
                f"{a.info.id}, {right} in run {b.info.id} (a diff needs the same market, mode, "
                "period and steps)"
            )
    for step, ts in a.times.items():
        other = b.times.get(step)
        if other != ts:
            there = "missing" if other is None else f"at {other}"
            raise ValidationError(
                f"runs {a.info.id} and {b.info.id} are not comparable: step {step} is at {ts} "
                f"in run {a.info.id}, {there} in run {b.info.id} (not the same bars)"
            )


def _load(store: Store, run_id: int) -> _Loaded:
    info = read_run(store, run_id)
    times: dict[int, datetime] = {}
    holdings: dict[int, dict[str, float]] = {}
    orders: dict[int, list[Order]] = defaultdict(list)
    verdicts: dict[int, list[GateVerdict]] = defaultdict(list)
    final = info.snapshot.initial_cash
    with store.session() as session:
        for step, ts, held, equity in session.execute(
            select(RunStep.step_index, RunStep.ts, RunStep.holdings, RunStep.equity)
            .where(RunStep.run_id == run_id)
            .order_by(RunStep.step_index)
        ):
            times[step] = ts
            holdings[step] = {str(k): float(v) for k, v in (held or {}).items()}
            final = float(equity)
        for step, action, symbol, quantity, status in session.execute(
            select(
                LedgerEntry.step_index,
                LedgerEntry.action,
                LedgerEntry.symbol,
                LedgerEntry.quantity,
                LedgerEntry.status,
            )
            .where(LedgerEntry.run_id == run_id, LedgerEntry.status != "none")
            .order_by(LedgerEntry.id)
        ):
            orders[step].append(Order(action, str(symbol), float(quantity), status))
        for row in session.scalars(
            select(GateDecisionRow)
            .where(GateDecisionRow.run_id == run_id)
            .order_by(GateDecisionRow.id)
        ):
            verdicts[row.step_index].append(_verdict(row))
    if info.final_value is not None:
        final = info.final_value
    return _Loaded(info, times, holdings, dict(orders), dict(verdicts), final)


def _verdict(row: GateDecisionRow) -> GateVerdict:
    asked = row.requested
    number = isinstance(asked, int | float) and not isinstance(asked, bool)
    requested = float(asked) if number else str(asked)
    rules = tuple(dict.fromkeys(str(f["rule"]) for f in row.firings or []))
    return GateVerdict(
        row.origin, row.action, row.symbol, requested, float(row.quantity), row.verdict, rules
    )


def _reasoning(store: Store, run_id: int, step: int) -> tuple[Note, ...]:
    with store.session() as session:
        rows = session.execute(
            select(ReasoningEntry.type, ReasoningEntry.content)
            .where(ReasoningEntry.run_id == run_id, ReasoningEntry.step_index == step)
            .order_by(ReasoningEntry.id)
        ).all()
    return tuple(Note(str(kind), str(content)) for kind, content in rows)


def _holdings_text(holdings: dict[str, Any]) -> str:
    return ", ".join(f"{symbol} {quantity:g}" for symbol, quantity in sorted(holdings.items()))
