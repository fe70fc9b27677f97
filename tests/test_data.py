"""Loading, validation, splitting, windowing and scaling (mlforecast_cli.data)."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlforecast_cli.data.calendar_features import calendar_features
from mlforecast_cli.data.frequency import future_times, infer_freq, season_length_for
from mlforecast_cli.data.panel import Columns, Panel, load_panel
from mlforecast_cli.data.split import split_panel
from mlforecast_cli.data.tables import read_table
from mlforecast_cli.data.windows import inverse_scale, labels, make_windows
from mlforecast_cli.errors import DataError
from mlforecast_cli.models.contract import Windows
from mlforecast_cli.search.metrics import mape

WALMART = Columns(
    target="Weekly_Sales",
    time="Date",
    ids=("Store", "Dept"),
    features=("IsHoliday",),
    weight="IsHoliday",
)
M4 = Columns(target="value", time="date", ids=("id",))


@pytest.fixture(scope="module")
def walmart_csv():
    ref = resources.files("mlforecast_cli.datasets").joinpath("walmart_sales_weekly.csv")
    with resources.as_file(ref) as path:
        yield path


@pytest.fixture(scope="module")
def walmart(walmart_csv) -> Panel:
    return load_panel(walmart_csv, WALMART)


def m4_like(freq: str, periods: int, start: str = "2000-01-01", n_series: int = 2, tz=None):
    """A small long frame shaped like the M4 files (id, date, value)."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n_series):
        dates = pd.date_range(start, periods=periods, freq=freq, tz=tz)
        values = 100 + 10 * k + rng.normal(size=periods).cumsum()
        rows.append(pd.DataFrame({"id": f"S{k}", "date": dates.astype(str), "value": values}))
    return pd.concat(rows, ignore_index=True)


def indexed_panel(lengths, season=4, n_feat=1) -> Panel:
    """A panel whose target value encodes (series, position): 1000 * i + t."""
    times, ys, feats = [], [], []
    for i, n in enumerate(lengths):
        times.append(pd.date_range("2020-01-06", periods=n, freq="D").to_numpy())
        ys.append(1000.0 * i + np.arange(n, dtype=float))
        feats.append(np.column_stack([np.arange(n, dtype=float)] * n_feat).reshape(n, n_feat))
    return Panel(
        columns=Columns("y", "t", ("id",), tuple(f"f{k}" for k in range(n_feat))),
        ids=[(f"s{i}",) for i in range(len(lengths))],
        times=times,
        y=ys,
        features=feats,
        weights=None,
        freq="D",
        season_length=season,
        source="test",
    )


# --------------------------------------------------------------------------- walmart


def test_walmart_panel(walmart):
    assert walmart.n_series == 7
    assert walmart.freq == "W-FRI"
    assert walmart.season_length == 52
    assert walmart.lengths.tolist() == [143] * 7
    assert walmart.ids[0] == (1, 1) and walmart.id_labels == [
        "1_1", "1_3", "1_8", "1_13", "1_38", "1_93", "1_95"
    ]  # fmt: skip
    assert walmart.times[0].dtype == np.dtype("datetime64[ns]")
    assert walmart.features[0].shape == (143, 1)
    # IsHoliday TRUE/FALSE -> 1/0 feature, 5/1 weight
    assert set(np.unique(walmart.features[0])) == {0.0, 1.0}
    np.testing.assert_array_equal(
        walmart.weights[0], np.where(walmart.features[0][:, 0] == 1, 5.0, 1.0)
    )


@pytest.mark.parametrize("scaler", ["none", "series", "window"])
def test_walmart_reference_figures(walmart, scaler):
    split = split_panel(walmart, horizon=13)
    win = make_windows(walmart, split.test_start, window_size=7, horizon=13, mode="eval",
                       scaler=scaler)  # fmt: skip
    y = labels(win)
    seasonal = inverse_scale(win.seasonal, win)
    last = np.repeat(inverse_scale(win.x, win)[:, -1:], 13, axis=1)
    assert round(mape(y, seasonal), 2) == pytest.approx(8.90, abs=0.01)
    assert round(mape(y, last), 2) == pytest.approx(18.83, abs=0.01)
    np.testing.assert_allclose(y, np.stack([v[-13:] for v in walmart.y]))


