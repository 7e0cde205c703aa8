"""Exceptions of the library. Misuse and bad input are ``ValueError`` subclasses."""

from __future__ import annotations


class ForecasterError(Exception):
    """Root of every error this package raises on purpose."""


class InvalidEventError(ForecasterError, ValueError):
    """An input event was rejected; nothing was changed. ``reason`` is the dead-letter reason."""

    def __init__(self, index: int, reason: str, detail: str) -> None:
        super().__init__(f"event {index}: {reason}: {detail}")
        self.index, self.reason, self.detail = index, reason, detail


class CheckpointError(ForecasterError, ValueError):
    """A checkpoint directory is missing, corrupt or of an unknown format."""


class SnapshotError(ForecasterError, ValueError):
    """A state snapshot is corrupt, foreign, or belongs to another model."""
