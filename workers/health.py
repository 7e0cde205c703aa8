"""Whether the worker can reach the broker: logged once per outage and exported as metrics.

kafka-python reconnects by itself (with backoff) and its own logs repeat every attempt; this
turns that into one warning when the connections are gone, one line when they are back, and
``forecaster_broker_connected`` / ``forecaster_broker_outages_total`` for alerts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka import KafkaConsumer
from kafka.errors import KafkaTimeoutError
from prometheus_client import Counter, Gauge

from workers.sender import Sender

log = logging.getLogger("forecaster.worker")


class BrokerHealth:
    """Checks, at most every ``every_s``, how many broker connections a client holds.

    ``connections``: a client's open connection count, e.g. from ``KafkaConsumer.metrics()``.
    """

    def __init__(
        self,
        connections: Callable[[], float],
        connected: Gauge,
        outages: Counter,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connections, self.connected, self.outages = connections, connected, outages
        self.every_s, self.clock = every_s, clock
        self.down_since: float | None = None
        self.last_check = -float("inf")
        connected.set(1)

    def check(self) -> None:
        now = self.clock()
        if now - self.last_check < self.every_s:
            return
        self.last_check = now
        up = self.connections() > 0
        if not up and self.down_since is None:
            self.down_since = now
            self.outages.inc()
            self.connected.set(0)
            log.warning("broker unreachable: no open connection; retrying with backoff until it is back")
        elif up and self.down_since is not None:
            log.info("broker reachable again after %.1f s; resuming", now - self.down_since)
            self.down_since = None
            self.connected.set(1)

    def flush(self, producer: Sender) -> None:
        """``producer.flush()``, checking meanwhile: in an outage a flush waits up to the
        producer's ``delivery_timeout_ms``, and the outage must show at once, not after it."""
        while True:
            try:
                producer.flush(timeout=self.every_s)
                return
            except KafkaTimeoutError:
                self.check()


def consumer_connections(consumer: KafkaConsumer) -> Callable[[], float]:
    """The open connection count of a kafka-python consumer, from its public metrics."""
    return lambda: consumer.metrics()["consumer-metrics"]["connection-count"]
