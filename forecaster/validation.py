"""Input validation: every event is checked before any state changes.

Each rejection carries one of the dead-letter reasons of DESIGN.md, so that the library's
``ValueError`` and the worker's dead-letter topic speak the same language.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from pydantic import TypeAdapter, ValidationError

from forecaster.errors import InvalidEventError
from forecaster.schemas import MAX_STREAM_ID, Observation

# The last two are the worker's alone: a Kafka record whose key is not its stream id, and a
# record batch the consumer cannot read (a codec it lacks, a corrupt batch).
REASONS = (
    "invalid_json",
    "invalid_schema",
    "non_finite",
    "out_of_order",
    "duplicate",
    "key_mismatch",
    "undecodable",
)

_ONE = TypeAdapter(Observation)
_NUMBER = (float, int)  # exact types: bool is an int subclass and is no number here


class Rejected(NamedTuple):
    """An event that failed validation: its index in the batch, dead-letter reason and detail."""

    index: int
    reason: str
    detail: str


class Batch(NamedTuple):
    """The valid events of a batch as columns: their indices in the batch, stream ids, event
    times (epoch seconds) and values, float64."""

    index: list[int]
    streams: list[str]
    ts: np.ndarray
    values: np.ndarray


def _reason(error_type: str) -> str:
    return "non_finite" if error_type == "finite_number" else "invalid_schema"


def _fast(event: Any) -> tuple[str, float, float] | None:
    """The common event checked by type alone (a microsecond): a dict with a str stream and
    finite float or int ts and value. None: ask the model."""
    if type(event) is not dict:
        return None
    stream, ts, value = event.get("stream"), event.get("ts"), event.get("value")
    if type(stream) is not str or not 0 < len(stream) <= MAX_STREAM_ID:
        return None
    if type(ts) not in _NUMBER or type(value) not in _NUMBER:
        return None
    try:
        ts, value = float(ts), float(value)
    except OverflowError:  # an int beyond float range
        return None
    return (stream, ts, value) if math.isfinite(ts) and math.isfinite(value) else None


def _parse(i: int, event: Any) -> tuple[str, float, float] | Rejected:
    """One event that the fast check did not pass, through the ``Observation`` model: ISO times,
    ``Observation`` objects, and the words of every rejection."""
    try:
        ob = event if isinstance(event, Observation) else _ONE.validate_python(event)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        return Rejected(i, _reason(first["type"]), f"{where}: {first['msg']}")
    return ob.stream, ob.ts, ob.value


def _in_order(
    rows: list[tuple[int, str, float, float]], last_ts: Mapping[str, float]
) -> tuple[list[tuple[int, str, float, float]], list[Rejected]]:
    """Events whose ts is after their stream's last one (stored, or earlier in the batch)."""
    kept, rejected, seen = [], [], {}
    for row in rows:
        i, stream, ts, _ = row
        prev = seen.get(stream, last_ts.get(stream))
        if prev is not None and ts <= prev:
            reason = "duplicate" if ts == prev else "out_of_order"
            rejected.append(Rejected(i, reason, f"ts {ts} is not after stream {stream[:64]!r}'s last ts {prev}"))
            continue
        seen[stream] = ts
        kept.append(row)
    return kept, rejected


def _columns(rows: list[tuple[int, str, float, float]]) -> Batch:
    if not rows:
        return Batch([], [], np.empty(0), np.empty(0))
    index, streams, ts, values = zip(*rows, strict=True)
    return Batch(list(index), list(streams), np.array(ts, dtype=np.float64), np.array(values, dtype=np.float64))


def validate_each(events: Sequence[Any], last_ts: Mapping[str, float]) -> tuple[Batch, list[Rejected]]:
    """Split a batch into its valid events (as columns) and the rejected ones, instead of raising:
    what a worker needs to route bad records to the dead-letter topic and keep going."""
    rows: list[tuple[int, str, float, float]] = []
    rejected: list[Rejected] = []
    for i, e in enumerate(events):
        parsed = _fast(e) or _parse(i, e)
        if isinstance(parsed, Rejected):
            rejected.append(parsed)
        else:
            rows.append((i, *parsed))
    rows, late = _in_order(rows, last_ts)
    return _columns(rows), sorted(rejected + late)


def validate_batch(events: Sequence[Mapping[str, Any] | Observation], last_ts: Mapping[str, float]) -> Batch:
    """Validate a batch against the streams' last event times; raise on the first bad event.

    Within the batch, events of one stream must have increasing ``ts`` too. Raises
    ``InvalidEventError`` (a ``ValueError``) naming the event's index and reason.
    """
    if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Iterable):
        raise InvalidEventError(0, "invalid_schema", f"update() takes a list of events, not {type(events).__name__}")
    batch, rejected = validate_each(list(events), last_ts)
    if rejected:
        raise InvalidEventError(*rejected[0])
    return batch


def _numbers(column: Any, name: str) -> np.ndarray | None:
    """A numeric or datetime64 column as float64 (datetimes: epoch seconds, naive = UTC; NaT:
    NaN); None for text or objects, which go one by one."""
    a = np.asarray(column)
    if a.ndim != 1:
        raise InvalidEventError(0, "invalid_schema", f"{name} must be one-dimensional, not of shape {a.shape}")
    if a.dtype.kind == "b":
        raise InvalidEventError(0, "invalid_schema", f"{name}: booleans are not numbers")
    if a.dtype.kind in "iuf":
        return a.astype(np.float64)
    if a.dtype.kind == "M":
        seconds = a.astype("datetime64[ns]").astype(np.int64) / 1e9
        return np.where(np.isnat(a), np.nan, seconds)
    return None


def validate_columns(
    streams: Sequence[Any], ts: Sequence[Any], values: Sequence[Any], last_ts: Mapping[str, float]
) -> Batch:
    """``validate_batch`` for columns of equal length N (lists, numpy arrays, pandas columns):
    numeric columns are checked whole in numpy, and the first bad row raises
    ``InvalidEventError`` naming its index and reason."""
    n = len(streams)
    if len(ts) != n or len(values) != n:
        raise InvalidEventError(
            0, "invalid_schema", f"streams, ts and values differ in length ({n}, {len(ts)}, {len(values)})"
        )
    t, v = _numbers(ts, "ts"), _numbers(values, "value")
    if t is None or v is None:  # text or objects: each event through the model
        events = [{"stream": s, "ts": a, "value": b} for s, a, b in zip(streams, ts, values, strict=True)]
        return validate_batch(events, last_ts)
    ids = [s if type(s) is str else str(s) if isinstance(s, str) else s for s in streams]  # numpy's str_ → str
    bad = [i for i, s in enumerate(ids) if type(s) is not str or not 0 < len(s) <= MAX_STREAM_ID]
    errors = (
        [
            Rejected(
                bad[0], "invalid_schema", f"stream: {ids[bad[0]]!r} is not a string of 1 to {MAX_STREAM_ID} characters"
            )
        ]
        if bad
        else []
    )
    for name, column in (("ts", t), ("value", v)):
        infinite = np.flatnonzero(~np.isfinite(column))
        if infinite.size:
            errors.append(
                Rejected(int(infinite[0]), "non_finite", f"{name}: {column[infinite[0]]} is not a finite number")
            )
    if errors:
        raise InvalidEventError(*min(errors))
    rows, late = _in_order(list(zip(range(n), ids, t.tolist(), v.tolist(), strict=True)), last_ts)
    if late:
        raise InvalidEventError(*late[0])
    return Batch(list(range(n)), ids, t, v)