def test_walmart_fingerprint_and_round_trip(walmart, walmart_csv):
    assert len(walmart.fingerprint()) == 64
    assert load_panel(walmart_csv, WALMART).fingerprint() == walmart.fingerprint()
    again = load_panel(walmart.to_frame(), WALMART)
    assert again.fingerprint() == walmart.fingerprint()
    other = load_panel(walmart_csv, Columns("Weekly_Sales", "Date", ("Store", "Dept")))
    assert other.fingerprint() != walmart.fingerprint()


def test_walmart_train_windows(walmart):
    split = split_panel(walmart, horizon=13, cv_windows=2)
    assert [f.train_end[0] for f in split.folds] == [143 - 39, 143 - 26]
    win = make_windows(walmart, split.folds[0].train_end, 8, 13, mode="train")
    assert len(win) == 7 * (104 - 21 + 1)
    assert win.features.shape == (len(win), 13, 1)
    assert win.calendar.shape == (len(win), 13, 2)
    assert win.y.shape == (len(win), 13)


# --------------------------------------------------------------------------- reading


def test_read_table_csv_gz_parquet(tmp_path):
    frame = m4_like("D", 10)
    frame.to_csv(tmp_path / "a.csv.gz", index=False)
    frame.to_parquet(tmp_path / "a.parquet")
    frame.to_parquet(tmp_path / "a.data")  # unknown suffix: sniffed
    for name in ("a.csv.gz", "a.parquet", "a.data"):
        assert read_table(tmp_path / name).shape == frame.shape


