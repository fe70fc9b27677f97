"""A long table may hold the known future: rows after the last target value of a series, with
the target empty and the features filled. Loading a panel leaves them out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlforecast_cli.data.panel import Columns, future_rows, load_panel
from mlforecast_cli.errors import DataError

SALES = Columns(target="units", time="week", ids=("shop",), features=("promo",))


def _history() -> pd.DataFrame:
    weeks = pd.date_range("2024-01-05", periods=12, freq="W-FRI")
    return pd.DataFrame(
        {
            "shop": np.repeat(["A", "B"], 12),
            "week": np.tile(weeks.strftime("%Y-%m-%d"), 2),
            "units": np.arange(24, dtype=float) + 10,
            "promo": np.tile([0, 1, 0], 8),
        }
    )


def _with_future(history: pd.DataFrame, steps: dict[str, int]) -> pd.DataFrame:
    rows = []
    for shop, n in steps.items():
        last = pd.Timestamp(history.loc[history.shop == shop, "week"].max())
        for j in range(n):
            week = (last + pd.Timedelta(weeks=j + 1)).strftime("%Y-%m-%d")
            rows.append({"shop": shop, "week": week, "units": np.nan, "promo": j % 2})
    frame = pd.concat([history, pd.DataFrame(rows)], ignore_index=True)
    return frame.sort_values(["week", "shop"], kind="stable").reset_index(drop=True)


def test_future_rows_are_left_out_of_the_panel():
    history = _history()
    frame = _with_future(history, {"A": 3, "B": 2})
    mask = future_rows(frame, SALES, "sales.csv")
    assert mask.sum() == 5 and frame.loc[mask, "units"].isna().all()
    panel = load_panel(frame, SALES, source="sales.csv")
    assert panel.lengths.tolist() == [12, 12]
    assert panel.fingerprint() == load_panel(history, SALES, source="sales.csv").fingerprint()


def test_a_gap_in_the_target_is_still_an_error_named_by_its_file_row():
    frame = _with_future(_history(), {"A": 3, "B": 3})
    row = frame.index[(frame.shop == "B") & (frame.week == "2024-02-16")][0]
    frame.loc[row, "units"] = np.nan
    with pytest.raises(DataError, match=rf"missing.*first at row {row + 1} \(series 'B'"):
        load_panel(frame, SALES, source="sales.csv")


def test_a_series_with_no_target_value_is_named():
    frame = _history()
    frame.loc[frame.shop == "B", "units"] = np.nan
    with pytest.raises(DataError, match=r"series 'B' in sales.csv has no units value"):
        load_panel(frame, SALES, source="sales.csv")
