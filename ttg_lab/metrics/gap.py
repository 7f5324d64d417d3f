"""The memorisation gap: how much better a model trades real history than the same
history masked (pseudonymous tickers, shifted dates, scaled prices).

Two arms of one model over one period and mode, seeds ``seed .. seed + N - 1`` in both,
so repeat ``i`` of one arm differs from repeat ``i`` of the other only by masking. The gap
is unmasked minus masked, in total return and in Sharpe ratio: when both arms are
complete (every run has its partner of the same seed) it is the mean of the paired
differences with a Student t interval and the paired t-test's p-value (effect size:
Cohen's d of the differences); otherwise Welch's unpaired t over the runs each arm
completed (effect size: Cohen's d with the pooled standard deviation). A t interval
rather than the bootstrap: with a handful of repeats a bootstrap interval is too narrow,
and the t interval excludes 0 exactly when the test rejects at 5%, so the verdict agrees
with the p-value.

Every figure is a LOWER BOUND on memorisation: masking hides names, dates and price levels,
not everything (a model may still recognise a stock from the shape of its returns, from
its news or its sector), so a model may still use what it remembers in the masked arm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from sqlalchemy import select

from ttg_lab.metrics.bootstrap import CONFIDENCE
from ttg_lab.metrics.significance import cohens_d
from ttg_lab.runs.experiments import GapInfo
from ttg_lab.store.database import Store
from ttg_lab.store.schema import TradingRun

GapVerdict = Literal["memorisation suspected", "no gap detected", "too few runs"]
"""What a gap says: its interval excludes 0 in the unmasked arm's favour (suspected), or
not, or there are fewer than 2 pairs (2 runs in each arm when unpaired) to tell."""

GAP_VERDICTS: tuple[GapVerdict, ...] = get_args(GapVerdict)

GapMeasure = Literal["total_return", "sharpe"]
"""The figures a gap compares: a run's total return and its annualised Sharpe ratio."""

GAP_MEASURES: tuple[GapMeasure, ...] = get_args(GapMeasure)

LOWER_BOUND = (
    "lower bound: masking hides tickers, names, dates and price levels, not everything a "
    "model may recognise (the shape of the returns, the news, the sector), so the true "
    "memorisation effect may be larger"
)
"""The label every gap carries."""

SHORT_VERDICTS: dict[GapVerdict, str] = {
    "memorisation suspected": "suspected",
    "no gap detected": "no gap",
    "too few runs": "too few runs",
}


@dataclass(frozen=True)
class ArmRun:
    """One completed run of an arm: its seed and figures (None where undefined, e.g. the
    Sharpe ratio of a run whose equity never moved)."""

    seed: int
    total_return: float | None
    sharpe: float | None

    def figure(self, measure: GapMeasure) -> float | None:
        value = self.total_return if measure == "total_return" else self.sharpe
        return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class GapDifference:
    """Unmasked minus masked in one figure (a lower bound on memorisation)."""

    measure: GapMeasure
    paired: bool
    """Paired by seed (both arms complete) or Welch's unpaired comparison."""
    n_unmasked: int
    n_masked: int
    n_pairs: int
    """Seeds in both arms when paired; 0 when unpaired."""
    unmasked_mean: float | None
    masked_mean: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    """Two-sided p of "no difference" (paired t-test, or Welch's)."""
    effect_size: float | None
    """Cohen's d (of the paired differences, or with the pooled standard deviation)."""
    verdict: GapVerdict


@dataclass(frozen=True)
class GapResult:
    """The memorisation gap of two arms: in total return (the verdict's figure) and in
    Sharpe ratio, each with its interval, p-value and effect size; a lower bound."""

    total_return: GapDifference
    sharpe: GapDifference
    confidence: float = CONFIDENCE
    lower_bound: str = LOWER_BOUND

    @property
    def verdict(self) -> GapVerdict:
        """The verdict of the total-return gap."""
        return self.total_return.verdict

    def text(self) -> str:
        """One line for a table: ``+4.1% [1.2, 7.0] suspected (lower bound)``."""
        gap = self.total_return
        if gap.difference is None:
            return "too few runs (lower bound)"
        value = f"{gap.difference * 100:+.1f}%"
        if gap.ci_low is not None and gap.ci_high is not None:
            value += f" [{gap.ci_low * 100:.1f}, {gap.ci_high * 100:.1f}]"
        return f"{value} {SHORT_VERDICTS[gap.verdict]} (lower bound)"


NOISE = 1e-9
"""A gap smaller than this (in return or Sharpe) is the float noise of bookkeeping, not
an effect: two arms that booked the same trades may differ by ~1e-14."""


def gap_verdict(n: int, ci_low: float | None) -> GapVerdict:
    """Suspected when the interval's lower end is above 0 (the unmasked arm better) by more
    than :data:`NOISE`; too few runs under 2 (pairs, or runs in an arm)."""
    if n < 2 or ci_low is None:
        return "too few runs"
    return "memorisation suspected" if ci_low > NOISE else "no gap detected"


