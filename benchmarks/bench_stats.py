"""Statistics speed: the leaderboard with all its corrections (per-row tests against
buy-and-hold, Holm within each group, PSR, DSR, MinTRL, effect sizes) over 1,000 stored
runs of 100 models, each with its equity curve (target <= 2 s); SPA and StepM with
1,000 bootstrap replications over those 100 models (target <= 5 s); PBO of a 100-strategy
grid by CSCV with 16 partitions (12,870 splits).

The runs are synthetic: a real momentum run over the shipped NASDAQ-100 period gives the
bars, snapshot and benchmark; each copy gets its own random equity curve over those bars,
written to the store as a run would (one run_steps row per bar).
"""

from __future__ import annotations

import time

import numpy as np
from _common import fresh_lab
from sqlalchemy import insert, select

from ttg_lab.lab import Lab
from ttg_lab.leaderboard import leaderboard
from ttg_lab.metrics.series import runs_returns
from ttg_lab.metrics.significance import pbo, snooping_test
from ttg_lab.store.schema import RunStep, TradingModel, TradingRun

MODELS = 100
RUNS = 1000


def seed_store(lab: Lab) -> tuple[int, np.ndarray]:
    """1,000 completed runs of 100 models over one real run's bars; the bars' count and
    buy-and-hold's returns the curves are built around (one model with a real edge)."""
    model = lab.models.create("probe", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    run = lab.start_run(model, path="direct", background=False)
    market = runs_returns(lab.store, [run.id], "us")[run.id].benchmark  # buy-and-hold's
    assert market is not None
    with lab.store.session() as session:
        base = session.get(TradingRun, run.id)
        assert base is not None
        steps = session.execute(
            select(RunStep.ts).where(RunStep.run_id == run.id).order_by(RunStep.step_index)
        ).all()
        times = [s.ts for s in steps]
        rng = np.random.default_rng(0)
        models = [
            TradingModel(
                owner_id=lab.user.id,
                name=f"m{i}",
                signature=f"bench-m{i}",
                market="us",
                initial_cash=100_000.0,
                ai_model_id="baseline/random",
            )
            for i in range(MODELS)
        ]
        session.add_all(models)
        session.flush()
        curves = []
        runs = []
        for i in range(RUNS):
            edge = 0.002 if i % MODELS == 0 else 0.0  # one model with a real edge
            returns = market + rng.normal(edge, 0.005, len(times))  # buy-and-hold plus noise
            curves.append(100_000.0 * np.cumprod(1.0 + returns))
            metrics = dict(base.metrics)  # the figures the board shows follow the curve
            metrics["total_return"] = float(curves[-1][-1] / 100_000.0 - 1.0)
            metrics["sharpe"] = float(returns.mean() / returns.std(ddof=1) * np.sqrt(252))
            runs.append(
                TradingRun(
                    model_id=models[i % MODELS].id,
                    run_number=i // MODELS + 1,
                    status="completed",
                    mode=base.mode,
                    period_start=base.period_start,
                    period_end=base.period_end,
                    strategy_snapshot=base.strategy_snapshot,
                    metrics=metrics,
                )
            )
        session.add_all(runs)
        session.flush()
        rows = []
        for r, equity in zip(runs, curves, strict=True):
            rows += [
                {"run_id": r.id, "step_index": k, "ts": t, "cash": 0.0, "equity": float(e)}
                for k, (t, e) in enumerate(zip(times, equity, strict=True))
            ]
        session.execute(insert(RunStep), rows)
    return len(times), market


def bench_board(lab: Lab) -> None:
    bars, _ = seed_store(lab)
    start = time.perf_counter()
    board = leaderboard(lab.store)
    wall = time.perf_counter() - start
    tested = int(board["p_value"].notna().sum())
    print(
        f"leaderboard with all corrections over {RUNS + 1:,} runs of {MODELS + 1} models "
        f"({bars} bars each, from the store): {wall:.2f} s (target <= 2 s); {tested} rows "
        f"tested, n_runs {int(board['n_runs'].max())}, "
        f"{int((board['p_holm'] < 0.05).sum())} significant after Holm"
    )
    start = time.perf_counter()
    snooped = leaderboard(lab.store, snooping=True)
    wall = time.perf_counter() - start
    ours = snooped[snooped["model"].str.startswith("bench-")]
    print(
        f"  the same with SPA and StepM (1,000 replications) per group: {wall:.2f} s; "
        f"SPA p = {ours['spa_p_value'].iloc[0]:.3f}, StepM finds "
        f"{list(ours.loc[ours['stepm_beats'].eq(True), 'model'])} better than buy-and-hold"
    )


def bench_snooping() -> None:
    rng = np.random.default_rng(1)
    bench = rng.normal(0.0005, 0.01, 250)
    models = bench[:, None] + rng.normal(0.0, 0.005, (250, MODELS))
    models[:, 0] += 0.002
    from arch.bootstrap import SPA  # import once, outside the timing

    del SPA
    start = time.perf_counter()
    result = snooping_test(models, bench, reps=1000)
    wall = time.perf_counter() - start
    print(
        f"SPA + StepM of {MODELS} models x 250 bars, 1,000 replications: {wall:.2f} s "
        f"(target <= 5 s); SPA p = {result.spa_p_value:.3f}, StepM: {result.superior}"
    )


def bench_pbo() -> None:
    grid = np.random.default_rng(2).normal(0.0, 0.01, (1000, MODELS))
    start = time.perf_counter()
    result = pbo(grid)
    wall = time.perf_counter() - start
    print(
        f"PBO of a {MODELS}-strategy grid x 1,000 bars, {result.splits:,} CSCV splits: "
        f"{wall:.2f} s; PBO {result.pbo:.2f} (pure noise: 0.5 on average over grids)"
    )


def main() -> None:
    bench_board(fresh_lab())
    bench_snooping()
    bench_pbo()


if __name__ == "__main__":
    main()
