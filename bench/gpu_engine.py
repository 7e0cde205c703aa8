"""The engine with many resident streams on one device: for each family and number of streams S
(every stream sends one event per step), the step's events/s and latency p50/p99 through
``Engine.advance`` (ids in, forecasts on the host out: the worker's hot path), the model step
alone on the device (CUDA events), device memory per stream, and the host<->device copies of one
step (from the profiler).

    python bench/gpu_engine.py --device cuda --streams 100000 1000000 --out gpu-engine.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import forecaster
from forecaster.models import FAMILIES


def copies_per_step(fc: forecaster.Forecaster, streams: list[str], ts: float, values: np.ndarray) -> dict[str, int]:
    """Host-to-device and device-to-host copies the profiler sees in one ``advance``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fc.engine.advance(streams, [ts] * len(streams), values)
    names = [e.name for e in prof.events()]
    return {
        "host_to_device": sum("HtoD" in n for n in names),
        "device_to_host": sum("DtoH" in n for n in names),
    }


@torch.inference_mode()  # as Engine.advance runs it: the pool's buffers are inference tensors
def device_step_ms(fc: forecaster.Forecaster, n: int, repeats: int) -> list[float]:
    """The model step alone (gather state, step, scatter) for all n streams, timed on the device."""
    engine = fc.engine
    slots = torch.arange(n, device=engine.device)
    x = torch.rand(n, dtype=torch.float64, device=engine.device) + 100.0
    out = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        engine._step(slots, x)
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end))
    return out


def measure(family: str, n: int, device: str, steps: int, **options: int) -> dict:
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
    fc = forecaster.build(family, seed=0, device=device, capacity=n, **options)
    streams = [f"stream-{i}" for i in range(n)]
    rng = np.random.default_rng(0)
    level = np.full(n, 100.0)
    start = time.perf_counter()
    fc.engine.advance(streams, [1.7e9] * n, level)  # every stream admitted: the state pool holds n
    admit_s = time.perf_counter() - start
    row: dict = {"streams": n, "admit_s": round(admit_s, 2), "bytes_per_stream": fc.bytes_per_stream}
    if cuda:
        row["device_bytes_per_stream"] = round((torch.cuda.memory_allocated() - before) / n, 1)
    times = []
    for k in range(1, steps + 1):
        level *= 1.0 + 0.01 * rng.standard_normal(n)
        t0 = time.perf_counter()
        fc.engine.advance(streams, [1.7e9 + 3600.0 * k] * n, level)  # returns on the host: synchronised
        times.append((time.perf_counter() - t0) * 1000)
    ms = np.array(times[1:])  # the first timed step still warms caches and kernels
    row |= {
        "advance_ms_p50": round(float(np.percentile(ms, 50)), 2),
        "advance_ms_p99": round(float(np.percentile(ms, 99)), 2),
        "events_per_s": round(n / (ms.mean() / 1000)),
    }
    if cuda:
        dev = np.array(device_step_ms(fc, n, steps)[1:])
        row |= {
            "device_step_ms_p50": round(float(np.percentile(dev, 50)), 3),
            "device_step_ms_p99": round(float(np.percentile(dev, 99)), 3),
            "peak_device_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        }
        row["copies_per_advance"] = copies_per_step(fc, streams, 1.7e9 + 3600.0 * (steps + 1), level * 1.01)
    del fc
    print(f"{family:12s} S={n:<8d} {row}", file=sys.stderr, flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--streams", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--steps", type=int, default=12, help="timed steps per measurement (the first is left out)")
    p.add_argument("--out", default="bench/results/gpu-engine.json")
    p.add_argument("--tiny", action="store_true", help="a 4-wide, one-layer network: the host's share of advance")
    a = p.parse_args()
    tiny = {"d_model": 4, "n_layer": 1, "d_ff": 8} if a.tiny else {}
    result = {
        "device": a.device,
        "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") else None,
        "torch": torch.__version__,
        "tiny": a.tiny,
        "families": {f: [measure(f, n, a.device, a.steps, **tiny) for n in a.streams] for f in a.families},
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
