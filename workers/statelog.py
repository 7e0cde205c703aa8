"""Incremental state: what each owned partition writes to the state topic, turn by turn.

Per partition, a chain of pieces (``workers.snapshots``): a base of every stream, then at each
snapshot interval a delta of the streams updated since the previous piece and those evicted
since. Bytes per interval follow the streams updated, not the streams resident. A new base starts
when the chain's deltas add up to the base's size (recovery then reads at most about two bases)
or the chain is ``MAX_CHAIN`` pieces long.

A base is written in slices of ``snapshot_slice_bytes`` (1 MiB), one slice per loop turn and only
once the previous slice is acknowledged, so the loop never stalls behind the broker and its
longest pause is one slice's copy. Streams keep changing while the slices go out; the slices
alone are therefore not a consistent state, and the base ends with a delta of everything updated
or evicted since it began (its recovery point). Streams updated during the base are thus written
twice; that is also what puts them back in their least-recently-used order on recovery.

Nothing here waits for the broker: a piece counts as stored once the producer acknowledges it,
checked at each turn, and old pieces are tombstoned once a newer point is both stored and
committed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import forecaster
from forecaster.metrics import Metrics
from workers import snapshots
from workers.sender import Sender
from workers.settings import WorkerSettings

MAX_CHAIN = 100  # deltas per chain before a new base: bounds the pieces recovery reads


@dataclass
class Chain:
    """One input partition's pieces and what has changed since the newest."""

    stored: list[snapshots.Stored] = field(default_factory=list)  # acknowledged, or read at recovery
    sent: list[tuple[int, snapshots.Stored]] = field(default_factory=list)  # (producer ticket, piece) unacknowledged
    tip: snapshots.Stored | None = None  # the newest piece written: the next one applies over it
    changed: set[str] = field(default_factory=set)  # streams updated since the tip
    dropped: set[str] = field(default_factory=set)  # streams of the chain's state evicted since the tip
    members: set[str] = field(default_factory=set)  # streams of the chain's state (after ``dropped``)
    slices: list[str] | None = None  # while a base is written: its streams still to go
    base_bytes: int = 0
    delta_bytes: int = 0
    deltas: int = 0  # since the base
    pruned_at: int | None = None  # the committed offset of the last prune

    def needs_base(self) -> bool:
        return self.tip is None or self.delta_bytes >= self.base_bytes or self.deltas >= MAX_CHAIN


