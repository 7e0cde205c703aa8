"""Reliability under faults, against the real embedded broker: broker outages, crash loops,
hostile input and a million stream ids (docs/RELIABILITY.md quotes these tests' figures)."""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from forecaster.validation import REASONS
from tests.hostile import records
from tests.integration.faults import Link
from tests.integration.helpers import (
    SHORT_SESSION,
    Reader,
    Worker,
    assert_exact,
    committed_offsets,
    consume,
    price_events,
    publish,
    tracebacks,
    wait_for,
)
from workers import broker
from workers.broker import BrokerInfo
from workers.settings import KafkaSettings
from workers.topics import ensure_topics

pytestmark = pytest.mark.kafka

EXTREMES = [  # always sent, whatever hypothesis draws; keyed by their stream ids, so as to reach validation
    (b"a", b'{"stream": "a", "ts": 1.7e9, "value": "' + b"9" * (1 << 20) + b'"}'),  # 1 MB
    (None, b"[" * 100_000 + b"]" * 100_000),
    (b"x" * 10_000, json.dumps({"stream": "x" * 10_000, "ts": 1.7e9, "value": 1.0}).encode()),
    (b"utf8", b'{"stream": "\xff\xfe", "ts": 1.7e9, "value": 1.0}'),
    (b"n", b'{"stream": "n", "ts": 1.7e9, "value": NaN}'),
    (b"n", b'{"stream": "n", "ts": null, "value": true}'),
    (b"AAPL", b'{"stream": "MSFT", "ts": 1.7e9, "value": 1.0}'),  # keyed by another stream
]


@pytest.fixture
def linked_broker() -> Iterator[tuple[BrokerInfo, Link]]:
    """A broker of its own that clients reach only through a ``Link`` (so the test can cut it)."""
    port = broker.free_port()
    link_port = next(p for p in iter(broker.free_port, None) if p != port)  # both are free now, not yet bound
    info = broker.start(port, advertised_port=link_port)
    link = Link(link_port, port)
    try:
        yield BrokerInfo(info.pid, info.host, link_port, info.log), link
    finally:
        link.cut()
        broker.stop(port)


def unique(got: list[dict]) -> int:
    return len({(g["stream"], g["ts"]) for g in got})


