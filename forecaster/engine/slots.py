"""Stream id -> slot in the state pool, with per-stream host metadata and LRU order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

_FREE = -1  # the rank of a slot no stream owns


class SlotTable:
    """Which slot each stream owns, its last event time, and when it was last used.

    When and in what order streams were used is kept in arrays indexed by slot, written for a
    whole batch at once: per event only the id's dict lookup is paid (a million-stream batch
    spent most of its host time in per-stream dict updates). LRU order is the order of rank.
    """

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}
        self._ids: list[str | None] = []  # slot -> stream
        self._seen = np.zeros(0)  # slot -> when last used (the engine's clock)
        self._rank = np.zeros(0, dtype=np.int64)  # slot -> rises with every use; _FREE when unowned
        self._tick = 0
        self._free: list[int] = []
        self.last_ts: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, stream: str) -> bool:
        return stream in self._slots

    @property
    def streams(self) -> list[str]:
        """Streams from least to most recently used."""
        return self._in_rank_order(np.flatnonzero(self._rank != _FREE))

    @property
    def high_water(self) -> int:
        """One past the highest slot ever handed out: the pool must hold this many rows."""
        return len(self._ids)

    def slot(self, stream: str) -> int:
        return self._slots[stream]

    def slots(self, streams: Sequence[str]) -> np.ndarray:
        """The slots of resident streams, in the given order (int64)."""
        return np.fromiter(map(self._slots.__getitem__, streams), dtype=np.int64, count=len(streams))

    def lookup(self, streams: Iterable[str]) -> np.ndarray:
        """The slot of each stream, ``-1`` where it has none (int64)."""
        get = self._slots.get
        return np.array([get(s, -1) for s in streams], dtype=np.int64)

    def touch(self, slots: np.ndarray, now: float) -> None:
        """Mark the streams in these distinct slots as used now, in the given order (they move
        to the most recent end)."""
        n = len(slots)
        self._seen[slots] = now
        self._rank[slots] = np.arange(self._tick, self._tick + n)
        self._tick += n

    def in_lru_order(self, streams: Iterable[str]) -> list[str]:
        """The resident ones of ``streams``, least recently used first (without a pass over all)."""
        found = self.lookup(set(streams))
        return self._in_rank_order(found[found >= 0])

    def assign(self, stream: str, now: float) -> int:
        """A slot for a new stream: a freed one if any, else the next never used."""
        if self._free:
            slot = self._free.pop()
            self._ids[slot] = stream
        else:
            slot = len(self._ids)
            self._ids.append(stream)
            if slot == len(self._rank):  # grown by doubling, like the state pool
                more = max(16, slot)
                self._seen = np.concatenate([self._seen, np.zeros(more)])
                self._rank = np.concatenate([self._rank, np.full(more, _FREE)])
        self._slots[stream] = slot
        self._seen[slot], self._rank[slot] = now, self._tick
        self._tick += 1
        return slot

    def evict_idle(self, now: float, idle_timeout: float) -> int:
        """Evict streams unused for longer than ``idle_timeout``; returns how many."""
        idle = np.flatnonzero((self._rank != _FREE) & (now - self._seen > idle_timeout))
        self._evict_slots(idle)
        return len(idle)

    def evict_lru(self, count: int) -> int:
        """Evict the ``count`` least recently used streams."""
        owned = np.flatnonzero(self._rank != _FREE)
        n = max(0, min(count, len(owned)))
        if n:
            self._evict_slots(owned[np.argpartition(self._rank[owned], n - 1)[:n]])
        return n

    def evict(self, stream: str) -> None:
        """Free a stream's slot and forget its metadata."""
        self._evict_slots(np.array([self._slots[stream]]))

    def _evict_slots(self, slots: np.ndarray) -> None:
        for slot in slots.tolist():
            stream = self._ids[slot]
            del self._slots[stream]  # type: ignore[arg-type]  # an owned slot has its stream
            self.last_ts.pop(stream, None)  # type: ignore[arg-type]
            self._ids[slot] = None
            self._free.append(slot)
        self._rank[slots] = _FREE

    def _in_rank_order(self, slots: np.ndarray) -> list[str]:
        ordered = slots[np.argsort(self._rank[slots], kind="stable")]
        return [self._ids[i] for i in ordered.tolist()]  # type: ignore[misc]
