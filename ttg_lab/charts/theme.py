"""The look every chart shares: the dark template, model colours, units and formats, and
the escaping of store text before it reaches a figure.

Plotly renders a subset of HTML in labels and hover text, so text from the store (model
names, order ids) goes through :func:`text`; escaped entities display as the literal
characters. A model keeps its colour in every chart of the same set of models.
"""

from __future__ import annotations

import html
import zlib
from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go

from ttg_lab.metrics.reference import METRICS

TEMPLATE = "plotly_dark"
"""The plotly template of every chart (reports use a matching dark page)."""

PALETTE: tuple[str, ...] = (
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
)
"""Model colours (plotly's qualitative palette, readable on a dark background)."""

BENCHMARK_COLOUR = "#BBBBBB"
CASH_COLOUR = "#7F8C8D"
OTHER_COLOUR = "#555555"
GAIN_COLOUR = "#00CC96"
LOSS_COLOUR = "#EF553B"

FILL_STYLE: dict[str, tuple[str, str]] = {
    "buy": ("triangle-up", "#00CC96"),
    "sell": ("triangle-down", "#EF553B"),
    "short": ("triangle-down", "#FFA15A"),
    "cover": ("triangle-up", "#19D3F3"),
}
"""Marker symbol and colour of each kind of fill on a price chart."""

FILL_ACTIONS: tuple[str, ...] = tuple(FILL_STYLE)

_UNITS: dict[str, str] = {m.key: m.unit for m in METRICS} | {
    "mean_return": "fraction",
    "best_return": "fraction",
    "mean_ci_low": "fraction",
    "mean_ci_high": "fraction",
    "runs": "count",
}
RETURN_METRICS = frozenset({"total_return", "mean_return", "best_return"})
"""Metrics comparable with the benchmark's buy-and-hold return over the same bars."""


def text(value: Any) -> str:
    """Store text made safe for plotly labels, hover text and HTML pages."""
    return html.escape("" if value is None else str(value))


def model_colours(models: Iterable[str]) -> dict[str, str]:
    """A colour per model, the same for the same set of models in any order.

    Each model starts from a colour picked by a hash of its name, so a model tends to
    keep its colour across sets too; clashes move to the next free colour.
    """
    names = sorted(set(models))
    taken: set[int] = set()
    colours: dict[str, str] = {}
    for name in names:
        slot = zlib.crc32(name.encode()) % len(PALETTE)
        if len(taken) < len(PALETTE):
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        colours[name] = PALETTE[slot]
    return colours


def metric_unit(key: str) -> str:
    """The unit of a metric or board column (``fraction``, ``ratio``, ``currency``, ...)."""
    return _UNITS.get(key, "ratio")


def axis_format(unit: str) -> str:
    """A d3 number format for values of ``unit``."""
    return {"fraction": ".1%", "currency": ",.0f", "USD": ",.2f", "count": ",d"}.get(unit, ".2f")


def hover_format(unit: str) -> str:
    """A d3 number format for hover values of ``unit`` (more precise than the axis)."""
    return {"fraction": ".2%", "currency": ",.2f", "USD": ",.4f", "count": ",d"}.get(unit, ".3f")


def layout(fig: go.Figure, title: str, **kwargs: Any) -> go.Figure:
    """The shared layout: template, title, legend on top, unified hover; ``kwargs`` win."""
    settings: dict[str, Any] = {
        "template": TEMPLATE,
        "title": {"text": title, "x": 0.01},
        "hovermode": "x unified",
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "margin": {"l": 70, "r": 30, "t": 90, "b": 50},
    }
    fig.update_layout(**(settings | kwargs))
    return fig


def note(fig: go.Figure, message: str, y: float = 0.5) -> None:
    """A visible explanation inside the plot (why something is missing)."""
    fig.add_annotation(
        text=text(message),
        xref="paper",
        yref="paper",
        x=0.5,
        y=y,
        showarrow=False,
        font={"size": 14, "color": "#DDDDDD"},
    )
