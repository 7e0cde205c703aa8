"""A new model's per-stream state, built beside the serving one before a swap.

The candidate replays the owned partitions' retained input history from its beginning, as the
silent replay of recovery does (same decoding and validation, no output), a bounded number of
records per loop turn so that the serving model keeps serving. It chases the serving model's
position: once it holds exactly the records the serving state holds, the worker switches between
two batches, and from then on every forecast is what the new model would have given had it served
from the start of the retained history.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition

import forecaster
from forecaster.models import ForecastModel
from forecaster.validation import validate_each
from workers import codec, undecodable
from workers.control import Swap
from workers.settings import WorkerSettings


class Warmup:
    """The candidate (``fc``), its replay consumer (no group) and how far it has come; ``swap``
    is the control record it came in (its mode says whether it will serve or shadow)."""

    def __init__(
        self,
        swap: Swap,
        model: ForecastModel,
        settings: WorkerSettings,
        partitions: set[TopicPartition],
        reconnect: dict[str, int] | None = None,
    ) -> None:
        self.swap, self.model, self.settings = swap, model, settings
        self.consumer = KafkaConsumer(
            **{"enable_auto_commit": False, **(reconnect or {}), **settings.options_for(KafkaConsumer)}
        )
        self.started = time.monotonic()
        self.records = 0
        self.longest_step = 0.0  # seconds: the most one turn's replay took from the serving loop
        self.cost = 10e-6  # seconds per replayed record, measured as it goes (a first guess for a CPU)
        self.restart(partitions)

    def restart(self, partitions: set[TopicPartition]) -> None:
        """From scratch over these partitions (the worker's assignment changed)."""
        s = self.settings
        self.fc = forecaster.Forecaster(
            self.model, s.device, max_streams=s.max_streams, idle_timeout=s.idle_timeout_s, compile=s.compile
        )
        self.partition_of: dict[str, int] = {}
        self.consumer.assign(sorted(partitions, key=lambda tp: tp.partition))
        self.position = self.consumer.beginning_offsets(list(partitions)) if partitions else {}
        for tp, offset in self.position.items():
            self.consumer.seek(tp, offset)

    def step(self, upto: dict[TopicPartition, int], budget: int) -> bool:
        """Replay at most ``budget`` records below ``upto`` (per partition, the next offset the
        serving state does not hold); True once the candidate holds exactly those records."""
        behind = [tp for tp, o in upto.items() if self.position.get(tp, o) < o]
        if not behind:
            return set(upto) <= set(self.position)
        start = time.perf_counter()
        try:
            polled = self.consumer.poll(timeout_ms=0, max_records=budget)
        except Exception as e:
            bad = undecodable.locate(e)
            if bad is None:
                raise
            self.consumer.seek(bad.partition, bad.next_offset)  # the serving worker dead-lettered it
            self.position[bad.partition] = bad.next_offset
            return False
        records = []
        for tp, rs in polled.items():
            mine = [r for r in rs if r.offset < upto.get(tp, -1)]
            if len(mine) < len(rs):  # fetched past the serving position: those come again later
                self.consumer.seek(tp, upto[tp])
            if mine:
                self.position[tp] = mine[-1].offset + 1
            records += mine
        events, _ = codec.events_of(records)  # what failed, the serving worker dead-lettered
        batch, _ = validate_each(events, self.fc.engine.table.last_ts)
        if batch.index:
            self.fc.engine.advance_all(batch.streams, batch.ts.tolist(), batch.values.tolist())
            for i, stream in zip(batch.index, batch.streams, strict=True):
                self.partition_of[stream] = records[i].partition
        self.records += len(records)
        took = time.perf_counter() - start
        self.longest_step = max(self.longest_step, took)
        if len(records) >= 100:  # enough to time
            self.cost = 0.7 * self.cost + 0.3 * took / len(records)
        return all(self.position.get(tp, o) >= o for tp, o in upto.items())

    def close(self) -> None:
        self.consumer.close()
