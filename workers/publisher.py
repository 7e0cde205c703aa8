"""Publish observations to the input topic, keyed by stream id: a price file replayed in
event-time order, or synthetic price streams; paced against event time or as fast as possible."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import orjson
from kafka import KafkaProducer
from tqdm import tqdm

from forecaster.data import Series

Event = tuple[str, float, float]  # stream, ts, value


def replay(series: list[Series]) -> Iterator[Event]:
    """Every observation of every series, merged into one event-time order (ties: file order)."""
    names = np.concatenate([np.full(len(s), i) for i, s in enumerate(series)])
    ts = np.concatenate([s.ts for s in series]).astype(np.float64)
    values = np.concatenate([s.values for s in series])
    for k in np.argsort(ts, kind="stable"):
        yield series[names[k]].name, float(ts[k]), float(values[k])


def synthetic(streams: int, rate: float, duration: float, seed: int = 0, start: float | None = None) -> Iterator[Event]:
    """``rate`` events/s over ``duration`` s, round-robin over ``streams`` price series: geometric
    Brownian motion (20% yearly volatility, scaled to the stream's own tick) times a daily cycle.
    Event k has ts = start + k / rate, so pacing at speed 1 is real time."""
    if streams < 1 or rate <= 0 or duration <= 0:
        raise ValueError("synthetic streams need --streams ≥ 1, --rate > 0 and --duration > 0")
    rng = np.random.default_rng(seed)
    start = time.time() if start is None else start
    total = math.ceil(rate * duration)
    names = [f"S{i:0{len(str(streams - 1))}d}" for i in range(streams)]
    log_price = np.log(rng.uniform(10, 500, streams))
    phase = rng.uniform(0, 2 * np.pi, streams)
    step_years = streams / rate / (365 * 86_400)  # one round over every stream
    sigma = 0.2 * math.sqrt(step_years)
    for first in range(0, total, streams):
        log_price += sigma * rng.standard_normal(streams) - 0.5 * sigma**2
        ts = start + (first + np.arange(streams)) / rate
        values = np.exp(log_price) * (1 + 0.01 * np.sin(2 * np.pi * ts / 86_400 + phase))
        for i in range(min(streams, total - first)):
            yield names[i], float(ts[i]), float(values[i])


@dataclass(frozen=True)
class Summary:
    sent: int
    streams: int
    seconds: float

    def __str__(self) -> str:
        rate = self.sent / self.seconds if self.seconds > 0 else float("inf")
        return f"sent {self.sent} events of {self.streams} streams in {self.seconds:.1f} s ({rate:,.0f} events/s)"


def publish(
    producer: KafkaProducer,
    topic: str,
    events: Iterable[Event],
    speed: float | None = None,
    total: int | None = None,
    progress: bool = False,
) -> Summary:
    """Send ``events`` as JSON observations. With ``speed``, event ts - first ts is due at
    (ts - first ts) / speed seconds after the start; without, as fast as the producer takes them."""
    if speed is not None and speed <= 0:
        raise ValueError(f"--speed must be > 0, got {speed}")
    start, first, sent, seen = time.monotonic(), None, 0, set()
    bar = tqdm(total=total, unit="ev", disable=not progress, smoothing=0.1)
    for stream, ts, value in events:
        if speed is not None:
            first = ts if first is None else first
            ahead = (ts - first) / speed - (time.monotonic() - start)
            if ahead > 0.001:  # pacing, not synchronisation: the publisher is early for this event
                time.sleep(ahead)
        key = stream.encode()
        producer.send(topic, key=key, value=orjson.dumps({"stream": stream, "ts": ts, "value": value}))
        seen.add(stream)
        sent += 1
        if sent % 1000 == 0:
            bar.update(1000)
    producer.flush()
    bar.update(sent % 1000)
    bar.close()
    return Summary(sent, len(seen), time.monotonic() - start)
