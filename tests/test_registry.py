"""The one registry of pluggable parts: bar readers, news formats, tools, providers."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttg_lab.errors import NotFoundError, ValidationError
from ttg_lab.market.importers import READERS, read_bars
from ttg_lab.market.providers import PROVIDERS
from ttg_lab.news.importers import FORMATS, read_news_file
from ttg_lab.registry import Registry
from ttg_lab.tools.registry import TOOLS, tools_of


def test_registry_finds_parts_by_name_in_registration_order() -> None:
    parts: Registry[int] = Registry("part")
    assert parts.register("b", 2) == 2
    parts.register("a", 1)
    assert parts.get("a") == 1
    assert parts.names() == ("b", "a")
    assert parts.items() == (("b", 2), ("a", 1))
    assert "a" in parts and "c" not in parts and 3 not in parts
    assert len(parts) == 2


def test_registry_refuses_a_taken_name_and_keeps_the_first() -> None:
    parts: Registry[int] = Registry("part")
    parts.register("a", 1)
    with pytest.raises(ValidationError, match="a part named 'a' is already registered"):
        parts.register("a", 2)
    assert parts.get("a") == 1


@pytest.mark.parametrize("name", ["", "  ", " a", "a ", None, 3])
def test_registry_refuses_a_blank_or_padded_name(name: object) -> None:
    parts: Registry[int] = Registry("part")
    with pytest.raises(ValidationError, match=f"a part needs a name.*not {name!r}"):
        parts.register(name, 1)  # type: ignore[arg-type]
    assert parts.names() == ()


def test_registry_unknown_name_error_names_the_value_and_the_known_names() -> None:
    parts: Registry[int] = Registry("part")
    parts.register("b", 2)
    parts.register("a", 1)
    with pytest.raises(ValidationError, match=r"unknown part 'z'; known: a, b$"):
        parts.get("z")
    with pytest.raises(ValidationError, match=r"unknown part \['z'\]; known: a, b$"):
        parts.get(["z"])  # type: ignore[arg-type]
    stored: Registry[int] = Registry("dataset", unknown=NotFoundError)
    with pytest.raises(NotFoundError, match="unknown dataset 'x'; known: none"):
        stored.get("x")


def test_bar_readers_news_formats_and_tools_are_registries() -> None:
    assert READERS.names() == ("alphavantage", "aitrader-jsonl", "csv")
    assert FORMATS.names() == ("alphavantage", "aitrader-log", "jsonl")
    assert {spec.name for _, spec in TOOLS.items()} == set(TOOLS.names())
    assert [s.name for s in tools_of("trade")] == ["buy", "sell", "short", "cover", "get_portfolio"]
    assert isinstance(PROVIDERS, Registry) and PROVIDERS.kind == "data provider"
    for registry in (READERS, FORMATS, TOOLS):
        first = registry.names()[0]
        with pytest.raises(ValidationError, match="already registered"):
            registry.register(first, registry.get(first))  # type: ignore[arg-type]


def test_unknown_file_formats_are_refused_naming_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("symbol,date,open,high,low,close,volume\n")
    with pytest.raises(
        ValidationError,
        match=r"unknown bar file format 'xml'; known: aitrader-jsonl, alphavantage, csv$",
    ):
        read_bars(path, format="xml")
    with pytest.raises(
        ValidationError,
        match=r"unknown news format 'rss'; known: aitrader-log, alphavantage, jsonl$",
    ):
        read_news_file(path, format="rss")
