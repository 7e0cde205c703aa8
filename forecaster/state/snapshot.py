"""Snapshot format: the state rows of some streams, their ids and last event times, the streams
a merge must drop (a delta's evictions), and the identity of the model it belongs to (state of
one model is meaningless to another)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from forecaster.errors import SnapshotError
from forecaster.state import tensorfile

KIND = "forecaster-snapshot/1"


def encode_snapshot(
    model: dict[str, Any],
    streams: list[str],
    last_ts: list[float],
    rows: dict[str, Tensor],
    dropped: list[str] | None = None,
) -> bytes:
    """``streams`` in LRU order; ``rows[k]`` (N, …) holds entry k of stream i at row i."""
    tensors = {f"state.{k}": v for k, v in rows.items()}
    tensors["last_ts"] = torch.tensor(last_ts, dtype=torch.float64)
    return tensorfile.dumps(KIND, {"model": model, "streams": streams, "dropped": dropped or []}, tensors)


def decode_snapshot(
    blob: bytes, model: dict[str, Any], spec: dict[str, tuple[tuple[int, ...], torch.dtype]]
) -> tuple[list[str], list[float], dict[str, Tensor], list[str]]:
    """Check the blob against ``model`` (identity) and ``spec`` (per-stream shapes) and unpack it:
    streams, last times, rows, dropped streams."""
    try:
        meta, tensors = tensorfile.loads(blob, KIND)
    except ValueError as e:
        raise SnapshotError(str(e)) from e
    theirs = meta.get("model", {})
    for key in model:  # most telling first: family, horizon, …, weights version
        if theirs.get(key) != model[key]:
            raise SnapshotError(
                f"snapshot belongs to another model: {key} is {theirs.get(key)!r}, this model has {model[key]!r}"
            )
    streams, dropped = meta.get("streams"), meta.get("dropped", [])
    for name, ids in (("stream", streams), ("dropped stream", dropped)):
        if not isinstance(ids, list) or not all(isinstance(s, str) for s in ids):
            raise SnapshotError(f"corrupt snapshot: {name} list missing")
    n = len(streams)
    rows = {}
    for k, (shape, dtype) in spec.items():
        t = tensors.get(f"state.{k}")
        if t is None or tuple(t.shape) != (n, *shape) or t.dtype != dtype:
            got = None if t is None else (tuple(t.shape), t.dtype)
            raise SnapshotError(f"corrupt snapshot: state {k!r} should be {((n, *shape), dtype)}, got {got}")
        rows[k] = t
    last_ts = tensors.get("last_ts")
    if last_ts is None or tuple(last_ts.shape) != (n,):
        raise SnapshotError("corrupt snapshot: last_ts missing")
    return streams, last_ts.tolist(), rows, dropped