def memorisation_gap(
    unmasked: Sequence[ArmRun], masked: Sequence[ArmRun], confidence: float = CONFIDENCE
) -> GapResult:
    """The gap unmasked - masked of two arms' completed runs, in total return and Sharpe."""
    return GapResult(
        total_return=_difference("total_return", unmasked, masked, confidence),
        sharpe=_difference("sharpe", unmasked, masked, confidence),
        confidence=confidence,
    )


@dataclass(frozen=True)
class _Estimate:
    """A difference of means with its interval, p-value and effect size, over ``n`` pairs
    (or the smaller arm's runs)."""

    n: int
    difference: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    effect: float | None = None


def _difference(
    measure: GapMeasure,
    unmasked: Sequence[ArmRun],
    masked: Sequence[ArmRun],
    confidence: float,
) -> GapDifference:
    left = {run.seed: v for run in unmasked if (v := run.figure(measure)) is not None}
    right = {run.seed: v for run in masked if (v := run.figure(measure)) is not None}
    paired = bool(left) and set(left) == set(right)
    found = (
        _paired(np.array([left[s] - right[s] for s in sorted(left)]), confidence)
        if paired
        else _welch(np.array(list(left.values())), np.array(list(right.values())), confidence)
    )
    return GapDifference(
        measure=measure,
        paired=paired,
        n_unmasked=len(left),
        n_masked=len(right),
        n_pairs=len(left) if paired else 0,
        unmasked_mean=float(np.mean(list(left.values()))) if left else None,
        masked_mean=float(np.mean(list(right.values()))) if right else None,
        difference=found.difference,
        ci_low=found.ci_low,
        ci_high=found.ci_high,
        p_value=found.p_value,
        effect_size=found.effect,
        verdict=gap_verdict(found.n, found.ci_low),
    )


def _paired(differences: np.ndarray, confidence: float) -> _Estimate:
    """The paired t interval and test of the differences (effect: their Cohen's d)."""
    n = len(differences)
    mean = float(np.mean(differences))
    if n < 2:
        return _Estimate(n, mean)
    se = float(np.std(differences, ddof=1)) / math.sqrt(n)
    return _t_interval(n, mean, se, n - 1, confidence, cohens_d(differences))


def _welch(a: np.ndarray, b: np.ndarray, confidence: float) -> _Estimate:
    """Welch's unpaired t interval and test of mean(a) - mean(b) (effect: Cohen's d with
    the pooled standard deviation)."""
    n = min(len(a), len(b))
    if not n:
        return _Estimate(0, None)
    mean = float(np.mean(a) - np.mean(b))
    if n < 2:
        return _Estimate(n, mean)
    va, vb = float(np.var(a, ddof=1)), float(np.var(b, ddof=1))
    sa, sb = va / len(a), vb / len(b)
    df = (sa + sb) ** 2 / (sa**2 / (len(a) - 1) + sb**2 / (len(b) - 1)) if sa + sb else 1.0
    pooled = math.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2))
    effect = mean / pooled if pooled > 1e-15 else None
    return _t_interval(n, mean, math.sqrt(sa + sb), df, confidence, effect)


def _t_interval(
    n: int, mean: float, se: float, df: float, confidence: float, effect: float | None
) -> _Estimate:
    """The mean's Student t interval and the two-sided p of "the true value is 0".
    Differences that do not vary give the point interval [mean, mean], p 1 when it is 0
    and 0 otherwise."""
    if se <= 1e-15:
        return _Estimate(n, mean, mean, mean, 1.0 if mean == 0.0 else 0.0, effect)
    from scipy import stats  # heavy: loaded only when a gap is computed

    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p_value = min(1.0, float(2.0 * stats.t.sf(abs(mean) / se, df)))
    return _Estimate(n, mean, mean - half, mean + half, p_value, effect)


def stored_gap(store: Store, gap: GapInfo) -> GapResult:
    """The gap of a stored memorisation gap: its arms' completed runs, each with the seed
    of its snapshot and its stored total return and Sharpe ratio."""
    arms = {run_id: "unmasked" for run_id in gap.unmasked.run_ids}
    arms.update({run_id: "masked" for run_id in gap.masked.run_ids})
    query = select(
        TradingRun.id,
        TradingRun.metrics,
        TradingRun.strategy_snapshot["seed"].as_integer().label("seed"),
    ).where(TradingRun.id.in_(list(arms)), TradingRun.status == "completed")
    found: dict[str, list[ArmRun]] = {"unmasked": [], "masked": []}
    with store.session() as session:
        for run_id, metrics, seed in session.execute(query.order_by(TradingRun.id)):
            figures = metrics or {}
            found[arms[run_id]].append(
                ArmRun(int(seed), figures.get("total_return"), figures.get("sharpe"))
            )
    return memorisation_gap(found["unmasked"], found["masked"])
