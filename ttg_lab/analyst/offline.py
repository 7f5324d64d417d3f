"""The offline analyst: answers the common questions from the data with the same tools
the LLM analyst uses, deterministically, and says plainly what it cannot answer.

It recognises: how the run did and why; best and worst trades; which rules would have
helped; a comparison with another run; what the agent reasoned on a date or about a
symbol. Anything else needs an LLM, and it says so.
"""

from __future__ import annotations

import re
from typing import Any

from ttg_lab.analyst.tools import AnalysisTools
from ttg_lab.formatting import money, percent

CAN_ANSWER = (
    "how the run did and why, its best or worst trades, which rules would have helped, a "
    'comparison with another run ("compare with run 3"), and what the agent reasoned on a '
    "date or about a symbol"
)


def _trade_line(trip: dict[str, Any]) -> str:
    return (
        f"{trip['symbol']} {trip['side']} {trip['quantity']:g} from {trip['entry']} at "
        f"{trip['entry_price']:g} to {trip['exit']} at {trip['exit_price']:g}: "
        f"{money(trip['pnl'])} ({percent(trip['return'])}) "
        f"[trade:{trip['entry_trade']}] [trade:{trip['exit_trade']}]"
    )


class OfflineAnalyst:
    """Rule-of-thumb routing from a question to the analysis tools."""

    def __init__(self, tools: AnalysisTools, model_runs: dict[int, int]) -> None:
        self.tools = tools
        self.model_runs = model_runs  # run number -> run id, for "compare with run 2"
        self.calls: list[dict[str, Any]] = []

    def _call(self, name: str, **kwargs: Any) -> Any:
        result = self.tools.call(name, **kwargs)
        self.calls.append({"name": name, "args": kwargs})
        return result

    def answer(self, question: str) -> str:
        q = question.lower()
        if "compare" in q:
            return self.compare(q)
        if re.search(r"\b(rule|rules|avoid|prevent|improve|protect|safer|risk limit)\b", q):
            return self.rules()
        if re.search(r"\b(worst|best|loser|losers|losing|winner|winners|trades?)\b", q):
            return self.trades(q)
        if re.search(r"\b(reason|reasoning|think|thought|why did|decide)\b", q) or re.search(
            r"\d{4}-\d{2}-\d{2}", q
        ):
            return self.reasoning(question)
        if re.search(r"\b(how|perform|performance|did it do|summary|overview|return|why)\b", q):
            return self.summary()
        return (
            f'Without an LLM I can answer {CAN_ANSWER}. "{question.strip()}" needs an LLM: '
            'open the analyst with a model, e.g. lab.analyst(run, model="openai/gpt-5").'
        )

    def summary(self) -> str:
        m = self._call("calculate_metrics")
        trades = self._call("analyze_trades", top=3)
        lines = [
            f"Run {self.tools.run_id} returned {percent(m['total_return'])} from {m['start']} to "
            f"{m['end']} [date:{m['start']}] (annualised {percent(m['annual_return'])}, Sharpe "
            f"{m['sharpe'] if m['sharpe'] is None else round(m['sharpe'], 2)}, max drawdown "
            f"{percent(m['max_drawdown'])} from {m['max_drawdown_peak']} to "
            f"{m['max_drawdown_trough']}).",
        ]
        if m.get("benchmark_return") is not None:
            verdict = {
                True: "beat it significantly",
                False: "trailed it significantly",
                None: "no significant difference",
            }[m.get("beats_benchmark")]
            lines.append(
                f"Buy-and-hold of {m['benchmark']} returned {percent(m['benchmark_return'])} "
                f"over the same bars: {verdict}."
            )
        lines.append(
            f"It made {m['trades']} fills and {m['round_trips']} closed round trips "
            f"(win rate {percent(m['win_rate'], signed=False) or 'n/a'}), paying "
            f"{money(m['fees'])} in fees."
        )
        gains = [(s, v) for s, v in trades["pnl_by_symbol"].items() if v > 0][::-1][:2]
        drags = [(s, v) for s, v in trades["pnl_by_symbol"].items() if v < 0][:2]
        if gains or drags:
            parts = []
            if gains:
                parts.append(
                    "the gains came mostly from " + ", ".join(f"{s} ({money(v)})" for s, v in gains)
                )
            if drags:
                parts.append(
                    "the biggest drags were " + ", ".join(f"{s} ({money(v)})" for s, v in drags)
                )
            lines.append("Why: " + "; ".join(parts) + ".")
        if trades["losers"]:
            lines.append("Worst trade: " + _trade_line(trades["losers"][0]) + ".")
            reasoning = self._call("get_reasoning", date=trades["losers"][0]["entry"], limit=1)
            for entry in reasoning["entries"]:
                lines.append(
                    f"On {entry['date']} the agent wrote ({entry['type']}): "
                    f'"{entry["content"][:300].strip()}" [reasoning:{entry["id"]}]'
                )
        if trades["open_positions_at_end"]:
            held = ", ".join(
                f"{s} {q:g}" for s, q in list(trades["open_positions_at_end"].items())[:6]
            )
            lines.append(f"Still held at the end: {held}.")
        return "\n".join(lines)

    def trades(self, q: str) -> str:
        symbol = next(
            (
                w.upper()
                for w in re.findall(r"\b[a-z]{2,5}(?:-usdt)?\b", q)
                if w.upper() in self.tools.symbols()
            ),
            None,
        )
        result = self._call("analyze_trades", symbol=symbol, top=5)
        lines = [
            f"{result['round_trips']} closed round trips{f' in {symbol}' if symbol else ''}, "
            f"total P&L {money(result['total_pnl'])}."
        ]
        if "best" in q or "winner" in q:
            lines += ["Best trades:"] + [f"- {_trade_line(t)}" for t in result["winners"]] or [
                "No winning round trips."
            ]
        if "best" not in q or "worst" in q or "los" in q:
            lines += ["Worst trades:"] + (
                [f"- {_trade_line(t)}" for t in result["losers"]] or ["- none lost money"]
            )
        return "\n".join(lines)

    def rules(self) -> str:
        result = self._call("suggest_rules", max_suggestions=3)
        if not result["suggestions"]:
            return "The run has no losing round trips or drawdown worth a rule: nothing to suggest."
        lines = ["Rules that would have helped, each replayed on this run's recorded orders:"]
        for s in result["suggestions"]:
            cites = " ".join(f"[{c}]" for c in s["cites"])
            lines.append(
                f"- {s['name']} {s['parameters']}: final value {money(s['final_with_rule'])} "
                f"instead of {money(s['final_value'])} ({'+' if s['effect'] >= 0 else ''}"
                f"{money(s['effect'])}), changing {s['orders_changed']} order(s). "
                f"{s['rationale']}. {cites} (suggestion {s['id']})"
            )
        lines.append(
            'Accept one with analyst.accept("<suggestion id>", confirm=True); '
            "it is validated and saved as a rule of the model."
        )
        return "\n".join(lines)

    def compare(self, q: str) -> str:
        found = re.search(r"run\s*(?:id\s*)?#?\s*(\d+)", q)
        if not found:
            return 'Which run? Say e.g. "compare with run 2" (a run number of this model).'
        number = int(found.group(1))
        other = self.model_runs.get(number, number if "id" in q else None)
        if other is None or other == self.tools.run_id:
            return f"There is no other run #{number} of this model to compare with."
        result = self._call("compare_runs", other_run_id=other)
        this, that = result["this"], result["other"]
        lines = [
            f"This run [run:{self.tools.run_id}] returned {percent(this['total_return'])}, "
            f"run [run:{other}] {percent(that['total_return'])} "
            f"(difference {percent(result['return_difference'])})."
        ]
        if result["first_divergence"]:
            d = result["first_divergence"]
            lines.append(
                f"Their decisions first diverged on {d['date']} [date:{d['date']}]: "
                + (
                    f"this run did {d['this']}, the other {d['other']}."
                    if "this" in d
                    else d.get("note", "")
                )
            )
        if result["pnl_difference_by_symbol"]:
            lines.append(
                "Largest P&L differences by symbol: "
                + ", ".join(
                    f"{s} {money(v)}" for s, v in result["pnl_difference_by_symbol"].items()
                )
            )
        return "\n".join(lines)

    def reasoning(self, question: str) -> str:
        date = re.search(r"\d{4}-\d{2}-\d{2}", question)
        symbols = self.tools.symbols()
        symbol = next(
            (
                w.upper()
                for w in re.findall(r"[A-Za-z][A-Za-z-]{1,9}", question)
                if w.upper() in symbols
            ),
            None,
        )
        result = self._call(
            "get_reasoning", date=date.group(0) if date else None, symbol=symbol, limit=5
        )
        if not result["entries"]:
            return "No reasoning entries match that date or symbol."
        lines = [f"{result['matches']} matching entries; the first {len(result['entries'])}:"]
        for e in result["entries"]:
            orders = f" (orders {', '.join(e['order_ids'])})" if e["order_ids"] else ""
            quote = e["content"][:400].strip()
            lines.append(f'- {e["date"]} {e["type"]}{orders}: "{quote}" [reasoning:{e["id"]}]')
        return "\n".join(lines)
