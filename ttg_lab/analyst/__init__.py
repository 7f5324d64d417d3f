"""The AI strategy analyst: answers questions about a run from its data, with citations."""
