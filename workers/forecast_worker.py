"""The forecast worker: consume observations, advance every stream in batched engine steps,
produce forecasts, commit input offsets only once the forecasts are acknowledged.

One turn of the loop (``step``):
  1. poll up to ``max_batch`` records, waiting at most ``max_wait_ms``;
  2. decode and validate each record; rejected ones become dead letters with their reason;
  3. score the previous one-step forecast of each stream against its new value (live accuracy);
  4. one engine advance for all valid events;
  5. produce forecasts and dead letters, flush (wait for the broker's acks);
  6. commit the input offsets of the batch.
A crash between 5 and 6 replays the batch: delivery is at least once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

import forecaster
from forecaster.metrics import Metrics
from forecaster.validation import validate_each
from workers import codec
from workers.settings import WorkerSettings

log = logging.getLogger("forecaster.worker")


class LiveAccuracy:
    """Scores each stream's one-step forecast when its next value arrives (in event order, also
    within a batch): the error in units of the stream's mean |one-step change|, and whether the
    value fell inside the outer quantile band."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.pending: dict[str, tuple[float, float, float]] = {}  # stream -> point, lo, hi one step ahead
        self.inside = self.scored = 0

    def observe(
        self, streams: list[str], values: list[float], rows: list[list[list[float]]], scales: list[float]
    ) -> None:
        for stream, value, row, scale in zip(streams, values, rows, scales, strict=True):
            prev = self.pending.get(stream)
            if prev is not None:
                point, lo, hi = prev
                if scale > 0:
                    self.metrics.realized_error.observe(abs(value - point) / scale)
                self.scored += 1
                self.inside += lo <= value <= hi
            self.pending[stream] = (row[0][0], row[1][0], row[-1][0])
        if self.scored:
            self.metrics.interval_coverage.set(self.inside / self.scored)

    def forget_all_but(self, resident: set[str]) -> None:
        self.pending = {s: v for s, v in self.pending.items() if s in resident}


class ForecastWorker:
    def __init__(
        self,
        settings: WorkerSettings,
        registry: CollectorRegistry | None = None,
        model: forecaster.Forecaster | None = None,
    ) -> None:
        self.settings = settings
        self.fc = model or forecaster.load(
            settings.model, settings.device, max_streams=settings.max_streams, idle_timeout=settings.idle_timeout_s
        )
        self.metrics = Metrics.create(registry or CollectorRegistry())
        self.accuracy = LiveAccuracy(self.metrics)
        self.keys = [str(q) for q in self.fc.config.quantiles]
        # A 10 s session (kafka-python's default is 45 s) moves a dead worker's partitions sooner.
        self.consumer = KafkaConsumer(
            **{
                "group_id": settings.group,
                "enable_auto_commit": False,
                "auto_offset_reset": settings.auto_offset_reset,
                "session_timeout_ms": 10_000,
                "heartbeat_interval_ms": 3_000,
                **settings.options_for(KafkaConsumer),
            }
        )
        self.producer = KafkaProducer(**{"acks": "all", "linger_ms": 2, **settings.options_for(KafkaProducer)})
        self.running = True
        self._evictions = 0

    def stop(self) -> None:
        """Finish the batch in hand, flush, commit, then leave ``run`` (safe from a signal handler)."""
        self.running = False

    def run(self) -> None:
        self.consumer.subscribe([self.settings.input])
        log.info("worker started: %s", self.settings.redacted())
        try:
            while self.running:
                self.step()
        finally:
            self.producer.flush()
            self.producer.close()
            self.consumer.close()
            log.info("worker stopped")

    def step(self) -> int:
        """One poll -> forecasts -> commit turn; returns how many records it handled."""
        polled = self.consumer.poll(timeout_ms=self.settings.max_wait_ms, max_records=self.settings.max_batch)
        records = [r for rs in polled.values() for r in rs]
        if not records:
            return 0
        m, engine = self.metrics, self.fc.engine
        m.events.inc(len(records))
        decoded, undecodable = [], set()
        for i, r in enumerate(records):
            try:
                decoded.append(codec.decode(r.value))
            except codec.Undecodable as e:
                decoded.append(None)  # a placeholder the validator rejects; its reason is already given
                undecodable.add(i)
                self._dead(r, "invalid_json", str(e))
        valid, rejected = validate_each(decoded, engine.table.last_ts)
        for rej in rejected:
            if rej.index not in undecodable:
                self._dead(records[rej.index], rej.reason, rej.detail)
        if valid:
            streams, values = [ob.stream for _, ob in valid], [ob.value for _, ob in valid]
            start = time.perf_counter()
            rows = engine.advance(streams, [ob.ts for _, ob in valid], values).tolist()
            m.inference.observe(time.perf_counter() - start)
            m.batch_size.observe(len(valid))
            self.accuracy.observe(streams, values, rows, engine.read("x_scale", streams).tolist())
            now, name, version, topic = time.time(), self.fc.name, self.fc.version, self.settings.output
            for (i, ob), row in zip(valid, rows, strict=True):
                r = records[i]
                src = codec.source(r.topic, r.partition, r.offset)
                self.producer.send(
                    topic,
                    key=r.key or ob.stream.encode(),
                    value=codec.forecast(ob.stream, ob.ts, name, version, row, self.keys, src, now),
                )
            m.forecasts.labels(name).inc(len(valid))
        self.producer.flush()  # every forecast and dead letter acknowledged before the offsets move
        acked = time.time()
        for r in records:
            m.e2e_latency.observe(max(0.0, acked - r.timestamp / 1000))
        self._commit(records)
        self._housekeeping(polled)
        return len(records)

    def _dead(self, record: Any, reason: str, detail: str) -> None:
        self.metrics.invalid_events.labels(reason).inc()
        src = codec.source(record.topic, record.partition, record.offset)
        self.producer.send(
            self.settings.dead_letters, key=record.key, value=codec.dead_letter(reason, detail, record.value, src)
        )

    def _commit(self, records: list[Any]) -> None:
        last: dict[TopicPartition, int] = defaultdict(int)
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            last[tp] = max(last[tp], r.offset + 1)
        self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in last.items()})

    def _housekeeping(self, polled: dict[TopicPartition, list[Any]]) -> None:
        engine, m = self.fc.engine, self.metrics
        m.active_streams.set(len(engine.table))
        if engine.evictions > self._evictions:
            m.evictions.inc(engine.evictions - self._evictions)
            self._evictions = engine.evictions
            self.accuracy.forget_all_but(set(engine.table.streams))
        for tp in polled:
            high = self.consumer.highwater(tp)
            if high is not None:
                m.consumer_lag.labels(str(tp.partition)).set(max(0, high - self.consumer.position(tp)))
