"""Statistics a reviewer accepts: is a Sharpe ratio real, does it survive the number of
strategies tried, and does any model beat buy-and-hold once every comparison is counted.

- :func:`probabilistic_sharpe` (PSR, Bailey & López de Prado 2012): the probability that
  the true Sharpe ratio exceeds a threshold, given the track record's length, skewness
  and kurtosis.
- :func:`deflated_sharpe` (DSR, Bailey & López de Prado 2014): the PSR against the Sharpe
  ratio the best of ``trials`` skill-less strategies would show by luck.
- :func:`min_track_record` (MinTRL, 2012): the bars needed before a Sharpe ratio is
  significantly above a threshold.
- :func:`sharpe_p_value`: the two-sided p-value of "true Sharpe ratio = 0" with the same
  non-normal standard error; on excess returns over buy-and-hold, the per-model test.
- :func:`holm`: Holm's (1979) step-down adjustment of a family of p-values.
- :func:`snooping_test`: Hansen's SPA and Romano-Wolf's StepM through ``arch`` (a
  well-kept implementation, not ours): does any model beat the benchmark, and which.
- :func:`pbo`: the probability of backtest overfitting by CSCV (Bailey et al. 2015) over
  a T x N matrix of the returns of a grid's N configurations.

Sharpe ratios here are per bar (not annualised), skewness is the third standardised
moment and kurtosis the fourth, not excess (3 for the normal), as in the papers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ttg_lab.errors import ValidationError

EULER_GAMMA = 0.5772156649015329
"""The Euler-Mascheroni constant of the expected maximum of Gaussian Sharpe ratios."""

_NORMAL = NormalDist()  # the standard normal (stdlib: no scipy at import, lab startup stays fast)


def _normal_sf(z: float) -> float:
    """P(Z > z) of the standard normal, accurate far into the tail."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class ReturnMoments:
    """What the Sharpe statistics need of a return series: its length, per-bar Sharpe
    ratio, skewness and (non-excess) kurtosis."""

    n: int
    sharpe: float
    skewness: float
    kurtosis: float


def moments(returns: np.ndarray) -> ReturnMoments | None:
    """The moments of ``returns`` (None with fewer than 3 values or zero volatility, where
    a Sharpe ratio is undefined)."""
    values = np.asarray(returns, dtype=float)
    if len(values) < 3 or not np.all(np.isfinite(values)):
        return None
    std = float(np.std(values, ddof=1))
    if std <= 1e-15:
        return None
    deviations = values - float(np.mean(values))
    m2 = float(np.mean(deviations**2))  # population moments, as the papers (and scipy)
    return ReturnMoments(
        n=len(values),
        sharpe=float(np.mean(values)) / std,
        skewness=float(np.mean(deviations**3)) / m2**1.5,
        kurtosis=float(np.mean(deviations**4)) / m2**2,
    )


def _check(n: int, kurtosis: float) -> None:
    if n < 2:
        raise ValidationError(f"a Sharpe ratio's test needs at least 2 returns, got n={n}")
    if not kurtosis >= 1.0:
        raise ValidationError(f"kurtosis is at least 1 (3 for the normal), got {kurtosis}")


def sharpe_std(sharpe: float, n: int, skewness: float = 0.0, kurtosis: float = 3.0) -> float:
    """Standard error of an estimated per-bar Sharpe ratio under non-normal returns
    (Mertens 2002, as used by Bailey & López de Prado)."""
    _check(n, kurtosis)
    spread = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    return math.sqrt(max(spread, 1e-12) / (n - 1))


def probabilistic_sharpe(
    sharpe: float,
    n: int,
    skewness: float = 0.0,
    kurtosis: float = 3.0,
    threshold: float = 0.0,
) -> float:
    """PSR: the probability that the true per-bar Sharpe ratio exceeds ``threshold``."""
    z = (sharpe - threshold) / sharpe_std(sharpe, n, skewness, kurtosis)
    return _normal_sf(-z)


def sharpe_p_value(sharpe: float, n: int, skewness: float = 0.0, kurtosis: float = 3.0) -> float:
    """Two-sided p-value of "the true Sharpe ratio is 0" (the PSR's z, both tails)."""
    z = sharpe / sharpe_std(sharpe, n, skewness, kurtosis)
    return min(1.0, 2.0 * _normal_sf(abs(z)))


def expected_max_sharpe(trials: int, variance: float) -> float:
    """The expected largest per-bar Sharpe ratio of ``trials`` strategies without skill
    whose estimated Sharpe ratios vary with ``variance`` (DSR's threshold SR_0)."""
    if trials < 1:
        raise ValidationError(f"the number of trials is at least 1, got {trials}")
    if not variance >= 0.0:
        raise ValidationError(f"the variance of the trials' Sharpe ratios is >= 0, got {variance}")
    if trials == 1:
        return 0.0
    quantiles = (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / trials)
    quantiles += EULER_GAMMA * _NORMAL.inv_cdf(1.0 - 1.0 / (trials * math.e))
    return float(math.sqrt(variance) * quantiles)


