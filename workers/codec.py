"""Bytes <-> messages at the Kafka boundary: decode input records, encode forecasts and dead
letters (DESIGN.md, "Messages"). JSON through orjson; forecasts are encoded straight from the
engine's arrays, without per-event pydantic objects."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson


class Rejected(Exception):
    """A record refused before validation; ``reason`` is its dead-letter reason."""

    reason = "invalid_schema"


class Undecodable(Rejected):
    """A record value that is not JSON text."""

    reason = "invalid_json"


class KeyMismatch(Rejected):
    """A record whose Kafka key is not its stream id: the stream's events could then sit on two
    partitions, and its state on two workers, out of order."""

    reason = "key_mismatch"


def check_key(key: bytes | None, event: Any) -> None:
    """Raise ``KeyMismatch`` if ``key`` is set and differs from the event's stream id. Unkeyed
    records pass (e.g. a one-partition topic); a missing or malformed id is the validator's to report."""
    stream = event.get("stream") if key is not None and isinstance(event, dict) else None
    if isinstance(stream, str) and key != stream.encode(errors="surrogatepass"):
        shown = key[:64].decode(errors="replace")
        raise KeyMismatch(f"the record's key {shown!r} is not its stream id {stream[:64]!r}")


def decode(value: bytes | None) -> Any:
    if value is None:
        raise Undecodable("the record has no value")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as e:
        try:  # Python's json.dumps writes NaN/Infinity: parse them so they are reported as non_finite
            return json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
            raise Undecodable(str(e)) from None


def events_of(records: Sequence[Any]) -> tuple[list[Any], list[tuple[int, Rejected]]]:
    """Each Kafka record's event, decoded and its key checked: None where that failed (a
    placeholder the validator rejects again), and those failures by record index."""
    events, failed = [], []
    for i, r in enumerate(records):
        try:
            event = decode(r.value)
            check_key(r.key, event)
        except Rejected as e:
            event = None
            failed.append((i, e))
        events.append(event)
    return events, failed


def source(topic: str, partition: int, offset: int) -> dict[str, Any]:
    return {"topic": topic, "partition": partition, "offset": offset}


def forecast(
    stream: str,
    ts: float,
    value: float,
    model: str,
    version: str,
    rows: np.ndarray,
    quantile_keys: list[str],
    src: dict[str, Any],
    produced_at: float,
) -> bytes:
    """One forecast message from the engine's (1 + Q, H) rows. float32 rows print in their own
    shortest form (185.6423, not 185.64230346679688): the model's precision, 40% fewer bytes."""
    return orjson.dumps(
        {
            "stream": stream,
            "ts": ts,
            "value": value,
            "model": model,
            "model_version": version,
            "horizon": rows.shape[1],
            "point": rows[0],
            "quantiles": dict(zip(quantile_keys, rows[1:], strict=True)),
            "source": src,
            "produced_at": produced_at,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


RAW_LIMIT = 64 << 10  # characters (text) or bytes (base64) of the original kept in a dead letter


def dead_letter(
    reason: str, detail: str, raw: bytes | None, src: dict[str, Any], last_offset: int | None = None
) -> bytes:
    """``raw`` is kept as text when it is UTF-8, else base64 (flagged by ``raw_encoding``). Only
    its first ``RAW_LIMIT`` characters or bytes are kept (``raw_size``: the original's bytes):
    a 1 MB record must not make a dead letter over the producer's request limit, which would
    stop the worker on every replay of it. ``last_offset``: a dead letter that stands for the
    offsets from ``src``'s to this one (a record batch that cannot be read; ``raw`` is empty)."""
    raw = raw or b""
    msg: dict[str, Any] = {"error": reason, "detail": detail, "source": src}
    if last_offset is not None:
        msg["last_offset"] = last_offset
    try:
        msg["raw"] = raw.decode("utf-8")[:RAW_LIMIT]
    except UnicodeDecodeError:
        msg["raw"], msg["raw_encoding"] = base64.b64encode(raw[:RAW_LIMIT]).decode("ascii"), "base64"
    if len(raw) > RAW_LIMIT:
        msg["raw_size"] = len(raw)
    return orjson.dumps(msg)
