"""Hostile input, fuzzed (hypothesis): the worker's decode → validate path never raises anything
but a routed rejection, dead letters stay small and well-formed, and ``update`` raises
``ValueError`` and changes no state."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forecaster
from forecaster.validation import REASONS, validate_each
from tests.hostile import events, records, values
from workers import codec


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=8))
def test_decode_and_validate_route_every_record(raws: list[bytes]) -> None:
    decoded, undecodable = [], 0
    for raw in raws:
        try:
            decoded.append(codec.decode(raw))
        except codec.Undecodable:
            decoded.append(None)
            undecodable += 1
    valid, rejected = validate_each(decoded, {})
    assert len(valid.index) + len(rejected) == len(raws)
    assert all(r.reason in REASONS and r.detail for r in rejected)
    assert len(rejected) >= undecodable
    for stream, ts, value in zip(valid.streams, valid.ts, valid.values, strict=True):
        assert 1 <= len(stream) <= 256 and math.isfinite(ts) and math.isfinite(value)
    for raw, rej in zip(raws, rejected, strict=False):
        letter = orjson.loads(codec.dead_letter(rej.reason, rej.detail, raw, codec.source("t", 0, 1)))
        assert letter["error"] == rej.reason and len(letter["raw"]) <= 4 * codec.RAW_LIMIT
        assert letter.get("raw_size", len(raw)) == len(raw)


@settings(max_examples=200, deadline=None)
@given(st.lists(events | values, min_size=1, max_size=5), st.integers(0, 5))
def test_update_raises_value_error_and_changes_no_state(bad: list, at: int) -> None:
    fc = forecaster.build("gru", seed=0, device="cpu", d_model=8, n_layer=1, horizon=2)
    fc.update([{"stream": "a", "ts": 100.0, "value": 1.0}])
    before = fc.snapshot()
    batch = [{"stream": "b", "ts": 200.0, "value": 2.0}, *bad]
    batch.insert(min(at, len(batch)), {"stream": "a", "ts": 300.0, "value": 3.0})
    try:
        out = fc.update(batch)
    except ValueError:
        assert fc.snapshot() == before and fc.streams == ["a"]
    else:  # the generator made valid events only: one forecast each
        assert len(out) == len(batch)


def test_update_of_something_that_is_not_a_list_is_a_value_error() -> None:
    fc = forecaster.build("gru", seed=0, device="cpu", d_model=8, n_layer=1, horizon=2)
    for bad in (None, 5, "abc", b"abc", {"stream": "a", "ts": 1.0, "value": 1.0}, [None], [[1, 2]]):
        try:
            fc.update(bad)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"update({bad!r}) did not raise ValueError")
    assert fc.streams == []


@pytest.mark.parametrize(
    ("key", "event", "refused"),
    [
        (b"AAPL", {"stream": "AAPL"}, False),
        (None, {"stream": "AAPL"}, False),  # unkeyed: accepted (e.g. a one-partition topic)
        (b"AAPL", {"stream": "MSFT"}, True),
        ("\u2603".encode(), {"stream": "\u2603"}, False),
        (b"AAPL", {"stream": 5}, False),  # not a stream id: the validator's to reject
        (b"AAPL", [1, 2], False),
    ],
)
def test_a_record_keyed_by_another_stream_is_refused(key: bytes | None, event: object, refused: bool) -> None:
    try:
        codec.check_key(key, event)
    except codec.KeyMismatch as e:
        assert refused and e.reason == "key_mismatch" and "MSFT" in str(e)
    else:
        assert not refused