def deflated_sharpe(
    sharpe: float,
    n: int,
    skewness: float,
    kurtosis: float,
    trials: int,
    variance: float,
) -> float:
    """DSR: the PSR of the selected strategy against :func:`expected_max_sharpe` of the
    ``trials`` configurations tried (with ``variance`` across their Sharpe ratios)."""
    threshold = expected_max_sharpe(trials, variance)
    return probabilistic_sharpe(sharpe, n, skewness, kurtosis, threshold)


def min_track_record(
    sharpe: float,
    skewness: float = 0.0,
    kurtosis: float = 3.0,
    threshold: float = 0.0,
    confidence: float = 0.95,
) -> float | None:
    """MinTRL: the bars of track record for a PSR of ``confidence`` against ``threshold``
    (None when the Sharpe ratio is not above the threshold: no length suffices)."""
    if not 0.0 < confidence < 1.0:
        raise ValidationError(f"confidence is between 0 and 1, got {confidence}")
    _check(2, kurtosis)
    if sharpe <= threshold:
        return None
    spread = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    z = _NORMAL.inv_cdf(confidence)
    return float(1.0 + spread * (z / (sharpe - threshold)) ** 2)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest p is
    multiplied by (m - i + 1), kept monotone and capped at 1. Rejecting where the
    adjusted p is below alpha controls the family-wise error rate at alpha."""
    values = np.asarray(p_values, dtype=float)
    if values.size and not np.all((values >= 0.0) & (values <= 1.0)):
        bad = values[~((values >= 0.0) & (values <= 1.0))][0]
        raise ValidationError(f"p-values lie in [0, 1], got {bad}")
    m = len(values)
    order = np.argsort(values, kind="stable")
    scaled = np.minimum(1.0, np.maximum.accumulate(values[order] * (m - np.arange(m))))
    adjusted = np.empty(m)
    adjusted[order] = scaled
    return [float(p) for p in adjusted]


def cohens_d(excess: np.ndarray) -> float | None:
    """Cohen's d of bar excess returns: their mean over their standard deviation (the
    effect size beside a p-value; None when they do not vary)."""
    values = np.asarray(excess, dtype=float)
    if len(values) < 2:
        return None
    std = float(np.std(values, ddof=1))
    return float(np.mean(values)) / std if std > 1e-15 else None


@dataclass(frozen=True)
class BenchmarkTest:
    """A run against buy-and-hold over the same bars: the per-model test and its effect
    sizes, and the run's own PSR and MinTRL."""

    n: int
    p_value: float | None
    """Two-sided p of "the excess returns' Sharpe ratio is 0" (None: undefined)."""
    cohens_d: float | None
    sharpe_diff: float | None
    """Annualised Sharpe ratio of the run minus that of buy-and-hold."""
    psr: float | None
    """P(the run's true Sharpe ratio > 0)."""
    min_trl: float | None
    """Bars needed for a PSR of 95% at the run's Sharpe ratio, skewness and kurtosis."""
    own: ReturnMoments | None


def benchmark_test(returns: np.ndarray, benchmark: np.ndarray, periods: float) -> BenchmarkTest:
    """The run's bar ``returns`` against the benchmark's over the same bars."""
    returns = np.asarray(returns, dtype=float)
    benchmark = np.asarray(benchmark, dtype=float)
    if returns.shape != benchmark.shape:
        raise ValidationError(
            f"returns and benchmark differ in length: {len(returns)} and {len(benchmark)}"
        )
    own, bench, excess = moments(returns), moments(benchmark), moments(returns - benchmark)
    p_value = (
        None
        if excess is None
        else sharpe_p_value(excess.sharpe, excess.n, excess.skewness, excess.kurtosis)
    )
    sharpe_diff = None
    if own is not None and bench is not None:
        sharpe_diff = (own.sharpe - bench.sharpe) * math.sqrt(periods)
    psr = trl = None
    if own is not None:
        psr = probabilistic_sharpe(own.sharpe, own.n, own.skewness, own.kurtosis)
        trl = min_track_record(own.sharpe, own.skewness, own.kurtosis)
    return BenchmarkTest(
        len(returns), p_value, cohens_d(returns - benchmark), sharpe_diff, psr, trl, own
    )


