"""Model configurations: validated on every write, nothing saved on bad input."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ttg_lab.agents.baselines import CashOnly
from ttg_lab.errors import NotFoundError, RunStateError, ValidationError
from ttg_lab.lab import Lab

TTG_LAB = str(Path(sys.executable).parent / "ttg-lab")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name must not be empty"),
        ({"name": "   "}, "name must not be empty"),
        ({"initial_cash": -100.0}, "initial cash must be above 0"),
        ({"initial_cash": 0}, "initial cash must be above 0"),
        ({"initial_cash": float("inf")}, "must be a number"),
        ({"tickers": ["AAPL", "NOPE"]}, "unknown ticker.*NOPE"),
        ({"market": "forex"}, "unknown market 'forex'"),
        ({"ai_model_id": "openai/gpt-99"}, "is not in the catalog"),
        ({"ai_model_id": "baseline/nope"}, "unknown baseline"),
        (
            {"ai_model_id": "openai/gpt-5", "parameters": {"temperature": 5}},
            "temperature must be <= 2",
        ),
        (
            {"ai_model_id": "openai/gpt-5", "parameters": {"reasoning_effort": "max"}},
            "reasoning_effort",
        ),
        ({"ai_model_id": "openai/gpt-5", "parameters": {"api_key": "sk-x"}}, "unknown parameter"),
        ({"parameters": {"lookbak": 5}}, "unknown parameter.*lookbak"),
        ({"parameters": {"lookback": 0}}, "lookback must be >= 1"),
        ({"parameters": {"top_k": 2.5}}, "top_k must be a whole number"),
    ],
)
def test_bad_model_input_is_refused_and_nothing_saved(
    lab: Lab, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"name": "valid name", **kwargs}
    with pytest.raises((ValidationError, NotFoundError), match=message):
        lab.models.create(**args)  # type: ignore[arg-type]
    assert lab.models.list() == []


def test_create_read_update_delete(lab: Lab) -> None:
    model = lab.models.create(
        "My Momentum!",
        tickers="aapl, msft nvda",
        parameters={"top_k": 2},
        custom_instructions="Be patient.",
    )
    assert model.signature == "my-momentum"
    assert model.tickers == ["AAPL", "MSFT", "NVDA"]
    assert model.parameters == {"lookback": 20, "top_k": 2, "rebalance_every": 5}
    assert (
        lab.models.get("my-momentum") == lab.models.get("My Momentum!") == lab.models.get(model.id)
    )

    updated = lab.models.update(model, initial_cash=25_000, parameters={"top_k": 3})
    assert updated.initial_cash == 25_000 and updated.parameters["top_k"] == 3
    with pytest.raises(ValidationError, match="initial cash"):
        lab.models.update(model, initial_cash=-1, description="changed")
    assert lab.models.get(model.id).description == ""  # nothing half-changed
    with pytest.raises(ValidationError, match="cannot edit"):
        lab.models.update(model, market="cn")

    run = lab.start_run(updated, start="2025-06-10", end="2025-06-20", background=False)
    assert run.status == "completed"
    lab.models.delete(model)
    assert lab.models.list() == []
    assert lab.runs().table().empty


def test_signature_is_unique(lab: Lab) -> None:
    lab.models.create("twin")
    with pytest.raises(ValidationError, match="exists already"):
        lab.models.create("Twin")
    assert len(lab.models.list()) == 1


def test_a_model_with_a_live_run_cannot_be_deleted(
    lab: Lab, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the API, the Models panel and the command line: a clear refusal naming
    the run while it runs; the run is unharmed and the model deletes once it ended."""
    from widgets.models import ModelsController

    entered, release = threading.Event(), threading.Event()
    original = CashOnly.step

    def decide(self: CashOnly, ctx):  # type: ignore[no-untyped-def]
        if ctx.step_index == 3:
            entered.set()
            release.wait(120)
        return original(self, ctx)

    monkeypatch.setattr(CashOnly, "step", decide)
    model = lab.models.create("busy", ai_model_id="baseline/cash")
    run = lab.start_run(model, start="2025-06-10", end="2025-06-20", path="direct")
    refusal = rf"model busy has a live run: run {run.id} \(#1\) in process \S+ \(heartbeat"
    try:
        assert entered.wait(60)
        with pytest.raises(RunStateError, match=refusal):
            lab.models.delete(model)
        panel = ModelsController(lab)
        panel.request_delete("busy")
        assert not panel.confirm_delete() and re.search(refusal, panel.error)
        command = subprocess.run(
            [TTG_LAB, "--db", db_url, "models", "delete", "busy", "--yes"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert command.returncode == 1 and re.search(refusal, command.stdout), command.stdout
    finally:
        release.set()
    assert run.wait(60) == "completed"
    assert run.info.steps_done == run.info.steps_total
    lab.models.delete(model)
    assert lab.models.list() == [] and lab.runs().table().empty
