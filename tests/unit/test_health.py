"""Broker health: one warning per outage, metrics, and no blind spot while a flush waits."""

from __future__ import annotations

import logging

import pytest
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from forecaster.metrics import Metrics
from workers.health import BrokerHealth


def health(
    connections: list[int], now: list[float], last_answer: list[float] | None = None
) -> tuple[BrokerHealth, CollectorRegistry]:
    registry = CollectorRegistry()
    m = Metrics.create(registry)
    answered = last_answer or [0.0]
    h = BrokerHealth(
        lambda: connections[0],
        m.broker_connected,
        m.broker_outages,
        silence=lambda: now[0] - answered[0],
        timeout_s=5.0,
        clock=lambda: now[0],
    )
    return h, registry


def test_an_outage_is_logged_once_counted_and_its_end_logged(caplog: pytest.LogCaptureFixture) -> None:
    connections, now = [2], [0.0]
    h, registry = health(connections, now)
    value = registry.get_sample_value
    caplog.set_level(logging.INFO, "forecaster.worker")
    h.check()
    assert value("forecaster_broker_connected") == 1 and value("forecaster_broker_outages_total") == 0
    connections[0] = 0
    for t in (1.0, 2.0, 3.0):  # down for three checks: one warning, one outage
        now[0] = t
        h.check()
    assert value("forecaster_broker_connected") == 0 and value("forecaster_broker_outages_total") == 1
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    connections[0], now[0] = 1, 4.5
    h.check()
    assert value("forecaster_broker_connected") == 1 and value("forecaster_broker_outages_total") == 1
    assert "reachable again after 3.5 s" in caplog.records[-1].getMessage()


def test_checks_are_at_most_one_a_second() -> None:
    connections, now = [1], [0.0]
    h, registry = health(connections, now)
    h.check()
    connections[0], now[0] = 0, 0.5
    h.check()
    assert registry.get_sample_value("forecaster_broker_connected") == 1  # too soon to look again
    now[0] = 1.0
    h.check()
    assert registry.get_sample_value("forecaster_broker_connected") == 0


def test_a_flush_held_up_by_an_outage_still_reports_it() -> None:
    connections, now = [0], [0.0]
    h, registry = health(connections, now)

    class HeldProducer:  # a flush that times out twice (the broker is away), then completes
        calls = 0

        def flush(self, timeout: float) -> None:
            self.calls += 1
            now[0] += timeout
            if self.calls < 3:
                raise KafkaTimeoutError("flush timed out")

    producer = HeldProducer()
    h.flush(producer)  # type: ignore[arg-type]
    assert producer.calls == 3
    assert registry.get_sample_value("forecaster_broker_outages_total") == 1


def test_a_broker_silent_past_the_timeout_with_connections_open_is_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    connections, now, last_answer = [3], [0.0], [0.0]
    h, registry = health(connections, now, last_answer)
    value = registry.get_sample_value
    caplog.set_level(logging.INFO, "forecaster.worker")
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):  # silent, but not yet past the 5 s allowed
        now[0] = t
        h.check()
    assert value("forecaster_broker_connected") == 1 and not caplog.records
    for t in (6.0, 7.0, 8.0):
        now[0] = t
        h.check()
    assert value("forecaster_broker_connected") == 0 and value("forecaster_broker_outages_total") == 1
    assert [r.getMessage() for r in caplog.records] == [
        "broker unreachable: no answer for 6.0 s (connections open: the broker may be hung); "
        "retrying with backoff until it is back"
    ]
    last_answer[0] = now[0] = 9.0  # it answers again
    h.check()
    assert value("forecaster_broker_connected") == 1 and value("forecaster_broker_outages_total") == 1
    assert "reachable again after 3.0 s" in caplog.records[-1].getMessage()


def test_a_probe_silent_only_while_the_connections_were_down_is_one_outage_not_two() -> None:
    connections, now, last_answer = [3], [0.0], [0.0]
    h, registry = health(connections, now, last_answer)
    value = registry.get_sample_value
    connections[0] = 0
    for t in range(1, 9):  # 8 s with no connection: the probe cannot be answered either
        now[0] = float(t)
        h.check()
    connections[0] = 2
    for t in range(9, 13):  # connections back; the probe has not answered yet, within its 5 s
        now[0] = float(t)
        h.check()
        assert value("forecaster_broker_connected") == 1
    last_answer[0] = 12.5
    for t in (14.0, 20.0):
        now[0] = t
        h.check()
    assert value("forecaster_broker_connected") == 0  # silent 7.5 s with connections open: hung
    assert value("forecaster_broker_outages_total") == 2
