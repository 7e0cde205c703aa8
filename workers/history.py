"""An input topic's history as training data (``forecaster train --from-topic``).

Every partition is read from a start (its beginning, the first record at or after ``since``, or
its newest records: ``max_records`` in all, shared in proportion to the partitions' sizes) up to
the end it had when reading began, so a topic that keeps growing still gives a bounded read.
Records are decoded and validated as the worker does (key, JSON, schema, finite values, time
order per stream); the rejected ones are counted by reason and left out, never trained on.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd
from kafka import KafkaConsumer, TopicPartition
from tqdm.auto import tqdm

from forecaster.validation import validate_each
from workers import codec
from workers.settings import KafkaSettings


@dataclass(frozen=True)
class History:
    """The valid observations (columns stream, ts, value), how many records were read, and the
    rejected ones by reason."""

    frame: pd.DataFrame
    records: int
    rejected: Counter[str]


def read_history(
    settings: KafkaSettings,
    topic: str,
    since: float | None = None,
    max_records: int | None = None,
    progress: bool = True,
    stall_s: float = 30.0,
) -> History:
    """The history of ``topic`` (``since``: epoch seconds). ``ValueError`` if the topic does not
    exist or holds nothing to read; ``TimeoutError`` if the broker sends nothing for ``stall_s``."""
    if max_records is not None and max_records < 1:
        raise ValueError(f"--max-records must be at least 1, got {max_records}")
    consumer = KafkaConsumer(**{"enable_auto_commit": False, **settings.options_for(KafkaConsumer)})
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise ValueError(f"topic {topic!r} does not exist at {settings.bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(numbers)]
        end = _ends(consumer, tps)
        start = consumer.beginning_offsets(tps)
        if since is not None:
            found = consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
            start = {tp: end[tp] if found[tp] is None else found[tp].offset for tp in tps}
        if max_records is not None:
            start = _newest(start, end, max_records)
        todo = {tp for tp in tps if start[tp] < end[tp]}
        if not todo:
            raise ValueError(f"topic {topic!r} has no records to train on" + (" since then" if since else ""))
        consumer.assign(sorted(todo, key=lambda tp: tp.partition))
        for tp in todo:
            consumer.seek(tp, start[tp])
        return _read(consumer, todo, end, sum(end[tp] - start[tp] for tp in todo), progress, stall_s)
    finally:
        consumer.close()


def _newest(start: dict[TopicPartition, int], end: dict[TopicPartition, int], n: int) -> dict[TopicPartition, int]:
    """Starts that leave ``n`` records in all, each partition's share in proportion to its size."""
    sizes = {tp: end[tp] - start[tp] for tp in start}
    total = sum(sizes.values())
    if total <= n:
        return start
    share = {tp: n * size // total for tp, size in sizes.items()}
    for tp in sorted(sizes, key=lambda tp: -sizes[tp])[: n - sum(share.values())]:  # the rounding's remainder
        share[tp] += 1
    return {tp: end[tp] - share[tp] for tp in start}


def _ends(consumer: KafkaConsumer, tps: list[TopicPartition], timeout_s: float = 5.0) -> dict[TopicPartition, int]:
    """Each partition's end offset now. Also from a fetch's high watermark: the embedded broker
    answers offset requests with the start of the last record batch, short of the end."""
    end = consumer.end_offsets(tps)
    consumer.assign(tps)
    consumer.seek_to_beginning()
    deadline = time.monotonic() + timeout_s
    while any(consumer.highwater(tp) is None for tp in tps) and time.monotonic() < deadline:
        consumer.poll(timeout_ms=100, max_records=1)  # the records come again: the read seeks back
    return {tp: max(end[tp], consumer.highwater(tp) or 0) for tp in tps}


def _read(
    consumer: KafkaConsumer,
    todo: set[TopicPartition],
    end: dict[TopicPartition, int],
    total: int,
    progress: bool,
    stall_s: float,
) -> History:
    last_ts: dict[str, float] = {}
    parts: list[pd.DataFrame] = []
    rejected: Counter[str] = Counter()
    read = 0
    bar = tqdm(total=total, unit="rec", desc="reading the topic", disable=not progress)
    deadline = time.monotonic() + stall_s
    while todo:
        polled = consumer.poll(timeout_ms=200, max_records=50_000)
        if not polled:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the broker sent nothing for {stall_s:.0f} s with {total - read} records left")
            continue
        deadline = time.monotonic() + stall_s
        records: list[Any] = []
        for tp, part in polled.items():
            mine = [r for r in part if r.offset < end[tp]]  # not those written after the read began
            if not mine or mine[-1].offset >= end[tp] - 1:
                todo.discard(tp)
                consumer.pause(tp)
            records += mine
        events, failed = codec.events_of(records)
        rejected.update(e.reason for _, e in failed)  # rejected again below as placeholders: not counted twice
        batch, bad = validate_each(events, last_ts)
        rejected.update(b.reason for b in bad if events[b.index] is not None)
        last_ts.update(zip(batch.streams, batch.ts.tolist(), strict=True))
        parts.append(pd.DataFrame({"stream": batch.streams, "ts": batch.ts, "value": batch.values}))
        read += len(events)
        bar.update(len(events))
    bar.close()
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["stream", "ts", "value"])
    if frame.empty:
        raise ValueError(f"no valid observation among the {read} records read ({dict(rejected)})")
    return History(frame, read, rejected)
