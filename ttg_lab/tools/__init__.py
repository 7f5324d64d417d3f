"""The agent-facing tools (math, price, search, trade, account): plain functions over a run
context, defined once in the registry and served on every path."""
