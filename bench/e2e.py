"""End to end through the embedded broker: our worker against what one would use otherwise, on
the same records, the same broker, in one run.

    .venv/bin/pip install -e '.[bench]'     # River, for its baseline
    .venv/bin/python bench/e2e.py [--streams 1000 10000 100000] [--out bench/results/e2e-cpu.json]

Systems (each its own process, consumer group and output topic):
- passthrough: bare kafka-python consume -> produce, the ceiling of this client here;
- worker-<family>: ``forecaster serve`` with each bundled model (rnn, lstm, gru, transformer);
- naive: the same LSTM called once per event, with a Python object of state per stream;
- river: a River SNARIMAX per stream.
(the baselines are ``bench/relay.py``, with the worker's client settings and delivery discipline).

For each number of streams S:
1. maximum rate: S synthetic price streams (hourly GBM with a daily cycle), ``--records`` in
   all, written to a topic once; each system drains it from the start. Events/s from the first
   to the last output record's timestamp (start-up and group join left out alike); CPU per event
   and peak RSS of the process. The naive worker reads only the first ``--naive-records``.
2. fixed rates: a fresh topic, the system joined, then ``forecaster publish --synthetic`` at 25%,
   50% and 90% of that system's maximum for ``--latency-seconds``. Per output: input record
   timestamp -> the forecast's ``produced_at`` (passthrough: its output record's timestamp);
   p50/p95/p99 after a warm-up; CPU cores used and peak RSS.
3. accuracy, at the smallest S: every forecasting system's point forecasts 1..H steps ahead
   against the values that followed, as MAE relative to the last value (a random walk; < 1 is
   better), the first ``--warmup-events`` of each stream left out. Also, in process, the same
   on the held-out real prices of the bundled checkpoints (after 2012-01-01).
Writes JSON and, beside it, throughput and latency charts (PNG).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from harness import (
    PARTITIONS,
    Worker,
    embedded_broker_and_logs,
    machine,
    publish_proc,
    rate_of,
    read_all,
    serve,
    wait_for,
)
from kafka import KafkaProducer

from workers import broker, publisher
from workers.settings import KafkaSettings
from workers.topics import ensure_topics

FAMILIES = ("rnn", "lstm", "gru", "transformer")
SYSTEMS = ("passthrough", *(f"worker-{f}" for f in FAMILIES), "naive", "river")
RELAY = str(Path(__file__).with_name("relay.py"))
HORIZON = 8


class Bench:
    def __init__(self, args: argparse.Namespace, log_dir: Path) -> None:
        self.args, self.log_dir = args, log_dir
        self.settings = KafkaSettings(bootstrap=args.bootstrap)

    def start(self, system: str, source: str) -> Worker:
        tag = f"{system}-{uuid.uuid4().hex[:6]}"
        ensure_topics(self.settings, {f"bench-out-{tag}": PARTITIONS})
        if system.startswith("worker-"):
            family = system.removeprefix("worker-")
            return serve(self.args.bootstrap, family, self.args.device, source, tag, self.log_dir, "--threads", "1")
        kind = system.split("-")[0]
        command = [sys.executable, RELAY, kind, self.args.bootstrap, source, f"bench-out-{tag}", f"bench-{tag}"]
        return Worker(command, f"bench-out-{tag}", self.log_dir / f"{tag}.log")

    def write(self, streams: int, events: int) -> str:
        """``streams`` × ``events`` synthetic hourly prices, in event-time order, to a new topic."""
        source = f"bench-in-{streams}-{uuid.uuid4().hex[:6]}"
        ensure_topics(self.settings, {source: PARTITIONS})
        producer = KafkaProducer(bootstrap_servers=self.args.bootstrap, linger_ms=20, batch_size=1 << 20)
        summary = publisher.publish(
            producer, source, publisher.synthetic(streams, streams / 3600, events * 3600, seed=1, start=1.7e9)
        )
        producer.close()
        print(f"S={streams}: {summary}", flush=True)
        return source

    def maximum(self, system: str, source: str, records: int) -> tuple[dict[str, Any], str]:
        if system == "naive":
            records = min(records, self.args.naive_records)
        w = self.start(system, source)
        first: list[dict[str, float]] = []

        def drained() -> bool:
            if not w.ready():  # raises if the process died
                return False
            n = w.progress()
            if not first and (n > 0 or (n == 0 and w.port is None)):  # processing has started
                first.append({**w.usage(), "done": n})
            return n >= records

        wait_for(drained, self.args.timeout, f"{system} to drain {records} records")
        end, handled = w.usage(), w.progress()
        w.stop()
        rate = rate_of(read_all(self.args.bootstrap, w.output, records, seconds=self.args.timeout))
        cpu_us = (end["cpu_s"] - first[0]["cpu_s"]) / max(1, handled - first[0]["done"]) * 1e6
        row = {
            "records": records,
            "events_per_s": round(rate),
            "cpu_us_per_event": round(cpu_us, 1),
            "peak_rss_mb": round(end["peak_rss_mb"], 1),
        }
        print(f"  {system:18s} max {rate:10,.0f} events/s  {row}", flush=True)
        return row, w.output

    def fixed(self, system: str, streams: int, rate: float) -> dict[str, Any]:
        source = f"bench-fix-{uuid.uuid4().hex[:6]}"
        ensure_topics(self.settings, {source: PARTITIONS})
        w = self.start(system, source)
        wait_for(w.ready, 120, f"{system} to join")
        before, t0 = w.usage(), time.time()
        pub = publish_proc(self.args.bootstrap, source, streams, rate, self.args.latency_seconds)
        summary = pub.communicate(timeout=self.args.latency_seconds * 10)[0].strip()
        sent = int(summary.split()[1])
        wait_for(lambda: w.ready() and w.progress() >= sent, self.args.timeout, f"{system}'s outputs")
        after, wall = w.usage(), time.time() - t0
        w.stop()
        lat = latencies(read_all(self.args.bootstrap, source, sent), read_all(self.args.bootstrap, w.output, sent))
        inputs_after = lat[:, 0] >= t0 + self.args.warmup
        ms = lat[inputs_after, 1] * 1000
        second = (lat[:, 0] - t0).astype(int)
        row = {
            "target_events_per_s": round(rate),
            "publisher": summary,
            "measured": int(ms.size),
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)},
            "within_50ms": round(float((ms <= 50).mean()), 4),
            # a p50 that climbs second by second: the machine does not keep up at this rate
            "p50_ms_by_second": [
                round(float(np.percentile(lat[second == k, 1], 50)) * 1000, 1) for k in np.unique(second)
            ],
            "cpu_cores": round((after["cpu_s"] - before["cpu_s"]) / wall, 2),
            "peak_rss_mb": round(after["peak_rss_mb"], 1),
        }
        print(f"  {system:18s} at {rate:9,.0f}/s  p50 {row['p50_ms']} p99 {row['p99_ms']} ms", flush=True)
        return row


def latencies(inputs: list[Any], outputs: list[Any]) -> np.ndarray:
    """(input time s, seconds to its output) per output. Forecasts name their input (``source``)
    and carry ``produced_at``; the passthrough's k-th output of a partition is its k-th input."""
    sent = {(r.partition, r.offset): r.timestamp / 1000 for r in inputs}
    out = []
    if outputs and outputs[0].value.startswith(b'{"stream"') and b'"produced_at"' in outputs[0].value:
        for r in outputs:
            m = orjson.loads(r.value)
            t_in = sent[(m["source"]["partition"], m["source"]["offset"])]
            out.append((t_in, m["produced_at"] - t_in))
    else:
        for r in outputs:
            t_in = sent[(r.partition, r.offset)]
            out.append((t_in, r.timestamp / 1000 - t_in))
    return np.array(out)


