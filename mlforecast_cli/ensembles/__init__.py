"""Held-out forecast tables, conformal intervals, ensemble weights.

Only constants live here, so that a command's options can name them without loading the
package's modules (NumPy, pandas).
"""

DEFAULT_ROUNDS = 25
"""Rounds of greedy ensemble selection (``mlf ensemble --rounds``)."""
