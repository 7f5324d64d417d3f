"""Runs: starting and resuming them (service), a handle on each (handle), and the run
numbers of each model (numbering, shared with the AI-Trader importer)."""
