"""Accuracy on the benchmark's own synthetic streams (bench/e2e.py's 1k hourly GBM streams with a
daily cycle, seed 1) of a model that ``forecaster train`` makes from other streams of the same kind
(seed 2), beside the bundled LSTM (trained on daily stock prices) and River's SNARIMAX: relative
MAE over steps 1–8 against the last value, as bench/e2e.py scores it, in one run. In process:
no broker (the worker serves the same forecasts, bench/e2e.py checks that).

    .venv/bin/python bench/synthetic.py --minutes 3 --out bench/results/synthetic-accuracy.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from e2e import HORIZON, relative_mae, river_points
from harness import FORECASTER, machine

import forecaster
from workers.publisher import synthetic

STREAMS, EVENTS, WARMUP = 1000, 200, 50  # bench/e2e.py run B's streams and its warm-up


def scores(model: str, events: list[tuple[str, float, float]]) -> dict[str, dict[int, np.ndarray]]:
    """The point forecasts of ``model`` for each stream's k-th event, fed in event-time rounds."""
    fc = forecaster.load(model, "cpu")
    out: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for i in range(0, len(events), STREAMS):
        batch = [{"stream": n, "ts": t, "value": v} for n, t, v in events[i : i + STREAMS]]
        for e, f in zip(batch, fc.update(batch), strict=True):
            out[e["stream"]][len(out[e["stream"]])] = np.array(f.point)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=3, help="training budget of the LSTM")
    p.add_argument("--train-streams", type=int, default=500)
    p.add_argument("--train-events", type=int, default=1000, help="hourly events per training stream")
    p.add_argument("--out", default="bench/results/synthetic-accuracy.json")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-synthetic-"))
    with (work / "train.csv").open("w") as f:
        f.write("stream,ts,value\n")
        n = a.train_streams
        f.writelines(f"{s},{t},{v}\n" for s, t, v in synthetic(n, n / 3600, a.train_events * 3600, seed=2, start=1.6e9))
    train = [*FORECASTER, "train", "--data", str(work / "train.csv"), "--model", "lstm", "--out", str(work / "lstm")]
    subprocess.run([*train, "--horizon", str(HORIZON), "--max-minutes", str(a.minutes), "--quiet"], check=True)
    events = list(synthetic(STREAMS, STREAMS / 3600, EVENTS * 3600, seed=1, start=1.7e9))
    values: dict[str, list[float]] = defaultdict(list)
    for name, _, v in events:
        values[name].append(v)
    arrays = {k: np.array(v) for k, v in values.items()}
    forecasts = {
        "lstm trained on synthetic streams (seed 2)": scores(str(work / "lstm"), events),
        "bundled lstm (daily stock prices)": scores("lstm", events),
        "river SNARIMAX(1,1,0)": {name: dict(enumerate(river_points(xs))) for name, xs in arrays.items()},
    }
    result = {
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "streams": STREAMS,
        "events_per_stream": EVENTS,
        "warmup_events": WARMUP,
        "relative_mae": {k: round(float(relative_mae(arrays, f, WARMUP)), 4) for k, f in forecasts.items()},
    }
    for k, v in result["relative_mae"].items():
        print(f"{k:45s} relMAE {v}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
