from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.data import (
    PRICE_COLUMNS,
    PRICES,
    Columns,
    DataError,
    Series,
    as_batches,
    fingerprint,
    load_series,
    season_of,
    seasons_of,
)


def write(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_long_table_with_named_columns_is_sorted_by_time(tmp_path: Path) -> None:
    p = write(tmp_path, "sym,day,px\nB,2024-01-03,3\nA,2024-01-02,1\nA,2024-01-01,2\n")
    a, b = load_series(p, columns=Columns("sym", "day", "px"))
    assert (a.name, list(a.values), b.name) == ("A", [2.0, 1.0], "B")
    assert a.ts[0] == pd.Timestamp("2024-01-01", tz="UTC").timestamp()


def test_long_table_of_ids_dates_and_numbers_is_read_whatever_its_column_names(tmp_path: Path) -> None:
    p = write(tmp_path, "symbol,date,price\nMSFT,Feb 1 2000,36.35\nMSFT,Jan 1 2000,39.81\nIBM,Jan 1 2000,100\n")
    ibm, msft = load_series(p)
    assert (ibm.name, msft.name, list(msft.values)) == ("IBM", "MSFT", [39.81, 36.35])
    assert msft.ts[0] == pd.Timestamp("2000-01-01", tz="UTC").timestamp()


def test_a_long_table_led_by_its_dates_is_read_as_long(tmp_path: Path) -> None:
    p = write(tmp_path, "year,source,net_generation\n2001-01-01,Coal,35361\n2001-01-01,Wind,1\n2002-01-01,Wind,2\n")
    coal, wind = load_series(p)  # vega's iowa-electricity.csv, as it is written
    assert (coal.name, list(wind.values)) == ("Coal", [1.0, 2.0])


def test_a_wide_tables_text_dates_are_its_time_column_wherever_it_stands(tmp_path: Path) -> None:
    (temp,) = load_series(write(tmp_path, "temp,date\n47.8,2010/01/01 01:00:00\n47.4,2010/01/01 00:00:00\n"))
    assert (temp.name, list(temp.values)) == ("temp", [47.4, 47.8])  # vega's sf-temps.csv, as it is written
    assert temp.ts[0] == pd.Timestamp("2010-01-01", tz="UTC").timestamp()


@pytest.mark.parametrize("counts", [range(3), range(1, 4)])
def test_row_numbers_written_without_a_header_are_not_a_stream(tmp_path: Path, counts: range) -> None:
    rows = "".join(f"{i},2024-01-0{i + 1},{i}\n" for i in counts)  # pandas' to_csv (0, 1, …), R's write.csv (1, 2, …)
    (x,) = load_series(write(tmp_path, ",date,x\n" + rows))
    assert x.name == "x" and len(x) == 3
    kept = load_series(write(tmp_path, ",date,x\n7,2024-01-01,1\n9,2024-01-02,2\n", "kept.csv"))
    assert [s.name for s in kept] == ["Unnamed: 0", "x"]  # not row numbers: a stream


@pytest.mark.parametrize(
    ("text", "first", "step_days"),
    [("1970 Q1", "1970-01-01", 90), ("1970Q1", "1970-01-01", 90), ("2015 W01", "2014-12-29", 7)],
)
def test_quarters_and_iso_weeks_as_tsibble_writes_them_are_dates(
    tmp_path: Path, text: str, first: str, step_days: int
) -> None:
    nxt = text.replace("Q1", "Q2").replace("W01", "W02")
    (s,) = load_series(write(tmp_path, f"Quarter,Consumption\n{nxt},2\n{text},1\n"))
    assert list(s.values) == [1.0, 2.0] and s.ts[0] == pd.Timestamp(first, tz="UTC").timestamp()
    assert s.ts[1] - s.ts[0] == step_days * 86_400


def test_days_written_as_yyyymmdd_numbers_are_read_as_dates(tmp_path: Path) -> None:
    weeks = pd.date_range("1958-03-29", periods=120, freq="7D")
    rows = "".join(f"{d:%Y%m%d},{300 + i % 52}\n" for i, d in enumerate(weeks))
    (co2,) = load_series(write(tmp_path, "date,co2\n" + rows))  # statsmodels' CO2 file, as it is written
    assert co2.ts[0] == pd.Timestamp("1958-03-29", tz="UTC").timestamp()
    assert seasons_of([co2]) == (52,)  # weekly: the year's 52 weeks, from the dates
    (other,) = load_series(write(tmp_path, "t,x\n20240131,1\n20240132,2\n", "bad.csv"))  # not a day: seconds
    assert list(other.ts) == [20240131.0, 20240132.0]


def test_a_three_column_table_led_by_times_stays_wide(tmp_path: Path) -> None:
    p = write(tmp_path, "date,X,Y\n2024-01-01,1,2\n2024-01-02,3,4\n")
    assert [s.name for s in load_series(p)] == ["X", "Y"]


def test_a_long_table_with_numeric_ids_is_refused_with_the_flags_that_read_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'store' has two rows at time.*time column 'day'.*--stream-col"):
        load_series(write(tmp_path, "store,day,sales\n1,2024-01-01,5\n2,2024-01-01,7\n"))


def test_a_wide_table_reads_only_the_value_column_named(tmp_path: Path) -> None:
    p = write(tmp_path, "Date,Open,Close,Volume\n2024-01-02,10,11,500\n2024-01-01,9,10,400\n")
    (close,) = load_series(p, columns=Columns(ts="Date", value="Close"))
    assert (close.name, list(close.values)) == ("Close", [10.0, 11.0])
    with pytest.raises(DataError, match="missing column 'Adj Close' for the wide layout"):
        load_series(p, columns=Columns(value="Adj Close"))
    with pytest.raises(DataError, match="missing column 'date' for the wide layout"):
        load_series(p, columns=Columns(ts="date"))
    with pytest.raises(DataError, match="missing column 'Ticker' for the wide layout"):
        load_series(p, columns=Columns(stream="Ticker", ts="Date", value="Close"))


def test_wide_table_keeps_gaps_per_stream(tmp_path: Path) -> None:
    p = write(tmp_path, "date,X,Y\n2024-01-01,1,\n2024-01-02,2,5\n")
    x, y = load_series(p)
    assert list(x.values) == [1.0, 2.0] and list(y.values) == [5.0]


def test_m4_layout_drops_padding(tmp_path: Path) -> None:
    p = write(tmp_path, '"V1","V2","V3","V4"\n"H1",1,2,3\n"H2",4,5,\n')
    h1, h2 = load_series(p)
    assert (h1.name, list(h2.values), list(h2.ts)) == ("H1", [4.0, 5.0], [0.0, 1.0])
    assert season_of([h1, h2]) == 24


@pytest.mark.parametrize("header", ["id,0,1,2", "series,x1,x2,x3", "id,V1,V2,V3"])
def test_one_row_per_series_under_position_headers_is_read_as_such(tmp_path: Path, header: str) -> None:
    n1, n2 = load_series(write(tmp_path, f"{header}\nN1,1,2,3\nN2,4,5,\n"))
    assert (n1.name, list(n1.values), list(n2.values), list(n2.ts)) == ("N1", [1.0, 2.0, 3.0], [4.0, 5.0], [0.0, 1.0])


def test_one_row_per_series_under_date_headers_keeps_the_dates(tmp_path: Path) -> None:
    page, _ = load_series(write(tmp_path, "Page,2015-07-01,2015-07-02,2015-07-04\nA,1,,3\nB,4,5,6\n"))
    day = 86_400.0
    assert list(page.values) == [1.0, 3.0] and list(np.diff(page.ts)) == [3 * day]


def test_a_wide_table_whose_time_column_is_not_times_is_not_read_as_rows(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="neither a number nor a date.*--layout m4"):
        load_series(write(tmp_path, "when,A,B\nMon,1,2\nTue,3,4\n"))


def test_parquet_reads_like_csv(tmp_path: Path) -> None:
    df = pd.DataFrame({"stream": ["a", "a"], "ts": [1.0, 2.0], "value": [3.0, 4.0]})
    df.to_parquet(tmp_path / "d.parquet")
    (s,) = load_series(tmp_path / "d.parquet")
    assert list(s.values) == [3.0, 4.0]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("stream,ts,value\na,1,x\n", {}, "non-numeric value 'x' in column 'value'"),
        ("stream,ts,value\na,1,1\n", {"layout": "long", "columns": Columns(value="price")}, "missing column 'price'"),
        ("stream,ts,value\na,1,1\na,1,2\n", {}, "stream 'a' has two rows at time 1.0"),
        ("stream,ts,value\na,1700000000000,1\na,1700000000000,2\n", {}, "at time 1700000000000.0; keep one"),
        (  # a wide table's repeated row (Weather of the long-horizon benchmarks has one)
            "date,a,b\n2020-05-12 05:50,1,2\n2020-05-12 06:00,3,4\n2020-05-12 06:00,3,4\n",
            {},
            r"column 'a' has two rows at time 1589263200.0 \(2020-05-12 06:00:00 UTC\); keep one",
        ),
        ("stream,ts,value\na,1,1\n", {"min_length": 5}, "series 'a' has 1 values; at least 5"),
        ("id,0,1\nN1,1,2\nN1,3,4\n", {}, "series 'N1' has two rows; keep one of them"),
        ("", {}, "cannot read"),
    ],
)
def test_bad_files_get_one_line_naming_the_problem(tmp_path: Path, text: str, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        load_series(write(tmp_path, text), **kwargs)
    assert "\n" not in str(err.value)


def test_missing_file_is_named() -> None:
    with pytest.raises(DataError, match="nope.csv: no such file"):
        load_series("nope.csv")


def test_committed_prices_load_as_a_long_table() -> None:
    series = load_series(Path("forecaster/pretrained/stocks.csv.gz"), columns=Columns("Ticker", "Date", "Adj Close"))
    assert {s.name for s in series} == {"AAPL", "FB", "GOOG", "IBM", "MSFT"}
    assert all(np.all(np.diff(s.ts) > 0) for s in series) and season_of(series) == 1


@pytest.mark.parametrize(
    ("spacing", "season"), [(60, 1440), (1800, 48), (3600, 24), (86_400, 1), (7 * 86_400, 1), (30.44 * 86_400, 12)]
)
def test_the_season_of_mase_and_seasonal_naive_follows_m4_by_the_spacing(spacing: float, season: int) -> None:
    assert season_of([Series("a", np.arange(3000) * spacing, np.zeros(3000))]) == season


def test_batches_stream_every_series_in_step_order_and_fingerprint_tracks_values(tmp_path: Path) -> None:
    a, b = load_series(write(tmp_path, "stream,ts,value\na,1,1\na,2,2\nb,1,5\n"))
    batches = list(as_batches([a, b]))
    assert [[e["stream"] for e in bt] for bt in batches] == [["a", "b"], ["a"]]
    (c,) = load_series(write(tmp_path, "stream,ts,value\na,1,1\na,2,3\n", "e.csv"))
    assert fingerprint([a]) != fingerprint([c])


@pytest.mark.parametrize(
    ("spacing_s", "length", "seasons"),
    [
        (3600.0, 1000, (24, 168)),
        (1800.0, 1000, (48, 336)),
        (1800.0, 400, (48,)),  # a week of half hours is more than half the series: too few cycles
        (900.0, 2000, (96, 672)),
        (86_400.0, 500, (7,)),  # candidates: training keeps those that beat the random walk
        (7 * 86_400.0, 500, (52,)),
        (30 * 86_400.0, 120, (12,)),
        (365 * 86_400.0, 60, ()),
        (3600.0 * 1.5, 1000, ()),  # an unusual spacing: no season assumed
    ],
)
def test_seasons_follow_the_spacing_of_the_timestamps(spacing_s: float, length: int, seasons: tuple) -> None:
    ts = 1.7e9 + spacing_s * np.arange(length)
    assert seasons_of([Series("a", ts, np.ones(length)), Series("b", ts, np.ones(length))]) == seasons


def test_business_days_have_a_week_of_five_observations() -> None:
    days = pd.bdate_range("2020-01-01", periods=500)
    ts = (days - pd.Timestamp("1970-01-01")).total_seconds().to_numpy()
    assert seasons_of([Series("a", ts, np.ones(500))]) == (5,)
    # one Saturday session (a make-up trading day) does not make it a calendar week
    saturday = (pd.Timestamp("2020-01-04") - pd.Timestamp("1970-01-01")).total_seconds()
    assert seasons_of([Series("a", np.sort(np.append(ts, saturday)), np.ones(501))]) == (5,)
    prices = load_series(PRICES, "long", PRICE_COLUMNS)  # the bundled stock file: trading days
    assert seasons_of(prices) == (5,)


def test_trading_hours_count_the_day_and_week_in_observations_the_data_has() -> None:
    days = pd.bdate_range("2024-01-01", periods=120)
    hours = days.repeat(7) + pd.to_timedelta(np.tile(np.arange(7) + 14, 120), unit="h")  # 14:00-20:00 UTC
    ts = (hours - pd.Timestamp("1970-01-01")).total_seconds().to_numpy()
    bars = [Series("a", ts, np.ones(len(ts)))]
    assert seasons_of(bars) == (7, 35) and season_of(bars) == 7  # not 24 and 168
    minutes = days[:20].repeat(390) + pd.to_timedelta(np.tile(np.arange(390) + 870, 20), unit="min")  # 14:30-21:00
    ts = (minutes - pd.Timestamp("1970-01-01")).total_seconds().to_numpy()
    assert seasons_of([Series("a", ts, np.ones(len(ts)))]) == (60, 390)  # the hour, and the session not 1440
    every_hour = 1.7e9 + 3600.0 * np.arange(2000)  # a whole day of hours, every day: unchanged
    assert seasons_of([Series("a", every_hour, np.ones(2000))]) == (24, 168)
    assert season_of([Series("a", every_hour, np.ones(2000))]) == 24


def test_m4_ids_give_the_m4_seasons() -> None:
    def m4(name: str) -> Series:
        return Series(name, np.arange(700.0), np.ones(700))

    assert seasons_of([m4("H1"), m4("H2")]) == (24, 168)
    assert seasons_of([m4("W1")]) == (52,) and seasons_of([m4("M7")]) == (12,) and seasons_of([m4("Y3")]) == ()
