"""The statistics against the papers' worked examples, textbook examples, independent
computations and simulations whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from arch.bootstrap import SPA
from scipy import stats

from ttg_lab.errors import ValidationError
from ttg_lab.metrics.comparisons import RowSample, row_statistics
from ttg_lab.metrics.significance import (
    benchmark_test,
    deflated_sharpe,
    expected_max_sharpe,
    holm,
    min_track_record,
    moments,
    pbo,
    probabilistic_sharpe,
    sharpe_p_value,
    snooping_test,
)


def test_dsr_reproduces_the_worked_example_of_the_deflated_sharpe_ratio_paper() -> None:
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", section 5's example:
    an annualised SR of 2.5 over 5 years of daily returns (T = 1250, 250 days a year),
    N = 100 trials whose annualised Sharpe ratios vary by V = 0.5, skewness -3 and
    kurtosis 10 give SR_0 = 0.1132 (per day) and DSR = 0.9004."""
    variance = 0.5 / 250
    assert expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe(2.5 / math.sqrt(250), 1250, -3.0, 10.0, 100, variance)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    # one trial: nothing to deflate, the DSR is the PSR against 0
    assert deflated_sharpe(0.1, 250, 0.0, 3.0, 1, 0.0) == probabilistic_sharpe(0.1, 250)


def test_psr_equals_an_independent_computation_from_the_returns() -> None:
    """Bailey & López de Prado (2012), eq. for PSR(SR*) = Z[(SR - SR*) sqrt(T - 1) /
    sqrt(1 - g3 SR + (g4 - 1)/4 SR^2)], computed here from scipy's moments by hand."""
    rng = np.random.default_rng(7)
    returns = rng.standard_t(5, 500) * 0.01 + 0.0008
    sr = returns.mean() / returns.std(ddof=1)
    g3, g4 = stats.skew(returns), stats.kurtosis(returns, fisher=False)
    by_hand = stats.norm.cdf(
        (sr - 0.02) * math.sqrt(499) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    )
    m = moments(returns)
    assert m is not None and m.n == 500
    assert probabilistic_sharpe(m.sharpe, m.n, m.skewness, m.kurtosis, 0.02) == pytest.approx(
        by_hand, rel=1e-12
    )
    # fat tails and negative skew widen the Sharpe ratio's error: a lower PSR
    assert probabilistic_sharpe(0.1, 250, -2.0, 12.0) < probabilistic_sharpe(0.1, 250)


def test_psr_is_calibrated_when_there_is_no_skill() -> None:
    """Under a true Sharpe ratio of 0, PSR > 0.95 in about 5% of track records."""
    rng = np.random.default_rng(11)
    samples = rng.normal(0.0, 0.01, size=(4000, 250))
    psr = [
        probabilistic_sharpe(m.sharpe, m.n, m.skewness, m.kurtosis)
        for m in (moments(row) for row in samples)
        if m is not None
    ]
    assert 0.04 <= float(np.mean(np.array(psr) > 0.95)) <= 0.06


def test_min_trl_is_the_shortest_track_record_with_a_psr_of_95_percent() -> None:
    """MinTRL (2012, eq. 11) = 1 + (1 - g3 SR + (g4 - 1)/4 SR^2) (Z_a / (SR - SR*))^2:
    the length at which the PSR reaches the confidence, by the PSR's own formula."""
    sr, g3, g4 = 0.08, -1.0, 6.0
    trl = min_track_record(sr, g3, g4, threshold=0.0, confidence=0.95)
    assert trl is not None
    expected = 1 + (1 - g3 * sr + (g4 - 1) / 4 * sr**2) * (stats.norm.ppf(0.95) / sr) ** 2
    assert trl == pytest.approx(expected)
    # PSR computed at exactly MinTRL is the confidence
    spread = 1 - g3 * sr + (g4 - 1) / 4 * sr**2
    assert stats.norm.cdf(sr * math.sqrt(trl - 1) / math.sqrt(spread)) == pytest.approx(0.95)
    assert probabilistic_sharpe(sr, math.ceil(trl), g3, g4) >= 0.95
    assert probabilistic_sharpe(sr, math.floor(trl) - 1, g3, g4) < 0.95
    assert min_track_record(-0.01) is None  # below the threshold no length suffices


def test_holm_matches_the_textbook_example() -> None:
    """Holm (1979) as in Wikipedia's "Holm-Bonferroni method" example: p = 0.01, 0.04,
    0.03, 0.005 at alpha 0.05 rejects H1 and H4 only; adjusted p = 0.03, 0.06, 0.06, 0.02."""
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [p < 0.05 for p in adjusted] == [True, False, False, True]
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_the_per_model_test_finds_a_real_edge_and_reports_its_effect_size() -> None:
    rng = np.random.default_rng(3)
    bench = rng.normal(0.0005, 0.01, 500)
    edge = bench + rng.normal(0.002, 0.005, 500)
    noise = bench + rng.normal(0.0, 0.005, 500)
    found = benchmark_test(edge, bench, 252)
    assert found.p_value is not None and found.p_value < 1e-6
    assert found.cohens_d == pytest.approx(np.mean(edge - bench) / np.std(edge - bench, ddof=1))
    assert found.sharpe_diff is not None and found.sharpe_diff > 0
    not_found = benchmark_test(noise, bench, 252)
    assert not_found.p_value is not None and not_found.p_value > 0.05
    excess = moments(noise - bench)
    assert excess is not None
    assert not_found.p_value == sharpe_p_value(
        excess.sharpe, excess.n, excess.skewness, excess.kurtosis
    )