def relative_mae(values: dict[str, np.ndarray], forecasts: dict[str, dict[int, np.ndarray]], warmup: int) -> float:
    """Σ|forecast - actual| / Σ|last value - actual| over steps 1..H, events after ``warmup``."""
    num = den = 0.0
    for stream, xs in values.items():
        for k, point in forecasts.get(stream, {}).items():
            if k < warmup or k + HORIZON >= len(xs):
                continue
            actual = xs[k + 1 : k + 1 + HORIZON]
            num += np.abs(point - actual).sum()
            den += np.abs(xs[k] - actual).sum()
    return num / den if den else float("nan")  # no event past the warm-up


def stream_accuracy(
    bench: Bench, source: str, outputs: dict[str, str], counts: dict[str, int], records: int
) -> dict[str, Any]:
    inputs = read_all(bench.args.bootstrap, source, records)
    by_stream: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in inputs:
        m = orjson.loads(r.value)
        by_stream[m["stream"]].append((m["ts"], m["value"]))
    values, index = {}, {}
    for s, evs in by_stream.items():
        evs.sort()
        values[s] = np.array([v for _, v in evs])
        index[s] = {ts: k for k, (ts, _) in enumerate(evs)}
    result, points = {}, {}
    for system, topic in outputs.items():
        forecasts: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
        for r in read_all(bench.args.bootstrap, topic, counts[system]):
            m = orjson.loads(r.value)
            forecasts[m["stream"]][index[m["stream"]][m["ts"]]] = np.array(m["point"])
        points[system] = forecasts
        if system != "naive":
            result[system] = round(float(relative_mae(values, forecasts, bench.args.warmup_events)), 4)
    if "naive" in points and "worker-lstm" in points:  # same model, one event at a time: same numbers
        diffs = [
            np.abs(p - points["worker-lstm"][s][k]).max() / max(1.0, np.abs(p).max())
            for s, ks in points["naive"].items()
            for k, p in ks.items()
        ]
        result["naive_vs_worker_lstm_max_rel_diff"] = float(max(diffs))
    return result


