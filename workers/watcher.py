"""Watch the forecast topic: a live table of the latest forecast per stream, or JSON lines.

The watcher assigns itself every partition (no consumer group), so watching never takes
partitions or offsets from anyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.live import Live
from rich.table import Table


def forecasts(
    consumer: KafkaConsumer,
    topic: str,
    streams: set[str] | None = None,
    from_beginning: bool = False,
    until: Callable[[], bool] = lambda: False,
    wait_s: float = 30.0,
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """(raw value, message) of each forecast as it arrives, optionally of some streams only,
    until ``until()`` holds. Records that are not forecast JSON are skipped."""
    deadline = time.monotonic() + wait_s
    while not (parts := consumer.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise ValueError(f"topic {topic!r} does not exist (is a worker running against this broker?)")
        time.sleep(0.1)  # metadata refresh; no topic yet
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    if from_beginning:
        consumer.seek_to_beginning(*tps)
    else:
        consumer.seek_to_end(*tps)
    while not until():
        for records in consumer.poll(timeout_ms=200).values():
            for r in records:
                try:
                    msg = orjson.loads(r.value)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(msg, dict) and "point" in msg and (streams is None or msg.get("stream") in streams):
                    yield r.value, msg


def table(latest: dict[str, dict[str, Any]], rows: int) -> Table:
    """The ``rows`` most recently updated streams: last value, next point forecast and its band,
    the forecast H steps ahead, and how long the forecast took to reach the watcher."""
    t = Table(title="forecasts: latest per stream", expand=False)
    for name in ("stream", "time", "value", "next", "0.1 – 0.9", "last step", "delay"):
        t.add_column(name, justify="left" if name in ("stream", "time") else "right", no_wrap=True)
    shown = sorted(latest.values(), key=lambda m: m["_seen"], reverse=True)[:rows]
    for m in sorted(shown, key=lambda m: m["stream"]):
        q = m.get("quantiles", {})
        lo, hi = q.get("0.1", [None])[0], q.get("0.9", [None])[0]
        when = datetime.fromtimestamp(m["ts"], UTC)
        t.add_row(
            m["stream"][:24],
            when.strftime("%Y-%m-%d" if when.time() == datetime.min.time() else "%Y-%m-%d %H:%M:%S"),
            _num(m.get("value")),
            _num(m["point"][0]),
            f"{_num(lo)} – {_num(hi)}",
            f"{_num(m['point'][-1])} (+{len(m['point'])})",
            f"{(m['_seen'] - m['produced_at']) * 1000:.0f} ms" if "produced_at" in m else "",
        )
    return t


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:,.4g}" if abs(v) >= 1e5 else f"{v:,.2f}"


def watch(
    consumer: KafkaConsumer,
    topic: str,
    streams: set[str] | None = None,
    as_json: bool = False,
    from_beginning: bool = False,
    max_messages: int | None = None,
    duration: float | None = None,
    rows: int = 20,
    out: TextIO | None = None,
    wait_s: float = 30.0,
) -> int:
    """Show forecasts until ``max_messages`` or ``duration`` (or Ctrl-C); returns how many were shown."""
    end = None if duration is None else time.monotonic() + duration
    seen = 0

    def until() -> bool:
        return (max_messages is not None and seen >= max_messages) or (end is not None and time.monotonic() >= end)

    stream = forecasts(consumer, topic, streams, from_beginning, until, wait_s)
    if as_json:
        for raw, _ in stream:
            print(raw.decode(), file=out, flush=True)
            seen += 1
        return seen
    latest: dict[str, dict[str, Any]] = {}
    console = Console(file=out)
    drawn = 0.0
    with Live(table(latest, rows), console=console, refresh_per_second=4) as live:
        for _, msg in stream:
            msg["_seen"] = now = time.time()
            latest[msg["stream"]] = msg
            seen += 1
            if now - drawn > 0.2:  # redraw at most 5 times a second, whatever the rate
                live.update(table(latest, rows))
                drawn = now
        live.update(table(latest, rows))
    return seen
