"""Recovery after SIGKILL, on the embedded broker: seconds from a restart to the first new
forecast, and to forecasts being current again (input -> forecast < 1 s).

    .venv/bin/python bench/recovery.py [--streams 10000] [--rate 5000] [--out bench/results/recovery-cpu.json]

A worker snapshotting every ``--snapshot-interval-s`` and ``forecaster publish --synthetic`` at
``--rate``; SIGKILL after ``--kill-after`` s and an immediate restart.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from typing import Any

from harness import PARTITIONS, covering, measure_and_write, publish_proc, read_all, serve, wait_for

from workers.settings import KafkaSettings
from workers.topics import ensure_topics


def recovery(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    source, rate = f"bench-rec-{tag}", args.rate
    ensure_topics(KafkaSettings(bootstrap=args.bootstrap), {source: PARTITIONS})
    interval = ["--snapshot-interval-s", str(args.snapshot_interval_s)]
    a = serve(args.bootstrap, args.model, args.device, source, tag, log_dir, *interval)
    wait_for(a.ready, 120, "the worker to join")
    pub = publish_proc(args.bootstrap, source, args.streams, rate, args.kill_after + 30)
    time.sleep(args.kill_after)  # let the worker run for a while before the crash
    resident = a.sample("forecaster_active_streams")
    a.proc.kill()
    a.proc.wait()
    restart = time.time()
    b = serve(args.bootstrap, args.model, args.device, source, tag, log_dir, *interval)
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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", help="an existing broker; default: start the embedded one")
    p.add_argument("--streams", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=5_000, help="events/s of the publisher")
    p.add_argument("--model", default="lstm")
    p.add_argument("--device", default="cpu")
    p.add_argument("--snapshot-interval-s", type=float, default=10)
    p.add_argument("--kill-after", type=float, default=25)
    p.add_argument("--out", default="bench/results/recovery-cpu.json")
    args = p.parse_args()
    header = {"streams": args.streams, "model": args.model, "device": args.device}
    measure_and_write(args, "recovery", lambda log_dir: recovery(args, log_dir), **header)


if __name__ == "__main__":
    main()
