"""Company names: every shipped symbol has one, and a bad names file is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttg_lab.errors import DataFileError
from ttg_lab.market import names
from ttg_lab.market.names import company_names
from ttg_lab.market.shipped import SHIPPED, read_shipped


def test_every_shipped_symbol_has_a_company_name() -> None:
    missing = [
        symbol
        for dataset in SHIPPED
        for symbol in sorted(set(read_shipped(dataset)["symbol"]))
        if not company_names(symbol)
    ]
    assert missing == []


def test_company_names_carry_aliases_and_native_spellings() -> None:
    assert {"Apple Inc.", "Apple"} <= set(company_names("AAPL"))
    assert {"贵州茅台", "贵州茅台酒股份有限公司", "Kweichow Moutai"} <= set(
        company_names("600519.SH")
    )
    assert "Bitcoin" in company_names("BTC-USDT")
    assert "Monster" not in company_names("MNST")


def test_an_unknown_symbol_has_no_names() -> None:
    assert company_names("NOPE") == ()


def test_a_names_file_with_wrong_columns_is_refused_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "names.csv"
    bad.write_text("ticker,company\nAAPL,Apple\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="symbol,name") as caught:
        names._names_table(bad)
    assert str(bad) in str(caught.value)


def test_a_names_row_without_a_name_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "names.csv"
    bad.write_text("symbol,name\nAAPL,Apple\nMSFT,\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="line 3"):
        names._names_table(bad)
