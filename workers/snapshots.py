"""Per-partition state snapshots on the state topic (``forecaster.state``), safe under compaction.

A snapshot of the streams of input partition p is written as chunks (Kafka's default message
limit is 1 MB), each keyed ``<input topic>:<p>:<snapshot id>:<part>`` with headers naming the
snapshot id, the part count and the input offset it covers (the next offset to consume, every
record before it being in the state). Every snapshot has keys of its own, so compaction (which
keeps the newest record per key) can never mix the parts of two snapshots: a snapshot torn by a
crash leaves the previous one whole. Old snapshots go by tombstones (a record with no value: the
compactor drops the key), written by the partition's owner once a newer snapshot is usable
(``prune``), so the compacted topic holds about two snapshots per partition.

Reading takes the newest snapshot whose parts are all present and whose offset the group has
committed. The embedded broker does not compact, so the reader goes through the whole topic,
tombstones included.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition

from workers.sender import Sender
from workers.settings import WorkerSettings

log = logging.getLogger("forecaster.worker")


@dataclass(frozen=True)
class Snapshot:
    partition: int
    offset: int  # next input offset to consume; the state holds every record before it
    blob: bytes


@dataclass(frozen=True)
class Stored:
    """A snapshot present on the state topic: enough to tombstone it, and whether it is whole."""

    id: str
    offset: int
    parts: int
    complete: bool
    order: int = field(default=0, compare=False)  # where its last part was read or written: later is newer


def _key(settings: WorkerSettings, partition: int, snapshot: str, part: int) -> bytes:
    return f"{settings.input}:{partition}:{snapshot}:{part}".encode()


def write(
    producer: Sender, settings: WorkerSettings, partition: int, offset: int, blob: bytes, order: int = 0
) -> Stored:
    """Hand the snapshot's parts to the producer; it is on the topic once they are acknowledged."""
    snap, chunk = uuid.uuid4().hex, settings.snapshot_chunk_bytes
    parts = max(1, -(-len(blob) // chunk))
    for i in range(parts):
        headers = [
            ("snapshot", snap.encode()),
            ("part", str(i).encode()),
            ("parts", str(parts).encode()),
            ("offset", str(offset).encode()),
        ]
        producer.send(
            settings.state_topic,
            key=_key(settings, partition, snap, i),
            value=blob[i * chunk : (i + 1) * chunk],
            headers=headers,
        )
    return Stored(snap, offset, parts, True, order)


def prune(
    producer: Sender, settings: WorkerSettings, partition: int, stored: list[Stored], committed: int | None
) -> list[Stored]:
    """Tombstone the snapshots of ``partition`` that recovery can no longer need, given the
    group's confirmed committed offset: every one but the newest usable one (complete, at or
    before ``committed``) and the complete ones after it (usable once their offset commits).
    Nothing goes while none is usable. Returns the snapshots kept."""
    usable = [s for s in stored if s.complete and committed is not None and s.offset <= committed]
    if not usable:
        return stored
    newest = max(usable, key=lambda s: (s.offset, s.order))
    keep = [s for s in stored if s == newest or (s.complete and (s.offset, s.order) > (newest.offset, newest.order))]
    for s in stored:
        if s not in keep:
            for i in range(s.parts):
                producer.send(settings.state_topic, key=_key(settings, partition, s.id, i), value=None)
    return keep


@dataclass
class _Parts:
    partition: int
    parts: int
    offset: int
    chunks: dict[int, bytes]
    order: int = 0


def read_latest(
    settings: WorkerSettings, bounds: dict[int, int], timeout_s: float = 30.0
) -> tuple[dict[int, Snapshot], dict[int, list[Stored]]]:
    """Per input partition p of ``bounds``: the newest complete snapshot whose offset is at most
    ``bounds[p]`` (the group's committed offset: a snapshot past it, written just before a crash
    lost the last commit, would skip records), and every snapshot of p on the topic, whole or
    torn (for ``prune``). Records that are not well-formed snapshot parts (a foreign producer, a
    key of another layout) are skipped with a warning."""
    consumer = KafkaConsumer(**{"enable_auto_commit": False, **settings.options_for(KafkaConsumer)})
    found_parts: dict[str, _Parts] = {}
    prefix, order = f"{settings.input}:", 0
    try:
        found = consumer.partitions_for_topic(settings.state_topic) or set()
        tps = [TopicPartition(settings.state_topic, p) for p in found]
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
            for record in (r for rs in batch.values() for r in rs):
                key = (record.key or b"").decode(errors="replace")
                if not key.startswith(prefix):
                    continue  # another input topic's
                fields = key.removeprefix(prefix).split(":")
                if len(fields) != 3 or not fields[0].isdigit() or not fields[2].isdigit():
                    log.warning("state topic offset %d: not a snapshot part (key %r); skipped", record.offset, key[:80])
                    continue
                p, snap, part = int(fields[0]), fields[1], int(fields[2])
                if p not in bounds:
                    continue
                if record.value is None:  # a tombstone: that part is gone
                    if snap in found_parts:
                        found_parts[snap].chunks.pop(part, None)
                    continue
                try:
                    h = dict(record.headers or [])
                    parts, offset = int(h["parts"]), int(h["offset"])
                    if h["snapshot"].decode() != snap or int(h["part"]) != part or not 0 <= part < parts:
                        raise ValueError(f"headers {h} do not match the key")
                except (KeyError, ValueError, UnicodeDecodeError) as e:
                    log.warning("state topic offset %d: not a snapshot part (%s); skipped", record.offset, e)
                    continue
                entry = found_parts.setdefault(snap, _Parts(p, parts, offset, {}))
                entry.chunks[part] = record.value
                order += 1
                entry.order = order
    finally:
        consumer.close()
    best: dict[int, Snapshot] = {}
    stored: dict[int, list[Stored]] = {}
    for snap, e in sorted(found_parts.items(), key=lambda kv: kv[1].order):
        if not e.chunks:
            continue  # every part tombstoned
        complete = len(e.chunks) == e.parts
        stored.setdefault(e.partition, []).append(Stored(snap, e.offset, e.parts, complete, e.order))
        if complete and e.offset <= bounds[e.partition]:
            current = best.get(e.partition)
            if current is None or e.offset >= current.offset:  # ties: the later written
                best[e.partition] = Snapshot(e.partition, e.offset, b"".join(e.chunks[i] for i in range(e.parts)))
    return best, stored
