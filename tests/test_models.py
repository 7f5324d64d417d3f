"""Model configurations: validated on every write, nothing saved on bad input."""

from __future__ import annotations

import pytest

from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.lab import Lab


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
    assert lab.runs().empty


def test_signature_is_unique(lab: Lab) -> None:
    lab.models.create("twin")
    with pytest.raises(ValidationError, match="exists already"):
        lab.models.create("Twin")
    assert len(lab.models.list()) == 1
