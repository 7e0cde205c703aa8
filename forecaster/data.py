"""Loading series from files: long tables, wide tables and the M4 layout; CSV (optionally
gzipped) and parquet. Every problem with a file is a ``DataError`` with one line naming it.

- long:  one row per observation, columns for stream id, time and value (names configurable;
         three columns of ids, dates and numbers are read as such whatever their names);
- wide:  a time column, then one numeric column per stream (empty cells are gaps);
- m4:    the M4 competition layout: ``V1`` holds the series id, ``V2…`` its values, shorter series
         padded with empty cells; there are no times, so ``ts`` is the position 0, 1, 2, …
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from forecaster.errors import ForecasterError

Layout = Literal["auto", "long", "wide", "m4"]

# M4 series ids start with their frequency; MASE uses the M4 seasonal period of each.
M4_SEASON = {"H": 24, "D": 1, "W": 1, "M": 12, "Q": 4, "Y": 1}


class DataError(ForecasterError, ValueError):
    """A data file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Series:
    """One stream's history: ``ts`` (seconds since the epoch, or positions) and float64 values."""

    name: str
    ts: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def head(self, n: int) -> Series:
        return Series(self.name, self.ts[:n], self.values[:n])


@dataclass(frozen=True)
class Columns:
    """Column names of a long table; of a wide one, the time column and, where named, the one
    column to read (one stock's ``Close`` in a file of its Open, High, Low, Close and Volume)."""

    stream: str = "stream"
    ts: str = "ts"
    value: str = "value"


NIXTLA = {"unique_id", "ds", "y"}  # the long layout of Nixtla's libraries (statsforecast, neuralforecast)
# The committed daily prices (bokeh's sample: AAPL, FB, GOOG, IBM, MSFT), for examples and the bundled models.
PRICES = Path(__file__).parent / "pretrained" / "stocks.csv.gz"
PRICE_COLUMNS = Columns(stream="Ticker", ts="Date", value="Adj Close")


