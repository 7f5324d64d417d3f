"""Market data: bars and markets, readers and checks, loading and merging into the store,
the as-of view agents read through, and the in-memory price index."""
