"""A model swap under load, on the embedded broker: the worker's throughput while the new model
warms up against its normal throughput, and the serving loop's longest pause.

    .venv/bin/python bench/swap.py [--streams 10000] [--history 20] [--burst 100000]
        [--out bench/results/swap-cpu.json]
    .venv/bin/python bench/swap.py --saturated [--backlog 150000] [--out bench/results/swap-saturated-cpu.json]

A worker serving the bundled LSTM drains ``--streams`` streams' history of ``--history`` events
each (its full speed, "draining_the_history"). Then a burst of ``--burst`` events served
normally; then ``forecaster swap --model gru`` and a steady input (``--steady-rate`` for
``--steady-seconds``) while the new model replays the history and takes over. Throughput is
forecasts per second (from the forecasts' timestamps); the loop's longest pause is the longest gap
between consecutive forecasts under the steady input (a loop that stops producing shows as a gap).

``--saturated``: the worker's full speed, in one run: a backlog of ``--backlog`` events is put on the
input while the worker is stopped (SIGSTOP, a 60 s group session), then drained (SIGCONT), four
times: the LSTM serving alone ("normal"), while a swapped-in GRU warms up ("while_warming"), the
GRU serving alone ("normal_gru"), and while a shadow LSTM steps beside it ("while_shadowing").
Throughput is the drain's forecasts per second; the ratios are the figures to quote.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from harness import FORECASTER, PARTITIONS, measure_and_write, publish_proc, read_all, serve, wait_for

from workers.settings import KafkaSettings
from workers.topics import ensure_topics


def logged_at(log: Path, text: str) -> float:
    """Epoch seconds of the first log line containing ``text``."""
    line = next(line for line in log.read_text().splitlines() if text in line)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def drain(args: argparse.Namespace, source: str, worker: Any, done: int, events: int, rate: float) -> int:
    """Publish ``events`` at ``rate`` and wait until the worker has handled them; returns the new total."""
    pub = publish_proc(args.bootstrap, source, args.streams, rate, events / rate)
    pub.communicate(timeout=600)
    total = done + events
    wait_for(lambda: worker.progress() >= total, 600, f"{total} events handled")
    return total


def window(stamps: np.ndarray, lo: float, hi: float) -> dict[str, float]:
    inside = np.sort(stamps[(stamps >= lo) & (stamps <= hi)])
    gaps = np.diff(inside) if inside.size > 1 else np.array([0.0])
    return {
        "forecasts": int(inside.size),
        "seconds": round(float(inside[-1] - inside[0]), 2) if inside.size > 1 else 0.0,
        "forecasts_per_s": round(float(inside.size / max(inside[-1] - inside[0], 1e-9))) if inside.size > 1 else 0,
        "longest_gap_ms": round(1e3 * float(gaps.max()), 1),
    }


def gaps_at(stamps: np.ndarray, over: float, origin: float) -> list[list[float]]:
    """[start relative to ``origin``, length] of each gap between consecutive forecasts over ``over`` s."""
    gaps = np.diff(stamps)
    return [[round(float(stamps[i] - origin), 2), round(float(gaps[i]), 3)] for i in np.flatnonzero(gaps > over)]


def start_worker(args: argparse.Namespace, log_dir: Path, *extra: str) -> tuple[str, str, Any, int]:
    """The history on a new input topic, then a worker serving the bundled LSTM that has handled
    it: (tag, input topic, worker, history events)."""
    tag = uuid.uuid4().hex[:6]
    source, rate = f"bench-swap-{tag}", args.publish_rate
    ensure_topics(KafkaSettings(bootstrap=args.bootstrap), {source: PARTITIONS})
    history = args.streams * args.history
    pub = publish_proc(args.bootstrap, source, args.streams, rate, history / rate)
    pub.communicate(timeout=900)  # all there before the worker starts: it drains at full speed
    worker = serve(args.bootstrap, "lstm", "cpu", source, tag, log_dir, *extra)
    wait_for(worker.ready, 120, "the worker to join")
    wait_for(lambda: worker.progress() >= history, 900, "the history handled")
    return tag, source, worker, history


def run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    tag, source, worker, history = start_worker(args, log_dir)
    rate = args.publish_rate
    t0 = time.time()
    total = drain(args, source, worker, history, args.burst, rate)
    t1 = time.time()
    swap = subprocess.run(
        [*FORECASTER, "swap", "--bootstrap", args.bootstrap, "--group", f"bench-{tag}", "--model", "gru"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    steady = int(args.steady_rate * args.steady_seconds)
    total = drain(args, source, worker, total, steady, args.steady_rate)  # the warm-up and the switch under it
    wait_for(lambda: "serving gru" in worker.log.read_text(), 600, "the switch")
    warm_from, warm_to = logged_at(worker.log, "warming up"), logged_at(worker.log, "serving gru")
    warmed = worker.sample("forecaster_warmup_records_total")
    switch_line = next(line for line in worker.log.read_text().splitlines() if "serving gru" in line)
    taken = re.search(r"longest turn of replay (\d+) ms\); the switch took ([\d.]+) ms", switch_line)
    assert taken is not None, switch_line
    worker.stop()
    stamps = np.array([r.timestamp / 1000 for r in read_all(args.bootstrap, worker.output, total)])
    stamps.sort()
    capacity = window(stamps, 0, t0)
    normal, warming = window(stamps, t0, t1), window(stamps, warm_from, warm_to)
    under_steady = window(stamps[-steady:], 0, np.inf)  # gaps here are the loop's pauses: input never stopped
    print(f"normal {normal}, while warming {warming}", flush=True)
    return {
        "streams": args.streams,
        "history_events": history,
        "burst_events": args.burst,
        "swap": swap.stdout.strip(),
        "warmup": {"records": int(warmed), "seconds": round(warm_to - warm_from, 2)},
        "draining_the_history": capacity,
        "normal": normal,
        "while_warming": warming,
        "steady_input": {"events_per_s": args.steady_rate, "seconds": args.steady_seconds, **under_steady},
        "switch_under_steady_input": bool(warm_to < stamps[-1]),
        # what the swap itself took from the loop, as the worker timed it (forecast gaps include
        # the other processes' share of the 2 cores)
        "loop_time_taken_ms": {"longest_turn_of_replay": float(taken[1]), "switch": float(taken[2])},
        "gaps_over_100ms_s_from_the_switch": gaps_at(stamps[-steady:], 0.1, warm_to),
    }


def backlog(args: argparse.Namespace, source: str, worker: Any, done: int) -> tuple[dict[str, float], int]:
    """Stop the worker, put ``--backlog`` events on the input, let it drain them: the drain's throughput."""
    worker.proc.send_signal(signal.SIGSTOP)
    try:
        pub = publish_proc(args.bootstrap, source, args.streams, args.publish_rate, args.backlog / args.publish_rate)
        pub.communicate(timeout=600)
    finally:
        worker.proc.send_signal(signal.SIGCONT)
    resumed, total = time.time(), done + args.backlog
    wait_for(lambda: worker.progress() >= total, 600, f"{total} events handled")
    return {"resumed": resumed}, total


