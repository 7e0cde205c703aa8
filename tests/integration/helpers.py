"""What the integration tests share: the worker as a `forecaster serve` process, publishing,
reading topics, waiting with a deadline, and the exactness check against the library."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import forecaster
from tests.conftest import random_walks, wait_for
from workers.broker import BrokerInfo, free_port

SERVE = [sys.executable, "-m", "workers.cli", "serve"]  # `forecaster serve`, from this interpreter
KAFKA_CLIENT_RECORD = re.compile(r"^\S+ \S+ kafka\.\S+ [A-Z]+ ")  # a log line of kafka-python itself


# The lines that join a chained exception's traceback to the one above it, in one log record.
CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def tracebacks(log: str) -> list[str]:
    """The line before each traceback in a worker's log, less those kafka-python logs for an error
    it caught itself: its network layer logs a race when a client closes (3.0.12: "Error receiving
    network data closing socket" or "Unhandled exception in task", the socket already gone) and
    carries on. A chained exception's traceback belongs to the record of the one above it."""
    lines = log.splitlines()
    return [
        lines[i - 1] if i else ""
        for i, line in enumerate(lines)
        if line.startswith("Traceback")
        and not (i >= 2 and lines[i - 2] in CHAINED)
        and not (i and KAFKA_CLIENT_RECORD.match(lines[i - 1]))
    ]


# A SIGKILLed member holds its partitions until its session expires: with a short one, a worker
# started after a kill takes them over in the broker's first rebalance instead of a second one.
SHORT_SESSION = ("--kafka-option", "session_timeout_ms=2000", "--kafka-option", "heartbeat_interval_ms=500")


class Worker:
    def __init__(
        self,
        kafka: BrokerInfo,
        model: Path,
        topics: dict[str, str],
        tmp: Path,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        """``extra``: more ``serve`` flags; ``env``: variables added to this environment."""
        self.metrics_port = free_port()
        self.log_path = tmp / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                *SERVE,
                "--bootstrap",
                kafka.bootstrap,
                "--model",
                str(model),
                "--device",
                "cpu",
                "--input",
                topics["input"],
                "--output",
                topics["output"],
                "--dead-letters",
                topics["dlq"],
                "--state-topic",
                topics["state"],
                "--group",
                topics["group"],
                "--metrics-port",
                str(self.metrics_port),
                "--kafka-option",
                "session_timeout_ms=6000",
                "--kafka-option",
                "heartbeat_interval_ms=1000",
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, as in a terminal: see ``interrupt``
            env={**os.environ, **(env or {})},
        )

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
            return r.read().decode()

    def sample(self, name: str) -> float:
        lines = [
            line for line in self.metrics().splitlines() if line.startswith(name + " ") or line.startswith(name + "{")
        ]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the whole process group (the worker and its producer process)."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=60)

    def children(self) -> list[int]:
        """Process ids of the worker's children (its producer process, started by its main thread)."""
        return [int(c) for c in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]

    def kill(self) -> None:
        """SIGKILL, unless it has exited already."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()  # a failed test leaves no process behind


def consume(
    kafka: BrokerInfo,
    topic: str,
    n: int = 0,
    seconds: float = 60,
    parse: Callable = json.loads,
    until: Callable[[list], bool] | None = None,
) -> list:
    """Messages of every partition of ``topic`` from the start (assigned directly: no group to
    join) until there are n of them, or ``until(messages)`` holds."""
    done = until or (lambda out: len(out) >= n)
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    out: list = []
    try:
        wait_for(lambda: bool(consumer.partitions_for_topic(topic)), seconds, f"topic {topic}")
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
        wait_for(
            lambda: out.extend(parse(r.value) for rs in consumer.poll(100).values() for r in rs) or done(out),
            seconds,
            f"messages on {topic}",
        )
    finally:
        consumer.close()
    return out


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


def publish(kafka: BrokerInfo, topic: str, events: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for e in events:
        producer.send(topic, key=e["stream"].encode(), value=json.dumps(e).encode())
    producer.flush()
    producer.close()


def price_events(n_streams: int, steps: int, seed: int, t0: int = 0) -> list[dict]:
    values = random_walks(n_streams, t0 + steps, seed=seed)
    return [
        {"stream": f"S{i}", "ts": 1.7e9 + 60 * t, "value": float(values[i, t])}
        for t in range(t0, t0 + steps)
        for i in range(n_streams)
    ]


def assert_exact(got: list[dict], events: list[dict], model_dir: Path) -> None:
    """Every event has a forecast (repeats allowed: at least once), equal to the library's."""
    expected = {(f.stream, f.ts): f for f in forecaster.load(model_dir, device="cpu").update(events)}
    seen: dict[tuple[str, float], list[float]] = {}
    for g in got:
        key = (g["stream"], g["ts"])
        np.testing.assert_allclose(g["point"], expected[key].point, rtol=1e-6, err_msg=str(key))
        seen[key] = g["point"]
    assert set(seen) == set(expected)


def committed_offsets(kafka: BrokerInfo, topics: dict[str, str]) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=topics["group"], enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topics["input"])
        return {p: consumer.committed(TopicPartition(topics["input"], p)) or 0 for p in parts}
    finally:
        consumer.close()
