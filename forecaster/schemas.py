"""The message contracts (DESIGN.md, "Messages"): what comes in and what goes out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

MAX_STREAM_ID = 256


def _epoch_seconds(v: Any) -> Any:
    """ISO-8601 text -> seconds since the epoch (naive times are UTC); numbers pass to strict checks."""
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"ts {v[:64]!r} is neither a number nor an ISO-8601 time") from None
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    return v


FiniteNumber = Annotated[float, Strict(), Field(allow_inf_nan=False)]  # bools, text and null rejected


class Observation(BaseModel):
    """One input event: topic ``prices``, key = stream id. Unknown fields are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    stream: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_STREAM_ID)]
    ts: Annotated[FiniteNumber, BeforeValidator(_epoch_seconds)]
    value: FiniteNumber


class Source(BaseModel):
    """Where the observation a forecast follows was read from."""

    topic: str
    partition: int
    offset: int


class Forecast(BaseModel):
    """One output message: topic ``forecasts``, key = stream id.

    ``ts`` is the event time of the observation the forecast follows; ``point[k]`` forecasts the
    value k+1 observations later; ``quantiles`` maps each level (as text, e.g. "0.1") to H values.
    ``value`` is that observation's value (an addition to DESIGN's message: subscribers see what
    each forecast follows without reading the input topic).
    """

    stream: str
    ts: float
    value: float | None = None
    model: str
    model_version: str
    horizon: int
    point: list[float]
    quantiles: dict[str, list[float]]
    source: Source | None = None
    produced_at: float

    @classmethod
    def trusted(
        cls,
        stream: str,
        ts: float,
        model: str,
        model_version: str,
        point: list[float],
        quantiles: dict[str, list[float]],
        produced_at: float,
        source: Source | None = None,
        value: float | None = None,
    ) -> Forecast:
        """Build from values the engine produced, without validation: ``model_construct`` minus
        its per-field bookkeeping, which costs more than the whole batched model step per event."""
        f = cls.__new__(cls)
        fields = {
            "stream": stream,
            "ts": ts,
            "value": value,
            "model": model,
            "model_version": model_version,
            "horizon": len(point),
            "point": point,
            "quantiles": quantiles,
            "source": source,
            "produced_at": produced_at,
        }
        object.__setattr__(f, "__dict__", fields)
        object.__setattr__(f, "__pydantic_fields_set__", set(_FORECAST_FIELDS))
        object.__setattr__(f, "__pydantic_extra__", None)
        object.__setattr__(f, "__pydantic_private__", None)
        return f


_FORECAST_FIELDS = frozenset(Forecast.model_fields)
