"""Input validation: every event is checked before any state changes.

Each rejection carries one of the dead-letter reasons of DESIGN.md, so that the library's
``ValueError`` and the worker's dead-letter topic speak the same language.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from forecaster.errors import InvalidEventError
from forecaster.schemas import Observation

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

_BATCH = TypeAdapter(list[Observation])


def _reason(error_type: str) -> str:
    return "non_finite" if error_type == "finite_number" else "invalid_schema"


def validate_batch(
    events: Sequence[Mapping[str, Any] | Observation], last_ts: Mapping[str, float]
) -> list[Observation]:
    """Validate a batch against the streams' last event times; raise on the first bad event.

    Within the batch, events of one stream must have increasing ``ts`` too. Raises
    ``InvalidEventError`` (a ``ValueError``) naming the event's index and reason.
    """
    if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Iterable):
        raise InvalidEventError(0, "invalid_schema", f"update() takes a list of events, not {type(events).__name__}")
    try:
        batch = _BATCH.validate_python(list(events))
    except ValidationError as e:
        first = min(e.errors(), key=lambda err: err["loc"][0] if err["loc"] else 0)
        loc = first["loc"]
        where = ".".join(str(p) for p in loc[1:]) or "event"
        raise InvalidEventError(int(loc[0]) if loc else 0, _reason(first["type"]), f"{where}: {first['msg']}") from None
    seen: dict[str, float] = {}
    for i, ob in enumerate(batch):
        prev = seen.get(ob.stream, last_ts.get(ob.stream))
        if prev is not None and ob.ts <= prev:
            reason = "duplicate" if ob.ts == prev else "out_of_order"
            raise InvalidEventError(i, reason, f"ts {ob.ts} is not after stream {ob.stream[:64]!r}'s last ts {prev}")
        seen[ob.stream] = ob.ts
    return batch


class Rejected(NamedTuple):
    """An event that failed validation: its index in the batch, dead-letter reason and detail."""

    index: int
    reason: str
    detail: str


_ONE = TypeAdapter(Observation)


def validate_each(
    events: Sequence[Any], last_ts: Mapping[str, float]
) -> tuple[list[tuple[int, Observation]], list[Rejected]]:
    """Split a batch into valid events (with their index) and rejected ones, instead of raising:
    what a worker needs to route bad records to the dead-letter topic and keep going."""
    try:
        parsed: list[Observation | Rejected] = list(_BATCH.validate_python(list(events)))
    except ValidationError:  # something is bad: find it record by record
        parsed = []
        for i, e in enumerate(events):
            try:
                parsed.append(_ONE.validate_python(e))
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "event"
                parsed.append(Rejected(i, _reason(first["type"]), f"{where}: {first['msg']}"))
    valid, rejected, seen = [], [], {}
    for i, ob in enumerate(parsed):
        if isinstance(ob, Rejected):
            rejected.append(ob)
            continue
        prev = seen.get(ob.stream, last_ts.get(ob.stream))
        if prev is not None and ob.ts <= prev:
            reason = "duplicate" if ob.ts == prev else "out_of_order"
            rejected.append(Rejected(i, reason, f"ts {ob.ts} is not after the stream's last ts {prev}"))
            continue
        seen[ob.stream] = ob.ts
        valid.append((i, ob))
    return valid, rejected
