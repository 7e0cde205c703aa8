"""The baselines of bench/e2e.py: what one would run instead of our worker, each a plain
kafka-python consume -> produce loop with the worker's client settings and delivery discipline
(offsets committed once the outputs are acknowledged, at most ``MAX_UNACKED`` records in flight):

- passthrough: every record produced unchanged, the ceiling of this client on this machine;
- naive: the worker's model, called once per event, with a Python object of state per stream;
- river: a River SNARIMAX model per stream, the online forecasting library one would pick otherwise.

    python bench/relay.py {passthrough,naive,river} BOOTSTRAP SOURCE TARGET GROUP [--count N] [--model lstm]

Runs until ``--count`` records are relayed, or until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from engine import NaiveWorker
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata

import forecaster
from forecaster.schemas import Observation
from workers import codec
from workers.forecast_worker import CONSUMER_DEFAULTS, MAX_UNACKED, PRODUCER_DEFAULTS
from workers.sender import LOG_FORMAT

Output = tuple[int, bytes | None, bytes]  # partition, key, value
Handler = Callable[[list[Any]], Iterable[Output]]  # a generator sends each output as soon as it is made
QUANTILES = ("0.1", "0.5", "0.9")


def passthrough(args: argparse.Namespace) -> Handler:
    return lambda records: [(r.partition, r.key, r.value) for r in records]


def per_event(model: str, version: str, forecast: Callable[[Observation], np.ndarray]) -> Handler:
    """A handler that validates each record on its own (a pydantic object per event, what a
    hand-written worker does) and calls ``forecast`` once per event for its (1 + Q, H) rows."""
    last_ts: dict[str, float] = {}

    def handle(records: list[Any]) -> Iterator[Output]:
        for r in records:
            ob = Observation.model_validate_json(r.value)
            if ob.ts <= last_ts.get(ob.stream, -np.inf):
                continue  # out of order (the benchmark's input has none)
            last_ts[ob.stream] = ob.ts
            rows = forecast(ob)
            src = codec.source(r.topic, r.partition, r.offset)
            value = codec.forecast(ob.stream, ob.ts, ob.value, model, version, rows, list(QUANTILES), src, time.time())
            yield r.partition, r.key, value  # sent at once, as a hand-written per-event worker would

    return handle


def naive(args: argparse.Namespace) -> Handler:
    torch.set_num_threads(1)  # as `forecaster serve` on the CPU
    fc = forecaster.load(args.model, "cpu")
    model = NaiveWorker(fc.engine.model, torch.device("cpu"))

    def forecast(ob: Observation) -> np.ndarray:
        (y,) = model.advance([ob.stream], [ob.ts], [ob.value])
        return y[0].numpy().astype(np.float32)

    return per_event(f"{fc.name}-naive", fc.version, forecast)


def snarimax() -> Any:
    """SNARIMAX(p=1, d=1, q=0) on standardised inputs: of the few River set-ups tried on these
    streams (docs/PERFORMANCE.md), one that stays stable on real prices."""
    from river import linear_model, optim, preprocessing, time_series

    regressor = preprocessing.StandardScaler() | linear_model.LinearRegression(
        optimizer=optim.SGD(0.01), intercept_lr=0.0
    )
    return time_series.SNARIMAX(p=1, d=1, q=0, regressor=regressor)


def river(args: argparse.Namespace) -> Handler:
    """A River model per stream. River gives no quantiles: its rows repeat the point forecast."""
    models: dict[str, Any] = {}

    def forecast(ob: Observation) -> np.ndarray:
        m = models.get(ob.stream)
        if m is None:
            m = models[ob.stream] = snarimax()
        m.learn_one(ob.value)
        point = np.array(m.forecast(horizon=args.horizon), dtype=np.float32)
        return np.tile(point, (1 + len(QUANTILES), 1))

    return per_event("river-snarimax", "river", forecast)


HANDLERS = {"passthrough": passthrough, "naive": naive, "river": river}


def progress(done: int) -> None:
    """A line for bench/e2e.py, which cannot count records from Tansu's end offsets."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec
    status = Path("/proc/self/status").read_text().splitlines()
    peak_mb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    print(f"relayed {done} cpu_s {time.process_time():.3f} peak_rss_mb {peak_mb:.1f}", flush=True)


def relay(args: argparse.Namespace, handle: Handler) -> None:
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    session = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
    consumer = KafkaConsumer(
        args.source,
        **{**CONSUMER_DEFAULTS, **session},
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
    )
    producer = KafkaProducer(**PRODUCER_DEFAULTS, bootstrap_servers=args.bootstrap)
    pending: deque[tuple[list[Any], dict]] = deque()

    def settle(wait: bool) -> None:
        if wait and pending:
            producer.flush()
        while pending and all(f.is_done for f in pending[0][0]):
            futures, offsets = pending.popleft()
            if any(f.failed() for f in futures):
                raise RuntimeError("a record was not delivered")
            consumer.commit_async(offsets)

    done = 0
    while running[0] and (args.count == 0 or done < args.count):
        polled = consumer.poll(timeout_ms=5, max_records=10_000)
        settle(wait=False)
        if not polled:
            continue
        records = [r for rs in polled.values() for r in rs]
        if done == 0:
            progress(0)  # processing starts: its CPU from here
        futures = [producer.send(args.target, partition=p, key=k, value=v) for p, k, v in handle(records)]
        pending.append((futures, {tp: OffsetAndMetadata(rs[-1].offset + 1, "", -1) for tp, rs in polled.items()}))
        settle(wait=sum(len(f) for f, _ in pending) > MAX_UNACKED)
        done += len(records)
        progress(done)
    settle(wait=True)
    producer.close()
    consumer.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=HANDLERS)
    p.add_argument("bootstrap")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("group")
    p.add_argument("--count", type=int, default=0, help="stop after this many records (0: at SIGTERM)")
    p.add_argument("--model", default="lstm", help="naive: the model")
    p.add_argument("--horizon", type=int, default=8, help="river: steps ahead")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    relay(args, HANDLERS[args.kind](args))


if __name__ == "__main__":
    main()
