"""The leaderboard's statistics: every row against buy-and-hold, corrected for the many
comparisons the board makes.

A row's sample is the mean bar return of the runs behind it (its repeats over the same
bars, so ``n_runs`` of them and ``n_steps`` bars) against the benchmark's bar returns.
Rows are compared only within their group (market, mode, period): the family of Holm's
correction, the trials of the deflated Sharpe ratio and the models of the snooping test
are the rows of one group. See :mod:`ttg_lab.metrics.significance` for the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from ttg_lab.metrics.series import RunReturns, runs_returns
from ttg_lab.metrics.significance import (
    BenchmarkTest,
    benchmark_test,
    deflated_sharpe,
    holm,
    snooping_test,
)
from ttg_lab.store.database import Store

ALPHA = 0.05
"""The family-wise error rate of the corrected verdicts and of StepM."""

HolmVerdict = Literal[
    "beats the benchmark (Holm-corrected)",
    "trails the benchmark (Holm-corrected)",
    "no significant difference (Holm-corrected)",
    "too few bars to tell",
    "no benchmark for these bars",
]
"""A row against buy-and-hold once the p-values of its group are Holm-corrected at 5%."""

HOLM_VERDICTS: tuple[HolmVerdict, ...] = get_args(HolmVerdict)


@dataclass(frozen=True)
class BoardEntry:
    """A board row to test: the runs behind it (its latest run first), its market and its
    group (rows of one group are compared with one another, never with other groups)."""

    runs: Sequence[int]
    market: str
    group: str


@dataclass(frozen=True)
class RowSample:
    """A row's bar returns (mean over its runs) and buy-and-hold's over the same bars."""

    group: str
    returns: np.ndarray
    benchmark: np.ndarray | None
    periods: float
    n_runs: int


@dataclass(frozen=True)
class RowStatistics:
    """What the board says of one row, beside its figures."""

    n_runs: int
    n_steps: int
    p_value: float | None
    p_holm: float | None
    holm_verdict: HolmVerdict
    cohens_d: float | None
    sharpe_diff: float | None
    psr: float | None
    dsr: float | None
    trials: int
    min_trl: float | None
    spa_p_value: float | None
    stepm_beats: bool | None


def row_sample(group: str, series: Sequence[RunReturns]) -> RowSample:
    """The mean bar return of the runs over the first run's bars (runs over other bars,
    e.g. an unfinished repeat, are left out)."""
    first = series[0]
    same = [s for s in series if np.array_equal(s.times, first.times)]
    returns = np.mean(np.vstack([s.returns for s in same]), axis=0)
    return RowSample(group, returns, first.benchmark, first.periods, len(same))


def row_statistics(
    samples: Sequence[RowSample | None], snooping: bool = False, reps: int = 1000
) -> list[RowStatistics]:
    """Every row's tests, Holm-corrected and deflated within its group (None: a row with
    no steps); with ``snooping``, SPA and StepM over each group's rows too."""
    tests: dict[int, BenchmarkTest] = {
        i: benchmark_test(s.returns, s.benchmark, s.periods)
        for i, s in enumerate(samples)
        if s is not None and s.benchmark is not None and len(s.returns) >= 3
    }
    groups: dict[str, list[int]] = {}
    for i, sample in enumerate(samples):
        if sample is not None:
            groups.setdefault(sample.group, []).append(i)
    p_holm: dict[int, float] = {}
    dsr: dict[int, float] = {}
    trials: dict[int, int] = {}
    spa: dict[int, float] = {}
    beats: dict[int, bool] = {}
    for members in groups.values():
        p_values = {i: p for i in members if i in tests and (p := tests[i].p_value) is not None}
        p_holm.update(zip(p_values, holm(list(p_values.values())), strict=True))
        owns = {i: own for i in members if i in tests and (own := tests[i].own) is not None}
        sharpes = [own.sharpe for own in owns.values()]
        variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
        for i, own in owns.items():
            dsr[i] = deflated_sharpe(
                own.sharpe, own.n, own.skewness, own.kurtosis, len(owns), variance
            )
            trials[i] = len(owns)
        if snooping and p_values:
            _snoop(samples, list(p_values), reps, spa, beats)
    out = []
    for i, sample in enumerate(samples):
        test = tests.get(i)
        out.append(
            RowStatistics(
                n_runs=sample.n_runs if sample else 0,
                n_steps=len(sample.returns) if sample else 0,
                p_value=test.p_value if test else None,
                p_holm=p_holm.get(i),
                holm_verdict=_verdict(sample, test.cohens_d if test else None, p_holm.get(i)),
                cohens_d=test.cohens_d if test else None,
                sharpe_diff=test.sharpe_diff if test else None,
                psr=test.psr if test else None,
                dsr=dsr.get(i),
                trials=trials.get(i, 0),
                min_trl=test.min_trl if test else None,
                spa_p_value=spa.get(i),
                stepm_beats=beats.get(i),
            )
        )
    return out


def _snoop(
    samples: Sequence[RowSample | None],
    rows: list[int],
    reps: int,
    spa: dict[int, float],
    beats: dict[int, bool],
) -> None:
    """SPA and StepM of a group's rows over the bars they share (too few: no test)."""
    chosen = [samples[i] for i in rows]
    length = min(len(s.returns) for s in chosen if s is not None)
    if length < 10 or any(s is None or len(s.returns) != length for s in chosen):
        return
    matrix = np.column_stack([s.returns for s in chosen if s is not None])
    bench = chosen[0].benchmark if chosen[0] is not None else None
    if bench is None:
        return
    result = snooping_test(matrix, bench, reps=reps, size=ALPHA)
    for position, i in enumerate(rows):
        spa[i] = result.spa_p_value
        beats[i] = position in result.superior


def _verdict(sample: RowSample | None, effect: float | None, p: float | None) -> HolmVerdict:
    if sample is None or sample.benchmark is None:
        return "no benchmark for these bars"
    if p is None or effect is None or not math.isfinite(p):
        return "too few bars to tell"
    if p >= ALPHA:
        return "no significant difference (Holm-corrected)"
    return (
        "beats the benchmark (Holm-corrected)"
        if effect > 0
        else "trails the benchmark (Holm-corrected)"
    )


def board_statistics(
    store: Store, entries: Sequence[BoardEntry], snooping: bool = False, reps: int = 1000
) -> list[RowStatistics]:
    """:func:`row_statistics` of board rows, their runs' returns read from the store."""
    series: dict[int, RunReturns] = {}
    by_market: dict[str, list[int]] = {}
    for entry in entries:
        by_market.setdefault(entry.market, []).extend(entry.runs)
    for market, ids in by_market.items():
        series.update(runs_returns(store, ids, market))
    samples: list[RowSample | None] = []
    for entry in entries:
        found = [series[r] for r in entry.runs if r in series]
        samples.append(row_sample(entry.group, found) if found else None)
    return row_statistics(samples, snooping, reps)
