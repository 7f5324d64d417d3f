"""ipywidgets panels of the dashboard: each a plain-Python controller plus a thin view."""
