"""The worker's producer process against the embedded broker: delivery, order, failures."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaError

from tests.conftest import wait_for
from tests.integration.helpers import consume
from workers.broker import BrokerInfo
from workers.sender import Sender
from workers.settings import KafkaSettings
from workers.topics import ensure_topics

pytestmark = pytest.mark.kafka


def test_batches_are_acknowledged_and_land_in_order_with_their_keys_and_headers(
    kafka: BrokerInfo, topics: dict[str, str]
) -> None:
    topic = topics["output"]
    ensure_topics(KafkaSettings(bootstrap=kafka.bootstrap), {topic: 2})
    sender = Sender({"bootstrap_servers": kafka.bootstrap, "acks": "all"})
    try:
        assert sender.partitions_for(topic) == {0, 1}
        tickets = []
        for b in range(3):
            for i in range(100):
                sender.send(topic, f"{b}-{i}".encode(), key=b"k", partition=i % 2, headers=[("batch", b"%d" % b)])
            tickets.append(sender.seal())
        wait_for(lambda: all(sender.is_done(t) for t in tickets), 30, "acknowledgements")
        got = consume(kafka, topic, 300, parse=lambda v: v.decode())
        for p in (0, 1):
            mine = [v for v in got if int(v.split("-")[1]) % 2 == p]
            assert mine == [f"{b}-{i}" for b in range(3) for i in range(p, 100, 2)]  # per partition, in order
    finally:
        sender.close()
    assert sender.proc.returncode == 0


def test_a_record_the_broker_cannot_take_fails_its_batch_and_every_later_call(
    kafka: BrokerInfo, topics: dict[str, str]
) -> None:
    sender = Sender({"bootstrap_servers": kafka.bootstrap, "max_request_size": 1000})
    try:
        sender.send(topics["output"], b"x" * 2000)  # over the producer's request limit
        ticket = sender.seal()
        with pytest.raises(KafkaError, match="could not deliver a record .*MessageSizeTooLarge"):
            wait_for(lambda: sender.is_done(ticket), 30, "the failure")
        with pytest.raises(KafkaError, match="could not deliver"):  # nothing after it may be committed
            sender.flush(timeout=5)
    finally:
        sender.close()
