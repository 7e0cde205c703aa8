"""The read-out's quantile sort: its sorting network against torch.sort, alternated in one run.

    .venv/bin/python bench/readout_sort.py [--streams 10000] [--out bench/results/readout-sort-cpu.json]

Per kind of state (plain, the default band with multiplicative seasons, the most own
forecasting), one engine serving with ``forecast_model.sort_rows`` and one with torch.sort in
its place (the code before the network), batch by batch on the same batches; each engine's
fastest batch counts. Ratios are to the plain step with torch.sort, "today's" step of issue 15.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from engine import STATES, as_arrays, make_batches

import forecaster
import forecaster.models.forecast_model as readout

KINDS = (
    "plain",
    "multiplicative 24+168, each stream's band",
    "multiplicative, 4 level weights + drift, a share per stream",
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=10_000)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--out", default="bench/results/readout-sort-cpu.json")
    a = p.parse_args()
    network = readout.sort_rows
    sorts = {"network": network, "torch.sort": lambda q: q.sort(dim=-2).values}
    batches = as_arrays(make_batches(a.streams, n_batches=a.batches, skewed=False))
    runs = {
        (kind, name): forecaster.build("lstm", seed=0, horizon=48, capacity=a.streams, **STATES[kind]).engine
        for kind in KINDS
        for name in sorts
    }
    best = dict.fromkeys(runs, float("inf"))
    for i, b in enumerate(batches):
        for (kind, name), engine in runs.items():
            readout.sort_rows = sorts[name]  # read_out looks it up at each call
            began = time.perf_counter()
            engine.advance(*b)
            if i >= 2:  # the first two warm up
                best[kind, name] = min(best[kind, name], time.perf_counter() - began)
    readout.sort_rows = network
    before = best["plain", "torch.sort"]
    results = {
        f"{kind}, {name}": {
            "engine_us_per_event": round(t * 1e6 / a.streams, 3),
            "over_plain_with_torch_sort": round(t / before, 3),
        }
        for (kind, name), t in best.items()
    }
    out = {"bench": "readout_sort", "streams": a.streams, "threads": torch.get_num_threads(), "results": results}
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
