"""Broker control: the command line against real broker processes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from workers import broker

pytestmark = pytest.mark.kafka


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "broker", *args], capture_output=True, text=True, timeout=60
    )


def test_session_broker_serves_produce_and_consume(kafka: broker.BrokerInfo) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    producer.send("broker-smoke", key=b"k", value=b"hello").get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(
        "broker-smoke",
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        group_id="smoke",
        session_timeout_ms=6000,
    )
    got, deadline = [], time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        got = [r.value for rs in consumer.poll(200).values() for r in rs]
    consumer.close()
    assert got == [b"hello"]


def test_start_status_stop_through_the_command_line() -> None:
    port = str(broker.free_port())
    started = cli("start", "--port", port)
    assert started.returncode == 0, started.stderr
    assert f"127.0.0.1:{port}" in started.stdout
    try:
        assert cli("status", "--port", port).returncode == 0
        again = cli("start", "--port", port)
        assert again.returncode == 2 and "already in use" in again.stderr and "Traceback" not in again.stderr
    finally:
        stopped = cli("stop", "--port", port)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not broker.port_open("127.0.0.1", int(port))
    status = cli("status", "--port", port)
    assert status.returncode == 1 and "no broker" in status.stdout


def test_stop_without_a_broker_says_so() -> None:
    r = cli("stop", "--port", str(broker.free_port()))
    assert r.returncode == 0 and "no broker was running" in r.stdout
