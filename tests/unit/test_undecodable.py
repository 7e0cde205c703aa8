"""Locating a record batch the consumer cannot read, from the error kafka-python's reader raises
(its frame is kafka-python's: these tests fail if a release moves it)."""

from __future__ import annotations

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError, KafkaConnectionError
from kafka.record import MemoryRecords

from tests.hostile import record_batch
from workers.undecodable import BadBatch, locate

TP = TopicPartition("prices", 3)
RECORDS = [(b"k", b'{"stream": "k", "ts": %d, "value": 1.0}' % i) for i in range(5)]


def reader(*batches: bytes, fetch_offset: int = 0) -> Fetcher.PartitionRecords:
    """kafka-python's reader of one fetched partition, as ``poll`` drives it."""
    return Fetcher.PartitionRecords(fetch_offset, TP, MemoryRecords(b"".join(batches)))


def failure(part: Fetcher.PartitionRecords) -> BaseException:
    with pytest.raises(Exception) as caught:
        while part.take():  # records before the bad batch come first; the error on the next take
            pass
    return caught.value


def test_a_corrupt_batch_is_located_by_partition_and_offsets() -> None:
    error = failure(reader(record_batch(RECORDS, corrupt_crc=True, base_offset=40), fetch_offset=40))
    assert isinstance(error, CorruptRecordError)
    bad = locate(error)
    assert bad is not None and (bad.partition, bad.first, bad.last, bad.next_offset) == (TP, 40, 44, 45)
    assert "crc" in bad.detail


def test_a_bad_batch_after_good_ones_starts_after_the_last_record_delivered() -> None:
    good, bad = record_batch(RECORDS, base_offset=10), record_batch(RECORDS, gzip_garbage=True, base_offset=15)
    part = reader(good, bad, fetch_offset=10)
    assert [r.offset for r in part.take()] == [10, 11, 12, 13, 14]
    error = failure(part)
    assert not isinstance(error, CorruptRecordError)  # gzip's own error: not a KafkaError at all
    assert locate(error) == BadBatch(TP, 15, 20, locate(error).detail)  # type: ignore[union-attr]


def test_errors_that_are_not_an_unreadable_batch_are_not_located() -> None:
    assert locate(KafkaConnectionError("broker gone")) is None
    assert locate(ValueError("raised outside the reader")) is None
