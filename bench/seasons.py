"""What ``forecaster train`` chooses for the seasonal state of each data set, and why: the
candidates from the timestamps, the anchor's scaled error for the random walk, the level alone and the chosen
weights, on each set's training span (its last values held out, as `forecaster train` holds them
out: H, or more for a handful of series).

    .venv/bin/python bench/seasons.py --data ../shared/data --sets /tmp/sets --out bench/results/seasons.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from forecaster.data import PRICE_COLUMNS, PRICES, Series, load_series, seasons_of
from forecaster.models import ScalerConfig
from forecaster.training import default_validation
from forecaster.training.seasonal import choose_seasonal


def daily(series: list[Series]) -> list[Series]:
    """Hourly series as daily means (a daily data set with a weekly cycle to find, or not)."""
    out = []
    for s in series:
        n = len(s) // 24 * 24
        out.append(Series(s.name, s.ts[:n:24], s.values[:n].reshape(-1, 24).mean(axis=1)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data", help="the shared data folder (m4/, ltsf/)")
    p.add_argument("--sets", help="also the folder bench/sets.py prepared (M1, M3, Tourism monthly; Taylor)")
    p.add_argument("--out", default="bench/results/seasons.json")
    a = p.parse_args()
    root = Path(a.data)
    sets = {
        "M4 Hourly": (lambda: load_series(root / "m4/M4-Hourly-train.csv.gz"), 48),
        "M4 Weekly": (lambda: load_series(root / "m4/M4-Weekly-train.csv.gz"), 13),
        "ETTh1 (7 channels, the rows before the test split)": (
            lambda: [s.head(11520) for s in load_series(root / "ltsf/ETTh1.csv.gz")],
            96,
        ),
        "ETTh1 as daily means": (lambda: daily(load_series(root / "ltsf/ETTh1.csv.gz")), 14),
        "ILI (weekly)": (lambda: load_series(root / "ltsf/national_illness.csv.gz"), 12),
        "Weather (10 minutes)": (lambda: load_series(root / "ltsf/weather.csv.gz"), 48),
        "Exchange rates (daily)": (lambda: load_series(root / "ltsf/exchange_rate.csv.gz"), 14),
        "bundled stock prices (daily)": (lambda: load_series(PRICES, "long", PRICE_COLUMNS), 8),
    }
    if a.sets:  # bench/sets.py's prepared sets: their train files hold the training span already
        prepared = {"m1-monthly": 18, "m3-monthly": 18, "tourism-monthly": 24, "taylor": 48}
        prepared |= {"m1-quarterly": 8, "m3-quarterly": 8, "tourism-quarterly": 8}
        for name, horizon in prepared.items():
            sets[name] = (lambda name=name: load_series(Path(a.sets) / f"{name}-train.csv"), horizon)
    result = {}
    for name, (load, horizon) in sets.items():
        series = load()
        candidates = seasons_of(series)
        start = time.monotonic()
        held_out = default_validation(series, horizon)  # as `forecaster train` holds out by default
        span = [s.head(len(s) - held_out) for s in series]
        choice = choose_seasonal(span, ScalerConfig(seasons=candidates), horizon)
        c = choice.scaler
        result[name] = {
            "series": len(series),
            "horizon": horizon,
            "candidates": list(candidates),
            "chosen": list(c.seasons),
            "form": c.seasonal_form if c.seasons else None,
            "alpha": c.smooth_level if c.seasons else None,
            "gamma": c.smooth_season if c.seasons else None,
            "random_walk_error": round(choice.random_walk, 3) if choice.scores else None,
            "level_error": round(choice.level, 3) if choice.scores else None,
            "best_error": round(min(choice.scores.values()), 3) if choice.scores else None,
            "chosen_error": round(choice.scores[(c.seasons, c.seasonal_form, c.smooth_level, c.smooth_season)], 3)
            if c.seasons and choice.scores
            else None,
            "seconds": round(time.monotonic() - start, 1),
        }
        print(f"{name:52s} {result[name]}", file=sys.stderr, flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1, default=lambda v: float(np.asarray(v))) + "\n")


if __name__ == "__main__":
    main()
