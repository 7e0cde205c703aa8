"""The forecast worker on the embedded broker: throughput vs a bare passthrough, latency at half
of the maximum rate, and recovery after SIGKILL, at 10k streams by default.

    .venv/bin/python bench/worker.py [--streams 10000] [--model lstm] [--out bench/results/worker-cpu.json]

1. throughput: S streams × E events are written to a topic once. Then, one after the other, each
   reading the same records with its own consumer group, in its own process:
   - passthrough: kafka-python poll → produce the record unchanged → flush → commit, with the
     worker's own poll size and flush/commit discipline (the ceiling of the client here);
   - worker: ``forecaster serve``.
   Events/s come from the output records' timestamps (first to last), so start-up and group join
   are left out alike, and nothing else runs while they are timed.
2. latency: a fresh worker, and ``forecaster publish --synthetic`` at half the worker's measured
   rate. Per forecast: its record timestamp (sent by the worker) minus its input record's
   timestamp (sent by the publisher). Also the share of the worker's own
   ``forecaster_e2e_latency_seconds`` (to the forecast acknowledged) within 50 ms, warm-up excluded.
3. recovery: a worker snapshotting every ``--snapshot-interval-s``, the publisher at a quarter of
   the rate; SIGKILL after ``--kill-after`` s and an immediate restart; seconds from the restart
   to the first new forecast, and to forecasts being current again (input → forecast < 1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from workers import broker, publisher
from workers.forecast_worker import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS
from workers.settings import KafkaSettings
from workers.topics import ensure_topics

PARTITIONS = 4
SESSION = ["--kafka-option", "session_timeout_ms=6000", "--kafka-option", "heartbeat_interval_ms=1000"]
FORECASTER = [sys.executable, "-m", "forecaster.cli"]


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.1)


def passthrough(bootstrap: str, source: str, target: str, group: str, count: int, max_batch: int) -> None:
    """The baseline: consume → produce unchanged → flush → commit, until ``count`` records, with
    the worker's client settings."""
    consumer = KafkaConsumer(
        source,
        **{**CONSUMER_DEFAULTS, "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
    )
    producer = KafkaProducer(**PRODUCER_DEFAULTS, bootstrap_servers=bootstrap)
    done = 0
    while done < count:
        polled = consumer.poll(timeout_ms=5, max_records=max_batch)
        last = {}
        for tp, records in polled.items():
            for r in records:
                producer.send(target, partition=r.partition, key=r.key, value=r.value)  # as the worker does
            last[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
            done += len(records)
        if last:
            producer.flush()
            consumer.commit(last)
    producer.close()
    consumer.close()


def read_all(bootstrap: str, topic: str, count: int = 0, seconds: float = 120, until: Any = None) -> list[Any]:
    """Records of ``topic`` (assigned directly, from the start) until there are ``count`` of them,
    or ``until(records)`` holds."""
    done = until or (lambda out: len(out) >= count)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_bytes=64 << 20)
    out: list[Any] = []
    try:
        wait_for(lambda: bool(consumer.partitions_for_topic(topic)), 30, f"topic {topic}")
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
        wait_for(
            lambda: out.extend(r for rs in consumer.poll(200, max_records=50_000).values() for r in rs) or done(out),
            seconds,
            f"records on {topic} (have {len(out)})",
        )
    finally:
        consumer.close()
    return out


def covering(sent: int) -> Any:
    """``until`` for forecasts: one for each of ``sent`` input records (repeats allowed)."""
    seen: set[tuple[int, int]] = set()
    done = [0]

    def until(out: list[Any]) -> bool:
        for r in out[done[0] :]:
            src = json.loads(r.value)["source"]
            seen.add((src["partition"], src["offset"]))
        done[0] = len(out)
        return len(seen) >= sent

    return until


def rate_of(records: list[Any]) -> float:
    ts = np.array([r.timestamp for r in records], dtype=np.float64) / 1000
    return (len(ts) - 1) / (ts.max() - ts.min())


def proc_stats(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) and peak RSS of a live process, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    return {"cpu_s": (int(fields[11]) + int(fields[12])) / ticks, "peak_rss_mb": hwm / 1024}


class Serve:
    """A ``forecaster serve`` process with its own topics and group, and a metrics port."""

    def __init__(self, args: argparse.Namespace, source: str, tag: str, log_dir: Path, *extra: str) -> None:
        self.output, self.port = f"bench-out-{tag}", broker.free_port()
        self.log = log_dir / f"worker-{tag}-{uuid.uuid4().hex[:4]}.log"
        self.proc = subprocess.Popen(
            [
                *FORECASTER,
                "serve",
                "--bootstrap",
                args.bootstrap,
                "--model",
                args.model,
                "--device",
                args.device,
                "--input",
                source,
                "--output",
                self.output,
                "--dead-letters",
                f"bench-dlq-{tag}",
                "--state-topic",
                f"bench-state-{tag}",
                "--group",
                f"bench-{tag}",
                "--metrics-port",
                str(self.port),
                *SESSION,
                *extra,
            ],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def sample(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log}")
        return "Updated partition assignment" in self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=120)


def throughput(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    source, count = f"bench-in-{uuid.uuid4().hex[:6]}", args.streams * args.events
    settings = KafkaSettings(bootstrap=args.bootstrap)
    ensure_topics(settings, {source: PARTITIONS})
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=20, batch_size=1 << 20)
    events = publisher.synthetic(args.streams, 1e6, count / 1e6, seed=1, start=1.7e9)
    print(f"writing {count} records of {args.streams} streams …", flush=True)
    print(publisher.publish(producer, source, events), flush=True)
    producer.close()
    runs: dict[str, list[dict]] = {"passthrough": [], "worker": []}
    for rep in range(args.repeats):
        tag = uuid.uuid4().hex[:6]
        target = f"bench-pass-{tag}"
        ensure_topics(settings, {target: PARTITIONS})
        proc = subprocess.Popen(
            [sys.executable, __file__, "_passthrough", args.bootstrap, source, target, f"pass-{tag}", str(count)]
        )
        proc.wait(timeout=600)
        rate = rate_of(read_all(args.bootstrap, target, count))
        runs["passthrough"].append({"events_per_s": round(rate)})
        print(f"[{rep}] passthrough {rate:,.0f} events/s", flush=True)

        w = Serve(args, source, tag, log_dir)
        wait_for(lambda w=w: w.ready() and w.sample("forecaster_forecasts_total") >= count, 600, "the worker")
        stats = proc_stats(w.proc.pid)
        w.stop()
        rate = rate_of(read_all(args.bootstrap, w.output, count))
        runs["worker"].append({"events_per_s": round(rate), **stats})
        print(f"[{rep}] worker {rate:,.0f} events/s, {stats}", flush=True)
    best = {k: max(r["events_per_s"] for r in v) for k, v in runs.items()}
    return {
        "records": count,
        "runs": runs,
        "passthrough_events_per_s": best["passthrough"],
        "worker_events_per_s": best["worker"],
        "worker_vs_passthrough": round(best["worker"] / best["passthrough"], 3),
    }


def publish_proc(args: argparse.Namespace, topic: str, rate: float, duration: float) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *FORECASTER,
            "publish",
            "--bootstrap",
            args.bootstrap,
            "--topic",
            topic,
            "--synthetic",
            "--streams",
            str(args.streams),
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def latencies(args: argparse.Namespace, source: str, output: str, sent: int, after: float) -> np.ndarray:
    """Seconds from each input record's timestamp to its forecast's, for inputs sent after ``after``."""
    inputs = {(r.partition, r.offset): r.timestamp for r in read_all(args.bootstrap, source, sent)}
    out = []
    for r in read_all(args.bootstrap, output, until=covering(sent)):
        src = json.loads(r.value)["source"]
        t_in = inputs.get((src["partition"], src["offset"]))
        if t_in is not None and t_in / 1000 >= after:
            out.append((r.timestamp - t_in) / 1000)
    return np.array(out)


def latency(args: argparse.Namespace, log_dir: Path, max_rate: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    source, rate = f"bench-lat-{tag}", max_rate / 2
    ensure_topics(KafkaSettings(bootstrap=args.bootstrap), {source: PARTITIONS})
    w = Serve(args, source, tag, log_dir)
    wait_for(w.ready, 120, "the worker to join")
    pub = publish_proc(args, source, rate, args.latency_seconds)
    warm = time.time() + args.warmup
    time.sleep(args.warmup)  # pacing the measurement window, not synchronisation
    below, total = (
        w.sample('forecaster_e2e_latency_seconds_bucket{le="0.05"}'),
        w.sample("forecaster_e2e_latency_seconds_count"),
    )
    summary = pub.communicate(timeout=args.latency_seconds * 4)[0].strip()
    sent = int(summary.split()[1])
    wait_for(lambda: w.sample("forecaster_forecasts_total") >= sent, 120, "every forecast")
    below = w.sample('forecaster_e2e_latency_seconds_bucket{le="0.05"}') - below
    total = w.sample("forecaster_e2e_latency_seconds_count") - total
    stats = proc_stats(w.proc.pid)
    w.stop()
    lat = latencies(args, source, w.output, sent, warm)
    q = {f"p{p}_ms": round(float(np.percentile(lat, p)) * 1000, 2) for p in (50, 95, 99)}
    print(f"latency at {rate:,.0f} events/s: {q}, share ≤ 50 ms to ack {below / total:.4f}", flush=True)
    return {
        "rate_events_per_s": round(rate),
        "publisher": summary,
        "measured_forecasts": len(lat),
        "to_forecast_sent": {**q, "max_ms": round(float(lat.max()) * 1000, 2)},
        "to_forecast_acked_share_within_50ms": round(below / total, 4),
        **stats,
    }


def recovery(args: argparse.Namespace, log_dir: Path, max_rate: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    source, rate = f"bench-rec-{tag}", max_rate / 4
    ensure_topics(KafkaSettings(bootstrap=args.bootstrap), {source: PARTITIONS})
    interval = ["--snapshot-interval-s", str(args.snapshot_interval_s)]
    a = Serve(args, source, tag, log_dir, *interval)
    wait_for(a.ready, 120, "the worker to join")
    pub = publish_proc(args, source, rate, args.kill_after + 30)
    time.sleep(args.kill_after)  # let the worker run for a while before the crash
    resident = a.sample("forecaster_active_streams")
    a.proc.kill()
    a.proc.wait()
    restart = time.time()
    b = Serve(args, source, tag, log_dir, *interval)
    b.output = a.output
    summary = pub.communicate(timeout=300)[0].strip()
    sent = int(summary.split()[1])
    wait_for(b.ready, 120, "the restarted worker to join")
    wait_for(lambda: b.sample("forecaster_events_total") > 0 and b.sample("forecaster_consumer_lag") == 0, 120, "lag 0")
    b.stop()
    forecasts = read_all(args.bootstrap, b.output, until=covering(sent))
    inputs = {(r.partition, r.offset): r.timestamp for r in read_all(args.bootstrap, source, sent)}
    after = sorted(
        (r.timestamp / 1000, inputs[(s["partition"], s["offset"])] / 1000)
        for r in forecasts
        if r.timestamp / 1000 >= restart
        for s in [json.loads(r.value)["source"]]
    )
    first = after[0][0] - restart
    current = next((t - restart for t, t_in in after if t - t_in < 1.0), None)
    replayed = next(line for line in b.log.read_text().splitlines() if "replaying silently" in line)
    print(f"recovery: first forecast {first:.2f} s after the restart, current after {current} s", flush=True)
    return {
        "rate_events_per_s": round(rate),
        "resident_streams_at_kill": int(resident),
        "snapshot_interval_s": args.snapshot_interval_s,
        "first_forecast_after_restart_s": round(first, 2),
        "current_again_after_restart_s": current and round(current, 2),
        "log": replayed.split(" INFO ", 1)[-1],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_passthrough":
        bootstrap, source, target, group, count = sys.argv[2:7]
        passthrough(bootstrap, source, target, group, int(count), 10_000)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", help="an existing broker; default: start the embedded one")
    p.add_argument("--streams", type=int, default=10_000)
    p.add_argument("--events", type=int, default=30, help="throughput: events per stream")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--model", default="lstm")
    p.add_argument("--device", default="cpu")
    p.add_argument("--latency-seconds", type=float, default=30)
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument("--snapshot-interval-s", type=float, default=10)
    p.add_argument("--kill-after", type=float, default=25)
    p.add_argument("--max-rate", type=float, help="skip the throughput phase: the worker's events/s, as measured")
    p.add_argument("--phases", nargs="*", choices=("latency", "recovery"), default=["latency", "recovery"])
    p.add_argument("--out", default="bench/results/worker-cpu.json")
    args = p.parse_args()
    own = None
    if args.bootstrap is None:
        own = broker.start(broker.free_port())
        args.bootstrap = own.bootstrap
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-worker-{uuid.uuid4().hex[:6]}"
    log_dir.mkdir(parents=True)
    try:
        result: dict[str, Any] = {
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
            "streams": args.streams,
            "model": args.model,
            "device": args.device,
            "broker": "embedded Tansu" if own else args.bootstrap,
        }
        if args.max_rate is None:
            result["throughput"] = throughput(args, log_dir)
        rate = args.max_rate or result["throughput"]["worker_events_per_s"]
        if "latency" in args.phases:
            result["latency_at_half_max"] = latency(args, log_dir, rate)
        if "recovery" in args.phases:
            result["recovery"] = recovery(args, log_dir, rate)
    finally:
        if own:
            broker.stop(own.port)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} (worker logs in {log_dir})")


if __name__ == "__main__":
    main()
