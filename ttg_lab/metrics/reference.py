"""The metrics reference: every key :func:`~ttg_lab.metrics.compute.compute_metrics`
returns, with its formula. README's "Metrics reference" table is generated from this list
(``python -m ttg_lab.metrics.reference``) and a test keeps the two and the code in step.

Notation: E_0 is the initial cash, E_1..E_n the equity marked to market at the close of
each bar, r_t = E_t / E_{t-1} - 1 the bar returns (n of them), b_t the benchmark's bar
returns over the same bars, P the periods per year of the run's bars.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDef:
    key: str
    unit: str
    formula: str


METRICS: tuple[MetricDef, ...] = (
    MetricDef("start", "time", "first bar of the run"),
    MetricDef("end", "time", "last bar of the run"),
    MetricDef("bars", "count", "n, the number of bars marked to market"),
    MetricDef(
        "periods_per_year",
        "count",
        "P: 252 daily (365 crypto); hourly 252 x 6.5 US, 252 x 4 A-shares, 365 x 24 crypto",
    ),
    MetricDef("final_value", "currency", "E_n"),
    MetricDef("total_return", "fraction", "E_n / E_0 - 1"),
    MetricDef(
        "annual_return", "fraction", "(1 + total_return) ^ (P / n) - 1 (compound annual growth)"
    ),
    MetricDef("volatility", "fraction", "std(r, ddof=1) x sqrt(P)"),
    MetricDef("sharpe", "ratio", "mean(r) / std(r, ddof=1) x sqrt(P), risk-free rate 0"),
    MetricDef(
        "sortino",
        "ratio",
        "mean(r) x P / (sqrt(mean(min(r, 0)^2)) x sqrt(P)): downside deviation over all "
        "bars, target 0",
    ),
    MetricDef("max_drawdown", "fraction", "min over t of E_t / max(E_0..E_t) - 1 (0 or negative)"),
    MetricDef("max_drawdown_peak", "time", "bar of the peak before the deepest drawdown"),
    MetricDef("max_drawdown_trough", "time", "bar of the deepest point"),
    MetricDef("max_drawdown_recovery", "time", "first bar back at the peak, empty if never"),
    MetricDef(
        "max_drawdown_duration", "bars", "bars from the peak to the recovery (or to the end)"
    ),
    MetricDef(
        "calmar", "ratio", "annual_return / |max_drawdown| (empty when there is no drawdown)"
    ),
    MetricDef("trades", "count", "filled orders"),
    MetricDef(
        "round_trips",
        "count",
        "closed round trips (FIFO matching of opening and closing fills per symbol)",
    ),
    MetricDef("win_rate", "fraction", "round trips with P&L > 0 / round trips (fees included)"),
    MetricDef(
        "profit_factor", "ratio", "sum of winning round-trip P&L / |sum of losing round-trip P&L|"
    ),
    MetricDef(
        "avg_holding_bars", "bars", "mean bars between the opening and closing fill of a round trip"
    ),
    MetricDef("turnover", "ratio", "sum of |fill value| / mean(E_1..E_n)"),
    MetricDef("exposure", "fraction", "mean over bars of gross position value / E_t"),
    MetricDef("fees", "currency", "sum of fees paid"),
    MetricDef("benchmark", "symbol", "the market's benchmark: QQQ, 000016.SH (SSE-50) or CD5"),
    MetricDef(
        "benchmark_return",
        "fraction",
        "buy-and-hold of the benchmark over the same bars, bought at the first bar's open: "
        "B_n / B_0 - 1",
    ),
    MetricDef("excess_return", "fraction", "total_return - benchmark_return"),
    MetricDef("beta", "ratio", "cov(r, b) / var(b) (both ddof=1)"),
    MetricDef(
        "alpha",
        "fraction",
        "(1 + mean(r - beta x b)) ^ P - 1 (annualised Jensen's alpha, risk-free 0)",
    ),
    MetricDef(
        "excess_ci_low",
        "fraction",
        "95% block-bootstrap interval of the annualised mean of r - b: low end",
    ),
    MetricDef("excess_ci_high", "fraction", "same interval: high end"),
    MetricDef(
        "beats_benchmark",
        "flag",
        "true/false when the interval excludes 0 (significant), empty when it does not",
    ),
    MetricDef("llm_calls", "count", "model calls recorded for the run"),
    MetricDef("prompt_tokens", "count", "tokens sent"),
    MetricDef("completion_tokens", "count", "tokens received"),
    MetricDef("llm_cost", "USD", "sum of recorded call costs (catalog prices)"),
    MetricDef("tokens_per_trade", "count", "(prompt_tokens + completion_tokens) / trades"),
    MetricDef(
        "return_per_llm_dollar",
        "currency",
        "(E_n - E_0) / llm_cost: profit per dollar of LLM spend",
    ),
)

METRIC_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS)


def markdown_table() -> str:
    """The reference as a Markdown table (what README shows)."""
    lines = ["| key | unit | definition |", "|---|---|---|"]
    lines += [f"| `{m.key}` | {m.unit} | {m.formula} |" for m in METRICS]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
