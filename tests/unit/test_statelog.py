"""Incremental state (``workers.statelog``) over an in-memory state topic: at every moment, with
compaction applied or not, the newest usable chain restores exactly the state the live model had
at its offset; bytes per interval follow the streams updated; a base goes out a slice per turn."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

import forecaster
from forecaster.metrics import Metrics
from workers import snapshots
from workers.settings import WorkerSettings
from workers.statelog import StateLog

SMALL = {"d_model": 8, "n_layer": 1, "d_ff": 16, "window": 4, "horizon": 2}
PARTITIONS = 3


@dataclass
class Record:
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    offset: int


class Topic:
    """The producer's interface over a list of records; batches are acknowledged when ``acked``."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.tickets = 0
        self.acked = True

    def send(self, topic: str, value: bytes | None, key: bytes | None = None, **extra: Any) -> None:
        self.records.append(Record(key or b"", value, extra.get("headers"), len(self.records)))

    def seal(self) -> int:
        self.tickets += 1
        return self.tickets

    def is_done(self, ticket: int) -> bool:
        return self.acked


def compacted(records: list[Record]) -> list[Record]:
    """Kafka's log-cleaner rule: the newest record per key; a tombstone removes its key."""
    newest: dict[bytes, Record] = {}
    for r in records:
        newest.pop(r.key, None)
        newest[r.key] = r
    return [r for r in newest.values() if r.value is not None]


def model(max_streams: int | None = None) -> forecaster.Forecaster:
    return forecaster.build("lstm", seed=0, device="cpu", max_streams=max_streams, **SMALL)


def setup(fc: forecaster.Forecaster, **settings: Any) -> tuple[StateLog, Topic, CollectorRegistry]:
    topic, registry = Topic(), CollectorRegistry()
    options = {"input": "prices", "state_topic": "state", "snapshot_chunk_bytes": 1024, **settings}
    return StateLog(fc, topic, WorkerSettings(**options), Metrics.create(registry)), topic, registry  # type: ignore[arg-type]


def test_the_newest_usable_chain_restores_the_state_at_its_offset_at_every_moment_compacted_or_not() -> None:
    cap, rng = 30, random.Random(3)
    fc = model(cap)
    log, topic, _ = setup(fc, snapshot_slice_bytes=1024)  # a few streams per slice: bases take several turns
    names = [f"s{i}" for i in range(45)]  # more than the cap: streams are evicted and come back fresh
    partition_of: dict[str, int] = {}
    history: dict[int, bytes] = {}  # offset -> the live state then
    slices_per_turn = []
    for turn in range(1, 80):
        batch = rng.sample(names, rng.randint(1, 12))
        fc.update_arrays(batch, np.full(len(batch), 1.7e9 + 60.0 * turn), [100 + rng.random() for _ in batch])
        for s in batch:
            partition_of[s] = int(s[1:]) % PARTITIONS
            log.chains[partition_of[s]].changed.add(s)
        for s in [s for s in partition_of if s not in fc.engine.table]:  # the worker's housekeeping
            log.evicted(partition_of.pop(s), s)
        history[turn] = fc.snapshot()
        offsets = dict.fromkeys(range(PARTITIONS), turn + 1)  # each turn is one record per partition
        topic.acked = turn % 7 != 0  # now and then the broker is slow: no slice until the last is acknowledged
        before = len(topic.records)
        log.turn(offsets, offsets, partition_of, due=turn % 3 == 0)
        bases = [r for r in topic.records[before:] if r.value is not None and dict(r.headers)["point"] == b"0"]
        slices_per_turn.append(len({r.key.rsplit(b":", 1)[0] for r in bases}))
        if turn % 5:
            continue
        for records in (topic.records, compacted(topic.records)):
            found, _ = snapshots.latest(records, "prices", offsets)
            assert set(found) == set(range(PARTITIONS))
            for p, recovery in found.items():
                restored, then = model(cap), model(cap)
                for blob in recovery.blobs:
                    restored.restore(blob, merge=True)
                then.restore(history[recovery.offset - 1])
                mine = [s for s in then.streams if int(s[1:]) % PARTITIONS == p]
                assert restored.streams == mine  # the same streams, in the same LRU order
                assert restored.snapshot(mine) == then.snapshot(mine)
    assert len(compacted(topic.records)) < 0.2 * len(topic.records)  # old pieces were tombstoned
    assert max(slices_per_turn) == 1 and fc.evictions > 0


def test_bytes_per_interval_follow_the_streams_updated_not_the_resident() -> None:
    fc = forecaster.load("lstm", device="cpu")  # the bundled model's state: about 1 KB per stream
    log, topic, registry = setup(fc)
    streams = [f"s{i}" for i in range(2000)]
    partition_of = {s: i % PARTITIONS for i, s in enumerate(streams)}
    fc.update_arrays(streams, np.full(len(streams), 1.7e9), np.linspace(1, 2, len(streams)))
    offsets = dict.fromkeys(range(PARTITIONS), 1)
    log.turn(offsets, offsets, partition_of, due=True)
    for _ in range(PARTITIONS - 1):  # one slice per turn, over all partitions
        log.turn(offsets, offsets, partition_of, due=False)
    assert all(c.slices is None for c in log.chains.values())
    full = len(fc.snapshot())
    base = registry.get_sample_value("forecaster_state_bytes_total", {"kind": "base"})
    assert 0.9 * full < base < 1.1 * full
    rng = np.random.default_rng(0)
    for k in range(1, 21):
        updated = [streams[i] for i in rng.choice(len(streams), 20, replace=False)]  # 1%
        fc.update_arrays(updated, np.full(20, 1.7e9 + k), np.ones(20))
        for s in updated:
            log.chains[partition_of[s]].changed.add(s)
        offsets = {p: o + 1 for p, o in offsets.items()}
        log.turn(offsets, offsets, partition_of, due=True)
    deltas = registry.get_sample_value("forecaster_state_bytes_total", {"kind": "delta"})
    assert registry.get_sample_value("forecaster_state_bytes_total", {"kind": "base"}) == base  # no new base
    assert deltas / 20 < 0.1 * full
