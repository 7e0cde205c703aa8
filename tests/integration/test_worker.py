"""The forecast worker as users run it: a `forecaster serve` process against the embedded broker."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaProducer

import forecaster
from tests.conftest import exited, random_walks
from tests.integration.helpers import (
    SHORT_SESSION,
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

pytestmark = pytest.mark.kafka


def test_worker_forecasts_equal_the_library_and_bad_records_go_to_the_dlq(
    kafka: BrokerInfo, worker: Worker, topics: dict[str, str], model_dir: Path
) -> None:
    values = random_walks(6, 15, seed=3)
    events = [
        {"stream": f"T{i}", "ts": 1.7e9 + 60 * t, "value": float(values[i, t])}
        for t in range(values.shape[1])
        for i in range(values.shape[0])
    ]
    bad = [
        (b"T0", b"{not json"),
        (b"T1", json.dumps({"stream": "T1", "ts": 5.0, "value": "x"}).encode()),
        (b"T2", json.dumps({"stream": "T2", "ts": 1.8e9, "value": float("nan")}).encode()),  # NaN literal
        (b"T3", json.dumps({"stream": "T3", "ts": 1.0, "value": 1.0}).encode()),  # before T3's history
        (b"T4", b"\xff\xfe binary"),
    ]
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for e in events[:30]:
        producer.send(topics["input"], key=e["stream"].encode(), value=json.dumps(e).encode())
    producer.flush()
    for key, value in bad:
        producer.send(topics["input"], key=key, value=value)
    for e in events[30:]:
        producer.send(topics["input"], key=e["stream"].encode(), value=json.dumps(e).encode())
    producer.flush()
    producer.close()

    got = consume(kafka, topics["output"], len(events))
    dead = consume(kafka, topics["dlq"], len(bad))
    expected = {(f.stream, f.ts): f for f in forecaster.load(model_dir, device="cpu").update(events)}
    assert len(got) == len(events) and {(g["stream"], g["ts"]) for g in got} == set(expected)
    for g in got:
        want = expected[(g["stream"], g["ts"])]
        np.testing.assert_allclose(g["point"], want.point, rtol=1e-6)
        np.testing.assert_allclose(g["quantiles"]["0.9"], want.quantiles["0.9"], rtol=1e-6)
        assert g["source"]["topic"] == topics["input"] and g["model"] == "gru" and g["horizon"] == 4
        assert g["value"] == want.value
    assert sorted(d["error"] for d in dead) == [
        "invalid_json",
        "invalid_json",
        "invalid_schema",
        "non_finite",
        "out_of_order",
    ]
    assert next(d for d in dead if d.get("raw_encoding") == "base64")["source"]["topic"] == topics["input"]

    wait_for(lambda: worker.sample("forecaster_forecasts_total") == len(events), 30, "forecast counter")
    assert worker.sample("forecaster_events_total") == len(events) + len(bad)
    assert worker.sample('forecaster_invalid_events_total{reason="invalid_json"}') == 2
    assert worker.sample("forecaster_active_streams") == 6
    assert worker.sample("forecaster_e2e_latency_seconds_count") == len(events) + len(bad)
    assert 0 <= worker.sample("forecaster_interval_coverage_ratio") <= 1
    assert worker.sample("forecaster_realized_error_count") == len(events) - 6  # every value after a stream's first
    assert worker.terminate() == 0


def test_sigkill_then_restart_continues_with_the_same_forecasts(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    events = price_events(12, 40, seed=21)
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    a = Worker(kafka, model_dir, topics, tmp_path, "--snapshot-interval-s", "0.2", *SHORT_SESSION)
    publish(kafka, topics["input"], first)
    consume(kafka, topics["output"], len(first))
    consume(kafka, topics["state"], 1, parse=bytes)  # a snapshot was written
    (producer,) = a.children()
    a.proc.kill()
    a.proc.wait()
    # The orphaned producer process goes too (it may linger as a zombie until init reaps it).
    wait_for(lambda: exited(producer), 30, "the producer process to exit")
    publish(kafka, topics["input"], second)
    b = Worker(kafka, model_dir, topics, tmp_path)
    try:
        got = consume(
            kafka, topics["output"], until=lambda out: len({(g["stream"], g["ts"]) for g in out}) == len(events)
        )
        assert_exact(got, events, model_dir)
        assert "restored snapshot at offset" in b.log_path.read_text()
        assert b.terminate() == 0
    finally:
        b.kill()


def test_two_workers_split_the_streams_and_one_takes_over_when_the_other_dies(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    events = price_events(16, 30, seed=22)
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    a = Worker(kafka, model_dir, topics, tmp_path, "--snapshot-interval-s", "0.2")
    b = Worker(kafka, model_dir, topics, tmp_path, "--snapshot-interval-s", "0.2")
    try:
        wait_for(
            lambda: (
                "Updated partition assignment" in a.log_path.read_text()
                and "Updated partition assignment" in b.log_path.read_text()
            ),
            60,
            "both workers assigned",
        )
        publish(kafka, topics["input"], first)
        consume(kafka, topics["output"], until=lambda out: len({(g["stream"], g["ts"]) for g in out}) == len(first))
        wait_for(
            lambda: a.sample("forecaster_active_streams") + b.sample("forecaster_active_streams") == 16,
            30,
            "every stream resident on one worker",
        )
        assert a.sample("forecaster_active_streams") > 0 and b.sample("forecaster_active_streams") > 0
        a.proc.kill()
        a.proc.wait()
        publish(kafka, topics["input"], second)
        got = consume(
            kafka,
            topics["output"],
            seconds=90,
            until=lambda out: len({(g["stream"], g["ts"]) for g in out}) == len(events),
        )
        assert_exact(got, events, model_dir)
        wait_for(lambda: b.sample("forecaster_active_streams") == 16, 30, "the survivor holds every stream")
        assert b.terminate() == 0
    finally:
        for w in (a, b):
            w.kill()


@pytest.mark.parametrize("stop", ["sigterm", "ctrl-c"])
def test_a_stop_mid_stream_commits_exactly_what_it_forecast_and_a_restart_loses_nothing(
    stop: str, kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    """SIGTERM goes to the worker alone; Ctrl-C to its producer process as well."""
    events = price_events(20, 60, seed=23)
    first, second = events[:400], events[400:]
    a = Worker(kafka, model_dir, topics, tmp_path, "--max-batch", "5")  # many small batches
    publish(kafka, topics["input"], first)
    consume(kafka, topics["output"], 100)  # a is mid-stream
    late = threading.Thread(target=publish, args=(kafka, topics["input"], second))
    late.start()
    assert (a.terminate() if stop == "sigterm" else a.interrupt()) == 0
    late.join()
    log = a.log_path.read_text()
    assert "worker stopped" in log and not tracebacks(log)

    # Every forecast of a is covered by the committed offsets, and every committed record has one.
    committed = committed_offsets(kafka, topics)
    by_a = consume(kafka, topics["output"], sum(committed.values()))
    assert sorted((g["source"]["partition"], g["source"]["offset"]) for g in by_a) == [
        (p, o) for p in sorted(committed) for o in range(committed[p])
    ]
    assert len(by_a) < len(events)

    b = Worker(kafka, model_dir, topics, tmp_path)
    try:
        got = consume(kafka, topics["output"], len(events))
        assert len(got) == len(events)  # a clean stop: not one forecast twice
        assert_exact(got, events, model_dir)
        restored = b.log_path.read_text().count("restored snapshot at offset")
        assert restored == sum(1 for o in committed.values() if o > 0)  # a's final snapshots
        assert b.terminate() == 0
    finally:
        b.kill()
