"""Self-contained HTML reports of one run or a comparison of runs.

A report is one file that opens offline: plotly.js is embedded once, inline, in the
page's head; charts, tables and text follow. :mod:`~ttg_lab.reports.html` is the kit
(escaping, formats, tables, layout); :mod:`~ttg_lab.reports.run` and
:mod:`~ttg_lab.reports.comparison` are the two reports.
"""

from __future__ import annotations

from ttg_lab.reports.comparison import comparison_report
from ttg_lab.reports.html import format_metric, format_value
from ttg_lab.reports.run import default_report_path, render_run_report

__all__ = [
    "comparison_report",
    "default_report_path",
    "format_metric",
    "format_value",
    "render_run_report",
]