def read_table(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        if p.suffix == ".parquet":
            return pd.read_parquet(p)
        return pd.read_csv(p)
    except (ValueError, OSError, pd.errors.ParserError, ImportError) as e:
        raise DataError(f"{p}: cannot read as {'parquet' if p.suffix == '.parquet' else 'CSV'}: {e}") from e


def load_series(
    source: str | Path | pd.DataFrame, layout: Layout = "auto", columns: Columns = Columns(), min_length: int = 1
) -> list[Series]:
    """Every series of a file or a frame, each sorted by time, at least ``min_length`` long. A
    long table with Nixtla's column names (unique_id, ds, y) is read as such by default."""
    df = _without_row_numbers(source if isinstance(source, pd.DataFrame) else read_table(source))
    path = "the frame" if isinstance(source, pd.DataFrame) else str(source)
    if df.empty:
        raise DataError(f"{path}: the table holds no rows")
    if columns == Columns() and not {"stream", "value"} <= set(map(str, df.columns)) and NIXTLA <= set(df.columns):
        columns = Columns("unique_id", "ds", "y")
    if layout == "auto":
        layout = _detect(df, columns)
        if layout == "wide" and columns == Columns() and (found := _long_columns(df)):
            layout, columns = "long", found
    series = {"long": _long, "wide": _wide, "m4": _m4}[layout](df, columns, path)
    if not series:
        raise DataError(f"{path}: no series found")
    for s in series:
        if len(s) < min_length:
            raise DataError(f"{path}: series {s.name!r} has {len(s)} values; at least {min_length} are needed")
    return series


def _without_row_numbers(df: pd.DataFrame) -> pd.DataFrame:
    """The table less a first column of row numbers under no header (``Unnamed: 0``: 0, 1, 2, …
    or 1, 2, 3, …), as pandas' ``to_csv`` and R's ``write.csv`` write them by default."""
    if len(df.columns) < 2 or str(df.columns[0]) != "Unnamed: 0":
        return df
    first = pd.to_numeric(df.iloc[:, 0], errors="coerce").to_numpy()
    counts = np.arange(len(df))
    return df.iloc[:, 1:] if any(np.array_equal(first, counts + k) for k in (0, 1)) else df


def _detect(df: pd.DataFrame, c: Columns) -> Layout:
    cols = [str(x) for x in df.columns]
    if cols[:2] == ["V1", "V2"]:
        return "m4"
    if {c.stream, c.value} <= set(cols):
        return "long"
    return "m4" if _rows_are_series(df) else "wide"


def _rows_are_series(df: pd.DataFrame) -> bool:
    """One row per series under other headers than M4's V1, V2, …: ids first (not times), then
    only numbers, under headers that count positions (0, 1, …; x1, x2, …) or read as dates."""
    body = df.columns[1:]
    if len(body) < 2 or not all(pd.api.types.is_numeric_dtype(df[c]) for c in body):
        return False
    return (_positions(body) or _header_times(body) is not None) and not _is_times(df.iloc[:, 0])  # parsed last: slow


def _positions(headers: pd.Index) -> bool:
    """Whether headers count positions: one prefix (or none), then numbers rising by one."""
    parts = pd.Series([str(h) for h in headers]).str.extract(r"^([A-Za-z_]*)(\d+)$")
    if parts.isna().any().any() or parts[0].nunique() != 1:
        return False
    return bool((parts[1].astype(int).diff().iloc[1:] == 1).all())


def _header_times(headers: pd.Index) -> np.ndarray | None:
    """The headers as times (seconds), where every one reads as a date; None otherwise."""
    names = pd.Series([str(h) for h in headers])
    if names.str.fullmatch(r"\d+").any():  # bare numbers are positions or years, not seconds
        return None
    try:
        return _times(names, "")
    except DataError:
        return None


def _long_columns(df: pd.DataFrame) -> Columns | None:
    """The columns of a long table named otherwise (``symbol,date,price``; ``year,source,
    net_generation``), where they can be told apart: three columns, in any order, one of text
    ids, one of dates, one of numbers. None where that is not so."""
    numbers = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    if len(df.columns) != 3 or len(numbers) != 1:  # checked before any text is parsed as dates: slow
        return None
    dates = [c for c in df.columns if c not in numbers and _is_times(df[c])]
    ids = [c for c in df.columns if c not in numbers and c not in dates]
    if len(numbers) == len(dates) == len(ids) == 1:
        return Columns(str(ids[0]), str(dates[0]), str(numbers[0]))
    return None


def _is_times(values: pd.Series) -> bool:
    """Whether a column is numbers (seconds) or text that reads as dates throughout."""
    try:
        _times(values, "")
    except DataError:
        return False
    return True


def _numeric(values: pd.Series, what: str, path: str) -> np.ndarray:
    num = pd.to_numeric(values, errors="coerce")
    bad = num.isna() & values.notna()
    if bad.any():
        raise DataError(f"{path}: non-numeric value {values[bad].iloc[0]!r} in {what}")
    arr = num.to_numpy(dtype=np.float64)
    if np.isinf(arr).any():
        raise DataError(f"{path}: infinite value in {what}")
    return arr


def _times(values: pd.Series, path: str) -> np.ndarray:
    """Numbers are seconds since the epoch, unless every one is a day written YYYYMMDD (20240131,
    as many exports write dates: as seconds they would be 1970); text is parsed as dates (UTC
    unless it says otherwise)."""
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=np.float64)
        days = _yyyymmdd(numbers)
        return numbers if days is None else days
    try:
        t = pd.to_datetime(_periods_as_dates(values), utc=True, format="mixed")
    except (ValueError, TypeError) as e:
        raise DataError(f"{path}: time column has a value that is neither a number nor a date ({e})") from e
    return (t - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def _periods_as_dates(values: pd.Series) -> pd.Series:
    """Quarters and ISO weeks written as R's tsibble writes them (``1970 Q1``, ``2015 W07``),
    which pandas does not parse, as their first days; other text as it is."""
    if not len(values) or not re.fullmatch(r"\d{4} ?-? ?[QW]\d{1,2}", str(values.iloc[0]).strip()):
        return values  # the first value decides whether the whole column is worth matching
    text = values.astype(str).str.strip()
    if text.str.fullmatch(r"\d{4} ?-? ?Q[1-4]").all():  # as periods: pandas deprecates reading 1970Q1 as a date
        return pd.Series(pd.PeriodIndex(text.str.replace(r"\D*Q", "Q", regex=True), freq="Q").to_timestamp())
    week = text.str.extract(r"^(\d{4}) ?-? ?W(\d{2})$")
    if week.notna().all().all():
        return pd.Series(pd.to_datetime(week[0] + "-W" + week[1] + "-1", format="%G-W%V-%u"))
    return values


def _yyyymmdd(numbers: np.ndarray) -> np.ndarray | None:
    """Seconds since the epoch of whole numbers that all read as days YYYYMMDD of the years
    1800–2199 (as seconds: July to October 1970), else None."""
    if not len(numbers) or not np.all((numbers >= 18_000_101) & (numbers <= 21_991_231) & (numbers % 1 == 0)):
        return None
    days = pd.to_datetime(pd.Series(numbers.astype(np.int64).astype(str)), format="%Y%m%d", errors="coerce", utc=True)
    if days.isna().any():
        return None
    return (days - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def _require(df: pd.DataFrame, names: list[str], path: str, layout: str) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column {missing[0]!r} for the {layout} layout "
            f"(columns: {', '.join(map(str, df.columns))})"
        )


def _long(df: pd.DataFrame, c: Columns, path: str) -> list[Series]:
    _require(df, [c.stream, c.ts, c.value], path, "long")
    values = _numeric(df[c.value], f"column {c.value!r}", path)
    ts = _times(df[c.ts], path)
    frame = pd.DataFrame({"stream": df[c.stream].astype(str), "ts": ts, "value": values}).dropna()
    out = []
    for name, g in frame.groupby("stream", sort=True):
        g = g.sort_values("ts", kind="stable")
        _unique_times(g["ts"].to_numpy(), f"stream {name!r}", path)
        out.append(Series(str(name), g["ts"].to_numpy(), g["value"].to_numpy()))
    return out


def _unique_times(ts: np.ndarray, what: str, path: str) -> None:
    """Sorted times ``ts`` repeat nowhere: a stream's events must move forward in time (a
    repeated one would be dead-lettered when served), so a file that repeats one is refused."""
    repeated = np.flatnonzero(np.diff(ts) == 0)
    if len(repeated):
        t = float(ts[repeated[0]])
        try:
            when = datetime.fromtimestamp(t, UTC).strftime(" (%Y-%m-%d %H:%M:%S UTC)")
        except (ValueError, OverflowError, OSError):  # not seconds since the epoch (milliseconds?)
            when = ""
        raise DataError(f"{path}: {what} has two rows at time {t}{when}; keep one of them")


def _wide(df: pd.DataFrame, c: Columns, path: str) -> list[Series]:
    default = Columns()
    _require(df, [n for n, d in zip(astuple(c), astuple(default), strict=True) if n != d], path, "wide")
    time_col = c.ts if c.ts in df.columns else _time_column(df)
    if c.value != default.value:  # one column named: one stock's Close in its Open/High/Low/Close/Volume file
        df = df[[time_col, c.value]]
    hint = (
        f" [read as a wide table with time column {time_col!r}; to read one of its columns, name "
        f"it with --value-col; for a long table (one row per observation) name its columns with "
        f"--stream-col, --ts-col and --value-col; for one row per series, --layout m4]"
    )
    try:  # (a long table of numeric ids read as wide repeats its times)
        ts = _times(df[time_col], path)
        values = {col: _numeric(df[col], f"column {col!r}", path) for col in df.columns if col != time_col}
        order = np.argsort(ts, kind="stable")
        out = []
        for col, v in values.items():
            v = v[order]
            keep = ~np.isnan(v)
            _unique_times(ts[order][keep], f"column {col!r}", path)
            out.append(Series(str(col), ts[order][keep], v[keep]))
    except DataError as e:
        raise DataError(f"{e}{hint}") from e
    return out


def _time_column(df: pd.DataFrame) -> str:
    """A wide table's time column: its only text column where that one reads as dates
    (``temp,date``), else the first."""
    first, text = df.columns[0], [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    return text[0] if len(text) == 1 and text[0] != first and _is_times(df[text[0]]) else first


def _m4(df: pd.DataFrame, c: Columns, path: str) -> list[Series]:
    """One row per series: its id, then its values in order (empty cells skipped), at the times
    the headers give where they are dates, else at positions 0, 1, …"""
    ids = df.iloc[:, 0].astype(str)
    if ids.duplicated().any():
        raise DataError(f"{path}: series {ids[ids.duplicated()].iloc[0]!r} has two rows; keep one of them")
    body = df.iloc[:, 1:]
    times = None if _positions(body.columns) else _header_times(body.columns)
    out = []
    for i, name in enumerate(ids):
        v = _numeric(body.iloc[i], f"series {name!r}", path)
        known = ~np.isnan(v)
        ts = times[known] if times is not None else np.arange(known.sum(), dtype=np.float64)
        out.append(Series(name, ts, v[known]))
    return out


# Seasonal periods (in observations) worth trying, by the spacing of the timestamps: the day and
# the week for intraday data, the week for daily, the year for weekly, monthly and quarterly data.
# Candidates only: ``forecaster train`` keeps those whose smoothed forecast beats the smoothed
# level alone on the training data (forecaster.training.seasonal), so daily prices end up with none.
_DAY = 86_400.0
_SPACING_SEASONS = (
    (60.0, (60, 1440)),
    (300.0, (12, 288)),
    (600.0, (144, 1008)),
    (900.0, (96, 672)),
    (1800.0, (48, 336)),
    (3600.0, (24, 168)),
    (_DAY, (7,)),
    (7 * _DAY, (52,)),
    (30.44 * _DAY, (12,)),
    (91.31 * _DAY, (4,)),
)
M4_SEASONS = {"H": (24, 168), "D": (7,), "W": (52,), "M": (12,), "Q": (4,)}


def _m4_letter(series: list[Series]) -> str | None:
    """The frequency letter shared by M4 ids (H1, H2, …), or None for other data."""
    letters = {s.name[:1] for s in series}
    if len(letters) == 1 and all(s.name[1:].isdigit() for s in series) and letters <= set(M4_SEASON):
        return letters.pop()
    return None


def _median_spacing(series: list[Series]) -> float:
    """The median step between timestamps, in seconds (0 with no two observations)."""
    return float(np.median(np.concatenate([np.diff(s.ts) for s in series if len(s) > 1] or [np.array([0.0])])))


def _weekdays_only(series: list[Series]) -> bool:
    """Whether (almost) no observation falls on a Saturday or Sunday (UTC): business-daily data,
    whose week is 5 observations, not 7. A few weekend sessions (make-up trading days) are allowed;
    a calendar week puts 2 of 7 days there."""
    days = np.concatenate([s.ts for s in series]) // _DAY
    return float(np.mean((days + 3) % 7 >= 5)) < 0.02  # day 0 of the epoch was a Thursday (3; Monday 0)


def _per_day(series: list[Series], step: float) -> int:
    """The day's period of intraday data ``step`` seconds apart: the median number of observations
    in a (UTC) day of a series, fewer than a whole day's where only trading hours are recorded
    (hourly bars of one session: 7)."""
    counts = np.concatenate([np.unique(s.ts // _DAY, return_counts=True)[1] for s in series])
    return min(int(np.median(counts)), round(_DAY / step))


def _table(step: float) -> tuple[int, ...]:
    """The periods ``_SPACING_SEASONS`` gives timestamps ``step`` seconds apart (within 10%)."""
    return next((p for spacing, p in _SPACING_SEASONS if abs(step - spacing) <= 0.1 * spacing), ())


def _periods(series: list[Series], step: float) -> tuple[int, ...]:
    """The candidate periods for timestamps ``step`` seconds apart: the table's, with the day and
    the week counted in the observations the data really has per day and per week."""
    found = _table(step)
    week_days = 5 if found and step <= 1.1 * _DAY and _weekdays_only(series) else 7
    if found == (7,):
        return (week_days,)
    if not found or step >= _DAY:
        return found
    full, day = round(_DAY / step), _per_day(series, step)
    return tuple(sorted({{full: day, 7 * full: day * week_days}.get(p, p) for p in found if p > 1}))


def seasons_of(series: list[Series]) -> tuple[int, ...]:
    """The candidate seasonal periods for a model of this data (``forecaster train`` without
    ``--season``): M4 ids by their letter (hourly: 24 and 168), else by the median spacing of
    the timestamps (within 10%: hourly → 24 and 168, half-hourly → 48 and 336, daily → 7,
    monthly → 12, …; none for yearly or unusual spacings). Days and weeks are counted in
    observations the data has: business days (almost no weekend observations) make a week of 5 days,
    trading hours a day of the observations in one (hourly bars of a 7-hour session: 7 and 35).
    A period longer than half the median series is left out: too few cycles to learn from."""
    letter = _m4_letter(series)
    found = M4_SEASONS.get(letter, ()) if letter is not None else _periods(series, _median_spacing(series))
    half = float(np.median([len(s) for s in series])) / 2
    return tuple(m for m in found if m <= half)


def season_of(series: list[Series]) -> int:
    """The seasonal period of MASE and seasonal naive, as M4 chose them: M4 ids by their letter,
    else by the timestamps' spacing: the day for intraday data (hourly 24, half-hourly 48,
    minutes 1440; the observations in a day where only trading hours are recorded), the year for
    monthly (12) and quarterly (4) data, 1 for daily and weekly data (whose weekly and yearly
    cycles M4 left to the methods)."""
    letter = _m4_letter(series)
    if letter is not None:
        return M4_SEASON[letter]
    step = _median_spacing(series)
    periods = _table(step)
    if not periods or _DAY <= step <= 8 * _DAY:
        return 1
    return _per_day(series, step) if step < _DAY else periods[0]


def fingerprint(series: list[Series]) -> str:
    """A hash of names, times and values: which data a checkpoint was trained on."""
    h = hashlib.sha256()
    for s in series:
        h.update(s.name.encode())
        h.update(np.ascontiguousarray(s.ts, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(s.values, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def as_batches(series: list[Series]) -> Iterator[list[dict]]:
    """Events in the streaming order: batch i holds observation i of every series that has one."""
    longest = max(len(s) for s in series)
    for i in range(longest):
        yield [{"stream": s.name, "ts": float(s.ts[i]), "value": float(s.values[i])} for s in series if i < len(s)]
