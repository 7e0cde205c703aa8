"""``forecaster demo``: the whole service on one machine, in one command.

Starts the embedded broker (on a free port, unless ``--bootstrap`` names a running Kafka), a
worker with a bundled checkpoint, and a publisher replaying the bundled real daily prices
(AAPL, FB, GOOG, IBM, MSFT) in event-time order; shows the live forecast table; prints the
metrics URL; and stops every process it started after ``--duration`` seconds or Ctrl-C.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer

from forecaster.data import PRICE_COLUMNS as COLUMNS
from forecaster.data import PRICES as DATA
from workers import broker, watcher

CLI = [sys.executable, "-m", "workers.cli"]


@dataclass(frozen=True)
class DemoOptions:
    model: str = "lstm"
    duration: float | None = 60.0
    speed: float = 5 * 86_400  # five days of prices per second
    metrics_port: int = 9100
    bootstrap: str | None = None
    rows: int = 20
    as_json: bool = False


def _stop(proc: subprocess.Popen, name: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within 30 s: killed", file=sys.stderr)
            proc.kill()
            proc.wait()


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=2) as r:
        lines = r.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith((name + " ", name + "{")))


def run(options: DemoOptions) -> int:
    """Run the demo; returns how many forecasts were shown."""
    logs = Path(tempfile.mkdtemp(prefix="forecaster-demo-"))
    started: list[tuple[subprocess.Popen, str]] = []
    own = None
    try:
        if options.bootstrap is None:
            own = broker.start(broker.free_port())
        bootstrap = options.bootstrap or own.bootstrap
        port = broker.free_port(options.metrics_port)
        url = f"http://127.0.0.1:{port}/metrics"
        tag = f"demo-{int(time.time())}"
        topics = {"input": f"{tag}.prices", "output": f"{tag}.forecasts"}
        serve = [
            *CLI,
            "serve",
            "--bootstrap",
            bootstrap,
            "--model",
            options.model,
            "--input",
            topics["input"],
            "--output",
            topics["output"],
            "--dead-letters",
            f"{tag}.prices.dlq",
            "--state-topic",
            f"{tag}.state",
            "--group",
            tag,
            "--metrics-port",
            str(port),
            "--kafka-option",
            "session_timeout_ms=6000",
        ]
        publish = [
            *CLI,
            "publish",
            "--bootstrap",
            bootstrap,
            "--topic",
            topics["input"],
            "--csv",
            str(DATA),
            "--stream-col",
            COLUMNS.stream,
            "--ts-col",
            COLUMNS.ts,
            "--value-col",
            COLUMNS.value,
            "--speed",
            str(options.speed),
            "--quiet",
        ]
        for cmd, name in ((serve, "worker"), (publish, "publisher")):
            log = (logs / f"{name}.log").open("w")
            started.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), name))
        print(f"broker {bootstrap} · worker ({options.model}) metrics {url} · logs {logs}", file=sys.stderr)
        print(f"replaying {DATA.name} (AAPL, FB, GOOG, IBM, MSFT)", file=sys.stderr)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        try:
            shown = watcher.watch(
                consumer,
                topics["output"],
                as_json=options.as_json,
                from_beginning=True,
                duration=options.duration,
                rows=options.rows,
                wait_s=120,
            )
        finally:
            consumer.close()
        for proc, name in started:
            if proc.poll() not in (None, 0):
                raise RuntimeError(f"the {name} exited with {proc.returncode}; see {logs / (name + '.log')}")
        events, forecasts = _metric(url, "forecaster_events_total"), _metric(url, "forecaster_forecasts_total")
        print(f"\n{int(events)} prices in, {int(forecasts)} forecasts out, {shown} shown; metrics were at {url}")
        return shown
    finally:
        for proc, name in reversed(started):
            _stop(proc, name)
        if own is not None:
            broker.stop(own.port)
