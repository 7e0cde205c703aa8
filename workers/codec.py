"""Bytes <-> messages at the Kafka boundary: decode input records, encode forecasts and dead
letters (DESIGN.md, "Messages"). JSON through orjson; forecasts are encoded straight from the
engine's arrays, without per-event pydantic objects."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import orjson


class Undecodable(Exception):
    """A record value that is not JSON text."""


def decode(value: bytes | None) -> Any:
    if value is None:
        raise Undecodable("the record has no value")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as e:
        try:  # Python's json.dumps writes NaN/Infinity: parse them so they are reported as non_finite
            return json.loads(value)
        except (ValueError, UnicodeDecodeError):
            raise Undecodable(str(e)) from None


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


def dead_letter(reason: str, detail: str, raw: bytes | None, src: dict[str, Any]) -> bytes:
    """``raw`` is kept as text when it is UTF-8, else base64 (flagged by ``raw_encoding``)."""
    msg: dict[str, Any] = {"error": reason, "detail": detail, "source": src}
    try:
        msg["raw"] = (raw or b"").decode("utf-8")
    except UnicodeDecodeError:
        msg["raw"], msg["raw_encoding"] = base64.b64encode(raw).decode("ascii"), "base64"
    return orjson.dumps(msg)
