"""Stream id -> slot in the state pool, with per-stream host metadata and LRU order."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterable


class SlotTable:
    """Which slot each stream owns, its last event time, and when it was last seen.

    The dict order is least recently used first, so both kinds of eviction pop from the front.
    """

    def __init__(self) -> None:
        self._slots: OrderedDict[str, int] = OrderedDict()
        self.last_ts: dict[str, float] = {}
        self._last_seen: dict[str, float] = {}
        self._rank: dict[str, int] = {}  # rises with every use: sorts any few streams into LRU order
        self._ticks = itertools.count()
        self._free: list[int] = []
        self._next = 0  # slots below this have been handed out at least once

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, stream: str) -> bool:
        return stream in self._slots

    @property
    def streams(self) -> list[str]:
        """Streams from least to most recently used."""
        return list(self._slots)

    @property
    def high_water(self) -> int:
        """One past the highest slot ever handed out: the pool must hold this many rows."""
        return self._next

    def slot(self, stream: str) -> int:
        return self._slots[stream]

    def touch(self, streams: Iterable[str], now: float) -> None:
        """Mark streams as used now (they move to the most recent end)."""
        for s in streams:
            self._slots.move_to_end(s)
            self._last_seen[s] = now
            self._rank[s] = next(self._ticks)

    def in_lru_order(self, streams: Iterable[str]) -> list[str]:
        """The resident ones of ``streams``, least recently used first (without a pass over all)."""
        return sorted((s for s in set(streams) if s in self._slots), key=self._rank.__getitem__)

    def assign(self, stream: str, now: float) -> int:
        """A slot for a new stream: a freed one if any, else the next never used."""
        if self._free:
            slot = self._free.pop()
        else:
            slot, self._next = self._next, self._next + 1
        self._slots[stream] = slot
        self._last_seen[stream] = now
        self._rank[stream] = next(self._ticks)
        return slot

    def evict_idle(self, now: float, idle_timeout: float) -> int:
        """Evict streams unseen for longer than ``idle_timeout``; returns how many."""
        n = 0
        while self._slots:
            oldest = next(iter(self._slots))
            if now - self._last_seen[oldest] <= idle_timeout:
                break
            self.evict(oldest)
            n += 1
        return n

    def evict_lru(self, count: int) -> int:
        """Evict the ``count`` least recently used streams."""
        n = max(0, min(count, len(self._slots)))
        for _ in range(n):
            self.evict(next(iter(self._slots)))
        return n

    def evict(self, stream: str) -> None:
        """Free a stream's slot and forget its metadata."""
        self._free.append(self._slots.pop(stream))
        self.last_ts.pop(stream, None)
        del self._last_seen[stream]
        del self._rank[stream]
