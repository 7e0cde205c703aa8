"""The columnar paths: update_arrays and update_frame give update's numbers, validation and
atomicity, without an object per event; the Forecasts they return read as a list of Forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import forecaster
from forecaster import Forecast, InvalidEventError
from tests.conftest import random_walks
from tests.unit.engine.test_forecaster import build, points

N, T = 5, 12


def columns(step: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    values = random_walks(N, T, seed=1)[:, step]
    return [f"s{i}" for i in range(N)], np.full(N, 1.7e9 + 3600.0 * step), values


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_update_arrays_gives_the_numbers_of_update(family: str) -> None:
    by_dict, by_array = build(family), build(family)
    for step in range(T):
        streams, ts, values = columns(step)
        out = by_dict.update([{"stream": s, "ts": t, "value": v} for s, t, v in zip(streams, ts, values, strict=True)])
        res = by_array.update_arrays(streams, ts, values)
        assert res.point.shape == (N, 4) and res.quantiles.shape == (N, 3, 4)
        np.testing.assert_array_equal(points(out), np.concatenate([res.point[:, None], res.quantiles], axis=1))


def test_update_frame_takes_both_column_conventions_and_returns_a_tidy_frame() -> None:
    ours, nixtla, reference = build("gru"), build("gru"), build("gru")
    for step in range(3):
        streams, ts, values = columns(step)
        frame = pd.DataFrame({"stream": streams, "ts": ts, "value": values})
        out = ours.update_frame(frame)
        dates = pd.to_datetime(ts, unit="s")  # naive datetimes are UTC
        other = nixtla.update_frame(pd.DataFrame({"unique_id": streams, "ds": dates, "y": values}))
        want = reference.update_arrays(streams, ts, values)
    assert list(out.columns) == ["stream", "ts", "step", "point", "0.1", "0.5", "0.9"]
    assert len(out) == N * 4 and out["step"].tolist() == [1, 2, 3, 4] * N
    assert out["stream"].tolist() == [s for s in streams for _ in range(4)]
    np.testing.assert_array_equal(out["point"].to_numpy(), want.point.reshape(-1))
    np.testing.assert_array_equal(out["0.9"].to_numpy(), want.quantiles[:, 2].reshape(-1))
    np.testing.assert_array_equal(other["point"].to_numpy(), out["point"].to_numpy())
    assert other["ts"].iloc[0] == dates[0]  # ts as given in the input


def test_numeric_ids_of_a_nixtla_frame_become_text() -> None:
    fc = build("rnn")
    out = fc.update_frame(pd.DataFrame({"unique_id": [7, 8], "ds": [1.0, 1.0], "y": [1.0, 2.0]}))
    assert fc.streams == ["7", "8"] and out["stream"].tolist()[:1] == [7]


@pytest.mark.parametrize(
    ("streams", "ts", "values", "index", "reason"),
    [
        (["a", "b", "c"], [1.0, 2.0, 3.0], [1.0, np.nan, 2.0], 1, "non_finite"),
        (["a", "b", "c"], [1.0, np.inf, 3.0], [1.0, 1.0, 2.0], 1, "non_finite"),
        (["a", "a", "c"], [2.0, 2.0, 3.0], [1.0, 1.0, 2.0], 1, "duplicate"),
        (["a", "b", "old"], [1.0, 2.0, 0.5], [1.0, 1.0, 2.0], 2, "out_of_order"),
        (["a", "", "c"], [1.0, 2.0, 3.0], [1.0, 1.0, 2.0], 1, "invalid_schema"),
        (["a", 5, "c"], [1.0, 2.0, 3.0], [1.0, 1.0, 2.0], 1, "invalid_schema"),
        (["a", "b", "c"], [1.0, 2.0, 3.0], [True, False, True], 0, "invalid_schema"),
        (["a", "b", "c"], [1.0, 2.0, 3.0], [1.0, "x", 2.0], 1, "invalid_schema"),
        (["a", "b"], [1.0, 2.0, 3.0], [1.0, 1.0, 2.0], 0, "invalid_schema"),
    ],
)
def test_a_bad_row_raises_value_error_naming_it_and_changes_nothing(
    streams: list, ts: list, values: list, index: int, reason: str
) -> None:
    fc = build("lstm")
    fc.update_arrays(["old"], [1.0], [5.0])
    before = fc.snapshot()
    with pytest.raises(InvalidEventError) as e:
        fc.update_arrays(streams, ts, values)
    assert isinstance(e.value, ValueError) and (e.value.index, e.value.reason) == (index, reason)
    assert fc.snapshot() == before and fc.streams == ["old"]


def test_a_frame_without_the_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="stream, ts, value"):
        build("lstm").update_frame(pd.DataFrame({"id": ["a"], "time": [1.0], "price": [1.0]}))


def test_forecasts_read_as_a_list_of_forecast_messages() -> None:
    fc, twin = build("lstm"), build("lstm")
    events = [{"stream": "a", "ts": 1.0, "value": 3.0}, {"stream": "b", "ts": "2024-01-02T14:30:00Z", "value": 4.0}]
    out = fc.update(events)
    assert isinstance(out, forecaster.Forecasts) and len(out) == 2
    assert [f.stream for f in out] == ["a", "b"] and out[-1].ts == 1704205800.0 and out[1].value == 4.0
    assert isinstance(out[0], Forecast) and out[0] == Forecast.model_validate(out[0].model_dump())
    assert out[:1] == [out[0]] and out == list(out) and out != [] and out != out[:1]

    def fields(fs: list[Forecast]) -> list[dict]:
        return [f.model_dump(exclude={"produced_at"}) for f in fs]

    assert fields(out) == fields(twin.update(events))
    assert fc.update([]) == [] and len(fc.update([])) == 0
    with pytest.raises(IndexError):
        out[2]


def test_a_missing_stream_id_in_a_frame_is_refused_not_renamed() -> None:
    fc = build("rnn")
    with pytest.raises(InvalidEventError) as e:
        fc.update_frame(pd.DataFrame({"stream": ["a", None], "ts": [1.0, 1.0], "value": [1.0, 2.0]}))
    assert (e.value.index, e.value.reason) == (1, "invalid_schema") and fc.streams == []
