"""What the command line prints is the text it was given: brackets are not rich markup."""

from __future__ import annotations

import pandas as pd
import pytest

from ttg_lab.cli.output import clear_errors, print_frame
from ttg_lab.errors import ValidationError


def test_an_error_message_with_brackets_is_printed_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_, clear_errors():
        raise ValidationError("install it: pip install -e '.[local-llm]' for model [beta]")
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert "error: install it: pip install -e '.[local-llm]' for model [beta]" in out


def test_a_provider_error_with_brackets_is_printed_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit), clear_errors():
        raise RuntimeError("bad [bold]answer[/bold]")
    assert "error: RuntimeError: bad [bold]answer[/bold]" in capsys.readouterr().out


def test_table_cells_with_brackets_are_printed_whole(capsys: pytest.CaptureFixture[str]) -> None:
    print_frame(pd.DataFrame([{"model": "[red]mine[/red]", "note": "[x]"}]), "models")
    out = capsys.readouterr().out
    assert "[red]mine[/red]" in out
    assert "[x]" in out


def test_a_long_line_is_never_broken_when_the_output_is_piped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ttg_lab.cli.output import console

    path = "/tmp/" + "deep/" * 40 + "model.gguf"
    console.print(f"running: smollm2 ({path}) at http://127.0.0.1:8181/v1, pid 28759", markup=False)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].endswith("pid 28759")