@dataclass(frozen=True)
class SnoopingResult:
    """Hansen's SPA and Romano-Wolf's StepM of k models against a benchmark."""

    spa_p_value: float
    """Consistent SPA p-value of "no model beats the benchmark"."""
    spa_p_lower: float
    spa_p_upper: float
    superior: list[int]
    """Columns StepM finds better than the benchmark (family-wise error rate ``size``)."""
    reps: int
    block_size: int


def snooping_test(
    returns: np.ndarray,
    benchmark: np.ndarray,
    reps: int = 1000,
    size: float = 0.05,
    block_size: int | None = None,
    seed: int = 20251128,
) -> SnoopingResult:
    """SPA and StepM (``arch.bootstrap``, stationary bootstrap) of the T x k ``returns``
    against the T ``benchmark`` returns: losses are negative returns, so "better" is a
    higher mean return."""
    from arch.bootstrap import SPA, StepM  # heavy: loaded only for this test

    models = np.asarray(returns, dtype=float)
    bench = np.asarray(benchmark, dtype=float)
    if models.ndim != 2 or bench.ndim != 1 or models.shape[0] != len(bench):
        raise ValidationError(
            f"a snooping test takes T x k returns and T benchmark returns, got "
            f"{models.shape} and {bench.shape}"
        )
    if len(bench) < 10:
        raise ValidationError(f"a snooping test needs at least 10 bars, got {len(bench)}")
    if reps < 1:
        raise ValidationError(f"bootstrap replications are at least 1, got {reps}")
    block = block_size or max(1, int(math.sqrt(len(bench))))
    spa = SPA(-bench, -models, block_size=block, reps=reps, seed=seed)
    spa.compute()
    pvalues = spa.pvalues
    stepm = StepM(-bench, -models, size=size, block_size=block, reps=reps, seed=seed)
    stepm.compute()
    return SnoopingResult(
        spa_p_value=float(pvalues["consistent"]),
        spa_p_lower=float(pvalues["lower"]),
        spa_p_upper=float(pvalues["upper"]),
        superior=[int(i) for i in np.asarray(stepm.superior_models, dtype=int)],
        reps=reps,
        block_size=block,
    )


@dataclass(frozen=True)
class PboResult:
    """CSCV's verdict on a grid: the probability of backtest overfitting, and the logit
    of the in-sample winner's out-of-sample rank for every split."""

    pbo: float
    logits: np.ndarray
    splits: int


def pbo(returns: np.ndarray, partitions: int = 16) -> PboResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation
    (Bailey, Borwein, López de Prado & Zhu 2015) of a T x N matrix of bar returns.

    The rows are cut into ``partitions`` blocks; every half of them is once in-sample and
    the rest out-of-sample. The configuration with the best in-sample Sharpe ratio gets
    its out-of-sample relative rank w; PBO is the share of splits with logit(w) <= 0 (the
    in-sample winner below the out-of-sample median): about 0.5 when nothing has an edge.
    """
    matrix = np.asarray(returns, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValidationError(f"PBO takes a T x N matrix with N >= 2, got shape {matrix.shape}")
    if partitions < 2 or partitions % 2:
        raise ValidationError(f"PBO's partitions are an even number >= 2, got {partitions}")
    rows, columns = matrix.shape
    if rows < 2 * partitions:
        raise ValidationError(
            f"PBO needs at least 2 rows per partition: {rows} rows for {partitions} partitions"
        )
    if not np.all(np.isfinite(matrix)):
        raise ValidationError("PBO's returns must be finite (no NaN or infinity)")
    blocks = np.array_split(np.arange(rows), partitions)
    sums = np.array([matrix[b].sum(axis=0) for b in blocks])  # partitions x N
    squares = np.array([(matrix[b] ** 2).sum(axis=0) for b in blocks])
    counts = np.array([len(b) for b in blocks], dtype=float)
    chosen = np.array(list(itertools.combinations(range(partitions), partitions // 2)))
    mask = np.zeros((len(chosen), partitions))
    np.put_along_axis(mask, chosen, 1.0, axis=1)

    def sharpe(weights: np.ndarray) -> np.ndarray:
        n = (weights @ counts)[:, None]
        mean = (weights @ sums) / n
        var = np.maximum((weights @ squares) / n - mean**2, 1e-30) * n / (n - 1)
        result: np.ndarray = mean / np.sqrt(var)
        return result

    inside, outside = sharpe(mask), sharpe(1.0 - mask)
    best = np.argmax(inside, axis=1)
    winner = outside[np.arange(len(best)), best]
    rank = (outside <= winner[:, None]).sum(axis=1)  # 1 (worst) .. N (best)
    relative = rank / (columns + 1.0)
    logits = np.log(relative / (1.0 - relative))
    return PboResult(float(np.mean(logits <= 0.0)), logits, len(chosen))
