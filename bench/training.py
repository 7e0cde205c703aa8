"""How long `forecaster.train` takes on a wide data set against the budget it is given.

A user on M4 Monthly (48,000 series) who asks for `--max-minutes 3` expects about three minutes,
not the preparation and the validation of every series on top. Synthetic series of M4 Monthly's
shape (lengths log-normal about 200, 42–2,800; a 12-month cycle on a random walk) are trained
with a budget; the ratio of wall time to budget is the figure (1.0: the budget is the wall time).

    .venv/bin/python bench/training.py --series 5000 48000 --budget-s 30 --out bench/results/training-wide.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import forecaster
from forecaster.data import Series


def wide_set(n: int, seed: int = 0) -> list[Series]:
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(200), 0.6, n).astype(int), 42, 2800)
    series = []
    for i, length in enumerate(lengths):
        t = np.arange(length, dtype=np.float64)
        walk = 1000 + np.cumsum(rng.normal(0, 10, length)) + 100 * np.sin(2 * np.pi * t / 12)
        series.append(Series(f"s{i}", t, np.abs(walk) + 10))
    return series


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", type=int, nargs="+", default=[5000, 48000])
    p.add_argument("--budget-s", type=float, default=30.0)
    p.add_argument("--model", default="lstm")
    p.add_argument("--out", default="bench/results/training-wide.json")
    a = p.parse_args()
    runs = []
    for n in a.series:
        series = wide_set(n)
        start = time.monotonic()
        _, report = forecaster.train(
            series, a.model, horizon=18, seasons=[12], max_minutes=a.budget_s / 60, progress=False
        )
        wall = time.monotonic() - start
        runs.append(
            {
                "series": n,
                "values": int(sum(len(s) for s in series)),
                "budget_s": a.budget_s,
                "wall_s": round(wall, 1),
                "wall_over_budget": round(wall / a.budget_s, 2),
                "epochs": report.epochs,
                "batches": sum(h["batches"] for h in report.history),
            }
        )
        print(runs[-1], flush=True)
    Path(a.out).write_text(json.dumps({"model": a.model, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
