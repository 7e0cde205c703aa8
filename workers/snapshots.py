"""Per-partition state on the state topic (``forecaster.state``): pieces chained into snapshots,
safe under compaction.

A piece is one ``Forecaster.snapshot`` blob of some streams of input partition p, written as
chunks (Kafka's default message limit is 1 MB), each keyed ``<input topic>:<p>:<piece id>:<part>``
with headers naming the piece, the part count, the input offset it covers (the next offset to
consume), its ``parent`` (the piece it applies over; none for the first piece of a base) and
whether it is a recovery ``point``. Applied in order from a base's first piece, the chain up to a
point is the partition's state at that point's offset: a base is every stream (in slices), a
delta the streams changed since its parent and those evicted since.

Every piece has keys of its own, so compaction (which keeps the newest record per key) can never
mix two pieces: a piece torn by a crash leaves the chain before it whole. Pieces recovery can no
longer need go by tombstones (a record with no value: the compactor drops the key), written by
the partition's owner once a newer point is usable (``prune``), so the compacted topic holds about
one chain per partition.

Reading takes the newest point whose chain is whole and whose offset the group has committed.
The embedded broker does not compact, so the reader goes through the whole topic, tombstones
included. Records of the first layout (one piece per snapshot, no parent header) read as a base
that is a point.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from workers.sender import Sender
from workers.settings import WorkerSettings

log = logging.getLogger("forecaster.worker")


@dataclass(frozen=True)
class Stored:
    """A piece present on the state topic: enough to chain it, to tombstone it, and whether it is whole."""

    id: str
    offset: int  # next input offset to consume; the chain up to here holds every record before it
    parts: int
    complete: bool
    parent: str | None = None  # the piece this one applies over; None: the first piece of a base
    point: bool = True  # the chain up to here is the partition's whole state at ``offset``
    size: int = 0  # bytes
    order: int = field(default=0, compare=False)  # where its last part was read or written: later is newer


@dataclass(frozen=True)
class Recovery:
    """What to restore for one partition: the chain's blobs, base first, and its newest piece."""

    tip: Stored
    blobs: list[bytes]

    @property
    def offset(self) -> int:
        return self.tip.offset


def _key(settings: WorkerSettings, partition: int, piece: str, part: int) -> bytes:
    return f"{settings.input}:{partition}:{piece}:{part}".encode()


