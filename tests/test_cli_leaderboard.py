"""``ttg-lab leaderboard``'s faces of what ``lab.leaderboard`` takes: ``--across`` (rank
across what is kept apart by default), ``--snooping`` (SPA and StepM under the board) and
``--columns`` (a default that fits a 160-character terminal; ``all`` shows every one)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ttg_lab import options
from ttg_lab.cli import main
from ttg_lab.cli.output import console
from ttg_lab.errors import ValidationError
from ttg_lab.formatting import BOARD_FORMATS
from ttg_lab.lab import Lab


@pytest.fixture(autouse=True)
def terminal_160(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables drawn for a 160-character terminal, as piped output is."""
    monkeypatch.setattr(console, "width", 160)


def cli(db_url: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--db", db_url, "leaderboard", *args])
    assert result.exit_code == code, result.output
    return result.output


def headers(printed: str) -> list[list[str]]:
    """Each printed table's column headers."""
    return [
        [cell.strip() for cell in line.split("┃")[1:-1]]
        for line in printed.splitlines()
        if line.startswith("┃")
    ]


def titles(printed: str) -> list[str]:
    """Each printed table's title (a line with no box drawing)."""
    return [
        line.strip()
        for line in printed.splitlines()
        if line.strip() and not any(c in line for c in "┃│┏┡└")
    ]


def baselines_over_two_periods(lab: Lab) -> None:
    """rand, mom and rev over the default period; later over a shorter one."""
    for name, agent in [
        ("rand", "baseline/random"),
        ("mom", "baseline/momentum"),
        ("rev", "baseline/mean_reversion"),
    ]:
        model = lab.models.create(name, ai_model_id=agent, initial_cash=100_000.0)
        lab.start_run(model, path="direct", background=False)
    later = lab.models.create("later", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    lab.start_run(later, path="direct", start="2025-08-01", background=False)


def test_across_ranks_together_only_what_it_names_and_refuses_other_names(
    lab: Lab, db_url: str
) -> None:
    baselines_over_two_periods(lab)
    apart = lab.leaderboard().set_index("model")
    assert apart["group"].nunique() == 2 and apart.loc["later", "rank"] == 1

    periods = lab.leaderboard(across="periods").set_index("model")
    assert set(periods["group"]) == {"us daily any period"}
    assert sorted(periods["rank"]) == [1, 2, 3, 4] and set(periods["trials"]) == {4}
    # markets or modes across: the two periods are still kept apart
    for across in ("markets", ["modes"], "markets,modes"):
        board = lab.leaderboard(across=across).set_index("model")
        assert board["group"].nunique() == 2 and board.loc["later", "rank"] == 1, across
    assert set(lab.leaderboard(across="markets")["group"].str[:17]) == {"any market daily "}
    assert set(lab.leaderboard(across=True)["group"]) == {"any market any mode any period"}
    with pytest.raises(ValidationError, match="cannot rank across 'weeks'; choose from markets"):
        lab.leaderboard(across="periods,weeks")

    printed = cli(db_url, "--across", "periods")
    # one table, the four ranked together; what they share in its title
    assert titles(printed) == ["us daily any period - benchmark QQQ"]
    assert len([line for line in printed.splitlines() if line.startswith("│")]) == 4
    refused = cli(db_url, "--across", "market", code=1)
    assert "cannot rank across 'market'; choose from markets, modes, periods" in refused


def test_snooping_prints_each_groups_test_its_p_value_and_the_models_that_beat_buy_and_hold(
    lab: Lab, db_url: str
) -> None:
    baselines_over_two_periods(lab)
    board = lab.leaderboard(snooping=True)
    printed = cli(db_url, "--snooping", "spa", "--snooping", "stepm")
    snooping = printed.split("data snooping against buy-and-hold", 1)[1]
    assert headers(snooping) == [["group", "test", "models", "p_value", "beats buy-and-hold"]]
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in snooping.splitlines()]
    rows = [row for row in rows if row]
    for group, members in board.groupby("group", sort=False):
        spa = next(r for r in rows if r[0].startswith(group) and r[1] == "SPA (Hansen)")
        assert spa[2] == str(len(members))
        assert spa[3] == BOARD_FORMATS["spa_p_value"](members["spa_p_value"].iloc[0])
        stepm = next(r for r in rows if r[0].startswith(group) and r[1].startswith("StepM"))
        better = list(members.loc[members["stepm_beats"].astype(bool), "model"])
        assert stepm[4] == (", ".join(better) or "none shown at 5%")
    # one test asked for: only its rows; without the flag: no snooping table at all
    only_spa = cli(db_url, "--snooping", "spa")
    assert "SPA (Hansen)" in only_spa and "StepM" not in only_spa
    assert "data snooping" not in cli(db_url)
    assert "'vibes' is not one of 'spa', 'stepm'" in cli(db_url, "--snooping", "vibes", code=2)


def test_the_default_columns_fit_160_characters_and_all_shows_every_column(
    lab: Lab, db_url: str
) -> None:
    lab.data.load_shipped()  # AI-Trader's runs: long model names, re-priced returns
    baselines_over_two_periods(lab)
    printed = cli(db_url)
    assert max(len(line) for line in printed.splitlines()) <= 160
    assert "…" not in printed and "(continued)" not in printed  # nothing cut, one table each
    shown = {h for table in headers(printed) for h in table}
    for column in ("model", "n_runs", "n_steps", "p_holm", "holm_verdict", "psr", "dsr"):
        assert column in shown, column
    assert shown <= set(options.LEADERBOARD_SUMMARY)
    # what every row of a table shares is in its title: the group, the benchmark, the window
    assert "us daily 2025-08-01..2025-10-30 - benchmark QQQ" in titles(printed)
    assert "us intraday 2025-10-01..2025-11-07 - benchmark QQQ - after the knowledge cutoff" in (
        titles(printed)
    )

    every = cli(db_url, "--columns", "all")
    assert max(len(line) for line in every.splitlines()) <= 160 and "…" not in every
    every_header = {h for table in headers(every) for h in table}
    every_column = set(options.LEADERBOARD_COLUMNS) - {"group"}  # the group: in the titles
    assert every_column - {"benchmark"} <= every_header <= every_column  # or a title names it
    chosen = cli(db_url, "--columns", "sharpe, min_trl")
    assert {tuple(table) for table in headers(chosen)} == {("model", "sharpe", "min_trl")}
    refused = cli(db_url, "--columns", "sharpe,vibes", code=1)
    assert "unknown leaderboard column 'vibes'; choose from model, name" in refused


def test_masked_runs_rank_in_a_table_of_their_own_unless_asked_together(
    lab: Lab, db_url: str
) -> None:
    model = lab.models.create("mom", ai_model_id="baseline/momentum", initial_cash=100_000.0)
    period = {"start": "2025-06-10", "end": "2025-07-10", "background": False}
    lab.start_run(model, path="direct", **period)
    masked = lab.start_run(model, path="chat", masked=True, **period)
    assert masked.status == "completed", masked.info.error

    apart = cli(db_url)
    assert titles(apart) == [
        "us daily 2025-06-10..2025-07-10 - benchmark QQQ",
        "us daily 2025-06-10..2025-07-10 - benchmark QQQ - masked runs, ranked apart",
    ]
    together = cli(db_url, "--masked-together")
    assert titles(together) == ["us daily 2025-06-10..2025-07-10 - benchmark QQQ"]
    assert "masked" in headers(together)[0]  # which row is which: a column
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in together.splitlines()]
    flags = sorted(row[headers(together)[0].index("masked")] for row in rows if row)
    assert flags == ["no", "yes"]
