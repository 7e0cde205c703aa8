"""Tensors + JSON metadata <-> bytes, loaded with ``weights_only=True`` so nothing executes."""

from __future__ import annotations

import io
import json
from typing import Any

import torch
from torch import Tensor


def dumps(kind: str, meta: dict[str, Any], tensors: dict[str, Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save({"kind": kind, "meta": json.dumps(meta), "tensors": tensors}, buf)
    return buf.getvalue()


def loads(blob: bytes, kind: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Inverse of ``dumps``; ``ValueError`` for anything that is not a ``kind`` file."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ValueError(f"a {kind} must be bytes, got {type(blob).__name__}")
    try:
        obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for foreign or truncated input
        raise ValueError(f"not a readable {kind} ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(obj, dict) or obj.get("kind") != kind or not isinstance(obj.get("meta"), str):
        raise ValueError(f"not a {kind}: the data has another layout")
    tensors = obj.get("tensors")
    if not isinstance(tensors, dict) or not all(isinstance(t, Tensor) for t in tensors.values()):
        raise ValueError(f"corrupt {kind}: tensors missing")
    try:
        meta = json.loads(obj["meta"])
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt {kind}: metadata is not JSON ({e})") from e
    return meta, tensors