def real_price_accuracy(warmup: int, with_river: bool) -> dict[str, float]:
    """The same relative MAE, in process, on the held-out real prices (the bundled checkpoints
    were trained before the cutoff): each series streamed from its start, scored after it."""
    import forecaster
    from forecaster.data import PRICE_COLUMNS as COLUMNS
    from forecaster.data import PRICES as DATA
    from forecaster.data import load_series
    from forecaster.pretrained.build import CUTOFF

    series = load_series(DATA, "long", COLUMNS)

    def score(predict: Any) -> float:
        values, forecasts = {}, {}
        for s in series:
            xs = s.values.astype(np.float64)
            values[s.name] = xs
            held_out = np.flatnonzero(s.ts >= CUTOFF)
            points = predict(s)
            forecasts[s.name] = {int(k): points[k] for k in held_out}
        return round(float(relative_mae(values, forecasts, warmup)), 4)

    out = {}
    for family in FAMILIES:
        fc = forecaster.load(family, "cpu")
        events = [
            [{"stream": s.name, "ts": float(t), "value": float(v)} for t, v in zip(s.ts, s.values, strict=True)]
            for s in series
        ]
        by_name = {s.name: [np.array(f.point) for f in fc.update(e)] for s, e in zip(series, events, strict=True)}
        out[f"worker-{family}"] = score(lambda s, by_name=by_name: by_name[s.name])

    if with_river:
        out["river"] = score(lambda s: river_points(s.values))
    return out


def river_points(values: np.ndarray) -> list[np.ndarray]:
    """River's SNARIMAX (bench/relay.py) fed one value at a time: after each, its point forecast
    of the next ``HORIZON`` values."""
    from relay import snarimax

    m, out = snarimax(), []
    for v in values.tolist():
        m.learn_one(v)
        out.append(np.array(m.forecast(horizon=HORIZON)))
    return out