def write(
    producer: Sender,
    settings: WorkerSettings,
    partition: int,
    offset: int,
    blob: bytes,
    parent: str | None,
    point: bool,
    order: int = 0,
) -> Stored:
    """Hand a piece's parts to the producer; it is on the topic once they are acknowledged."""
    piece, chunk = uuid.uuid4().hex, settings.snapshot_chunk_bytes
    parts = max(1, -(-len(blob) // chunk))
    view = memoryview(blob)
    for i in range(parts):
        headers = [
            ("snapshot", piece.encode()),
            ("part", str(i).encode()),
            ("parts", str(parts).encode()),
            ("offset", str(offset).encode()),
            ("parent", (parent or "").encode()),
            ("point", b"1" if point else b"0"),
        ]
        producer.send(
            settings.state_topic,
            key=_key(settings, partition, piece, i),
            value=bytes(view[i * chunk : (i + 1) * chunk]),
            headers=headers,
        )
    return Stored(piece, offset, parts, True, parent, point, len(blob), order)


def chain(tip: Stored, stored: list[Stored]) -> list[Stored] | None:
    """The pieces from the base's first to ``tip``, if every one is present and whole."""
    by_id = {s.id: s for s in stored}
    out: list[Stored] = []
    piece: Stored | None = tip
    while piece is not None:
        if not piece.complete or len(out) > len(by_id):  # torn, or a cycle (forged parents)
            return None
        out.append(piece)
        if piece.parent is None:
            return out[::-1]
        piece = by_id.get(piece.parent)
    return None  # a parent is gone


def newest_usable(stored: list[Stored], committed: int | None) -> Stored | None:
    """The newest point at or before ``committed`` whose chain is whole."""
    if committed is None:
        return None
    points = sorted((s for s in stored if s.point and s.offset <= committed), key=lambda s: (s.offset, s.order))
    return next((s for s in reversed(points) if chain(s, stored) is not None), None)


def prune(
    producer: Sender, settings: WorkerSettings, partition: int, stored: list[Stored], committed: int | None
) -> list[Stored]:
    """Tombstone the pieces of ``partition`` that recovery can no longer need, given the group's
    confirmed committed offset: all but the chain of the newest usable point and the pieces
    written after it (a chain in progress, points awaiting their commit). Nothing goes while no
    point is usable. Returns the pieces kept."""
    tip = newest_usable(stored, committed)
    if tip is None:
        return stored
    needed = {s.id for s in chain(tip, stored) or []}
    keep = [s for s in stored if s.id in needed or s.order > tip.order]
    kept = {s.id for s in keep}
    for s in stored:
        if s.id not in kept:
            for i in range(s.parts):
                producer.send(settings.state_topic, key=_key(settings, partition, s.id, i), value=None)
    return keep


@dataclass
class _Parts:
    partition: int
    parts: int
    offset: int
    parent: str | None
    point: bool
    chunks: dict[int, bytes]
    order: int = 0


def _parse(record: object, piece: str, part: int) -> tuple[int, int, str | None, bool]:
    """parts, offset, parent, point from a part's headers; ``ValueError`` if they do not fit its key."""
    h = dict(getattr(record, "headers", None) or [])
    try:
        parts, offset = int(h["parts"]), int(h["offset"])
        if h["snapshot"].decode() != piece or int(h["part"]) != part or not 0 <= part < parts:
            raise ValueError(f"headers {h} do not match the key")
        parent = h.get("parent", b"").decode() or None
        point = h.get("point", b"1") == b"1"
    except (KeyError, UnicodeDecodeError) as e:
        raise ValueError(f"headers {h}: {e!r}") from e
    return parts, offset, parent, point


def read_latest(
    settings: WorkerSettings, bounds: dict[int, int], timeout_s: float = 30.0
) -> tuple[dict[int, Recovery], dict[int, list[Stored]]]:
    """``latest`` over the whole state topic, read from its beginning."""
    consumer = KafkaConsumer(**{"enable_auto_commit": False, **settings.options_for(KafkaConsumer)})
    records: list[Any] = []
    try:
        tps = [
            TopicPartition(settings.state_topic, p) for p in consumer.partitions_for_topic(settings.state_topic) or ()
        ]
        if not tps:
            return {}, {}
        consumer.assign(tps)
        consumer.seek_to_beginning()
        end = consumer.end_offsets(tps)
        deadline, quiet = time.monotonic() + timeout_s, 0
        # The embedded broker's end offsets can be short by a batch: stop after a quiet poll too.
        while time.monotonic() < deadline and (any(consumer.position(tp) < end[tp] for tp in tps) or quiet < 2):
            batch = consumer.poll(timeout_ms=100)
            quiet = 0 if batch else quiet + 1
            records += (r for rs in batch.values() for r in rs)
    finally:
        consumer.close()
    return latest(records, settings.input, bounds)


def latest(
    records: Iterable[Any], input_topic: str, bounds: dict[int, int]
) -> tuple[dict[int, Recovery], dict[int, list[Stored]]]:
    """Per input partition p of ``bounds``: the newest point whose chain is whole and whose offset
    is at most ``bounds[p]`` (the group's committed offset: a piece past it, written just before a
    crash lost the last commit, would skip records), and every piece of p among ``records`` (the
    state topic's, in order), whole or torn (for ``prune``). Records that are not well-formed
    pieces (a foreign producer, a key of another layout) are skipped with a warning."""
    found: dict[str, _Parts] = {}
    prefix, order = f"{input_topic}:", 0
    for record in records:
        key = (record.key or b"").decode(errors="replace")
        if not key.startswith(prefix):
            continue  # another input topic's
        fields = key.removeprefix(prefix).split(":")
        if len(fields) != 3 or not fields[0].isdigit() or not fields[2].isdigit():
            log.warning("state topic offset %d: not a snapshot part (key %r); skipped", record.offset, key[:80])
            continue
        p, piece, part = int(fields[0]), fields[1], int(fields[2])
        if p not in bounds:
            continue
        if record.value is None:  # a tombstone: that part is gone
            if piece in found:
                found[piece].chunks.pop(part, None)
            continue
        try:
            parts, offset, parent, point = _parse(record, piece, part)
        except ValueError as e:
            log.warning("state topic offset %d: not a snapshot part (%s); skipped", record.offset, e)
            continue
        entry = found.setdefault(piece, _Parts(p, parts, offset, parent, point, {}))
        entry.chunks[part] = record.value
        order += 1
        entry.order = order
    stored: dict[int, list[Stored]] = {}
    for piece, e in sorted(found.items(), key=lambda kv: kv[1].order):
        if e.chunks:  # else every part was tombstoned
            whole = len(e.chunks) == e.parts
            size = sum(len(c) for c in e.chunks.values())
            stored.setdefault(e.partition, []).append(
                Stored(piece, e.offset, e.parts, whole, e.parent, e.point, size, e.order)
            )
    best: dict[int, Recovery] = {}
    for p, pieces in stored.items():
        tip = newest_usable(pieces, bounds[p])
        if tip is not None:
            blobs = [b"".join(found[s.id].chunks[i] for i in range(s.parts)) for s in chain(tip, pieces) or []]
            best[p] = Recovery(tip, blobs)
    return best, stored