class StateLog:
    """The owned partitions' chains. The worker adds updated streams to ``chains[p].changed``
    (per event, on its hot path), reports evicted ones with ``evicted``, and calls ``turn`` once
    per loop turn."""

    def __init__(self, fc: forecaster.Forecaster, producer: Sender, settings: WorkerSettings, metrics: Metrics) -> None:
        self.fc, self.producer, self.settings, self.metrics = fc, producer, settings, metrics
        self.chains: defaultdict[int, Chain] = defaultdict(Chain)
        self.order = 0  # pieces written or read, for "later is newer"

    def evicted(self, partition: int, stream: str) -> None:
        """A stream evicted: the next delta drops it if the chain holds it. (Only then: at a stream
        cap, most evicted streams may never have been written, and remembering them all would
        grow without bound.)"""
        c = self.chains[partition]
        c.changed.discard(stream)
        if stream in c.members:
            c.members.discard(stream)
            c.dropped.add(stream)

    def adopt(
        self, partition: int, stored: list[snapshots.Stored], restored: snapshots.Stored | None, members: set[str]
    ) -> None:
        """After recovery: the pieces on the topic, the restored chain's tip (None: rebuilt from
        the beginning), which the next delta applies over, and the streams it restored."""
        self.order = max([self.order, *(s.order for s in stored)])
        pieces = (snapshots.chain(restored, stored) if restored is not None else None) or []
        first_point = next((i for i, s in enumerate(pieces) if s.point), len(pieces))  # the base ends there
        base, deltas = pieces[: first_point + 1], pieces[first_point + 1 :]
        self.chains[partition] = Chain(
            stored=list(stored),
            tip=restored,
            members=members,
            base_bytes=sum(s.size for s in base),
            delta_bytes=sum(s.size for s in deltas),
            deltas=len(deltas),
        )

    def for_model(self, fc: forecaster.Forecaster) -> StateLog:
        """The same partitions' pieces, for a model that replaces this one: every chain starts
        again with a base (the old pieces go once a point of the new model is usable)."""
        new = StateLog(fc, self.producer, self.settings, self.metrics)
        new.order = self.order
        for p, c in self.chains.items():
            new.chains[p] = Chain(stored=list(c.stored), sent=list(c.sent))
        return new

    def forget(self, partition: int) -> None:
        self.chains.pop(partition, None)

    def turn(
        self,
        offsets: Mapping[int, int],
        committed: Mapping[int, int],
        partition_of: Mapping[str, int],
        due: bool,
        finish: bool = False,
    ) -> None:
        """Write what is due for the partitions of ``offsets`` (each the next input offset the
        state does not hold): a delta or the start of a base when ``due``, the next slice of a base
        in progress, or with ``finish`` every remaining slice and a final delta (revocation,
        shutdown). Then settle acknowledgements and tombstone what is no longer needed."""
        start, written = time.perf_counter(), self.order
        sliced = False  # one slice per turn, over all partitions: the pause stays one slice
        bases: dict[int, list[str]] | None = None  # every partition's streams in LRU order, if a base starts
        for p, offset in offsets.items():
            c = self.chains[p]
            if (due or finish) and c.slices is None:
                if c.needs_base():
                    if bases is None:  # one pass over the resident streams, however many bases start
                        bases = defaultdict(list)
                        for s in self.fc.streams:
                            bases[partition_of.get(s, -1)].append(s)
                    c.slices = bases[p]
                    c.changed.clear()
                    c.dropped.clear()
                    c.members.clear()
                    c.tip, c.base_bytes, c.delta_bytes, c.deltas = None, 0, 0, 0
                elif c.changed or c.dropped or offset != c.tip.offset:  # type: ignore[union-attr]
                    self._write(p, c, offset, c.changed, point=True)
            if c.slices is not None and (finish or (not sliced and not c.sent)):
                self._slice(p, c, offset, finish)
                sliced = True
        for p in offsets:
            self._settle(p, self.chains[p], committed.get(p))
        if self.order > written:
            self.metrics.state_write.observe(time.perf_counter() - start)

    def _slice(self, partition: int, c: Chain, offset: int, finish: bool) -> None:
        """The base's next slice (every remaining one with ``finish``); after the last, its point."""
        per_slice = max(1, self.settings.snapshot_slice_bytes // self.fc.engine.pool.bytes_per_stream)
        while c.slices is not None:
            batch, c.slices = c.slices[:per_slice], c.slices[per_slice:]
            if c.slices:
                self._write(partition, c, offset, batch, point=False, base=True)
            else:  # the last: a point unless streams were updated or evicted while the slices went out
                c.slices = None
                if self._write(partition, c, offset, batch, point=not c.changed and not c.dropped, base=True).point:
                    return
                self._write(partition, c, offset, c.changed, point=True)
                return
            if not finish:
                return

    def _write(
        self, partition: int, c: Chain, offset: int, streams: Iterable[str], point: bool, base: bool = False
    ) -> snapshots.Stored:
        blob = self.fc.snapshot(streams, dropped=() if base else c.dropped)
        table = self.fc.engine.table
        c.members.update(s for s in streams if s in table)
        self.order += 1
        parent = c.tip.id if c.tip else None
        piece = snapshots.write(self.producer, self.settings, partition, offset, blob, parent, point, self.order)
        c.sent.append((self.producer.seal(), piece))
        c.tip = piece
        if base:
            c.base_bytes += len(blob)
        else:
            c.delta_bytes += len(blob)
            c.deltas += 1
            c.changed.clear()
            c.dropped.clear()
        self.metrics.state_bytes.labels("base" if base else "delta").inc(len(blob))
        return piece

    def _settle(self, partition: int, c: Chain, committed: int | None) -> None:
        """Acknowledged pieces join the stored ones; tombstones once a newer point may be usable."""
        acked = [(t, piece) for t, piece in c.sent if self.producer.is_done(t)]
        last = -1 if c.pruned_at is None else c.pruned_at
        if not acked and not any(s.point and last < s.offset <= (committed or -1) for s in c.stored):
            return  # nothing new to keep, and no stored point became usable
        done = {t for t, _ in acked}
        c.sent = [(t, piece) for t, piece in c.sent if t not in done]
        c.stored += [piece for _, piece in acked]
        c.stored = snapshots.prune(self.producer, self.settings, partition, c.stored, committed)
        c.pruned_at = committed
