"""The simulation core: a run's snapshot and state, its orders and ledger rows, one step, the
loop, events, and the one reader of stored runs. It drives agents only through its own
protocol, so it imports neither agents nor tools."""
