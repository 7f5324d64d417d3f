"""The HTML kit of the reports: escaping, value formats, tables, embedded figures and
the self-contained page (plotly.js inline, so a report opens offline).

Every string that comes from the store goes through :func:`esc` (an LLM's reasoning can
contain markup or script).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from ttg_lab import formatting
from ttg_lab.charts.theme import metric_unit, text
from ttg_lab.errors import TTGLabError

if TYPE_CHECKING:
    pass


PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}

CSS = """
:root { color-scheme: dark; }
body { background: #111111; color: #dddddd; margin: 0;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.7em; margin: 0.2em 0; color: #ffffff; }
h2 { font-size: 1.25em; margin: 1.8em 0 0.6em; padding-bottom: 4px;
  border-bottom: 1px solid #333333; color: #ffffff; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; color: #cccccc; }
a { color: #8fa8ff; }
nav a { margin-right: 14px; }
.muted { color: #999999; }
.verdict { font-weight: 600; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.93em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #2c2c2c; vertical-align: top; }
th { text-align: left; color: #bbbbbb; font-weight: 600; background: #1a1a1a; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:hover td { background: #1c1c1c; }
table.meta th { background: none; width: 13em; }
.chart { margin: 8px 0 18px; border: 1px solid #262626; }
.note { color: #bbbbbb; font-style: italic; }
.excerpt { margin: 10px 0 16px; }
.excerpt .head { color: #aaaaaa; font-size: 0.9em; }
.excerpt pre { white-space: pre-wrap; word-wrap: break-word; background: #1a1a1a;
  border-left: 3px solid #636efa; padding: 8px 12px; margin: 4px 0; font: inherit; }
.gain { color: #00cc96; } .loss { color: #ef553b; }
"""

MISSING = "—"
"""How a missing value reads in a report."""


# ---------------------------------------------------------------- formatting --------
esc = text
"""Any value as escaped HTML text (None as an empty string): the charts' escaping."""


is_missing = formatting.is_missing


def when(value: Any) -> str:
    """A time as text ("—" when missing)."""
    return formatting.when(value, MISSING)


def format_value(unit: str, value: Any, currency: str = "") -> str:
    """A metric value as text for its unit (percent, money, ratio, count, time, ...)."""
    return formatting.by_unit(unit, value, currency, MISSING)


def format_metric(key: str, value: Any, currency: str = "") -> str:
    """A metric (a key of ``ttg_lab.metrics.reference.METRICS``) formatted by its unit."""
    return format_value(metric_unit(key), value, currency)


def money(value: Any, currency: str = "") -> str:
    return formatting.money(value, currency, MISSING)


def percent(value: Any, signed: bool = True) -> str:
    return formatting.percent(value, signed, MISSING)


def cell(value: str, numeric: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in ("num" if numeric else "", css) if c)
    attr = f' class="{classes}"' if classes else ""
    return f"<td{attr}>{value}</td>"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None
) -> str:
    """An HTML table of already-escaped cells; ``numeric`` columns are right-aligned."""
    numeric = list(numeric or [False] * len(headers))
    head = "".join(
        f'<th class="num">{h}</th>' if n else f"<th>{h}</th>"
        for h, n in zip(headers, numeric, strict=True)
    )
    body = "".join(
        "<tr>" + "".join(cell(c, n) for c, n in zip(row, numeric, strict=True)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def meta_table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="meta"><tbody>{body}</tbody></table>'


def signed_class(value: Any) -> str:
    if is_missing(value):
        return ""
    return "gain" if float(value) > 0 else "loss" if float(value) < 0 else ""


# ---------------------------------------------------------------- page ----------------
def figure_html(fig: go.Figure, div_id: str, height: int = 460) -> str:
    """A figure's div (id ``chart-<div_id>``, apart from section anchors) and drawing
    script; plotly.js itself is in the page head."""
    fig.update_layout(height=height)
    body: str = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=f"chart-{div_id}",
        config=PLOTLY_CONFIG,
        default_width="100%",
        default_height=f"{height}px",
        validate=True,
    )
    return f'<div class="chart">{body}</div>'


def page(title: str, sections: Sequence[tuple[str, str, str]], intro: str) -> str:
    """A whole HTML document: head with CSS and the inline plotly.js bundle, then a
    navigation bar and ``sections`` (anchor, heading, body HTML)."""
    nav = "".join(f'<a href="#{a}">{esc(h)}</a>' for a, h, _ in sections)
    parts = "".join(f'<section id="{a}"><h2>{esc(h)}</h2>{b}</section>' for a, h, b in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};</script>'
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
        f"</head><body><main>{intro}<nav>{nav}</nav>{parts}"
        f'<p class="muted">Written {datetime.now():%Y-%m-%d %H:%M} by TTG Lab.</p>'
        "</main></body></html>\n"
    )


def write(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path.resolve()


def slug(value: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", value).strip("-")[:60]
    return slug or "model"


def chart_or_note(build: Any, div_id: str) -> str:
    """A chart, or the reason it cannot be drawn (a deliberate error from the lab)."""
    try:
        return figure_html(build(), div_id)
    except TTGLabError as exc:
        return f"<p class='note'>{esc(exc)}</p>"
