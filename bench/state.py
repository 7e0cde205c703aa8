"""Incremental state on the embedded broker: bytes written per snapshot interval against a full
snapshot, the loop's longest pause for state, and reading a partition's chain back.

    .venv/bin/python bench/state.py [--cases lstm:10000,lstm:100000] [--updated 0.01] [--intervals 20]
        [--out bench/results/state-cpu.json]
    .venv/bin/python bench/state.py --cases lstm:1000000        # each large case on a broker of its own
    .venv/bin/python bench/state.py --cases transformer:100000

The worker's own ``StateLog`` and producer process, driven as the loop drives them: a base of every
resident stream (in slices, one per loop turn once the previous is acknowledged), then per
interval ``--updated`` of the streams advance one step and the interval's turns run until every
piece is acknowledged. Each turn's time in ``StateLog.turn`` is the loop's pause for state.
Streams are spread over 4 input partitions, as the worker's are. Recovery reads the state topic
back (``read_latest``) and restores each partition's chain into a fresh model, checked equal.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from harness import PARTITIONS, embedded_broker_and_logs, machine
from prometheus_client import CollectorRegistry

import forecaster
from forecaster.metrics import Metrics
from workers import broker, snapshots
from workers.forecast_worker import PRODUCER_DEFAULTS
from workers.sender import Sender
from workers.settings import WorkerSettings
from workers.statelog import StateLog
from workers.topics import ensure_topics

TURN_S = 0.005  # a loop turn at a low input rate: poll's max_wait_ms


def advance(fc: forecaster.Forecaster, streams: list[str], step: int, rng: np.random.Generator) -> None:
    for i in range(0, len(streams), 50_000):
        part = streams[i : i + 50_000]
        fc.update_arrays(part, np.full(len(part), 1.7e9 + 60.0 * step), 100 + rng.standard_normal(len(part)))


def run_turns(
    log: StateLog, fc: forecaster.Forecaster, offsets: dict[int, int], of: dict[str, int], due: bool
) -> list[float]:
    """Loop turns until nothing is left to write or acknowledge; each turn's seconds in ``turn``."""
    pauses, first = [], True
    while first or any(c.slices is not None or c.sent for c in log.chains.values()):
        start = time.perf_counter()
        log.turn(offsets, offsets, of, due=due and first)
        pauses.append(time.perf_counter() - start)
        first = False
        time.sleep(TURN_S)
    return pauses


def case(args: argparse.Namespace, family: str, n: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    settings = WorkerSettings(
        bootstrap=args.bootstrap, input=f"bench-state-{tag}", state_topic=f"bench-state-{tag}.state"
    )
    ensure_topics(settings, {settings.state_topic: 1})
    fc = forecaster.load(family, device="cpu")
    torch.set_num_threads(1)  # the worker's default: the producer process and the broker have the other core
    rng = np.random.default_rng(0)
    streams = [f"s{i}" for i in range(n)]
    of = {s: i % PARTITIONS for i, s in enumerate(streams)}
    advance(fc, streams, 0, rng)
    full = len(fc.snapshot())
    registry = CollectorRegistry()
    producer = Sender({**PRODUCER_DEFAULTS, "bootstrap_servers": [args.bootstrap], "max_request_size": 2 << 20})
    log = StateLog(fc, producer, settings, Metrics.create(registry))

    def written(kind: str | None = None) -> float:
        kinds = (kind,) if kind else ("base", "delta")
        return sum(registry.get_sample_value("forecaster_state_bytes_total", {"kind": k}) or 0 for k in kinds)

    offsets = dict.fromkeys(range(PARTITIONS), 1)
    start = time.perf_counter()
    base_pauses = run_turns(log, fc, offsets, of, due=True)
    base_s, base_bytes = time.perf_counter() - start, written()
    print(f"{family} {n}: full snapshot {full / 1e6:.1f} MB, base written in {base_s:.1f} s", flush=True)
    per_interval, pauses, bases = [], [], 0
    for k in range(1, args.intervals + 1):
        updated = rng.choice(n, size=max(1, int(n * args.updated)), replace=False)
        batch = [streams[i] for i in sorted(updated)]
        advance(fc, batch, k, rng)
        for s in batch:
            log.chains[of[s]].changed.add(s)
        offsets = {p: o + 1 for p, o in offsets.items()}
        before, before_base = written(), written("base")
        pauses += run_turns(log, fc, offsets, of, due=True)
        per_interval.append(written() - before)
        bases += int(written("base") > before_base)
    producer.flush()
    producer.close()
    result: dict[str, Any] = {
        "family": family,
        "streams": n,
        "updated_per_interval": args.updated,
        "intervals": args.intervals,
        "full_snapshot_bytes": full,
        "bytes_per_stream": fc.engine.pool.bytes_per_stream,
        "base": {
            "seconds": round(base_s, 2),
            "bytes": int(base_bytes),
            "longest_pause_ms": round(1e3 * max(base_pauses), 1),
        },
        "mean_bytes_per_interval": round(float(np.mean(per_interval))),
        "bytes_per_interval_over_full": round(float(np.mean(per_interval)) / full, 4),
        "intervals_with_a_new_base": bases,
        "longest_pause_ms": round(1e3 * max(pauses), 1),
        "p99_pause_ms": round(1e3 * float(np.percentile(pauses, 99)), 1),
    }
    if n <= args.recover_up_to:
        start = time.perf_counter()
        found, _ = snapshots.read_latest(settings, offsets, timeout_s=600)
        read_s = time.perf_counter() - start
        fresh = forecaster.load(family, device="cpu")
        for p in range(PARTITIONS):
            for blob in found[p].blobs:
                fresh.restore(blob, merge=True)
        restore_s = time.perf_counter() - start - read_s
        assert sorted(fresh.streams) == sorted(streams), "the chains restore other streams"
        for p in range(PARTITIONS):  # LRU order holds per partition: each restores on its own
            sample = streams[p :: PARTITIONS * max(1, n // 1000)]
            assert fresh.snapshot(sample) == fc.snapshot(sample), "the chains restore other state"
        result["recovery"] = {"read_s": round(read_s, 2), "restore_s": round(restore_s, 2), "equal": True}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", help="an existing broker; default: start the embedded one")
    p.add_argument("--cases", default="lstm:10000,lstm:100000", help="family:streams, comma separated")
    p.add_argument("--updated", type=float, default=0.01, help="share of the streams updated per interval")
    p.add_argument("--intervals", type=int, default=20)
    p.add_argument("--recover-up-to", type=int, default=100_000, help="read back and restore up to this many streams")
    p.add_argument("--out", default="bench/results/state-cpu.json")
    args = p.parse_args()
    own, _ = embedded_broker_and_logs(args, "state")
    out_path = Path(args.out)
    # Each case joins the file's earlier ones (same family and size replaced): the embedded broker
    # holds its log in memory, so the largest cases run in processes of their own.
    earlier = json.loads(out_path.read_text())["cases"] if out_path.exists() else []
    try:
        for f, n in (c.split(":") for c in args.cases.split(",")):
            result = case(args, f, int(n))
            earlier = [c for c in earlier if (c["family"], c["streams"]) != (f, int(n))] + [result]
            out = {"machine": machine(), "broker": "embedded Tansu" if own else args.bootstrap, "cases": earlier}
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(out, indent=2) + "\n")
    finally:
        if own:
            broker.stop(own.port)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
