"""What the Kafka benchmarks share: worker processes, waiting with deadlines, reading topics
back, process CPU and memory, and latencies from record timestamps."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from workers import broker

PARTITIONS = 4
SESSION = ["--kafka-option", "session_timeout_ms=6000", "--kafka-option", "heartbeat_interval_ms=1000"]
FORECASTER = [sys.executable, "-m", "workers.cli"]
_RELAYED = re.compile(r"^relayed (\d+) cpu_s ([\d.]+) peak_rss_mb ([\d.]+)$", re.MULTILINE)


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.1)


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
    """CPU seconds (user + system) and peak RSS of a live process and its live children (the
    worker's producer process), summed, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]  # its main thread's
    cpu = hwm = 0
    for p in (pid, *children):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{p}/status").read_text()
        cpu += int(fields[11]) + int(fields[12])
        hwm += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    return {"cpu_s": cpu / ticks, "peak_rss_mb": hwm / 1024}


class Worker:
    """A worker process (``forecaster serve`` or a ``bench/relay.py`` baseline) that writes to
    its own output topic and logs to ``log``."""

    def __init__(self, command: list[str], output: str, log: Path, port: int | None = None) -> None:
        self.output, self.log, self.port = output, log, port
        self.proc = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def sample(self, name: str) -> float:
        """Sum of the samples of a Prometheus metric (``forecaster serve`` only)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def progress(self) -> int:
        """Input records handled so far; -1: a baseline that has not started processing."""
        if self.port is not None:
            return int(self.sample("forecaster_events_total"))
        return int(self._relayed()[0])

    def usage(self) -> dict[str, float]:
        """CPU seconds and peak RSS (MB) so far."""
        if self.port is not None:
            return proc_stats(self.proc.pid)
        _, cpu, rss = self._relayed()
        return {"cpu_s": cpu, "peak_rss_mb": rss}

    def _relayed(self) -> tuple[float, float, float]:
        """The last progress line of a bench/relay.py baseline: records, CPU s, peak RSS MB."""
        # Whole lines only: unbuffered, print writes the text and its newline apart, and another
        # thread's log line can land between them.
        found = _RELAYED.findall(self.log.read_text())
        if not found:
            return -1.0, 0.0, 0.0
        return tuple(float(x) for x in found[-1])

    def ready(self) -> bool:
        """Its consumer has joined the group and holds partitions."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log}")
        return "Updated partition assignment" in self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=120)
        if self.proc.returncode not in (0, -signal.SIGTERM):
            raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log}")


def serve(bootstrap: str, model: str, device: str, source: str, tag: str, log_dir: Path, *extra: str) -> Worker:
    """``forecaster serve`` from ``source`` to ``bench-out-{tag}`` in group ``bench-{tag}``."""
    port = broker.free_port()
    command = [
        *FORECASTER,
        "serve",
        *("--bootstrap", bootstrap, "--model", model, "--device", device, "--input", source),
        *("--output", f"bench-out-{tag}", "--dead-letters", f"bench-dlq-{tag}", "--state-topic", f"bench-state-{tag}"),
        *("--group", f"bench-{tag}", "--metrics-port", str(port)),
        *SESSION,
        *extra,
    ]
    return Worker(command, f"bench-out-{tag}", log_dir / f"worker-{tag}-{uuid.uuid4().hex[:4]}.log", port)


def publish_proc(bootstrap: str, topic: str, streams: int, rate: float, duration: float) -> subprocess.Popen:
    """``forecaster publish --synthetic``; its summary line comes on stdout."""
    return subprocess.Popen(
        [
            *FORECASTER,
            "publish",
            *("--bootstrap", bootstrap, "--topic", topic, "--synthetic", "--streams", str(streams)),
            *("--rate", str(rate), "--duration", str(duration), "--quiet"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def embedded_broker_and_logs(args: argparse.Namespace, name: str) -> tuple[Any, Path]:
    """Start the embedded broker unless ``args.bootstrap`` names one (then set it to the embedded
    one's); and a fresh folder for the worker logs. Returns the broker (None: not ours) and folder."""
    own = None
    if args.bootstrap is None:
        own = broker.start(broker.free_port())
        args.bootstrap = own.bootstrap
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{name}-{uuid.uuid4().hex[:6]}"
    log_dir.mkdir(parents=True)
    return own, log_dir


def measure_and_write(args: argparse.Namespace, name: str, body: Any, **header: Any) -> None:
    """``body(log_dir)`` on the embedded broker (or ``args.bootstrap``); its result is written to
    ``args.out`` under ``name``, after the machine, the broker and ``header``."""
    own, log_dir = embedded_broker_and_logs(args, name)
    try:
        broker_name = "embedded Tansu" if own else args.bootstrap
        result = {"machine": machine(), **header, "broker": broker_name, name: body(log_dir)}
    finally:
        if own:
            broker.stop(own.port)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} (worker logs in {log_dir})")


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]}