def saturated(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    session = ("--kafka-option", "session_timeout_ms=60000", "--kafka-option", "heartbeat_interval_ms=3000")
    tag, source, worker, history = start_worker(args, log_dir, *session)  # a long session: it is stopped (SIGSTOP)
    group, drains = f"bench-{tag}", {}

    def swap(*extra: str) -> str:
        command = [*FORECASTER, "swap", "--bootstrap", args.bootstrap, "--group", group, *extra]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout.strip()

    drains["normal"], total = backlog(args, source, worker, history)
    swapped = swap("--model", "gru")
    wait_for(lambda: "warming up" in worker.log.read_text(), 60, "the warm-up")
    drains["while_warming"], total = backlog(args, source, worker, total)
    wait_for(lambda: "serving gru" in worker.log.read_text(), 600, "the switch")
    switched = logged_at(worker.log, "serving gru")
    drains["normal_gru"], total = backlog(args, source, worker, total)
    shadowed = swap("--model", "lstm", "--shadow")
    wait_for(lambda: "shadowing lstm" in worker.log.read_text(), 600, "the shadow's warm-up")
    scored = worker.sample("forecaster_realized_error_count")
    drains["while_shadowing"], total = backlog(args, source, worker, total)
    scored = worker.sample("forecaster_realized_error_count") - scored
    worker.stop()
    stamps = np.sort(np.array([r.timestamp / 1000 for r in read_all(args.bootstrap, worker.output, total)]))
    starts = [d["resumed"] for d in drains.values()] + [np.inf]
    result: dict[str, Any] = {"streams": args.streams, "history_events": history, "backlog_events": args.backlog}
    for name, start, end in zip(drains, starts, starts[1:], strict=False):
        drained = stamps[(stamps >= start) & (stamps < end)][: args.backlog]
        result[name] = window(drained, 0, np.inf)
        result[name]["ended"] = float(drained[-1])
    for name, base in (("while_warming", "normal"), ("while_shadowing", "normal_gru")):
        result[name]["ratio_to_" + base] = round(result[name]["forecasts_per_s"] / result[base]["forecasts_per_s"], 3)
    result["warm_up_ran_through_the_drain"] = bool(switched > result["while_warming"].pop("ended"))
    for name in drains:
        result[name].pop("ended", None)
    result["swaps"] = [swapped, shadowed]
    # both models scored on the shadowing drain (each stream's first event after the shadow began is not)
    result["one_step_forecasts_scored_while_shadowing"] = int(scored)
    print({k: result[k] for k in drains}, flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", help="an existing broker; default: start the embedded one")
    p.add_argument("--streams", type=int, default=10_000)
    p.add_argument("--history", type=int, default=20, help="events per stream before the swap")
    p.add_argument("--burst", type=int, default=100_000)
    p.add_argument("--publish-rate", type=float, default=40_000, help="events/s of the history and the burst")
    p.add_argument("--steady-rate", type=float, default=10_000, help="events/s during the warm-up and the switch")
    p.add_argument("--steady-seconds", type=float, default=40)
    p.add_argument("--saturated", action="store_true", help="throughput at full speed: normal, warming, shadowing")
    p.add_argument("--backlog", type=int, default=150_000, help="--saturated: events per drain")
    p.add_argument("--out", help="default bench/results/swap-cpu.json (swap-saturated-cpu.json with --saturated)")
    args = p.parse_args()
    args.out = args.out or f"bench/results/swap{'-saturated' if args.saturated else ''}-cpu.json"
    measure_and_write(args, "swap", lambda log_dir: (saturated if args.saturated else run)(args, log_dir))


if __name__ == "__main__":
    main()