def test_read_table_errors(tmp_path):
    with pytest.raises(DataError, match=r"not found: .*nope\.csv"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"header\.csv has no rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DataError, match=r"junk\.bin is not a CSV or Parquet file"):
        read_table(tmp_path / "junk.bin")
    (tmp_path / "junk.csv").write_bytes(b"\x00\x01\xff\xfe" * 100)
    with pytest.raises(DataError, match=r"junk\.csv"):
        read_table(tmp_path / "junk.csv")
    (tmp_path / "bad.parquet").write_text("id,date\n1,2\n")
    with pytest.raises(DataError, match=r"cannot read .*bad\.parquet as Parquet"):
        read_table(tmp_path / "bad.parquet")


# --------------------------------------------------------------------------- validation


def test_missing_column_names_it_and_flag():
    frame = m4_like("D", 10)
    with pytest.raises(
        DataError, match=r"target column 'sales' not found.*id, date, value.*--target"
    ):
        load_panel(frame, Columns("sales", "date", ("id",)))
    with pytest.raises(DataError, match=r"time column 'ds' not found.*--time-col"):
        load_panel(frame, Columns("value", "ds", ("id",)))
    with pytest.raises(DataError, match=r"id column 'store' not found.*--id-col"):
        load_panel(frame, Columns("value", "date", ("store",)))
    with pytest.raises(DataError, match=r"feature column 'promo' not found.*--feature"):
        load_panel(frame, Columns("value", "date", ("id",), ("promo",)))


def test_duplicate_rows_named():
    frame = m4_like("D", 10)
    frame = pd.concat([frame, frame.iloc[[13]]], ignore_index=True)
    with pytest.raises(DataError, match=r"duplicate rows .*series 'S1'.*2000-01-04"):
        load_panel(frame, M4)


def test_gap_names_series_dates_and_freq():
    frame = m4_like("W-FRI", 20).drop(index=25)  # S1, 6th week
    with pytest.raises(DataError, match=r"series 'S1'.*gap.*2000-02-04 and 2000-02-18.*W-FRI"):
        load_panel(frame, M4)
    daily = m4_like("D", 20, n_series=1).drop(index=[5, 6])
    with pytest.raises(DataError, match=r"series 'S0'.*2000-01-05 and 2000-01-08.*frequency D"):
        load_panel(daily, M4)


def test_non_numeric_target_names_value_and_row():
    frame = m4_like("D", 10)
    frame["value"] = frame["value"].astype(str)
    frame.loc[12, "value"] = "n/a?"
    with pytest.raises(DataError, match=r"target column 'value'.*1 text, first 'n/a\?' at row 13"):
        load_panel(frame, M4)


def test_missing_target_named():
    frame = m4_like("D", 10)
    frame.loc[4, "value"] = np.nan
    with pytest.raises(DataError, match=r"target column 'value'.*row 5.*series 'S0'.*2000-01-05"):
        load_panel(frame, M4)


def test_non_numeric_feature_named():
    frame = m4_like("D", 10).assign(kind="A")
    with pytest.raises(DataError, match=r"feature column 'kind'.*'A'.*--feature"):
        load_panel(frame, Columns("value", "date", ("id",), ("kind",)))


def test_unparseable_time_named():
    frame = m4_like("D", 10)
    frame.loc[7, "date"] = "yesterday"
    with pytest.raises(DataError, match=r"time column 'date'.*row 8 'yesterday' is not a date"):
        load_panel(frame, M4)
    numeric = m4_like("D", 10).assign(date=np.arange(20))
    with pytest.raises(DataError, match=r"time column 'date'.*holds numbers"):
        load_panel(numeric, M4)


def test_too_few_points_named():
    frame = pd.concat([m4_like("D", 10, n_series=1), m4_like("D", 1).iloc[[1]].assign(id="Z")])
    with pytest.raises(DataError, match=r"series 'Z'.*only 1 time point.*at least 2"):
        load_panel(frame, M4)


def test_unknown_freq_alias():
    with pytest.raises(DataError, match=r"unknown frequency 'fortnightly'.*--freq"):
        load_panel(m4_like("D", 10), M4, freq="fortnightly")


def test_features_booleans_and_text(tmp_path):
    frame = m4_like("D", 4, n_series=1)
    frame["promo"] = ["TRUE", "false", None, "True"]
    frame["flag"] = [True, False, True, False]
    frame["price"] = [1.5, np.nan, 2.0, 3.0]
    frame["ignored"] = "x"
    panel = load_panel(frame, Columns("value", "date", ("id",), ("promo", "flag", "price")))
    np.testing.assert_array_equal(panel.features[0], [[1, 1, 1.5], [0, 0, 0], [0, 1, 2], [1, 0, 3]])
    frame.to_csv(tmp_path / "f.csv", index=False)
    from_csv = load_panel(tmp_path / "f.csv", Columns("value", "date", ("id",), ("promo", "flag")))
    np.testing.assert_array_equal(from_csv.features[0][:, 0], [1, 0, 0, 1])
    assert from_csv.source.endswith("f.csv")


def test_single_series_unsorted_and_other_columns():
    frame = m4_like("MS", 24, n_series=1).sample(frac=1.0, random_state=1)
    panel = load_panel(frame, Columns("value", "date", ()))
    assert panel.n_series == 1 and panel.ids == [()] and panel.id_labels == ["series"]
    assert panel.freq == "MS" and panel.season_length == 12
    assert np.all(np.diff(panel.times[0]) > np.timedelta64(0))


def test_series_sorted_by_id():
    frame = m4_like("D", 5, n_series=3).replace({"id": {"S0": "b", "S1": "c", "S2": "a"}})
    assert [i[0] for i in load_panel(frame, M4).ids] == ["a", "b", "c"]


def test_timezone_aware_hourly_is_made_naive():
    frame = m4_like("h", 48, start="2015-07-01 12:00", tz="UTC")
    assert frame["date"].iloc[0].endswith("+00:00")
    panel = load_panel(frame, M4)
    assert panel.freq == "h" and panel.season_length == 24
    assert panel.times[0][0] == np.datetime64("2015-07-01T12:00", "ns")


# --------------------------------------------------------------------------- frequency, calendar


@pytest.mark.parametrize(
    ("freq", "start", "expected", "season", "n_cal"),
    [
        ("W-FRI", "1999-01-01", "W-FRI", 52, 2),
        ("MS", "1976-06-01", "MS", 12, 2),
        ("D", "2014-07-03", "D", 7, 4),
        ("h", "2015-07-01 12:00", "h", 24, 6),
        ("QS-JAN", "2001-01-01", "QS-JAN", 4, 2),
        ("15min", "2020-01-01", "15min", 4, 6),
    ],
)
def test_infer_freq_and_calendar(freq, start, expected, season, n_cal):
    times = pd.date_range(start, periods=60, freq=freq).to_numpy()
    assert infer_freq(times) == expected
    assert infer_freq(times[:2]) == expected
    assert season_length_for(expected) == season
    cal = calendar_features(times, expected)
    assert cal.shape == (60, n_cal)
    assert np.all(np.abs(cal) <= 1.0)
    np.testing.assert_allclose(cal[:, 0::2] ** 2 + cal[:, 1::2] ** 2, 1.0)
    following = future_times(times[-1], expected, 3)
    np.testing.assert_array_equal(
        following, pd.date_range(start, periods=63, freq=freq).to_numpy()[-3:]
    )


def test_calendar_positions():
    # Monday 2024-01-01 00:00: every cycle at position 0 -> sin 0, cos 1
    cal = calendar_features(np.array(["2024-01-01T00:00"], dtype="datetime64[ns]"), "h")
    np.testing.assert_allclose(cal, [[0, 1, 0, 1, 0, 1]], atol=1e-12)
    # Thursday 2024-01-04 18:00: a quarter of the day left, 3.75 of 7 days into the week
    cal = calendar_features(np.array(["2024-01-04T18:00"], dtype="datetime64[ns]"), "h")
    np.testing.assert_allclose(cal[0, :2], [-1, 0], atol=1e-12)
    angle = 2 * np.pi * 3.75 / 7
    np.testing.assert_allclose(cal[0, 2:4], [np.sin(angle), np.cos(angle)])
    # weekly: position in the year; 2024 is a leap year
    cal = calendar_features(np.array(["2024-07-02"], dtype="datetime64[ns]"), "W-TUE")
    angle = 2 * np.pi * 183 / 366
    np.testing.assert_allclose(cal[0], [np.sin(angle), np.cos(angle)])


def test_infer_freq_irregular():
    gappy = np.array(["2020-01-01", "2020-01-02", "2020-01-05", "2020-01-06"], "datetime64[ns]")
    with pytest.raises(DataError, match="2020-01-01 to 2020-01-06 is irregular"):
        infer_freq(gappy)
    odd = np.array(["2020-01-01", "2020-01-01T07:13", "2020-03-09T01:00"], "datetime64[ns]")
    with pytest.raises(DataError, match="irregular"):
        infer_freq(odd)
    with pytest.raises(DataError, match="at least 2"):
        infer_freq(odd[:1])


def test_season_length_multiples():
    assert season_length_for("2W") == 26
    assert season_length_for("ME") == 12
    assert season_length_for("QE-DEC") == 4
    assert season_length_for("YS") == 1
    assert season_length_for("30min") == 2
    assert season_length_for("5h") == 1
    assert season_length_for("B") == 5


# --------------------------------------------------------------------------- split


def test_split_layout():
    panel = indexed_panel([30, 40])
    split = split_panel(panel, horizon=5, cv_windows=3)
    np.testing.assert_array_equal(split.test_start, [25, 35])
    ends = [f.train_end.tolist() for f in split.folds]
    assert ends == [[10, 20], [15, 25], [20, 30]]
    assert all(f.horizon == 5 for f in split.folds)


def test_split_keeps_short_series_refuses_only_when_none_fits():
    panel = indexed_panel([30, 12, 40, 4])
    split = split_panel(panel, horizon=5, cv_windows=2)
    np.testing.assert_array_equal(split.test_start, [25, 7, 35, 0])
    assert [f.train_end.tolist() for f in split.folds] == [[15, 0, 25, 0], [20, 2, 30, 0]]
    with pytest.raises(
        DataError,
        match=r"no series in test is long enough: the longest, 's2', has 40 time points.*"
        r"at least 46 \(31 training \+ 3 x 5\).*--horizon or --cv-windows",
    ):
        split_panel(panel, horizon=5, cv_windows=2, min_train=31)
    with pytest.raises(DataError, match=r"'s2', has 40 .* at least 41 \(9 training"):
        split_panel(panel, horizon=8, cv_windows=3)  # default: one sample, horizon + 1
    with pytest.raises(DataError, match="horizon must be"):
        split_panel(panel, horizon=0)
    with pytest.raises(DataError, match="validation windows must be"):
        split_panel(panel, horizon=2, cv_windows=0)


# --------------------------------------------------------------------------- windows


def test_train_windows_exact_layout():
    panel = indexed_panel([12, 9], season=3)
    win = make_windows(panel, np.array([10, 9]), window_size=3, horizon=2, mode="train",
                       scaler="none")  # fmt: skip
    assert isinstance(win, Windows)
    assert len(win) == (10 - 5 + 1) + (9 - 5 + 1)
    np.testing.assert_array_equal(win.series, [0] * 6 + [1] * 5)
    np.testing.assert_array_equal(win.step_offset, list(range(3, 9)) + list(range(3, 8)))
    # target encodes its own position: x = positions before step_offset, y = from it
    np.testing.assert_array_equal(win.x[0], [0, 1, 2])
    np.testing.assert_array_equal(win.y[0], [3, 4])
    np.testing.assert_array_equal(win.y[-1], [1007, 1008])
    # seasonal lag 3 (season 3, horizon 2): label positions - 3
    np.testing.assert_array_equal(win.seasonal[0], [0, 1])
    np.testing.assert_array_equal(win.features[0, :, 0], [3, 4])
    assert win.calendar.shape == (11, 2, 4)


def test_seasonal_lag_whole_seasons_and_nan():
    panel = indexed_panel([20], season=3)
    win = make_windows(panel, np.array([5]), window_size=2, horizon=7, mode="eval",
                       scaler="none")  # fmt: skip
    # labels 5..11; lags 3,3,3,6,6,6,9 -> positions 2,3,4,2,3,4,2
    np.testing.assert_array_equal(win.seasonal[0], [2, 3, 4, 2, 3, 4, 2])
    win = make_windows(panel, np.array([2]), window_size=2, horizon=4, mode="eval",
                       scaler="none")  # fmt: skip
    # labels 2..5 with lags 3,3,3,6 -> positions -1,0,1,-1
    np.testing.assert_array_equal(win.seasonal[0], [np.nan, 0, 1, np.nan])


def test_season_one_is_last_value():
    panel = indexed_panel([20], season=1)
    win = make_windows(panel, np.array([10]), window_size=4, horizon=3, mode="eval",
                       scaler="window")  # fmt: skip
    np.testing.assert_allclose(inverse_scale(win.seasonal, win)[0], [9, 9, 9])


def test_eval_past_the_data_end():
    panel = indexed_panel([10, 12], season=2, n_feat=2)
    win = make_windows(panel, panel.lengths, window_size=4, horizon=3, mode="eval")
    assert win.y is None
    np.testing.assert_array_equal(win.step_offset, [10, 12])
    assert np.all(win.features == 0.0)  # unknown future features -> 0
    times = future_times(panel.times[1][-1], "D", 3)
    np.testing.assert_allclose(win.calendar[1], calendar_features(times, "D"))
    with pytest.raises(ValueError, match="no labels"):
        labels(win)
    partial = make_windows(panel, np.array([7, 12]), window_size=4, horizon=3, mode="eval")
    assert partial.y is None
    np.testing.assert_array_equal(partial.features[0, :, 0], [7, 8, 9])


def test_series_scaler_uses_only_visible_history():
    panel = indexed_panel([20], season=2)
    win = make_windows(panel, np.array([10]), window_size=3, horizon=2, mode="train",
                       scaler="series")  # fmt: skip
    np.testing.assert_allclose(win.loc, np.mean(np.arange(10.0)))
    np.testing.assert_allclose(win.scale, np.std(np.arange(10.0)))


def test_constant_series_scale_is_floored():
    panel = indexed_panel([10], season=2)
    panel.y[0] = np.full(10, 7.0)
    win = make_windows(panel, np.array([10]), window_size=3, horizon=2, mode="train",
                       scaler="window")  # fmt: skip
    np.testing.assert_array_equal(win.scale, 7.0)
    np.testing.assert_array_equal(win.x, 0.0)
    panel.y[0] = np.zeros(10)
    win = make_windows(panel, np.array([10]), window_size=3, horizon=2, mode="train",
                       scaler="series")  # fmt: skip
    np.testing.assert_array_equal(win.scale, 1.0)


def test_short_series_give_one_padded_sample_and_are_forecast():
    panel = indexed_panel([30, 8, 3])
    win = make_windows(panel, panel.lengths, window_size=5, horizon=4, mode="train",
                       scaler="none")  # fmt: skip
    # s0: the usual samples from position 5; s1 (8 < 5 + 4): its latest one; s2: none
    np.testing.assert_array_equal(win.series, [0] * 22 + [1])
    np.testing.assert_array_equal(win.step_offset[-2:], [26, 4])
    np.testing.assert_array_equal(win.observed[-2:], [5, 4])
    np.testing.assert_array_equal(win.x[-1], [1000, 1000, 1001, 1002, 1003])  # first repeated
    np.testing.assert_array_equal(win.y[-1], [1004, 1005, 1006, 1007])
    ev = make_windows(panel, np.array([26, 2, 0]), window_size=5, horizon=4, mode="eval",
                      scaler="window")  # fmt: skip
    np.testing.assert_array_equal(ev.series, [0, 1])  # no point before end: not forecast
    np.testing.assert_array_equal(ev.observed, [5, 2])
    np.testing.assert_allclose(inverse_scale(ev.x, ev)[1], [1000, 1000, 1000, 1000, 1001])
    np.testing.assert_array_equal(labels(ev)[1], [1002, 1003, 1004, 1005])


def test_make_windows_errors():
    panel = indexed_panel([30, 8])
    with pytest.raises(ValueError, match=r"end\[1\]=9 is outside series 's1' of length 8"):
        make_windows(panel, np.array([30, 9]), window_size=5, horizon=4, mode="train")
    with pytest.raises(DataError, match="window_size must be"):
        make_windows(panel, panel.lengths, window_size=0, horizon=4, mode="train")
    with pytest.raises(DataError, match=r"unknown scaler 'minmax'.*none, series, window"):
        make_windows(panel, panel.lengths, window_size=2, horizon=2, mode="train", scaler="minmax")


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(2, 40), min_size=1, max_size=4),
    window=st.integers(1, 6),
    horizon=st.integers(1, 5),
    season=st.integers(1, 7),
    cut=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_train_windows_never_leak(lengths, window, horizon, season, cut, data):
    need = window + horizon
    lengths = [max(n, need) for n in lengths]
    end = np.array([need + int(cut * (n - need)) for n in lengths])
    panel = indexed_panel(lengths, season=season)
    scaler = data.draw(st.sampled_from(["none", "series", "window"]))
    win = make_windows(panel, end, window, horizon, mode="train", scaler=scaler)
    assert len(win) == int(np.sum(end - need + 1))
    x, y = inverse_scale(win.x, win), labels(win)
    seas = inverse_scale(win.seasonal, win)
    pos_x = np.round(x - 1000 * win.series[:, None])
    pos_y = np.round(y - 1000 * win.series[:, None])
    pos_s = np.round(seas - 1000 * win.series[:, None])
    limit = end[win.series][:, None]
    assert np.all(pos_x < win.step_offset[:, None]) and np.all(pos_x >= 0)
    assert np.all(pos_y < limit) and np.all(pos_y >= 0)
    np.testing.assert_array_equal(pos_y, win.step_offset[:, None] + np.arange(horizon))
    np.testing.assert_array_equal(pos_x, win.step_offset[:, None] + np.arange(-window, 0))
    known = ~np.isnan(pos_s)
    assert np.all(pos_s[known] < np.broadcast_to(win.step_offset[:, None], pos_s.shape)[known])
    assert np.all(pos_s[known] >= 0)
    assert np.all(win.features[..., 0] == pos_y)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=8, max_size=30
    ),
    scaler=st.sampled_from(["none", "series", "window"]),
    mode=st.sampled_from(["train", "eval"]),
)
def test_inverse_scale_inverts(values, scaler, mode):
    panel = indexed_panel([len(values)], season=2)
    panel.y[0] = np.array(values)
    end = np.array([len(values) - (3 if mode == "eval" else 0)])
    win = make_windows(panel, end, window_size=3, horizon=3, mode=mode, scaler=scaler)
    assert np.all(win.scale > 0) and np.all(np.isfinite(win.scale))
    y = np.array(values)
    starts = win.step_offset[:, None]
    expect_x = y[starts + np.arange(-3, 0)]
    expect_y = y[starts + np.arange(3)]
    tol = 1e-9 * max(1.0, float(np.max(np.abs(y))))
    np.testing.assert_allclose(inverse_scale(win.x, win), expect_x, rtol=1e-12, atol=tol)
    np.testing.assert_allclose(labels(win), expect_y, rtol=1e-12, atol=tol)
    np.testing.assert_allclose(
        inverse_scale((expect_y - win.loc[:, None]) / win.scale[:, None], win),
        expect_y, rtol=1e-12, atol=tol,
    )  # fmt: skip


