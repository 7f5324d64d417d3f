"""A run's snapshot reads every shape earlier versions stored, and writes the current one."""

from __future__ import annotations

from typing import Any

import pytest

from ttg_lab.broker.costs import COST_PRESETS
from ttg_lab.engine.reader import RunReader
from ttg_lab.engine.snapshot import SNAPSHOT_VERSION, RunSnapshot
from ttg_lab.errors import ValidationError
from ttg_lab.lab import Lab
from ttg_lab.store.schema import TradingRun

MODEL = {
    "name": "m",
    "signature": "m",
    "market": "us",
    "ai_model_id": "baseline/momentum",
    "parameters": {"top_k": 3},
    "initial_cash": 10000.0,
    "tickers": None,
    "custom_rules": "",
    "custom_instructions": "",
}
FIRST = {  # the first runs (before agent paths, replays and experiments)
    "model": MODEL,
    "tickers": ["AAPL", "MSFT"],
    "rules": [],
    "costs": COST_PRESETS["default"].to_dict(),
    "fill": "open",
    "seed": 0,
    "interval": "1d",
    "prompt_version": "baseline-1",
    "data_fingerprint": "abc",
    "package_version": "0.1.0",
}
PATHS = {**FIRST, "agent_path": "direct", "replay_of": None, "prompt_version": None}
EXPERIMENT = {**PATHS, "experiment": {"name": "sweep", "tags": ["a"]}}
IMPORTED_FIRST = {  # AI-Trader imports before trimmed copies and bar labels
    "imported_from": "aitrader",
    "source": "AI-Trader@abc",
    "source_path": "data/agent_data/m",
    "source_files": {"position.jsonl": "f00"},
    **{k: v for k, v in PATHS.items() if k != "prompt_version"},
    "costs": COST_PRESETS["zero"].to_dict(),
    "agent_path": "imported",
    "prompt_version": None,
    "reconciliation": {"trades_priced": 3},
    "notes": ["line 2: ..."],
}
IMPORTED = {
    **IMPORTED_FIRST,
    "trimmed_copy": {"messages": 10},
    "source_bar_labels": "end",
}


@pytest.mark.parametrize(
    ("stored", "path", "experiment"),
    [
        (FIRST, "chat", {}),
        (PATHS, "direct", {}),
        (EXPERIMENT, "direct", {"name": "sweep", "tags": ["a"]}),
        (IMPORTED_FIRST, "imported", {}),
        (IMPORTED, "imported", {}),
    ],
)
def test_every_stored_snapshot_shape_reads_as_the_run_it_defined(
    stored: dict[str, Any], path: str, experiment: dict[str, Any]
) -> None:
    snap = RunSnapshot.from_json(stored)
    assert snap.model.ai_model_id == "baseline/momentum" and snap.model.parameters == {"top_k": 3}
    assert snap.initial_cash == 10000.0 and snap.market.code == "us"
    assert snap.tickers == ("AAPL", "MSFT") and snap.interval == "1d"
    assert snap.costs == COST_PRESETS["zero" if path == "imported" else "default"]
    assert snap.agent_path == path and snap.experiment == experiment
    assert snap.replay_of is None and snap.data_fingerprint == "abc"
    assert (snap.imported is not None) == (path == "imported")
    if snap.imported is not None:
        assert snap.imported.source_files == {"position.jsonl": "f00"}
        assert snap.imported.source_bar_labels == stored.get("source_bar_labels", "start")
        assert snap.imported.trimmed_copy == stored.get("trimmed_copy")
    again = RunSnapshot.from_json(snap.to_json())
    assert again == snap  # what is written reads back as the same snapshot
    written = snap.to_json()
    assert written["version"] == SNAPSHOT_VERSION
    assert {k: v for k, v in written.items() if k in stored} == stored  # nothing changes meaning


def test_an_unreadable_or_newer_snapshot_is_refused_naming_why() -> None:
    with pytest.raises(ValidationError, match=r"unreadable run snapshot.*'model'"):
        RunSnapshot.from_json({"tickers": []})
    with pytest.raises(ValidationError, match="version 99 is newer"):
        RunSnapshot.from_json({**FIRST, "version": 99})


def test_a_run_started_now_stores_the_current_shape_and_reads_it_back(lab: Lab) -> None:
    model = lab.models.create("snap", ai_model_id="baseline/momentum")
    run = lab.start_run(
        model, start="2025-06-10", end="2025-06-20", path="direct", background=False
    )
    with lab.store.session() as session:
        stored = dict(session.get(TradingRun, run.id).strategy_snapshot)  # type: ignore[union-attr]
    assert stored["version"] == SNAPSHOT_VERSION and stored["agent_path"] == "direct"
    assert set(EXPERIMENT) <= set(stored) and "imported_from" not in stored
    assert RunSnapshot.from_json(stored).to_json() == stored


def test_a_run_stored_in_the_first_shape_still_reads_reports_and_replays(lab: Lab) -> None:
    """Metrics, counterfactual attribution and the scoped reader read a run whose
    snapshot has the first shape (no agent path, replay, experiment or version)."""
    model = lab.models.create("old", ai_model_id="baseline/momentum")
    lab.rules.add(model, "cap", {"max_position_pct": 30})
    run = lab.start_run(
        model, start="2025-06-10", end="2025-07-10", path="direct", background=False
    )
    metrics = lab.run(run.id).metrics()
    table = lab.run(run.id).attribution()
    with lab.store.session() as session:
        row = session.get(TradingRun, run.id)
        assert row is not None
        old = {k: v for k, v in row.strategy_snapshot.items() if k in FIRST}
        row.strategy_snapshot = old
    assert RunSnapshot.from_json(old).agent_path == "chat"
    assert lab.run(run.id).metrics()["total_return"] == metrics["total_return"]
    assert lab.run(run.id).attribution().equals(table)
    record = RunReader(lab.store, lab.user).run(run.id)
    assert record.market == "us" and record.initial_cash == model.initial_cash
