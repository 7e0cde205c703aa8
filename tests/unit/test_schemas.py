from __future__ import annotations

from forecaster.schemas import Forecast, Source

FIELDS = {
    "stream": "AAPL",
    "ts": 1.5,
    "value": 185.64,
    "model": "lstm",
    "model_version": "abc",
    "point": [1.0, 2.0],
    "quantiles": {"0.1": [0.5, 1.5], "0.9": [1.5, 2.5]},
    "produced_at": 2.5,
}


def test_trusted_forecast_equals_a_validated_one() -> None:
    """``trusted`` skips validation via pydantic internals: this catches a pydantic change."""
    for source in (None, Source(topic="prices", partition=3, offset=7)):
        fast = Forecast.trusted(**FIELDS, source=source)
        checked = Forecast(**FIELDS, horizon=2, source=source)
        assert fast == checked
        assert fast.model_dump_json() == checked.model_dump_json()
        assert fast.model_fields_set == checked.model_fields_set
        assert fast.model_copy(update={"ts": 3.0}).ts == 3.0


def test_validate_each_routes_bad_events_and_keeps_the_rest() -> None:
    from forecaster.validation import validate_each

    events = [
        {"stream": "a", "ts": 1.0, "value": 1.0},
        {"stream": "a", "ts": 1.0, "value": 2.0},
        {"stream": "b", "ts": 1.0, "value": float("nan")},
        [1, 2],
        {"stream": "c", "ts": 0.5, "value": 3.0},
        {"stream": "a", "ts": 2.0, "value": 3.0},
    ]
    valid, rejected = validate_each(events, {"c": 1.0})
    assert valid.index == [0, 5] and valid.streams == ["a", "a"] and valid.ts.tolist() == [1.0, 2.0]
    assert [(r.index, r.reason) for r in rejected] == [
        (1, "duplicate"),
        (2, "non_finite"),
        (3, "invalid_schema"),
        (4, "out_of_order"),
    ]
