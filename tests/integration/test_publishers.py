"""Publishers and subscribers other than ours: librdkafka (confluent-kafka) with every compression
codec, headers, unkeyed records and tombstones, records without a timestamp, and record batches
that cannot be read at all, against the real embedded broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer
from confluent_kafka import TopicPartition as RdTopicPartition
from kafka.record import default_records

from tests.hostile import record_batch
from tests.integration.faults import produce_raw
from tests.integration.helpers import (
    Worker,
    assert_exact,
    committed_offsets,
    consume,
    price_events,
    publish,
    tracebacks,
    wait_for,
)
from workers.broker import BrokerInfo
from workers.settings import KafkaSettings
from workers.topics import ensure_topics

pytestmark = pytest.mark.kafka

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
PARTITIONS = 4


def rd_publish(kafka: BrokerInfo, topic: str, records: list[dict], **config: object) -> list[tuple[int, int]]:
    """Publish with librdkafka; each record a dict of ``produce`` arguments. The (partition,
    offset) of each, in order, once all are acknowledged."""
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 50, **config})
    placed: list[tuple[int, int] | None] = [None] * len(records)

    def delivered(i: int):  # noqa: ANN202
        def report(error: object, msg: object) -> None:
            assert error is None, error
            placed[i] = (msg.partition(), msg.offset())  # type: ignore[attr-defined]

        return report

    for i, record in enumerate(records):
        producer.produce(topic, **record, on_delivery=delivered(i))
    assert producer.flush(30) == 0
    assert all(p is not None for p in placed)
    return placed  # type: ignore[return-value]


def rd_read(kafka: BrokerInfo, topic: str, until: object, seconds: float = 60) -> list[object]:
    """Every message of ``topic`` (all partitions, from the start) read with librdkafka, until
    ``until(messages)`` holds."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "rd-reader", "enable.auto.commit": False})
    consumer.assign([RdTopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got: list[object] = []

    def more() -> bool:  # every message that has arrived, not one per poll: the wait sleeps between polls
        for msg in consumer.consume(num_messages=1000, timeout=0.1):
            assert msg.error() is None, msg.error()
            got.append(msg)
        return until(got)  # type: ignore[operator]

    try:
        wait_for(more, seconds, f"messages on {topic}")
    finally:
        consumer.close()
    return got


def as_record(event: dict, **fields: object) -> dict:
    return {"key": event["stream"].encode(), "value": json.dumps(event).encode(), **fields}


def trace(event: dict) -> bytes:
    return f"{event['stream']}@{event['ts']}".encode()


@pytest.mark.parametrize("output_codec", CODECS[1:])
def test_every_codec_from_librdkafka_is_read_and_librdkafka_reads_the_forecasts_keys_and_headers(
    kafka: BrokerInfo,
    model_dir: Path,
    topics: dict[str, str],
    tmp_path: Path,
    output_codec: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ensure_topics(KafkaSettings(bootstrap=kafka.bootstrap), {topics["input"]: PARTITIONS, topics["output"]: PARTITIONS})
    # Each codec publishes streams of its own, each event with a trace header.
    streams = {
        codec: [{**e, "stream": f"{codec}-{e['stream']}"} for e in price_events(3, 12, seed=50 + k)]
        for k, codec in enumerate(CODECS)
    }
    events = [e for codec in CODECS for e in streams[codec]]
    with Worker(kafka, model_dir, topics, tmp_path, "--kafka-option", f"compression_type={output_codec}") as w:
        for codec in CODECS:
            records = [as_record(e, headers=[("trace-id", trace(e))]) for e in streams[codec]]
            rd_publish(kafka, topics["input"], records, **{"compression.type": codec})
        got = rd_read(kafka, topics["output"], until=lambda out: len(out) >= len(events))
        assert w.proc.poll() is None and not tracebacks(w.log_path.read_text())
        assert w.terminate() == 0

    forecasts = [json.loads(m.value()) for m in got]  # type: ignore[attr-defined]
    assert_exact(forecasts, events, model_dir)
    for m, f in zip(got, forecasts, strict=True):
        assert m.key() == f["stream"].encode()  # type: ignore[attr-defined]
        assert m.headers() == [("trace-id", f"{f['stream']}@{f['ts']}".encode())]  # type: ignore[attr-defined]

    # The forecasts were compressed with the codec asked for: a reader decodes them with it.
    decoded: list[str] = []
    for name in ("gzip", "snappy", "lz4", "zstd"):
        original = getattr(default_records, f"{name}_decode")
        monkeypatch.setattr(
            default_records, f"{name}_decode", lambda data, _n=name, _f=original: decoded.append(_n) or _f(data)
        )
    assert len(consume(kafka, topics["output"], len(events))) == len(events)
    assert decoded and set(decoded) == {output_codec}


def test_unkeyed_records_tombstones_and_records_without_a_timestamp_are_handled(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(KafkaSettings(bootstrap=kafka.bootstrap), {topics["input"]: PARTITIONS})
    keyed, unkeyed, unstamped = (price_events(1, 10, seed=60 + k) for k in range(3))
    for e in unkeyed:
        e["stream"] = "unkeyed"
    for e in unstamped:
        e["stream"] = "unstamped"
    with Worker(kafka, model_dir, topics, tmp_path) as w:
        # the latencies below are the worker's, not the group join's (which can take 10 s here)
        wait_for(lambda: "Updated partition assignment: [T" in w.log_path.read_text(), 60, "the worker assigned")
        # unkeyed records, pinned to one partition by the publisher; a tombstone (no value), keyed
        rd_publish(kafka, topics["input"], [as_record(e, key=None, partition=0) for e in unkeyed])
        rd_publish(kafka, topics["input"], [{"key": b"S0", "value": None}])
        rd_publish(kafka, topics["input"], [as_record(e) for e in keyed])
        # records whose Kafka timestamp is -1 (none): forecast, with no end-to-end latency to observe
        batch = record_batch([(b"unstamped", json.dumps(e).encode()) for e in unstamped], timestamp_ms=-1)
        produce_raw(kafka.bootstrap, topics["input"], 1, batch)
        everything = keyed + unkeyed + unstamped
        got = consume(kafka, topics["output"], len(everything))
        dead = consume(kafka, topics["dlq"], 1)
        stamped = len(everything) - len(unstamped) + 1  # the tombstone's dead letter has a latency too
        wait_for(lambda: w.sample("forecaster_e2e_latency_seconds_count") == stamped, 30, "latencies")
        assert w.sample('forecaster_e2e_latency_seconds_bucket{le="10.0"}') == stamped  # none read as decades
        assert w.terminate() == 0
    assert_exact(got, everything, model_dir)
    assert [d["error"] for d in dead] == ["invalid_json"] and "no value" in dead[0]["detail"]


def test_batches_that_cannot_be_read_are_dead_lettered_once_and_every_partition_keeps_flowing(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(KafkaSettings(bootstrap=kafka.bootstrap), {topics["input"]: PARTITIONS})
    # The worker runs without zstandard, as a worker lacking a publisher's codec would.
    hidden = tmp_path / "without-zstd"
    hidden.mkdir()
    (hidden / "zstandard.py").write_text("raise ImportError('hidden by the test: a codec this worker lacks')\n")
    good = price_events(8, 30, seed=70)
    half = len(good) // 2
    junk = [(b"BAD", json.dumps({"stream": "BAD", "ts": 1.7e9 + i, "value": 1.0}).encode()) for i in range(5)]
    with Worker(kafka, model_dir, topics, tmp_path, env={"PYTHONPATH": str(hidden)}) as w:
        publish(kafka, topics["input"], good[:half])
        crc = produce_raw(kafka.bootstrap, topics["input"], 0, record_batch(junk, corrupt_crc=True))
        gz = produce_raw(kafka.bootstrap, topics["input"], 1, record_batch(junk, gzip_garbage=True))
        zstd = rd_publish(
            kafka,
            topics["input"],
            [{"key": k, "value": v, "partition": 2} for k, v in junk],
            **{"compression.type": "zstd"},
        )
        publish(kafka, topics["input"], good[half:])
        got = consume(
            kafka, topics["output"], until=lambda out: len({(g["stream"], g["ts"]) for g in out}) == len(good)
        )
        dead = consume(kafka, topics["dlq"], 3)
        wait_for(lambda: committed_offsets(kafka, topics)[0] > crc + 4, 30, "the offsets past the bad batch committed")
        log = w.log_path.read_text()
        assert w.proc.poll() is None and not tracebacks(log)  # never restarted, never stopped
        assert w.sample('forecaster_invalid_events_total{reason="undecodable"}') == 15
    # A crash, then a worker that rebuilds its state by replaying every partition from the start
    # (no snapshot yet): it passes the bad batches silently, dead-letters nothing twice.
    later = price_events(8, 5, seed=70, t0=30)
    with Worker(kafka, model_dir, topics, tmp_path, env={"PYTHONPATH": str(hidden)}) as w2:
        publish(kafka, topics["input"], later)
        everything = good + later
        got = consume(
            kafka, topics["output"], until=lambda out: len({(g["stream"], g["ts"]) for g in out}) == len(everything)
        )
        dead = consume(kafka, topics["dlq"], 3)
        log2 = w2.log_path.read_text()
        assert log2.count("restored no snapshot, replaying silently") == PARTITIONS
        assert "cannot be read" not in log2
        assert w2.terminate() == 0
    assert_exact(got, everything, model_dir)
    assert len(dead) == 3
    ranges = {(d["source"]["partition"], d["source"]["offset"], d["last_offset"]) for d in dead}
    assert ranges == {(0, crc, crc + 4), (1, gz, gz + 4), (2, zstd[0][1], zstd[-1][1])}
    assert all(d["error"] == "undecodable" and d["detail"] for d in dead)
    assert "zstd" in next(d["detail"] for d in dead if d["source"]["partition"] == 2)
    assert log.count("cannot be read") == 3  # logged once each
