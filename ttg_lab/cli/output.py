"""What every command shares on the way out: redacted output (secrets), tables, one-line errors and
exit codes."""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ttg_lab.errors import TTGLabError
from ttg_lab.secrets import redact

if TYPE_CHECKING:  # pandas loads when a command prints a table, so start-up is quick
    import pandas as pd


class RedactedStdout(io.StringIO):
    """Standard output with every secret masked (see :func:`ttg_lab.secrets.redact`):
    nothing the command line echoes, stored text included, shows a key."""

    def write(self, text: str) -> int:
        sys.stdout.write(redact(text))
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()

    def fileno(self) -> int:
        return sys.stdout.fileno()


console = Console(
    file=RedactedStdout(),
    width=None if sys.stdout.isatty() else 160,
    soft_wrap=not sys.stdout.isatty(),
)
"""Piped output (scripts, tests, logs) keeps every line whole: tables are 160 wide, text
lines are never broken where the width ends."""


def print_frame(
    frame: pd.DataFrame, title: str = "", formats: Mapping[str, Callable[..., str]] | None = None
) -> None:
    """A DataFrame as a rich table; cells are text, never read as rich markup. A column
    with a format formats its missing cells too (blank, or an LLM cost's ``unknown``)."""
    formats = formats or {}
    table = Table(title=title or None)
    for column in frame.columns:
        table.add_column(
            str(column), justify="right" if frame[column].dtype.kind in "if" else "left"
        )
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            fmt = formats.get(str(column))
            if fmt is not None:  # redacted before wrapping
                cells.append(Text(redact(fmt(value))))
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append(Text(""))
            else:
                cells.append(Text(redact(str(value))))
        table.add_row(*cells)
    console.print(table, soft_wrap=False)  # a table fits its width, as before


@contextmanager
def clear_errors() -> Iterator[None]:
    """Show errors as one line (secrets masked, as all output) and exit 1, never as a
    traceback. The message is printed as it is: brackets in it (``.[local-llm]``, a
    model named ``[beta]``) are text, not rich markup."""
    try:
        yield
    except TTGLabError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except Exception as exc:  # a provider or driver error: one redacted line, no traceback
        console.print(
            f"[red]error:[/red] {escape(f'{type(exc).__name__}: {exc}')}", highlight=False
        )
        sys.exit(1)


def exit_unless(completed: bool) -> None:
    """The exit status of a run command: 0 only when the run completed (and, for a
    replay, reproduced its source); 1 when it failed, stopped or was taken over."""
    if not completed:
        sys.exit(1)
