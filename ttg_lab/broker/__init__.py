"""The broker: trading costs, fills and the portfolio they book into."""
