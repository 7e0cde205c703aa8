"""Per-partition state snapshots on the state topic (``forecaster.state``).

A snapshot of the streams of input partition p is written as chunks (Kafka's default message
limit is 1 MB), each keyed ``<input topic>:<p>:<part>`` (so a compacted topic keeps every part of
the newest snapshot) with headers naming the snapshot id, the part count and the input offset it
covers: the next offset to consume, every record before it being in the state. Reading takes
the newest snapshot whose parts are all present and whose offset the group has committed. The
embedded broker does not compact, so the reader goes through the whole topic.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from workers.sender import Sender
from workers.settings import WorkerSettings

CHUNK = 512 * 1024
log = logging.getLogger("forecaster.worker")


@dataclass(frozen=True)
class Snapshot:
    partition: int
    offset: int  # next input offset to consume; the state holds every record before it
    blob: bytes


def write(producer: Sender, settings: WorkerSettings, partition: int, offset: int, blob: bytes) -> None:
    snap, parts = uuid.uuid4().hex.encode(), max(1, -(-len(blob) // CHUNK))
    for i in range(parts):
        headers = [
            ("snapshot", snap),
            ("part", str(i).encode()),
            ("parts", str(parts).encode()),
            ("offset", str(offset).encode()),
        ]
        producer.send(
            settings.state_topic,
            key=f"{settings.input}:{partition}:{i}".encode(),
            value=blob[i * CHUNK : (i + 1) * CHUNK],
            headers=headers,
        )


def read_latest(settings: WorkerSettings, bounds: dict[int, int], timeout_s: float = 30.0) -> dict[int, Snapshot]:
    """Per input partition p of ``bounds``, the newest complete snapshot whose offset is at most
    ``bounds[p]`` (the group's committed offset: a snapshot past it, written just before a crash
    lost the last commit, would skip records). Records that are not well-formed snapshot parts
    (a foreign producer, a torn write) are skipped with a warning."""
    consumer = KafkaConsumer(**{"enable_auto_commit": False, **settings.options_for(KafkaConsumer)})
    partial: dict[bytes, tuple[int, int, int, dict[int, bytes]]] = {}  # id -> partition, parts, offset, chunks
    best: dict[int, Snapshot] = {}
    skipped = 0
    try:
        found = consumer.partitions_for_topic(settings.state_topic) or set()
        tps = [TopicPartition(settings.state_topic, p) for p in found]
        if not tps:
            return {}
        consumer.assign(tps)
        consumer.seek_to_beginning()
        end = consumer.end_offsets(tps)
        deadline, quiet = time.monotonic() + timeout_s, 0
        # The embedded broker's end offsets can be short by a batch: stop after a quiet poll too.
        while time.monotonic() < deadline and (any(consumer.position(tp) < end[tp] for tp in tps) or quiet < 2):
            batch = consumer.poll(timeout_ms=100)
            quiet = 0 if batch else quiet + 1
            for record in (r for rs in batch.values() for r in rs):
                topic, _, rest = (record.key or b"").decode(errors="replace").rpartition(":")[0].rpartition(":")
                if topic != settings.input or not rest.isdigit() or int(rest) not in bounds:
                    continue
                try:
                    h = dict(record.headers or [])
                    snap, part, parts, offset = h["snapshot"], int(h["part"]), int(h["parts"]), int(h["offset"])
                    if not 0 <= part < parts or record.value is None:
                        raise ValueError(f"part {part} of {parts}")
                except (KeyError, ValueError) as e:
                    skipped += 1
                    log.warning("state topic offset %d: not a snapshot part (%s); skipped", record.offset, e)
                    continue
                p = int(rest)
                chunks = partial.setdefault(snap, (p, parts, offset, {}))[3]
                chunks[part] = record.value
                if len(chunks) == parts:
                    del partial[snap]
                    if offset <= bounds[p] and (p not in best or offset >= best[p].offset):
                        best[p] = Snapshot(p, offset, b"".join(chunks[i] for i in range(parts)))
    finally:
        consumer.close()
    return best
