"""Record batches the consumer cannot read: where one is, so that the worker can dead-letter it
and move past it instead of stopping (DESIGN.md: the worker must never stop on a batch).

kafka-python reads a fetched batch lazily inside ``poll``; a batch it cannot read (a codec it
lacks, a failed CRC, a corrupt compressed payload) raises from ``poll`` without saying which
partition, and every later ``poll`` raises again, at the same position, for ever. The error
names neither partition nor offsets, but its traceback holds the reader's frame: the partition
being read, the first offset not yet delivered, and the batch in hand, whose header (read
before its payload) gives the offset after it. That frame is kafka-python's
(``Fetcher.PartitionRecords._unpack_records``, the same in 2.3 and 3.0, which pyproject.toml
pins); tests/integration/test_publishers.py fails if a release moves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from kafka import TopicPartition
from kafka.errors import CorruptRecordError, KafkaError, UnsupportedCodecError

READER = "_unpack_records"  # the generator that turns a fetched partition's bytes into records


@dataclass(frozen=True)
class BadBatch:
    """Offsets ``first`` to ``next_offset - 1`` of ``partition`` cannot be read; ``detail`` says why."""

    partition: TopicPartition
    first: int
    next_offset: int
    detail: str

    @property
    def last(self) -> int:
        return self.next_offset - 1


def locate(error: BaseException) -> BadBatch | None:
    """The batch that ``error``, raised by ``KafkaConsumer.poll``, failed to read; None if
    ``error`` is not a batch that cannot be read (a broker or network error, say), or if the
    batch's end is unknown (moving on from there could skip readable records)."""
    if isinstance(error, KafkaError) and not isinstance(error, (CorruptRecordError, UnsupportedCodecError)):
        return None
    frame = _reader_frame(error.__traceback__)
    if frame is None:
        return None
    part, batch = frame.get("self"), frame.get("batch")
    tp, first = getattr(part, "topic_partition", None), getattr(part, "next_fetch_offset", None)
    if not isinstance(tp, TopicPartition) or not isinstance(first, int) or batch is None:
        return None
    # A v2 batch header gives its last offset; a legacy (v0/v1) message is one offset, its wrapper's.
    after = getattr(batch, "next_offset", None)
    after = after if isinstance(after, int) else batch.base_offset + 1
    if after <= first:  # the batch in hand was read whole: what failed lies past it, extent unknown
        return None
    return BadBatch(tp, first, after, f"{type(error).__name__}: {error}")


def _reader_frame(tb: TracebackType | None) -> dict | None:
    """The locals of the innermost batch reader frame in the traceback, if any."""
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == READER:
            found = tb.tb_frame.f_locals
        tb = tb.tb_next
    return found
