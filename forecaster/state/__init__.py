"""Durability of per-stream state: the snapshot byte format."""

from forecaster.state.snapshot import decode_snapshot, encode_snapshot

__all__ = ["decode_snapshot", "encode_snapshot"]
