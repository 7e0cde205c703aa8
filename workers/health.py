"""Whether the worker can reach the broker: logged once per outage and exported as metrics.

kafka-python reconnects by itself (with backoff) and its own logs repeat every attempt; this
turns that into one warning when the broker is gone, one line when it is back, and
``forecaster_broker_connected`` / ``forecaster_broker_outages_total`` for alerts.

Two signs of an outage: no open connection (a stopped broker refuses them), and no answer for
``timeout_s`` (a hung broker: its process alive, its connections open, nothing answered). The
second needs a question asked on a clock, whatever the load: ``Probe`` asks the leaders of the
input topic for its beginning offsets, every second, from a thread with a consumer of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError
from prometheus_client import Counter, Gauge

from workers.sender import Sender

log = logging.getLogger("forecaster.worker")


class BrokerHealth:
    """Checks, at most every ``every_s``, how many broker connections a client holds and how
    long the broker has been silent.

    ``connections``: a client's open connection count, e.g. from ``KafkaConsumer.metrics()``.
    ``silence``: seconds since the broker last answered (``Probe.silence``); more than
    ``timeout_s`` counts as an outage. It counts only from when connections were last open:
    the probe cannot be answered without them, and once they are back it gets ``timeout_s`` to
    answer again before the same outage is counted twice.
    """

    def __init__(
        self,
        connections: Callable[[], float],
        connected: Gauge,
        outages: Counter,
        silence: Callable[[], float] = lambda: 0.0,
        timeout_s: float = 10.0,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connections, self.silence, self.connected, self.outages = connections, silence, connected, outages
        self.timeout_s, self.every_s, self.clock = timeout_s, every_s, clock
        self.down_since: float | None = None
        self.last_check = self.unconnected_at = -float("inf")
        connected.set(1)

    def check(self) -> None:
        now = self.clock()
        if now - self.last_check < self.every_s:
            return
        self.last_check = now
        problem = self._problem(now)
        if problem and self.down_since is None:
            self.down_since = now
            self.outages.inc()
            self.connected.set(0)
            log.warning("broker unreachable: %s; retrying with backoff until it is back", problem)
        elif not problem and self.down_since is not None:
            log.info("broker reachable again after %.1f s; resuming", now - self.down_since)
            self.down_since = None
            self.connected.set(1)

    def _problem(self, now: float) -> str | None:
        if self.connections() <= 0:
            self.unconnected_at = now
            return "no open connection"
        silent = min(self.silence(), now - self.unconnected_at)
        if silent > self.timeout_s:
            return f"no answer for {silent:.1f} s (connections open: the broker may be hung)"
        return None

    def flush(self, producer: Sender) -> None:
        """``producer.flush()``, checking meanwhile: in an outage a flush waits up to the
        producer's ``delivery_timeout_ms``, and the outage must show at once, not after it."""
        while True:
            try:
                producer.flush(timeout=self.every_s)
                return
            except KafkaTimeoutError:
                self.check()


class Probe:
    """Asks the brokers that lead ``topic``'s partitions for its beginning offsets every
    ``every_s`` (a small request each), from a daemon thread; ``silence()`` is the time since
    the last answer. ``config``: ``KafkaConsumer`` options (security included); no group."""

    def __init__(
        self, config: dict[str, Any], topic: str, every_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config, self.topic, self.every_s, self.clock = config, topic, every_s, clock
        self.last_answer = clock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="broker-probe", daemon=True)
        self.thread.start()

    def silence(self) -> float:
        return self.clock() - self.last_answer

    def close(self) -> None:
        """Stop asking (the thread ends after the question in hand, if any)."""
        self.stopped.set()

    def _run(self) -> None:
        consumer, failure = None, ""
        while not self.stopped.wait(self.every_s):
            try:
                consumer = consumer or KafkaConsumer(**self.config)
                parts = consumer.partitions_for_topic(self.topic) or ()
                consumer.beginning_offsets([TopicPartition(self.topic, p) for p in parts])
                self.last_answer = self.clock()
            except KafkaError:
                pass  # unanswered: the silence grows, and BrokerHealth reports it
            except Exception as e:  # not the broker's silence but ours: say so, once per kind
                if str(e) != failure:
                    failure = str(e)
                    log.warning("broker probe failed (%s: %s); it reads as silence", type(e).__name__, e)
        if consumer is not None:
            consumer.close()


def consumer_connections(consumer: KafkaConsumer) -> Callable[[], float]:
    """The open connection count of a kafka-python consumer, from its public metrics."""
    return lambda: consumer.metrics()["consumer-metrics"]["connection-count"]