def test_spa_and_stepm_find_the_one_real_edge_and_no_edge_in_noise() -> None:
    rng = np.random.default_rng(5)
    bench = rng.normal(0.0, 0.01, 500)
    noise = bench[:, None] + rng.normal(0.0, 0.01, (500, 20))
    result = snooping_test(noise, bench, reps=1000)
    assert result.spa_p_value > 0.05 and result.superior == []

    edge = noise.copy()
    edge[:, 13] += 0.004
    found = snooping_test(edge, bench, reps=1000)
    assert found.spa_p_value < 0.05 and found.superior == [13]
    assert found.spa_p_lower <= found.spa_p_value <= found.spa_p_upper
    # the same answer as arch called directly (losses are negative returns)
    direct = SPA(-bench, -edge, block_size=found.block_size, reps=1000, seed=20251128)
    direct.compute()
    assert found.spa_p_value == float(direct.pvalues["consistent"])


def test_pbo_is_one_half_on_noise_and_low_with_one_real_edge() -> None:
    """Bailey, Borwein, López de Prado & Zhu (2015): with no skill the in-sample winner
    is out-of-sample below the median half the time; with one real edge, rarely."""
    noise = [pbo(np.random.default_rng(seed).normal(0, 0.01, (800, 40))).pbo for seed in range(12)]
    assert 0.4 <= float(np.mean(noise)) <= 0.6
    grid = np.random.default_rng(99).normal(0, 0.01, (800, 40))
    grid[:, 17] += 0.003
    result = pbo(grid)
    assert result.pbo < 0.05 and result.splits == math.comb(16, 8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: pbo(np.zeros((100, 5)), partitions=7), "even number >= 2, got 7"),
        (lambda: pbo(np.zeros((10, 5)), partitions=16), "10 rows for 16 partitions"),
        (lambda: pbo(np.zeros((100, 1))), r"N >= 2, got shape \(100, 1\)"),
        (lambda: holm([0.2, 1.5]), r"\[0, 1\], got 1.5"),
        (lambda: expected_max_sharpe(0, 0.1), "at least 1, got 0"),
        (lambda: probabilistic_sharpe(0.1, 1), "at least 2 returns, got n=1"),
        (lambda: min_track_record(0.1, confidence=1.5), "between 0 and 1, got 1.5"),
        (lambda: benchmark_test(np.zeros(5), np.zeros(4), 252), "5 and 4"),
        (lambda: snooping_test(np.zeros((5, 2)), np.zeros(5)), "at least 10 bars, got 5"),
    ],
)
def test_bad_input_is_refused_naming_the_value(call: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        call()  # type: ignore[operator]


def test_board_rows_are_corrected_and_deflated_only_within_their_group() -> None:
    rng = np.random.default_rng(21)
    bench = rng.normal(0.0005, 0.01, 300)
    edge = RowSample("us daily A", bench + rng.normal(0.003, 0.004, 300), bench, 252, 2)
    noise = rng.normal(0, 0.004, 300)
    flat = [RowSample("us daily A", bench + noise - noise.mean(), bench, 252, 1)]  # no edge
    other = RowSample("us daily B", bench[:200] + 0.0001, bench[:200], 252, 1)
    samples: list[RowSample | None] = [edge, *flat, other, None]
    found = row_statistics(samples, snooping=True, reps=500)
    group_a = [benchmark_test(s.returns, s.benchmark, 252).p_value for s in (edge, *flat)]
    assert [found[0].p_holm, found[1].p_holm] == pytest.approx(holm(group_a))  # type: ignore[arg-type]
    assert found[2].p_holm == found[2].p_value  # a family of one: nothing to correct
    assert found[0].holm_verdict == "beats the benchmark (Holm-corrected)"
    assert (found[0].n_runs, found[0].n_steps, found[2].n_steps) == (2, 300, 200)
    assert found[0].trials == found[1].trials == 2 and found[2].trials == 1
    assert found[0].dsr is not None and found[0].psr is not None
    assert found[0].dsr < found[0].psr and found[2].dsr == pytest.approx(found[2].psr)
    assert found[0].stepm_beats is True and found[1].stepm_beats is False
    assert found[0].spa_p_value == found[1].spa_p_value < 0.05
    assert found[3].holm_verdict == "no benchmark for these bars" and found[3].n_runs == 0