def test_broker_outage_is_logged_and_counted_and_the_worker_resumes_without_restarting(
    linked_broker: tuple[BrokerInfo, Link], model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    kafka, link = linked_broker
    events = price_events(10, 40, seed=31)
    first, second = events[:200], events[200:]
    with Worker(kafka, model_dir, topics, tmp_path, "--snapshot-interval-s", "0.1") as w:
        publish(kafka, topics["input"], first)
        consume(kafka, topics["output"], until=lambda out: unique(out) == len(first))
        link.cut()
        cut_at = time.monotonic()
        wait_for(lambda: w.sample("forecaster_broker_connected") == 0, 30, "the worker to notice the outage")
        assert w.sample("forecaster_broker_outages_total") == 1
        # Longer than the group session timeout (6 s) and many reconnect back-offs.
        wait_for(lambda: time.monotonic() - cut_at > 10, 30, "an outage of 10 s")
        attempts = w.log_path.read_text().count("Connection failed")
        link.restore()
        outage_s = time.monotonic() - cut_at
        # Retried with backoff: four connections (producer, fetch, group coordinator, the control
        # topic's reader) at a fixed 50 ms would make ~80 attempts a second.
        assert 3 <= attempts < 4 * outage_s
        wait_for(lambda: w.sample("forecaster_broker_connected") == 1, 60, "the worker to reconnect")
        publish(kafka, topics["input"], second)
        got = consume(kafka, topics["output"], seconds=90, until=lambda out: unique(out) == len(events))
        assert_exact(got, events, model_dir)
        assert w.proc.poll() is None  # the same process throughout
        log = w.log_path.read_text()
        assert "broker unreachable" in log and "broker reachable again" in log
        assert w.sample("forecaster_broker_outages_total") == 1
        assert w.terminate() == 0
        print(f"outage: {outage_s:.1f} s, {attempts} reconnect attempts, {unique(got)} of {len(events)} forecasts")


@pytest.fixture
def own_broker() -> Iterator[BrokerInfo]:
    """A broker of its own, which the test may freeze."""
    info = broker.start(broker.free_port())
    try:
        yield info
    finally:
        os.kill(info.pid, signal.SIGCONT)
        broker.stop(info.port)


def test_a_hung_broker_is_reported_after_the_configured_silence_and_nothing_is_lost(
    own_broker: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    kafka = own_broker
    events = price_events(10, 40, seed=34)
    first, second = events[:200], events[200:]
    flags = ("--snapshot-interval-s", "0.1", "--broker-timeout-s", "3")
    with Worker(kafka, model_dir, topics, tmp_path, *flags) as w:
        publish(kafka, topics["input"], first)
        consume(kafka, topics["output"], until=lambda out: unique(out) == len(first))
        assert w.sample("forecaster_broker_connected") == 1
        os.kill(kafka.pid, signal.SIGSTOP)  # the broker stops answering; its connections stay open
        stopped_at = time.monotonic()
        wait_for(lambda: w.sample("forecaster_broker_connected") == 0, 30, "the worker to notice the hang")
        noticed_s = time.monotonic() - stopped_at
        # after the silence it was told to allow, counted from the last answer (asked every second)
        assert 3 - 1 <= noticed_s < 10
        assert w.sample("forecaster_broker_outages_total") == 1
        wait_for(lambda: time.monotonic() - stopped_at > 10, 30, "a 10 s stop (longer than the 6 s session)")
        os.kill(kafka.pid, signal.SIGCONT)
        continued_at = time.monotonic()
        wait_for(lambda: w.sample("forecaster_broker_connected") == 1, 30, "the worker to see the broker back")
        back_s = time.monotonic() - continued_at
        publish(kafka, topics["input"], second)
        got = consume(kafka, topics["output"], seconds=120, until=lambda out: unique(out) == len(events))
        assert_exact(got, events, model_dir)
        log = w.log_path.read_text()
        assert w.proc.poll() is None and not tracebacks(log)
        assert log.count("broker unreachable: no answer for") == 1 and log.count("broker reachable again") == 1
        assert w.sample("forecaster_broker_outages_total") == 1
        assert w.terminate() == 0
        print(f"hung broker: reported after {noticed_s:.1f} s (timeout 3 s), back {back_s:.1f} s after SIGCONT")


def test_crash_loop_of_sigkills_loses_nothing_and_forecasts_equal_a_run_that_never_failed(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    events = price_events(20, 60, seed=32)
    bad = [(b"S0", b"{not json"), (b"S1", b'{"stream": "S1", "ts": 1.7e9, "value": NaN}'), (b"S2", b"\xff")]
    n_kills, rng = 5, random.Random(7)
    # The replay arrives in n_kills + 1 parts, so that each kill lands mid-stream: after a random
    # number of the part's forecasts, with the rest of the part still in flight.
    bounds = [round(len(events) * i / (n_kills + 1)) for i in range(n_kills + 2)]
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)

    def send_part(i: int) -> None:
        for j, e in enumerate(events[bounds[i] : bounds[i + 1]]):
            producer.send(topics["input"], key=e["stream"].encode(), value=json.dumps(e).encode())
            if i % 2 == 0 and j == 7:
                for key, value in bad:
                    producer.send(topics["input"], key=key, value=value)
        producer.flush()

    def start() -> Worker:
        return Worker(
            kafka, model_dir, topics, tmp_path, "--max-batch", "7", "--snapshot-interval-s", "0.3", *SHORT_SESSION
        )

    w = start()
    out = Reader(kafka, topics["output"])
    killed_at = []
    try:
        for i in range(n_kills):
            send_part(i)
            k = rng.randint(bounds[i] + 1, bounds[i + 1])
            wait_for(lambda k=k: unique(out.read()) >= k, 90, f"{k} forecasts")
            w.kill()
            killed_at.append(unique(out.read()))
            w = start()
        send_part(n_kills)
        wait_for(lambda: unique(out.read()) == len(events), 120, "every forecast")
        assert killed_at[-1] < len(events)
        assert_exact(out.messages, events, model_dir)
        n_bad = len(bad) * len(range(0, n_kills + 1, 2))
        dead = consume(kafka, topics["dlq"], until=lambda d: len({json.dumps(x["source"]) for x in d}) == n_bad)
        assert {d["error"] for d in dead} == {"invalid_json", "non_finite"}
        wait_for(lambda: "worker started" in w.log_path.read_text(), 60, "the last worker running")  # handles SIGTERM
        assert w.terminate() == 0
        print(
            f"crash loop: {len(events)} events + {n_bad} bad, SIGKILLs after {killed_at} forecasts, "
            f"{len(out.messages)} forecasts ({len(out.messages) - len(events)} repeats), 0 lost"
        )
    finally:
        out.close()
        w.kill()


def usable(records: list, committed: dict[int, int]) -> dict[int, set[str]]:
    """Per input partition, the recovery points of a state log that recovery could use: every
    part of every piece from the point back to its base present (after the tombstones), and an
    offset the group has committed."""
    parts: dict[str, dict[int, bool]] = {}
    meta: dict[str, tuple[int, int, int, str, bool]] = {}  # partition, parts, offset, parent, point
    for r in records:
        _, p, piece, part = r.key.decode().rsplit(":", 3)
        if r.value is None:
            parts.get(piece, {}).pop(int(part), None)
            continue
        h = dict(r.headers)
        meta[piece] = (int(p), int(h["parts"]), int(h["offset"]), h["parent"].decode(), h["point"] == b"1")
        parts.setdefault(piece, {})[int(part)] = True

    def whole(piece: str) -> bool:
        while piece:
            if piece not in meta or len(parts.get(piece, {})) != meta[piece][1]:
                return False
            piece = meta[piece][3]
        return True

    out: dict[int, set[str]] = {}
    for piece, (p, _, offset, _, point) in meta.items():
        if point and offset <= committed.get(p, -1) and whole(piece):
            out.setdefault(p, set()).add(piece)
    return out


def kept_over_base(records: list) -> list[float]:
    """Per input partition of a compacted state log: the bytes left, over its largest base's."""
    size: dict[tuple[str, str], int] = {}
    roots = set()
    for r in records:
        _, p, piece, _ = r.key.decode().rsplit(":", 3)
        size[p, piece] = size.get((p, piece), 0) + len(r.value)
        if dict(r.headers)["parent"] == b"":
            roots.add((p, piece))
    kept: dict[str, int] = {}
    base: dict[str, int] = {}
    for (p, piece), n in size.items():
        kept[p] = kept.get(p, 0) + n
        if (p, piece) in roots:
            base[p] = max(base.get(p, 0), n)
    return [round(kept[p] / base[p], 2) for p in kept if p in base]


def compact(kafka: BrokerInfo, topic: str, into: str) -> tuple[list, list]:
    """Kafka's log-cleaner rule applied to the whole of ``topic``, written to the new topic
    ``into``: the newest record of each key survives, and a key whose newest record is a
    tombstone is gone. Returns the records before and after."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning()
    end, log = consumer.end_offsets([tp])[tp], []
    deadline, quiet = time.monotonic() + 60, 0
    # The embedded broker's end offsets can be short by a batch: read on until a quiet poll too.
    while (consumer.position(tp) < end or quiet < 2) and time.monotonic() < deadline:
        polled = consumer.poll(timeout_ms=200).get(tp, [])
        quiet = 0 if polled else quiet + 1
        log += polled
    consumer.close()
    newest = {}
    for r in log:
        newest.pop(r.key, None)  # re-inserted last: the survivors keep the order of their newest records
        newest[r.key] = r
    kept = [r for r in newest.values() if r.value is not None]
    ensure_topics(KafkaSettings(bootstrap=kafka.bootstrap), {into: 1})
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for r in kept:
        producer.send(into, key=r.key, value=r.value, headers=r.headers)
    producer.flush()
    producer.close()
    return log, kept


def test_compaction_at_any_moment_of_a_crash_loop_leaves_a_usable_snapshot_and_forecasts_exact(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    """After every SIGKILL (some land mid-snapshot: snapshots of several 1 KB parts, taken every
    batch) the state topic is compacted as Kafka's cleaner would, and the next worker recovers
    from the compacted log alone: every partition that had a usable snapshot before compaction
    has one after it and restores it (no replay from the beginning, which retention may have
    cut); forecasts equal a run that never failed; old snapshots are tombstoned, so the
    compacted log holds a few snapshots per partition."""
    events = price_events(24, 50, seed=34)
    n_kills, rng = 4, random.Random(11)
    bounds = [round(len(events) * i / (n_kills + 1)) for i in range(n_kills + 2)]
    current = dict(topics)

    def start() -> Worker:
        flags = ("--max-batch", "5", "--snapshot-interval-s", "0.01", "--snapshot-chunk-bytes", "1024", *SHORT_SESSION)
        return Worker(kafka, model_dir, current, tmp_path, *flags)

    w = start()
    out = Reader(kafka, topics["output"])
    try:
        for i in range(n_kills):
            publish(kafka, topics["input"], events[bounds[i] : bounds[i + 1]])
            k = rng.randint(bounds[i] + 1, bounds[i + 1])
            wait_for(lambda k=k: unique(out.read()) >= k, 90, f"{k} forecasts")
            w.kill()
            committed = committed_offsets(kafka, topics)
            before, after = compact(kafka, current["state"], f"{topics['state']}-compacted-{i}")
            current["state"] = f"{topics['state']}-compacted-{i}"
            had, has = usable(before, committed), usable(after, committed)
            assert set(had) <= set(has), (had, has)  # compaction never takes the last usable snapshot
            w, n = start(), len(had)
            wait_for(lambda w=w, n=n: w.log_path.read_text().count("restored snapshot") >= n, 60, "recovery")
            log = w.log_path.read_text()
            for p in had:
                assert f"offset {committed[p]}\n" in log and f"partition={p}): restored no snapshot" not in log
        publish(kafka, topics["input"], events[bounds[n_kills] :])
        wait_for(lambda: unique(out.read()) == len(events), 120, "every forecast")
        assert_exact(out.messages, events, model_dir)
        assert w.terminate() == 0
        # Bounded, however long the run: old pieces were tombstoned. After a clean stop every
        # piece is committed, so what is left is the last chain: a base, deltas adding up to
        # about a base more, and the final delta (deltas of a few streams cost about half a base
        # here: each piece has ~3 KB of framing). Measured after a kill instead, the pieces
        # awaiting their commit count too, and those grow with the broker's round trip (7 bases
        # in a suite run in parallel).
        _, after = compact(kafka, current["state"], f"{topics['state']}-compacted-last")
        sizes = kept_over_base(after)
        assert sizes and max(sizes) <= 3
        print(f"compaction crash loop: {len(events)} events, state bytes left per partition / its base's: {sizes}")
    finally:
        out.close()
        w.kill()


def test_fuzzed_records_never_stop_the_worker_valid_ones_are_forecast_and_the_rest_dead_lettered(
    kafka: BrokerInfo, worker: Worker, topics: dict[str, str], model_dir: Path
) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, max_request_size=4 << 20)
    stream = "valid-\u2603"  # no generated record names it: its forecasts depend on its own events only
    sent: list[dict] = []  # the valid events, in order
    wait_for(lambda: "Updated partition assignment" in worker.log_path.read_text(), 60, "the worker assigned")
    out, dlq = Reader(kafka, topics["output"]), Reader(kafka, topics["dlq"])

    def where(messages: list[dict]) -> set[tuple[int, int]]:
        return {(m["source"]["partition"], m["source"]["offset"]) for m in messages}

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @example(EXTREMES)
    @given(st.lists(st.tuples(st.binary(max_size=20) | st.none(), records()), min_size=1, max_size=4))
    def check(bad: list[tuple[bytes | None, bytes]]) -> None:
        event = {"stream": stream, "ts": 1.7e9 + 60 * len(sent), "value": 100.0 + len(sent) % 7}
        futures = [producer.send(topics["input"], key=key, value=value) for key, value in bad]
        good = producer.send(topics["input"], key=stream.encode(), value=json.dumps(event).encode())
        sent.append(event)
        meta = [f.get(timeout=30) for f in futures]
        at = (good.get(timeout=30).partition, good.get(timeout=30).offset)
        wait_for(lambda: at in where(out.read()), 30, f"the forecast of {event}")
        everything = {(m.partition, m.offset) for m in meta}
        wait_for(lambda: everything <= where(out.read()) | where(dlq.read()), 30, "every fuzzed record routed")
        assert worker.proc.poll() is None

    try:
        check()
        routed = where(out.read()) | where(dlq.read())
        assert len(routed) == len(out.messages) + len(dlq.messages)  # each record once, in one place
        assert {d["error"] for d in dlq.messages} <= set(REASONS)
        assert_exact([m for m in out.messages if m["stream"] == stream], sent, model_dir)
        assert not tracebacks(worker.log_path.read_text())
        assert any(d.get("raw_size") == len(EXTREMES[0][1]) for d in dlq.messages)
        assert {"invalid_json", "invalid_schema", "non_finite", "key_mismatch"} <= {d["error"] for d in dlq.messages}
        assert worker.terminate() == 0
        print(f"fuzz: {len(routed)} records, {len(dlq.messages)} dead letters, {len(sent)} valid forecasts")
    finally:
        producer.close()
        out.close()
        dlq.close()


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_a_million_stream_ids_keep_the_cap_and_memory_bounded(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    n, cap, every = 1_000_000, 10_000, 50_000
    # Two malloc arenas: with glibc's default (up to 8 per core) fragmentation spread over the worker's
    # threads varies with the machine, and it is not the per-stream memory this test bounds.
    arenas = {"MALLOC_ARENA_MAX": "2"}
    with Worker(kafka, model_dir, topics, tmp_path, "--max-streams", str(cap), env=arenas) as w:
        wait_for(lambda: "Updated partition assignment" in w.log_path.read_text(), 60, "the worker assigned")
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=20, batch_size=1 << 20)
        rss: dict[int, float] = {}
        for i in range(n):  # each id once: every event past the cap evicts the least recently used stream
            producer.send(topics["input"], value=b'{"stream": "id-%d", "ts": 1.7e9, "value": 1.0}' % i)
            if (i + 1) % every == 0:
                producer.flush()
                wait_for(lambda i=i: w.sample("forecaster_forecasts_total") > i, 300, f"{i} forecasts")
                rss[i + 1] = rss_mb(w.proc.pid)
        producer.close()
        # The counters move after the forecasts are handed over: wait for the last batch's.
        wait_for(lambda: w.sample("forecaster_evictions_total") >= n - cap, 60, "the last batch's evictions")
        assert w.sample("forecaster_evictions_total") == n - cap
        assert w.sample("forecaster_active_streams") == cap
        # RSS jumps by up to 30 MB at single samples (the clients' buffers come and go), so the bound
        # is on its trend over 200k..1M ids (the first ones warm the pools), the median of the slopes
        # between every two samples (Theil-Sen): a least-squares slope took 55.8 bytes per id on CI
        # from a few such jumps, where a leak grows at every sample.
        ids = [i for i in rss if i >= 200_000]
        per_id = statistics.median((rss[b] - rss[a]) / (b - a) for a in ids for b in ids if b > a) * 2**20
        print(f"1M ids: RSS {min(rss.values()):.0f}-{max(rss.values()):.0f} MB, trend {per_id:.1f} bytes per id")
        assert per_id < 50  # bounded: the partition map left unpruned measured 96-132 bytes per id
        assert w.terminate() == 0


def test_garbage_on_the_state_topic_is_skipped_and_recovery_stays_exact(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    events = price_events(8, 30, seed=33)
    first, second = events[:120], events[120:]
    with Worker(kafka, model_dir, topics, tmp_path) as a:
        publish(kafka, topics["input"], first)
        consume(kafka, topics["output"], len(first))
        assert a.terminate() == 0  # a clean stop writes every partition's final snapshot
    committed = committed_offsets(kafka, topics)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for p, offset in committed.items():  # after each partition's real snapshot:
        state, prefix = topics["state"], topics["input"]
        producer.send(state, key=f"{prefix}:{p}:0".encode(), value=b"torn")  # a key of another layout
        producer.send(state, key=f"{prefix}:{p}:x:0".encode(), value=b"torn", headers=[("snapshot", b"x")])
        for tag, at in (("future", 10**6), ("now", offset)):  # past the committed offset; at it (newest)
            snap = f"{tag}{p}"
            headers = [("snapshot", snap.encode()), ("part", b"0"), ("parts", b"1"), ("offset", b"%d" % at)]
            producer.send(
                state, key=f"{prefix}:{p}:{snap}:0".encode(), value=b"\x80\x04 not a snapshot", headers=headers
            )
    producer.flush()
    producer.close()
    publish(kafka, topics["input"], second)
    with Worker(kafka, model_dir, topics, tmp_path) as b:
        got = consume(kafka, topics["output"], len(events))
        assert len(got) == len(events)  # not one forecast twice, none lost
        assert_exact(got, events, model_dir)
        log = b.log_path.read_text()
        # (counts are per recovery: "at least" allows a second rebalance)
        used = sum(1 for o in committed.values() if o > 0)
        assert log.count("not a snapshot part") >= 2 * len(committed) and not tracebacks(log)
        assert log.count("snapshot not usable") >= used  # the forged one at the committed offset: refused
        assert log.count("restored no snapshot") >= used  # and the partition rebuilt from its beginning
        assert "restored snapshot at offset" not in log  # the forged ones are newer than the real ones
        assert b.terminate() == 0
