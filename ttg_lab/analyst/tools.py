"""Read-only analysis tools about one run (and, to compare, other runs its user may see).

They read through an :class:`~ttg_lab.analyst.reader.AnalystReader` of the acting user and
hold no store, so another user's run, trade or reasoning entry is "not found" to every tool.
Both analysts use them: the LLM analyst as tool calls, the offline analyst directly.
Every result carries the ids it rests on (ledger ids, order ids, reasoning entry ids,
dates), and answers cite them as ``[trade:ID]``, ``[reasoning:ID]`` and ``[date:YYYY-MM-DD]``
so the dashboard can link to them. Nothing here writes to the store.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ttg_lab.analyst.masking import masked_answer, real_arguments
from ttg_lab.analyst.reader import AnalystReader
from ttg_lab.dates import day_of, inclusive_end, parse_optional_date
from ttg_lab.engine.stored_reasoning import REASONING_TYPES
from ttg_lab.errors import ValidationError
from ttg_lab.formatting import when
from ttg_lab.market.markets import MARKETS
from ttg_lab.metrics.compute import round_trips
from ttg_lab.rules.constraints import Constraint, RuleSet
from ttg_lab.rules.params import validate_params


@dataclass
class Suggestion:
    """A structured rule proposed for a model, with its replayed effect on the run."""

    id: str
    run_id: int
    name: str
    category: str
    parameters: dict[str, Any]
    rationale: str
    final_value: float
    final_with_rule: float
    effect: float
    orders_changed: int
    cites: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AnalysisTools:
    """The analyst's view of one run, read through the acting user's reader."""

    TOOLS: tuple[str, ...] = (
        "analyze_trades",
        "calculate_metrics",
        "get_reasoning",
        "compare_runs",
        "suggest_rules",
    )
    """The methods the LLM analyst may call as tools (with ``propose_rule``, see
    :func:`ttg_lab.analyst.llm.analysis_tools`)."""

    def __init__(self, reader: AnalystReader, run_id: int) -> None:
        self.reader = reader
        run = reader.run(run_id)  # another user's run is not found
        self.run_id = run.id
        self.model_id = run.model_id
        self.mask = run.snapshot.mask()
        """A masked run's mask: its analyst reads and writes in masked terms."""
        self.suggestions: dict[str, Suggestion] = {}

    def call(self, tool: str, /, **arguments: Any) -> Any:
        """``tool`` as an analyst calls it (one of :attr:`TOOLS` or ``evaluate_rule``), its
        answer as plain data; in a masked run the arguments come in from masked terms and
        the answer goes out in them (see :mod:`ttg_lab.analyst.masking`)."""
        if tool not in (*self.TOOLS, "evaluate_rule"):
            raise ValidationError(f"no analysis tool {tool!r}")
        if self.mask is not None:
            arguments = real_arguments(self.mask, tool, arguments)
        result = getattr(self, tool)(**arguments)
        if isinstance(result, Suggestion):
            result = result.to_dict()
        return result if self.mask is None else masked_answer(self.mask, result)

    def symbols(self) -> set[str]:
        """The symbols the run traded, as its analyst names them (pseudonyms when masked)."""
        traded = {str(s) for s in self.ledger()["symbol"].dropna().unique()}
        if self.mask is None:
            return traded
        return {self.mask.symbol(s) for s in traded if s in self.mask.pseudonyms}

    # -- data ---------------------------------------------------------------------------
    def _rid(self, run_id: int | None) -> int:
        return self.run_id if run_id is None else run_id

    def _window(
        self, run_id: int, start: object, end: object
    ) -> tuple[datetime | None, datetime | None]:
        """A date window of a run read by the one date parser in its market's time zone
        (an end given as a day covers that day); either bound may be absent."""
        if start is None and end is None:
            return None, None
        run = self.reader.run(run_id)
        timezone = MARKETS[run.market].timezone if run.market in MARKETS else None
        begin = parse_optional_date(start, "start", timezone)
        finish = parse_optional_date(end, "end", timezone)
        if begin is not None and run.interval == "1d":
            begin = day_of(begin)  # a daily bar is named by its day
        finish = None if finish is None else inclusive_end(finish)
        if begin is not None and finish is not None and finish < begin:
            raise ValidationError(f"end {end} is before start {start}")
        return begin, finish

    def ledger(self, run_id: int | None = None) -> pd.DataFrame:
        return self.reader.ledger(self._rid(run_id))

    def equity(self, run_id: int | None = None) -> pd.Series:
        return self.reader.equity(self._rid(run_id))

    def trips(self, run_id: int | None = None) -> list[dict[str, Any]]:
        ledger = self.ledger(run_id)
        ids = dict(zip(ledger["order_id"], ledger["id"], strict=True))
        trips = round_trips(ledger, pd.DatetimeIndex(self.equity(run_id).index))
        for trip in trips:
            trip["entry_trade"], trip["exit_trade"] = (
                ids.get(trip["entry_order"]),
                ids.get(trip["exit_order"]),
            )
        return trips

    # -- tools --------------------------------------------------------------------------
    def analyze_trades(
        self,
        symbol: str | None = None,
        start: str | None = None,
        end: str | None = None,
        top: int = 5,
    ) -> dict[str, Any]:
        """Round trips of the run (optionally one symbol or a period): the biggest winners
        and losers with trade ids, and P&L by symbol."""
        if not 1 <= top <= 50:
            raise ValidationError("top must be 1 to 50")
        trips = self.trips()
        if symbol:
            trips = [t for t in trips if t["symbol"] == symbol.strip().upper()]
        begin, finish = self._window(self.run_id, start, end)
        if begin is not None:
            trips = [t for t in trips if t["exit_time"] >= begin]
        if finish is not None:
            trips = [t for t in trips if t["exit_time"] <= finish]
        ordered = sorted(trips, key=lambda t: t["pnl"])
        by_symbol: dict[str, float] = {}
        for trip in trips:
            by_symbol[trip["symbol"]] = by_symbol.get(trip["symbol"], 0.0) + trip["pnl"]
        ledger = self.ledger()
        fills = ledger[ledger["status"] == "filled"]
        return {
            "run_id": self.run_id,
            "round_trips": len(trips),
            "fills": len(fills),
            "total_pnl": round(sum(t["pnl"] for t in trips), 2),
            "winners": [_trip(t) for t in reversed(ordered[-top:]) if t["pnl"] > 0],
            "losers": [_trip(t) for t in ordered[:top] if t["pnl"] < 0],
            "pnl_by_symbol": {
                s: round(v, 2) for s, v in sorted(by_symbol.items(), key=lambda kv: kv[1])
            },
            "open_positions_at_end": _last_holdings(ledger),
        }

    def calculate_metrics(
        self,
        start: str | None = None,
        end: str | None = None,
        keys: list[str] | None = None,
        run_id: int | None = None,
    ) -> dict[str, Any]:
        """Metrics of the run (or a window of it), with the benchmark over the same bars."""
        run = self.reader.run(self._rid(run_id))
        rid = run.id
        equity = self.equity(rid)
        ledger = self.ledger(rid)
        initial = run.initial_cash
        begin, finish = self._window(rid, start, end)
        if begin is not None or finish is not None:
            begin = equity.index[0] if begin is None else begin
            finish = equity.index[-1] if finish is None else finish
            before = equity[equity.index < begin]
            initial = float(before.iloc[-1]) if len(before) else initial
            equity = equity[(equity.index >= begin) & (equity.index <= finish)]
            ledger = ledger[(ledger["ts"] >= begin) & (ledger["ts"] <= finish)]
            if equity.empty:
                raise ValidationError("no bars of the run fall in that window")
        metrics = self.reader.metrics(run.market, run.interval, equity, initial, ledger)
        chosen = keys or [
            "start",
            "end",
            "total_return",
            "annual_return",
            "sharpe",
            "sortino",
            "max_drawdown",
            "max_drawdown_peak",
            "max_drawdown_trough",
            "win_rate",
            "profit_factor",
            "trades",
            "round_trips",
            "fees",
            "benchmark",
            "benchmark_return",
            "excess_return",
            "beats_benchmark",
        ]
        unknown = sorted(set(chosen) - set(metrics))
        if unknown:
            raise ValidationError(f"unknown metric(s): {', '.join(unknown)}")
        return {"run_id": rid, **{k: _plain(metrics[k]) for k in chosen}}

    def get_reasoning(
        self,
        date: str | None = None,
        symbol: str | None = None,
        type: str | None = None,
        text: str | None = None,
        limit: int = 10,
    ) -> dict[str, Any]:
        """The agent's reasoning entries for a date, a symbol (text search) or a type."""
        if type and type not in REASONING_TYPES:
            raise ValidationError(f"type must be one of {', '.join(REASONING_TYPES)}")
        words = " ".join(w for w in (symbol, text) if w) or None
        frame, total = self.reader.reasoning(
            self.run_id,
            types=[type] if type else None,
            start=date,
            end=date,
            text=words,
            limit=max(1, min(limit, 50)),
        )
        return {
            "run_id": self.run_id,
            "matches": total,
            "entries": [
                {
                    "id": int(r["id"]),
                    "date": when(r["ts"]),
                    "type": r["type"],
                    "content": r["content"][:1200],
                    "order_ids": list(r["order_ids"] or []),
                }
                for r in frame.to_dict("records")
            ],
        }

    def compare_runs(self, other_run_id: int) -> dict[str, Any]:
        """This run against another: metrics side by side, where their decisions first
        diverged, and the P&L by symbol of each."""
        self.reader.run(other_run_id)  # any run the user may see; others are not found
        mine, theirs = self.calculate_metrics(), self.calculate_metrics(run_id=other_run_id)
        a, b = self.ledger(), self.ledger(other_run_id)
        fa = a[a["status"] == "filled"][["step_index", "ts", "action", "symbol", "quantity"]]
        fb = b[b["status"] == "filled"][["step_index", "ts", "action", "symbol", "quantity"]]
        diverged = None
        for (_, x), (_, y) in zip(fa.iterrows(), fb.iterrows(), strict=False):
            if (x["ts"], x["action"], x["symbol"], x["quantity"]) != (
                y["ts"],
                y["action"],
                y["symbol"],
                y["quantity"],
            ):
                diverged = {
                    "date": when(min(x["ts"], y["ts"])),
                    "this": f"{x['action']} {x['quantity']:g} {x['symbol']}",
                    "other": f"{y['action']} {y['quantity']:g} {y['symbol']}",
                }
                break
        if diverged is None and len(fa) != len(fb):
            longer = fa if len(fa) > len(fb) else fb
            row = longer.iloc[min(len(fa), len(fb))]
            diverged = {
                "date": when(row["ts"]),
                "note": "one run kept trading after the other stopped",
            }
        pnl_a = {k: round(v, 2) for k, v in self.analyze_trades(top=1)["pnl_by_symbol"].items()}
        other_tools = AnalysisTools(self.reader, other_run_id)
        pnl_b = {
            k: round(v, 2) for k, v in other_tools.analyze_trades(top=1)["pnl_by_symbol"].items()
        }
        delta = {
            s: round(pnl_a.get(s, 0.0) - pnl_b.get(s, 0.0), 2) for s in set(pnl_a) | set(pnl_b)
        }
        biggest = dict(sorted(delta.items(), key=lambda kv: -abs(kv[1]))[:8])
        return {
            "this": mine,
            "other": theirs,
            "first_divergence": diverged,
            "pnl_difference_by_symbol": biggest,
            "return_difference": _plain(
                (mine["total_return"] or 0) - (theirs["total_return"] or 0)
            ),
        }

    def suggest_rules(self, max_suggestions: int = 3) -> dict[str, Any]:
        """Structured rules that would have avoided the run's worst losses, each with its
        effect on this run from a counterfactual replay of the recorded orders."""
        trips = self.trips()
        losers = sorted((t for t in trips if t["pnl"] < 0), key=lambda t: t["pnl"])[:5]
        candidates: list[tuple[str, str, dict[str, Any], str, list[str]]] = []
        if losers:
            worst = losers[0]
            depth = abs(min(t["return"] for t in losers)) * 100
            for level in sorted({max(2.0, round(depth / 2, 1)), 5.0, 8.0}):
                if level < depth:
                    candidates.append(
                        (
                            f"stop loss {level:g}%",
                            "risk",
                            {"stop_loss_pct": level},
                            f"the worst round trips lost up to {depth:.1f}%; exit a position "
                            f"once it is down {level:g}% from cost",
                            [f"trade:{t['exit_trade']}" for t in losers[:3]],
                        )
                    )
            symbol_loss: dict[str, float] = {}
            for trip in trips:
                symbol_loss[trip["symbol"]] = symbol_loss.get(trip["symbol"], 0.0) + trip["pnl"]
            bad = min(symbol_loss, key=lambda s: symbol_loss[s])
            if symbol_loss[bad] < 0:
                candidates.append(
                    (
                        f"avoid {bad}",
                        "compliance",
                        {"blocked_symbols": [bad]},
                        f"{bad} lost {abs(symbol_loss[bad]):,.2f} over all its round trips",
                        [f"trade:{t['exit_trade']}" for t in trips if t["symbol"] == bad][:3],
                    )
                )
            candidates.append(
                (
                    "position cap 10%",
                    "position_sizing",
                    {"max_position_pct": 10.0},
                    f"the largest loss came from one position ({worst['symbol']})",
                    [f"trade:{worst['exit_trade']}"],
                )
            )
        metrics = self.calculate_metrics(keys=["max_drawdown"])
        if metrics["max_drawdown"] and metrics["max_drawdown"] < -0.05:
            limit = round(abs(metrics["max_drawdown"]) * 100 * 0.6, 1)
            candidates.append(
                (
                    f"drawdown halt {limit:g}%",
                    "risk",
                    {"max_drawdown_pct": limit},
                    f"the run fell {abs(metrics['max_drawdown']):.1%} from its peak",
                    [],
                )
            )
        evaluated = [
            self.evaluate_rule(name, params, category, why, cites)
            for name, category, params, why, cites in candidates
        ]
        evaluated.sort(key=lambda s: -s.effect)
        return {
            "run_id": self.run_id,
            "suggestions": [s.to_dict() for s in evaluated[:max_suggestions]],
            "method": "counterfactual replay of the run's recorded orders with the rule added",
        }

    def evaluate_rule(
        self,
        name: str,
        parameters: dict[str, Any],
        category: str = "risk",
        rationale: str = "",
        cites: list[str] | None = None,
    ) -> Suggestion:
        """Validate a proposed rule (Step 3 format) and replay the run with it added."""
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("a suggested rule needs a name")
        params = validate_params(parameters)
        recorded = self.reader.recorded(self.run_id)
        rules = recorded.snapshot.rules
        actual, _ = self.reader.replay(recorded, rules)
        rule_name = f"suggested: {name}"
        added = RuleSet((*rules.constraints, Constraint(rule_name, "model", params)))
        with_rule, decisions = self.reader.replay(recorded, added)
        changed = sum(
            1
            for d in decisions
            if d["origin"] == f"rule:{rule_name}"
            or any(f["rule"] == rule_name for f in d["firings"])
        )
        key = hashlib.sha1(
            json.dumps([self.run_id, name, params], sort_keys=True).encode()
        ).hexdigest()[:10]
        suggestion = Suggestion(
            key,
            self.run_id,
            name.strip(),
            category,
            params,
            rationale,
            round(actual, 2),
            round(with_rule, 2),
            round(with_rule - actual, 2),
            changed,
            cites or [],
        )
        self.suggestions[key] = suggestion
        return suggestion


def _trip(trip: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbol": trip["symbol"],
        "side": trip["side"],
        "quantity": trip["quantity"],
        "entry": when(trip["entry_time"]),
        "exit": when(trip["exit_time"]),
        "entry_price": round(trip["entry_price"], 4),
        "exit_price": round(trip["exit_price"], 4),
        "pnl": round(trip["pnl"], 2),
        "return": round(trip["return"], 4),
        "entry_trade": trip.get("entry_trade"),
        "exit_trade": trip.get("exit_trade"),
    }


def _last_holdings(ledger: pd.DataFrame) -> dict[str, float]:
    if ledger.empty:
        return {}
    fills = ledger[ledger["status"] == "filled"]
    held: dict[str, float] = {}
    for action, symbol, quantity in zip(
        fills["action"], fills["symbol"], fills["quantity"], strict=True
    ):
        sign = 1 if action in ("buy", "cover") else -1
        held[str(symbol)] = held.get(str(symbol), 0.0) + sign * float(quantity)
    return {s: q for s, q in held.items() if abs(q) > 1e-9}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return when(value)
    if isinstance(value, float):
        return round(value, 6)
    return value