def test_to_frame_round_trip_with_numeric_weight():
    frame = m4_like("MS", 12, n_series=2).assign(w=np.linspace(1, 2, 24), price=np.arange(24.0))
    cols = Columns("value", "date", ("id",), ("price",), weight="w")
    panel = load_panel(frame, cols)
    np.testing.assert_allclose(np.concatenate(panel.weights), np.linspace(1, 2, 24))
    back = panel.to_frame()
    assert list(back.columns) == ["id", "date", "value", "price", "w"]
    assert load_panel(back, cols).fingerprint() == panel.fingerprint()
    assert math.isclose(back["value"].sum(), frame["value"].sum())


def test_weekly_series_off_the_anchor_and_monthly_gap():
    fri = m4_like("W-FRI", 10, n_series=1)
    sat = m4_like("W-SAT", 10, n_series=1).assign(id="late")
    with pytest.raises(DataError, match=r"series 'late' .*starts on 2000-01-01.*W-FRI grid"):
        load_panel(pd.concat([fri, sat]), M4)
    monthly = m4_like("MS", 30, n_series=2).drop(index=[40])
    with pytest.raises(DataError, match=r"series 'S1'.*gap.*2000-10-01 and 2000-12-01.*MS"):
        load_panel(monthly, M4)


def test_missing_id_and_bad_weight_named():
    frame = m4_like("D", 6)
    frame.loc[3, "id"] = None
    with pytest.raises(DataError, match=r"id column 'id'.*row 4"):
        load_panel(frame, M4)
    frame = m4_like("D", 6).assign(w=1.0)
    frame.loc[8, "w"] = -2.0
    with pytest.raises(DataError, match=r"weight column 'w'.*row 9.*series 'S1'"):
        load_panel(frame, Columns("value", "date", ("id",), weight="w"))


