"""What every panel shares: the controller base, message handling, tables and styling.

A controller is plain Python over :class:`ttg_lab.Lab`: its state lives in traitlets and
every button of its view calls one of its methods, so tests drive panels without a
browser. Deliberate errors (bad input, unknown names) become ``error`` text; unexpected
ones are logged and shown as a short message — never a traceback.
"""

from __future__ import annotations

import html
import logging
import math
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd
import traitlets

from ttg_lab import Lab, TTGLabError
from ttg_lab.secrets import redact

log = logging.getLogger(__name__)

Formatter = Callable[..., str]


class Controller(traitlets.HasTraits):
    """Base of panel controllers: a lab, a status message and an error message."""

    message = traitlets.Unicode("")
    error = traitlets.Unicode("")

    def __init__(self, lab: Lab, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lab = lab

    def refresh(self) -> None:
        """Read again from the store everything the panel shows (its lists, choices and
        the run or model it shows). The dashboard calls it each time the panel's tab is
        opened and when a page opens, so no panel shows the store as it was earlier."""
        raise NotImplementedError(f"{type(self).__name__} must say how it reads the store")

    @contextmanager
    def action(self, done: str = "") -> Iterator[None]:
        """Run a user action: on success show ``done``; on failure show why."""
        self.error = ""
        try:
            yield
        except TTGLabError as exc:
            self.message = ""
            self.error = redact(str(exc))
        except Exception as exc:  # never a traceback in front of a viewer
            log.error("panel action failed\n%s", redact(traceback.format_exc()))
            self.message = ""
            self.error = f"something went wrong ({type(exc).__name__}); the details are in the log"
        else:
            if done:
                self.message = done

    @property
    def ok(self) -> bool:
        return not self.error


class TableState(traitlets.HasTraits):
    """Sorting and paging of one table."""

    sort_by = traitlets.Unicode("")
    ascending = traitlets.Bool(False)
    page = traitlets.Int(0)
    page_size = traitlets.Int(20)

    def sort(self, column: str) -> None:
        """Sort by ``column``; sorting by it again flips the order."""
        if self.sort_by == column:
            self.ascending = not self.ascending
        else:
            self.sort_by, self.ascending = column, False
        self.page = 0

    def restart_on(self, owner: traitlets.HasTraits, filters: list[str]) -> None:
        """Go back to the first page whenever one of ``owner``'s ``filters`` changes, from
        a control or from code: a later page of the rows before may hold nothing of the
        rows after."""
        owner.observe(lambda _: setattr(self, "page", 0), names=filters)

    def pages(self, rows: int) -> int:
        return max(1, math.ceil(rows / self.page_size))

    def next_page(self, rows: int) -> None:
        self.page = min(self.page + 1, self.pages(rows) - 1)

    def previous_page(self) -> None:
        self.page = max(self.page - 1, 0)

    def view(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The visible rows: sorted, then the current page."""
        if self.sort_by and self.sort_by in frame.columns:
            frame = frame.sort_values(
                self.sort_by, ascending=self.ascending, na_position="last", kind="stable"
            )
        start = self.page * self.page_size
        return frame.iloc[start : start + self.page_size]


def table_html(
    frame: pd.DataFrame,
    formats: Mapping[str, Formatter] | None = None,
    links: Mapping[str, Callable[[Any], str]] | None = None,
) -> str:
    """An HTML table with every cell escaped and numbers right-aligned; a column with a
    format formats its missing cells too (blank, or an LLM cost's ``unknown``)."""
    formats = formats or {}
    if frame.empty:
        return '<div class="ttg-empty">nothing to show</div>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.to_dict("records"):
        cells = []
        for column in frame.columns:
            value = record[column]
            fmt = formats.get(str(column))
            missing = value is None or (isinstance(value, float) and not math.isfinite(value))
            text = fmt(value) if fmt else "" if missing else str(value)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cell = html.escape(text)
            if links and str(column) in links and not missing:
                target = html.escape(links[str(column)](value))
                cell = f'<a class="ttg-link" data-target="{target}">{cell}</a>'
            cells.append(f'<td class="{"num" if numeric else ""}">{cell}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "".join(rows)
    return (
        '<div class="ttg-scroll"><table class="ttg-table">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


THEME_CSS = """
<style>
:root { --ttg-bg: #111418; --ttg-panel: #1a1f26; --ttg-text: #e6e8eb; --ttg-muted: #9aa4b2;
        --ttg-accent: #4fa3ff; --ttg-good: #3ecf8e; --ttg-bad: #ff6b6b; }
body, .jp-Notebook, .voila-body, .jp-OutputArea {
        background: var(--ttg-bg) !important; color: var(--ttg-text) !important; }
.widget-label, .widget-html-content, .widget-inline-hbox .widget-label {
        color: var(--ttg-text) !important; }
.ttg-title { font-size: 1.4em; font-weight: 600; margin: 4px 0 8px 0; }
.ttg-subtitle { font-weight: 600; margin: 12px 0 4px 0; color: var(--ttg-muted); }
.ttg-table { border-collapse: collapse; width: 100%; font-size: 13px; }
.ttg-table th { text-align: left; color: var(--ttg-muted); border-bottom: 1px solid #2b333d;
                padding: 4px 8px; position: sticky; top: 0; background: var(--ttg-panel); }
.ttg-table td { padding: 3px 8px; border-bottom: 1px solid #222a33; white-space: nowrap; }
.ttg-scroll { overflow-x: auto; max-width: 100%; }
.ttg-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ttg-table tr:hover td { background: #202731; }
.ttg-error { color: var(--ttg-bad); font-weight: 600; }
.ttg-message { color: var(--ttg-good); }
.ttg-empty { color: var(--ttg-muted); font-style: italic; padding: 6px; }
.ttg-terminal { font-family: monospace; font-size: 12px; background: #0b0d10; color: #c9d1d9;
                padding: 6px; height: 260px; overflow-y: auto; white-space: pre-wrap; }
.ttg-card { display: inline-block; background: var(--ttg-panel); border-radius: 6px;
            padding: 8px 14px; margin: 4px; min-width: 130px; }
.ttg-card .label { color: var(--ttg-muted); font-size: 12px; }
.ttg-card .value { font-size: 18px; font-weight: 600; }
.ttg-link { color: var(--ttg-accent); cursor: pointer; text-decoration: underline; }
</style>
"""
"""Dark theme for the dashboard, close to the platform it replaces."""


def cards_html(items: Mapping[str, str]) -> str:
    """Key figures as small cards (label above value)."""
    return "".join(
        f'<div class="ttg-card"><div class="label">{html.escape(k)}</div>'
        f'<div class="value">{html.escape(v)}</div></div>'
        for k, v in items.items()
    )


def status_html(controller: Controller) -> str:
    """The controller's error (red) or message (green), with secrets masked, escaped."""
    if controller.error:
        return f'<div class="ttg-error">{html.escape(redact(controller.error))}</div>'
    if controller.message:
        return f'<div class="ttg-message">{html.escape(redact(controller.message))}</div>'
    return ""


def on_pick(picker: Any, callback: Callable[[Any], None]) -> None:
    """Call ``callback(value)`` when the user picks a value in ``picker``; not when the
    panel swaps its options (see :func:`set_options`)."""

    def changed(change: dict[str, Any]) -> None:
        if not getattr(picker, "_ttg_swapping", False):
            callback(change["new"])

    picker.observe(changed, names="value")


def set_options(picker: Any, options: list[Any], value: Any) -> None:
    """Give a picker new options and select ``value`` where it is still one of them.

    ipywidgets selects the first option (or nothing) on every change of options, so
    without this a panel that reads the store again would undo the user's choice; the
    swap is invisible to callbacks added with :func:`on_pick`.
    """
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    multiple = isinstance(picker.value, tuple)
    picker._ttg_swapping = True
    try:
        if list(picker.options) != list(options):
            picker.options = options
        if multiple:
            picker.value = tuple(v for v in value if v in values)
        elif value in values:
            picker.value = value
    finally:
        picker._ttg_swapping = False


_PLOTLY_SHIPPED = False


def show_figure(output: Any, figure: Any) -> None:
    """Draw a plotly figure into an ``ipywidgets.Output``, or empty it when ``figure`` is
    None (a chart of an earlier selection must not stay on screen). The first figure of a
    kernel also ships plotly.js (embedded, so the dashboard works offline); later ones only
    data."""
    from IPython.display import HTML, display

    if figure is None:
        output.clear_output()
        return
    global _PLOTLY_SHIPPED
    loader = "" if _PLOTLY_SHIPPED else plotly_loader()
    _PLOTLY_SHIPPED = True
    chart = figure.to_html(
        full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True}
    )
    output.clear_output(wait=True)
    with output:
        display(HTML(loader + chart))


def plotly_loader() -> str:
    """A script tag that defines ``window.Plotly`` (embedded: the dashboard works offline)."""
    from plotly.offline import get_plotlyjs

    return f'<script type="text/javascript">{get_plotlyjs()}</script>'


def field_value(text: str) -> str | None:
    """A text field's value for the API: a blank field means "not given" (the default its
    placeholder names); anything else goes to the API as typed, which parses it."""
    return text if text.strip() else None
