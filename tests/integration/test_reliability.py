"""Reliability under faults, against the real embedded broker: broker outages, crash loops,
hostile input and a million stream ids (docs/RELIABILITY.md quotes these tests' figures)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.integration.faults import Link
from tests.integration.test_worker import Worker, assert_exact, consume, price_events, publish, wait_for
from workers import broker
from workers.broker import BrokerInfo

pytestmark = pytest.mark.kafka


@pytest.fixture
def linked_broker() -> Iterator[tuple[BrokerInfo, Link]]:
    """A broker of its own that clients reach only through a ``Link`` (so the test can cut it)."""
    port, link_port = broker.free_port(), broker.free_port()
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
    w = Worker(kafka, model_dir, topics, tmp_path, "--snapshot-interval-s", "0.5")
    try:
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
        # Retried with backoff: three connections (producer, fetch, group coordinator) at a fixed
        # 50 ms would make ~60 attempts a second.
        assert 3 <= attempts < 3 * outage_s
        wait_for(lambda: w.sample("forecaster_broker_connected") == 1, 60, "the worker to reconnect")
        publish(kafka, topics["input"], second)
        got = consume(kafka, topics["output"], seconds=90, until=lambda out: unique(out) == len(events))
        assert_exact(got, events, model_dir)
        assert w.proc.poll() is None  # the same process throughout
        log = w.log_path.read_text()
        assert "broker unreachable" in log and "broker reachable again" in log
        assert w.sample("forecaster_broker_outages_total") == 1
        assert w.terminate() == 0
    finally:
        if w.proc.poll() is None:
            w.proc.kill()


class Reader:
    """Reads every partition of a topic from the start, keeping what it has read (no group)."""

    def __init__(self, kafka: BrokerInfo, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
        wait_for(lambda: bool(self.consumer.partitions_for_topic(topic)), 30, f"topic {topic}")
        self.consumer.assign([TopicPartition(topic, p) for p in self.consumer.partitions_for_topic(topic)])
        self.messages: list[dict] = []

    def read(self) -> list[dict]:
        self.messages += [json.loads(r.value) for rs in self.consumer.poll(100).values() for r in rs]
        return self.messages

    def close(self) -> None:
        self.consumer.close()


def test_crash_loop_of_sigkills_loses_nothing_and_forecasts_equal_a_run_that_never_failed(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    events = price_events(20, 60, seed=32)
    bad = [(b"S0", b"{not json"), (b"S1", b'{"stream": "S1", "ts": 1.7e9, "value": NaN}'), (b"S2", b"\xff")]
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for i, e in enumerate(events):  # the whole replay is on the topic before the first worker starts
        producer.send(topics["input"], key=e["stream"].encode(), value=json.dumps(e).encode())
        if i % 400 == 7:
            for key, value in bad:
                producer.send(topics["input"], key=key, value=value)
    producer.flush()
    producer.close()
    n_bad = 3 * len(bad)

    rng = random.Random(7)
    kills = sorted(rng.sample(range(50, len(events) - 50), 5))  # progress points of the kills, random

    def start() -> Worker:
        return Worker(kafka, model_dir, topics, tmp_path, "--max-batch", "7", "--snapshot-interval-s", "0.3")

    w = start()
    out = Reader(kafka, topics["output"])
    try:
        for k in kills:
            wait_for(lambda k=k: unique(out.read()) >= k, 90, f"{k} forecasts")
            time.sleep(rng.uniform(0, 0.3))  # not synchronisation: a random moment within the next steps
            w.proc.kill()
            w.proc.wait()
            w = start()
        wait_for(lambda: unique(out.read()) == len(events), 120, "every forecast")
        assert_exact(out.messages, events, model_dir)
        dead = consume(kafka, topics["dlq"], until=lambda d: len({json.dumps(x["source"]) for x in d}) == n_bad)
        assert {d["error"] for d in dead} == {"invalid_json", "non_finite"}
        assert w.terminate() == 0
        print(
            f"crash loop: {len(events)} events + {n_bad} bad, {len(kills)} SIGKILLs, "
            f"{len(out.messages)} forecasts ({len(out.messages) - len(events)} repeats), 0 lost"
        )
    finally:
        out.close()
        if w.proc.poll() is None:
            w.proc.kill()
