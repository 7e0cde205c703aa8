"""Input validation: every event is checked before any state changes.

Each rejection carries one of the dead-letter reasons of DESIGN.md, so that the library's
``ValueError`` and the worker's dead-letter topic speak the same language.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from forecaster.errors import InvalidEventError
from forecaster.schemas import Observation

REASONS = ("invalid_json", "invalid_schema", "non_finite", "out_of_order", "duplicate")

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
    if isinstance(events, (str, bytes, Mapping)):
        raise InvalidEventError(0, "invalid_schema", "update() takes a list of events, not a single event")
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
