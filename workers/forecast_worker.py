"""The forecast worker: consume observations, advance every stream in batched engine steps,
produce forecasts, commit input offsets only once the forecasts are acknowledged.

One turn of the loop (``step``):
  1. poll up to ``max_batch`` records, waiting at most ``max_wait_ms``;
  2. decode and validate each record; rejected ones become dead letters with their reason (a
     record batch the consumer cannot read at all is one dead letter, and reading goes on after it);
  3. score the previous one-step forecast of each stream against its new value (live accuracy);
  4. one engine advance for all valid events;
  5. hand forecasts and dead letters to the producer process (``workers.sender``) in one message;
  6. commit the input offsets of every earlier batch whose records the broker has acknowledged.
The loop does not wait for a batch's acks before polling the next (at most ``MAX_UNACKED``
input records are unacknowledged): the broker's round trip overlaps the next batch's work. A crash
before 6 replays the batch: delivery is at least once.

Exact recovery: every ``snapshot_interval_s`` each owned partition writes the state of the
streams updated since its last snapshot to the state topic (``workers.statelog``: deltas over
bases written in slices), tagged with the input offset the state covers; on revocation and on
shutdown, after every pending ack, it writes what is left. On assignment the partition is paused;
the loop then restores its newest chain of pieces at or before the group's committed offset
(``workers.snapshots``), seeks to its offset (the beginning without one) and replays up to the
committed offset silently: state only, no forecast is produced twice, and replayed batches commit
nothing.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

import forecaster
from forecaster.checkpoint import checkpoint_from_bytes, model_version
from forecaster.errors import CheckpointError
from forecaster.metrics import Metrics
from forecaster.models import ForecastModel
from forecaster.validation import Batch, validate_each
from workers import codec, snapshots, undecodable
from workers.accuracy import LiveAccuracy
from workers.control import ControlReader, Swap, send_swap
from workers.health import BrokerHealth, Probe, consumer_connections
from workers.sender import Sender
from workers.settings import WorkerSettings
from workers.shadow import Shadow
from workers.statelog import StateLog
from workers.warmup import Warmup

log = logging.getLogger("forecaster.worker")

# Client defaults that settings.kafka may override. A 10 s session (kafka-python's default is 45 s)
# moves a dead worker's partitions sooner. Large producer batches: kafka-python wakes its sender
# thread for every new batch, which at 16 KiB (the default) was a batch per ~35 forecasts.
CONSUMER_DEFAULTS = {
    "enable_auto_commit": False,
    "fetch_max_wait_ms": 10,  # the broker answers an empty fetch this soon: a new record waits no longer
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 3_000,
}
PRODUCER_DEFAULTS = {"acks": "all", "linger_ms": 5, "batch_size": 512 << 10}
# Reconnects back off exponentially (jittered) from 50 ms to 5 s: kafka-python's 30 s ceiling
# would leave a worker idle up to half a minute after the broker is back.
RECONNECT = {"reconnect_backoff_ms": 50, "reconnect_backoff_max_ms": 5_000}
# Input records handled but not yet acknowledged; more and the loop waits for the broker. In
# records, not batches: at low rates a batch holds a few records, and a cap of 4 batches made a
# window of a few ms, so the loop stalled on the broker's round trip.
MAX_UNACKED = 40_000
# A warm-up's replay per turn, in seconds: WARMUP_SHARE of the time the turn spent serving, or
# WARMUP_IDLE_S in a turn that served nothing (a record arriving meanwhile waits no longer; whole
# --max-batch replays made 150 ms gaps). At full load serving keeps 80% of its throughput
# (bench/swap.py --saturated); at 0.4 it kept 64%, not the 71% the loop's own timing predicts (on
# one machine, the replay's fetches also load the broker).
WARMUP_SHARE = 0.25
WARMUP_IDLE_S = 0.03
# The control topic is read this often: an empty poll costs ~0.4 ms, a tenth of a quiet turn.
CONTROL_EVERY_S = 0.25


@dataclass
class _Pending:
    """A batch sent but not yet acknowledged: its producer ticket, the offsets it completes,
    and the input record timestamps of its forecasts (for the end-to-end latency)."""

    ticket: int
    offsets: dict[TopicPartition, int]
    input_ts: list[int]
    records: int


class ForecastWorker:
    def __init__(
        self,
        settings: WorkerSettings,
        registry: CollectorRegistry | None = None,
        model: forecaster.Forecaster | None = None,
    ) -> None:
        self.settings = settings
        self.fc = model or forecaster.load(
            settings.model,
            settings.device,
            max_streams=settings.max_streams,
            idle_timeout=settings.idle_timeout_s,
            compile=settings.compile,
        )
        self.metrics = Metrics.create(registry or CollectorRegistry())
        self.metrics.model_info.labels(self.fc.name, self.fc.version, "serving").set(1)
        self.accuracy = LiveAccuracy(self.metrics, self.fc.version)
        self.consumer = KafkaConsumer(
            **{
                **CONSUMER_DEFAULTS,
                **RECONNECT,
                "group_id": settings.group,
                "auto_offset_reset": settings.auto_offset_reset,
                **settings.options_for(KafkaConsumer),
            }
        )
        self.producer = Sender({**PRODUCER_DEFAULTS, **RECONNECT, **settings.options_for(KafkaProducer)})
        self.probe = Probe({**RECONNECT, **settings.options_for(KafkaConsumer)}, settings.input)
        self.health = BrokerHealth(
            consumer_connections(self.consumer),
            self.metrics.broker_connected,
            self.metrics.broker_outages,
            silence=self.probe.silence,
            timeout_s=settings.broker_timeout_s,
        )
        self.running = True
        self.out_partitions: dict[str, int] = {}  # of the output topics, known once run() starts
        self.pending: deque[_Pending] = deque()
        self.unacked = 0  # input records of the pending batches
        self._evictions = 0
        self.partition_of: dict[str, int] = {}  # stream -> the input partition it arrives on
        self.committed: dict[TopicPartition, int] = {}  # next offset to consume, as committed
        self.processed: dict[TopicPartition, int] = {}  # next offset whose record the state does not hold yet
        self.silent_until: dict[TopicPartition, int] = {}  # replayed records below this produce nothing
        self.confirmed: dict[TopicPartition, int] = {}  # committed offsets the coordinator confirmed
        self.state = StateLog(self.fc, self.producer, settings, self.metrics)
        self.recovering: set[TopicPartition] = set()
        self.last_snapshot = time.monotonic()
        self.control: ControlReader | None = None  # follows forecaster swap's records, from run()
        self.control_due = 0.0  # monotonic time of the next read of the control topic
        self.warmup: Warmup | None = None  # a new model being warmed before it serves (or shadows)
        self.shadow: Shadow | None = None  # a warmed candidate stepped beside the serving model

    def stop(self) -> None:
        """Finish the batch in hand, flush, commit, then leave ``run`` (safe from a signal handler)."""
        self.running = False

    def run(self) -> None:
        for topic in filter(None, (self.settings.output, self.settings.shadow_output)):
            self.out_partitions[topic] = len(self.producer.partitions_for(topic))
        self._start_control()
        self.consumer.subscribe([self.settings.input], listener=_Rebalance(self))
        log.info("worker started: %s", self.settings.redacted())
        try:
            while self.running:
                self.step()
        finally:
            self._settle(wait=True)
            owned = self.consumer.assignment()
            if self.committed:  # batches commit asynchronously: make the last one certain
                last = {tp: o for tp, o in self.committed.items() if tp in owned}
                self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in last.items()})
                self.confirmed.update(last)
            self.consumer.close()  # leaving the group revokes: the listener writes the final snapshots
            for follower in (self.control, self.warmup, self.shadow and self.shadow.warmup):
                if follower is not None:
                    follower.close()
            self.producer.flush()
            self.producer.close()
            self.probe.close()
            log.info("worker stopped")

    def step(self) -> int:
        """One poll -> forecasts turn; returns how many records it handled."""
        started = time.perf_counter()
        if self.recovering:
            self.recover()
        try:
            polled = self.consumer.poll(timeout_ms=self.settings.max_wait_ms, max_records=self.settings.max_batch)
        except Exception as e:
            bad = undecodable.locate(e)
            if bad is None:
                raise
            self._skip(bad)
            polled = {}
        self._settle(wait=False)
        self.health.check()
        if self.shadow is not None and set(self.shadow.warmup.position) != self.consumer.assignment():
            self._rewarm()  # a rebalance: the shadow holds none of a new partition's history
        if polled:
            self._handle(polled)
        self._write_state(self.consumer.assignment())
        self._housekeeping(polled)
        handled = sum(len(rs) for rs in polled.values())
        self._follow_control(WARMUP_SHARE * (time.perf_counter() - started) if handled else WARMUP_IDLE_S)
        return handled

    def _handle(self, polled: dict[TopicPartition, list[Any]]) -> None:
        """Decode, validate, forecast and send one poll's records."""
        m, engine = self.metrics, self.fc.engine
        records, live = [], []
        for tp, rs in polled.items():
            records += rs
            silent = self.silent_until.get(tp, -1)  # a recovering partition's already-forecast records
            live += [r.offset >= silent for r in rs] if silent >= 0 else [True] * len(rs)
        m.events.inc(len(records))
        decoded, failed = codec.events_of(records)
        for i, e in failed:
            self._dead(records[i], e.reason, str(e))
        routed = {i for i, _ in failed}  # records already sent to the dead-letter topic
        valid, rejected = validate_each(decoded, engine.table.last_ts)
        for rej in rejected:
            if rej.index not in routed:
                self._dead(records[rej.index], rej.reason, rej.detail)
        if valid.index:
            self._forecast(records, live, valid)
        self.pending.append(
            _Pending(
                self.producer.seal(),
                {tp: rs[-1].offset + 1 for tp, rs in polled.items()},
                # a record without a timestamp (-1, or None from a v0 message) has no latency to show
                [r.timestamp for r, fresh in zip(records, live, strict=True) if fresh and (r.timestamp or -1) >= 0],
                len(records),
            )
        )
        self.unacked += len(records)
        self.processed.update({tp: rs[-1].offset + 1 for tp, rs in polled.items()})
        self._settle(wait=self.unacked > MAX_UNACKED)

    def _forecast(self, records: list[Any], live: list[bool], valid: Batch) -> None:
        """Advance the engine with the batch's valid events and send the live ones' forecasts (and
        step the shadow model, if any, on the same events)."""
        m, engine, chains = self.metrics, self.fc.engine, self.state.chains
        streams, ts, values = valid.streams, valid.ts.tolist(), valid.values.tolist()
        start = time.perf_counter()
        # float32: the precision the model computes in; numpy rows encode without Python lists
        rows = engine.advance_all(streams, ts, values).numpy().astype(np.float32)
        m.inference.observe(time.perf_counter() - start)
        m.batch_size.observe(len(streams))
        scales = engine.read("x_scale", streams).numpy().tolist()
        fresh = [live[i] for i in valid.index]
        errors = self.accuracy.observe(streams, values, rows, scales, fresh)
        for i, stream in zip(valid.index, streams, strict=True):
            p = records[i].partition
            self.partition_of[stream] = p
            chains[p].changed.add(stream)
        produced = self._publish(self.settings.output, self.fc, records, valid, ts, values, rows, fresh)
        m.forecasts.labels(self.fc.name).inc(produced)
        if self.shadow is not None:
            shadow_rows, verdict = self.shadow.step(streams, ts, values, scales, fresh, errors)
            if self.settings.shadow_output:
                shadow_fc = self.shadow.fc
                self._publish(self.settings.shadow_output, shadow_fc, records, valid, ts, values, shadow_rows, fresh)
            if verdict is not None:
                self._judge(*verdict)

    def _publish(
        self,
        topic: str,
        fc: forecaster.Forecaster,
        records: list[Any],
        valid: Batch,
        ts: list[float],
        values: list[float],
        rows: Any,
        live: list[bool],
    ) -> int:
        """Send ``fc``'s forecasts of the batch's live events to ``topic``; returns how many.
        ``ts``, ``values``: the batch's as lists (made once per batch, for every model)."""
        now, name, version, parts = time.time(), fc.name, fc.version, self.out_partitions[topic]
        keys = [str(q) for q in fc.config.quantiles]
        produced = 0
        for i, stream, t, value, row, fresh in zip(valid.index, valid.streams, ts, values, rows, live, strict=True):
            if not fresh:
                continue  # replayed to rebuild state: its forecast was produced and committed before
            produced += 1
            r = records[i]
            src = codec.source(r.topic, r.partition, r.offset)
            self.producer.send(
                topic,
                partition=r.partition % parts,  # as the input: skips hashing the key again
                key=r.key or stream.encode(),
                value=codec.forecast(stream, t, value, name, version, row, keys, src, now),
                headers=r.headers or None,  # a publisher's headers (trace ids, say) travel with its forecast
            )
        return produced

    def _dead(self, record: Any, reason: str, detail: str) -> None:
        if record.offset < self.silent_until.get(TopicPartition(record.topic, record.partition), -1):
            return  # sent when the record was first seen
        self.metrics.invalid_events.labels(reason).inc()
        src = codec.source(record.topic, record.partition, record.offset)
        self.producer.send(
            self.settings.dead_letters,
            key=record.key,
            value=codec.dead_letter(reason, detail, record.value, src),
            headers=record.headers or None,
        )

    def _skip(self, bad: undecodable.BadBatch) -> None:
        """Dead-letter a record batch the consumer cannot read, once (not again in a replay), and
        read on after it; its offsets commit with the dead letter's acknowledgement, as a batch's."""
        tp, span = bad.partition, bad.next_offset - bad.first
        if bad.first >= self.silent_until.get(tp, -1):
            self.metrics.events.inc(span)
            self.metrics.invalid_events.labels("undecodable").inc(span)
            log.warning(
                "partition %s: offsets %d-%d cannot be read (%s); dead-lettered, reading on",
                tp,
                bad.first,
                bad.last,
                bad.detail,
            )
            src = codec.source(tp.topic, tp.partition, bad.first)
            self.producer.send(
                self.settings.dead_letters, value=codec.dead_letter("undecodable", bad.detail, None, src, bad.last)
            )
        self.consumer.seek(tp, bad.next_offset)
        self.processed[tp] = bad.next_offset
        self.pending.append(_Pending(self.producer.seal(), {tp: bad.next_offset}, [], 0))

    def _settle(self, wait: bool) -> None:
        """Commit, oldest first, the batches whose records are all acknowledged (every pending
        batch, after waiting for the broker, when ``wait``). Asynchronously, so the loop need not
        wait for the round trip: a lost commit only replays records; shutdown commits synchronously."""
        if wait and self.pending:
            self.health.flush(self.producer)
        # A record that failed (after retries until delivery_timeout_ms) raises here: stop rather than commit a loss.
        while self.pending and self.producer.is_done(self.pending[0].ticket):
            batch = self.pending.popleft()
            self.unacked -= batch.records
            lag = time.time() - np.array(batch.input_ts) / 1000
            self.metrics.e2e_latency.observe_many(np.maximum(lag, 0.0))
            # A replayed batch was committed before: committing it again would move the group back.
            live = {tp: o for tp, o in batch.offsets.items() if o > self.silent_until.get(tp, -1)}
            if live:
                offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in live.items()}
                self.consumer.commit_async(offsets, self._on_commit)
                self.committed.update(live)

    def _on_commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], result: Any) -> None:
        """An asynchronous commit's answer: a confirmed offset lets older snapshots go."""
        if isinstance(result, Exception):
            log.warning("offset commit failed (%s); the next commit or a replay covers it", result)
            return
        for tp, o in offsets.items():
            self.confirmed[tp] = max(self.confirmed.get(tp, -1), o.offset)

    def _write_state(self, partitions: set[TopicPartition], finish: bool = False) -> None:
        """This turn's state writes for these partitions (``workers.statelog``): what is due at the
        snapshot interval, a base's next slice, or with ``finish`` all that is left."""
        now = time.monotonic()
        due = finish or now - self.last_snapshot >= self.settings.snapshot_interval_s
        offsets = {
            tp.partition: o for tp, o in self.processed.items() if tp in partitions and tp not in self.recovering
        }
        committed = {tp.partition: o for tp, o in self.confirmed.items()}
        self.state.turn(offsets, committed, self.partition_of, due, finish)
        if due:
            self.last_snapshot = now

    def snapshot(self, partitions: set[TopicPartition]) -> None:
        """Write all the state of these partitions not on the state topic yet, and wait until it
        is (revocation, shutdown): the next owner restores it."""
        self._settle(wait=True)  # commits every processed batch: the new pieces are usable at once
        self._write_state(partitions, finish=True)
        self.health.flush(self.producer)
        self._write_state(partitions)  # settles the acknowledgements: tombstones for what is not needed

    def release(self, partitions: set[TopicPartition]) -> None:
        """Forget the streams of partitions this worker no longer owns."""
        numbers = {tp.partition for tp in partitions}  # one input topic: its partition numbers name them
        gone = [s for s, p in self.partition_of.items() if p in numbers]
        self.fc.forget(gone)
        for s in gone:
            del self.partition_of[s]
        for tp in partitions:
            self.committed.pop(tp, None)
            self.confirmed.pop(tp, None)
            self.processed.pop(tp, None)
            self.silent_until.pop(tp, None)
            self.recovering.discard(tp)
            self.state.forget(tp.partition)

    def recover(self) -> None:
        """Rebuild the state of newly assigned partitions: newest snapshot chain, then a silent
        replay from its offset (or from the beginning) up to the group's committed offset."""
        tps, self.recovering = self.recovering, set()
        committed = {tp: self.consumer.committed(tp) for tp in tps}
        for tp in [tp for tp, c in committed.items() if c is None]:  # nothing processed by the group yet
            self.consumer.resume(tp)
        done = {tp: c for tp, c in committed.items() if c is not None}
        found, stored = snapshots.read_latest(self.settings, {tp.partition: c for tp, c in done.items()})
        for tp, upto in done.items():
            self.confirmed[tp] = upto
            chain = found.get(tp.partition)
            restored, members = None, set()
            if chain is not None:
                try:
                    members = self._restore(tp.partition, chain.blobs)
                    restored = chain.tip
                except ValueError as e:  # e.g. a snapshot of another model version: rebuild instead
                    log.warning("partition %s: snapshot not usable (%s); replaying from the beginning", tp, e)
            self.state.adopt(tp.partition, stored.get(tp.partition, []), restored, members)
            if restored is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, restored.offset)
            self.committed[tp] = self.silent_until[tp] = upto
            self.consumer.resume(tp)
            log.info(
                "partition %s: restored %s, replaying silently up to offset %d",
                tp,
                f"snapshot at offset {restored.offset}" if restored is not None else "no snapshot",
                upto,
            )

    def _restore(self, partition: int, blobs: list[bytes]) -> set[str]:
        """Merge a chain's pieces in order and return the streams restored; ``ValueError`` (and
        none of its streams kept) if one is not usable."""
        restored: set[str] = set()
        try:
            for blob in blobs:
                restored.update(self.fc.restore(blob, merge=True))
        except ValueError:
            self.fc.forget(restored)
            raise
        table = self.fc.engine.table
        present = {s for s in restored if s in table}  # less those a later piece dropped
        # the restored streams are this partition's: later snapshots must include them
        self.partition_of.update(dict.fromkeys(present, partition))
        return present

    def _start_control(self) -> None:
        """Follow the control topic; serve the group's newest model handed over by ``forecaster
        swap`` (a worker that restarts after a swap serves what its group serves) and shadow the
        newest shadow model handed over since, if any."""
        self.control = ControlReader(self.settings, self.settings.control_topic, self.settings.group, RECONNECT)
        serving: tuple[Swap, ForecastModel] | None = None
        shadow: tuple[Swap, ForecastModel] | None = None
        for swap in self.control.catch_up():
            model = self._checked(swap)
            if model is not None and swap.mode == "serve":
                serving, shadow = (swap, model), None
            elif model is not None:
                shadow = (swap, model)
        if serving is not None:
            swap, model = serving
            self._serve(self._forecaster(model), {})
            log.info("serving %s %s, handed over by swap %s", self.fc.name, self.fc.version, swap.id)
        if shadow is not None:
            self._take(*shadow)

    def _follow_control(self, seconds: float) -> None:
        """Take new swaps; a warm-up replays about ``seconds`` worth of records per turn and, once
        it holds what the serving state holds, takes over (or, for a shadow, starts stepping beside
        the serving model)."""
        assert self.control is not None
        if time.monotonic() >= self.control_due:
            self.control_due = time.monotonic() + CONTROL_EVERY_S
            for swap in self.control.poll():
                model = self._checked(swap)
                if model is not None:
                    self._take(swap, model)
        w = self.warmup
        if w is None or self.recovering:
            return
        owned = self.consumer.assignment()
        if not owned:  # without partitions there is nothing to warm yet
            return
        if set(w.position) != owned:  # a rebalance since it began
            w.restart(owned)
        upto = {tp: self.processed[tp] if tp in self.processed else self.consumer.position(tp) for tp in owned}
        before = w.records
        done = w.step(upto, min(self.settings.max_batch, max(1, int(seconds / w.cost))))
        self.metrics.warmup_records.inc(w.records - before)
        self.metrics.warmup_seconds.set(time.monotonic() - w.started)
        if not done:
            return
        self.warmup = None
        seconds = time.monotonic() - w.started
        if w.swap.mode == "shadow":
            self.shadow = Shadow(w, self.metrics, self.settings.promote_window)
            self.metrics.model_info.labels(w.fc.name, w.fc.version, "shadow").set(1)
            log.info(
                "swap %s: shadowing %s %s beside %s %s after replaying %d records in %.1f s",
                w.swap.id, w.fc.name, w.fc.version, self.fc.name, self.fc.version, w.records, seconds,
            )  # fmt: skip
            return
        w.close()
        table = w.fc.engine.table
        longest = 1e3 * w.longest_step
        how = f"after replaying {w.records} records in {seconds:.1f} s (longest turn of replay {longest:.0f} ms)"
        self._switch(w.fc, {s: p for s, p in w.partition_of.items() if s in table}, w.swap.id, how)

    def _take(self, swap: Swap, model: ForecastModel) -> None:
        """A swap whose checkpoint is usable: one candidate at a time, so a new one replaces the
        one warming or shadowing; a serve swap of the shadow model promotes it at once (its state
        is warm already)."""
        version = model_version(model)
        if version == self.fc.version:
            log.info("swap %s: %s %s already serves; nothing to do", swap.id, self.fc.name, version)
            return
        shadow, warming = self.shadow, self.warmup
        if shadow is not None and shadow.fc.version == version:
            if swap.mode == "serve":  # a promotion
                self.shadow = None
                shadow.warmup.close()
                self.metrics.model_info.remove(shadow.fc.name, version, "shadow")
                table = shadow.fc.engine.table
                self._switch(shadow.fc, {s: p for s, p in self.partition_of.items() if s in table}, swap.id, "promoted")
                self.accuracy = shadow.accuracy  # its scoring goes on
            return
        if warming is not None and warming.fc.version == version:
            warming.swap = swap  # the same model: this swap says what it becomes once warm
            return
        if warming is not None:
            warming.close()
        self._drop_shadow()
        self.warmup = Warmup(swap, model, self.settings, set(self.consumer.assignment()), RECONNECT)
        role = "serves" if swap.mode == "serve" else "serves, to shadow it"
        log.info(
            "swap %s: warming up %s %s while %s %s %s",
            swap.id, model.config.family, version, self.fc.name, self.fc.version, role,
        )  # fmt: skip

    def _judge(self, serving: float, shadow: float) -> None:
        """A finished contest window: promote the shadow for the whole group if it did better (a
        serve swap of it on the control topic, which every worker, this one included, takes)."""
        assert self.shadow is not None
        s = self.shadow
        better = shadow < serving
        log.info(
            "shadow %s %s against serving %s %s over %d events: mean scaled error %.4f vs %.4f%s",
            s.fc.name, s.fc.version, self.fc.name, self.fc.version, self.settings.promote_window, shadow, serving,
            "; promoting it" if better and not s.promoting else "",
        )  # fmt: skip
        if better and not s.promoting:
            send_swap(self.producer, self.settings.control_topic, self.settings.group, s.swap.blob)
            s.promoting = True

    def _rewarm(self) -> None:
        """Back to warming the shadow model over the partitions now owned."""
        assert self.shadow is not None
        self.warmup = self.shadow.warmup
        self._drop_shadow(close=False)
        log.info("swap %s: the partitions changed; warming up the shadow model again", self.warmup.swap.id)

    def _drop_shadow(self, close: bool = True) -> None:
        s, self.shadow = self.shadow, None
        if s is None:
            return
        self._retire(s.fc, "shadow")
        if close:
            s.warmup.close()

    def _retire(self, fc: forecaster.Forecaster, role: str) -> None:
        """Remove a model's series (a model swapped out or dropped leaves the dashboards)."""
        self.metrics.model_info.remove(fc.name, fc.version, role)
        for metric in (self.metrics.realized_error, self.metrics.interval_coverage):
            metric.remove(fc.version)

    def _checked(self, swap: Swap) -> ForecastModel | None:
        """The swap's model, or None (with a log line) if its checkpoint is not usable."""
        try:
            model, _ = checkpoint_from_bytes(swap.blob, f"swap {swap.id}")
        except CheckpointError as e:
            log.warning("%s; refused, %s %s keeps serving", e, self.fc.name, self.fc.version)
            return None
        return model

    def _forecaster(self, model: ForecastModel) -> forecaster.Forecaster:
        s = self.settings
        return forecaster.Forecaster(
            model, s.device, max_streams=s.max_streams, idle_timeout=s.idle_timeout_s, compile=s.compile
        )

    def _switch(self, fc: forecaster.Forecaster, partition_of: dict[str, int], swap: str, how: str) -> None:
        was, start = f"{self.fc.name} {self.fc.version}", time.perf_counter()
        self._serve(fc, partition_of)
        self.metrics.swaps.inc()
        took = 1e3 * (time.perf_counter() - start)
        log.info(
            "swap %s: serving %s %s (was %s), %s; the switch took %.1f ms", swap, fc.name, fc.version, was, how, took
        )

    def _serve(self, fc: forecaster.Forecaster, partition_of: dict[str, int]) -> None:
        """From the next batch on, ``fc`` serves (with its state of these streams)."""
        self._retire(self.fc, "serving")
        self.metrics.model_info.labels(fc.name, fc.version, "serving").set(1)
        self.fc = fc
        self.partition_of = partition_of
        self.accuracy = LiveAccuracy(self.metrics, fc.version)  # the old model's pending one-step forecasts
        self.state = self.state.for_model(fc)
        self._evictions = fc.engine.evictions
        self.last_snapshot = -math.inf  # the new model's state goes out at once

    def _housekeeping(self, polled: dict[TopicPartition, list[Any]]) -> None:
        engine, m = self.fc.engine, self.metrics
        m.active_streams.set(len(engine.table))
        if engine.evictions > self._evictions:  # evicted streams leave every per-stream map: memory stays bounded
            m.evictions.inc(engine.evictions - self._evictions)
            self._evictions = engine.evictions
            self.accuracy.forget_all_but(engine.table)
            for s in [s for s in self.partition_of if s not in engine.table]:
                self.state.evicted(self.partition_of.pop(s), s)
        for tp in polled:
            high = self.consumer.highwater(tp)
            if high is not None:
                m.consumer_lag.labels(str(tp.partition)).set(max(0, high - self.consumer.position(tp)))


class _Rebalance(ConsumerRebalanceListener):
    """Runs inside ``poll``: no blocking consumer calls here (kafka-python 3.0), so assignment
    only pauses the partitions and leaves their recovery to the loop."""

    def __init__(self, worker: ForecastWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.worker.snapshot(set(revoked))  # every processed batch is committed already
        self.worker.release(set(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            self.worker.consumer.pause(*assigned)
            self.worker.recovering |= set(assigned)
