"""Held-out forecast tables, conformal intervals, ensemble weights."""