def charts(result: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(s) for s in result["streams"]]
    systems = [s for s in SYSTEMS if any(s in result["streams"][str(n)]["max"] for n in sizes)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        rates = [result["streams"][str(n)]["max"].get(system, {}).get("events_per_s", 0) for n in sizes]
        ax.bar(np.arange(len(sizes)) + i * width, rates, width, label=system)
    ax.set_xticks(np.arange(len(sizes)) + 0.4 - width / 2, [f"{n:,} streams" for n in sizes])
    ax.set_yscale("log")
    ax.set_ylabel("events/s (log)")
    cores, device = result["machine"]["cpu_count"], result["device"]
    ax.set_title(f"Maximum sustained rate, one process each, embedded broker, {cores} cores, {device}")
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    paths = [out.with_name(out.stem + "-throughput.png")]
    fig.savefig(paths[0], dpi=110)
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 4), sharey=True, squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        for system, rows in result["streams"][str(n)]["fixed"].items():
            ax.plot([r["target_events_per_s"] for r in rows], [r["p99_ms"] for r in rows], "o-", label=system)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(50, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{n:,} streams")
        ax.set_xlabel("offered events/s")
    axes[0][0].set_ylabel("p99 input -> forecast, ms")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    paths.append(out.with_name(out.stem + "-latency.png"))
    fig.savefig(paths[1], dpi=110)
    return [str(p) for p in paths]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", help="an existing broker; default: start the embedded one")
    p.add_argument("--streams", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--records", type=int, default=300_000, help="max-rate input: at least 5 per stream")
    p.add_argument("--naive-records", type=int, default=20_000)
    p.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    p.add_argument(
        "--latency-systems", nargs="*", choices=SYSTEMS, default=["passthrough", "worker-lstm", "naive", "river"]
    )
    p.add_argument("--fractions", type=float, nargs="*", default=[0.25, 0.5, 0.9])
    p.add_argument("--latency-seconds", type=float, default=15)
    p.add_argument("--warmup", type=float, default=3, help="fixed rates: seconds left out at the start")
    p.add_argument("--warmup-events", type=int, default=50, help="accuracy: events per stream left out")
    p.add_argument("--device", default="cpu")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--out", default="bench/results/e2e-cpu.json")
    args = p.parse_args()
    if "river" in args.systems or "river" in args.latency_systems:
        try:
            import river  # noqa: F401
        except ImportError:
            sys.exit("the River baseline needs River: .venv/bin/pip install -e '.[bench]' (or leave it out)")
    own, log_dir = embedded_broker_and_logs(args, "e2e")
    result: dict[str, Any] = {
        "machine": machine(),
        "broker": "embedded Tansu" if own else args.bootstrap,
        "device": args.device,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "streams": {},
    }
    try:
        bench = Bench(args, log_dir)
        for n in args.streams:
            events = max(5, args.records // n)
            source = bench.write(n, events)
            res: dict[str, Any] = {"records": n * events, "max": {}, "fixed": {}}
            outputs = {}
            for system in args.systems:
                res["max"][system], outputs[system] = bench.maximum(system, source, n * events)
            for system in args.latency_systems:
                peak = res["max"][system]["events_per_s"]
                res["fixed"][system] = [bench.fixed(system, n, f * peak) for f in args.fractions]
            ratios = {}
            lstm = res["max"].get("worker-lstm", {}).get("events_per_s")
            for other in ("passthrough", "naive", "river"):
                if lstm and other in res["max"]:
                    ratios[f"worker_lstm_vs_{other}"] = round(lstm / res["max"][other]["events_per_s"], 3)
            res["ratios"] = ratios
            if n == min(args.streams):
                forecasting = {s: t for s, t in outputs.items() if s != "passthrough"}
                counts = {s: res["max"][s]["records"] for s in forecasting}
                res["accuracy_relative_mae"] = stream_accuracy(bench, source, forecasting, counts, n * events)
            result["streams"][str(n)] = res
            print(f"S={n}: ratios {ratios}", flush=True)
            write(result, Path(args.out))  # so far: a long run stopped early keeps what it measured
        result["real_prices_relative_mae"] = real_price_accuracy(args.warmup_events, "river" in args.systems)
    finally:
        if own:
            broker.stop(own.port)
    out = Path(args.out)
    write(result, out)
    print(f"wrote {out} and {', '.join(charts(result, out))} (logs in {log_dir})")


def write(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