def test_weight_text_booleans_follow_walmart_convention():
    frame = m4_like("D", 4, n_series=1).assign(hol=["FALSE", "TRUE", "false", "false"])
    panel = load_panel(frame, Columns("value", "date", ("id",), weight="hol"))
    np.testing.assert_array_equal(panel.weights[0], [1, 5, 1, 1])


def test_error_messages_are_one_line(tmp_path):
    (tmp_path / "bad.csv").write_text('id,date,value\nA,"2020-01-01\nx",1\nA,2020-01-02,2\n')
    frame = m4_like("D", 10)
    cases = [
        lambda: read_table(tmp_path / "missing.csv"),
        lambda: load_panel(tmp_path / "bad.csv", M4),
        lambda: load_panel(frame, Columns("nope", "date", ("id",))),
        lambda: load_panel(frame.assign(value="x"), M4),
        lambda: load_panel(frame.drop(index=4), M4),
        lambda: split_panel(load_panel(frame, M4), horizon=8),
    ]
    for case in cases:
        with pytest.raises(DataError) as info:
            case()
        assert "\n" not in str(info.value) and str(info.value)


def test_many_series_load_and_window_quickly():
    n_series, length = 2000, 120
    dates = np.tile(pd.date_range("2020-01-01", periods=length, freq="D").to_numpy(), n_series)
    frame = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n_series), length),
            "date": dates,
            "value": np.random.default_rng(1).normal(size=n_series * length),
        }
    ).sample(frac=1.0, random_state=0)
    panel = load_panel(frame, M4)
    assert panel.n_series == n_series and panel.freq == "D"
    split = split_panel(panel, horizon=7)
    win = make_windows(panel, split.folds[0].train_end, 14, 7, mode="train", scaler="series")
    assert len(win) == n_series * (length - 14 - 14 - 7 + 1)


@pytest.mark.parametrize("freq", ["MS", "ME", "QS-OCT", "W-FRI", "h", "B"])
def test_eval_calendar_past_the_end_matches_future_times(freq):
    panel = load_panel(m4_like(freq, 30, start="2001-01-01", n_series=3), M4)
    win = make_windows(panel, panel.lengths, window_size=5, horizon=4, mode="eval")
    assert win.y is None
    for i in range(panel.n_series):
        times = future_times(panel.times[i][-1], panel.freq, 4)
        assert times[0] > panel.times[i][-1]
        np.testing.assert_allclose(win.calendar[i], calendar_features(times, panel.freq))
