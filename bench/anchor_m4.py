"""The seasonal anchor alone (the model's forecast when the network adds nothing) on M4 Hourly:
its smoothing weights chosen on each train series' own last 48 values, then scored on the test
file, beside seasonal naive. How the defaults of ``ScalerConfig.smooth_*`` were picked.

    .venv/bin/python bench/anchor_m4.py --data ../shared/data/m4 --out bench/results/anchor-m4.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch
from accuracy import m4_score

from forecaster.data import load_series
from forecaster.evaluation.baselines import snaive
from forecaster.models import ScalerConfig
from forecaster.models.scaling import Scaler

H, M = 48, 24


def score(history: list[np.ndarray], truth: list[np.ndarray], forecasts: list[np.ndarray]) -> dict[str, float]:
    return m4_score(history, truth, forecasts, M)


def anchors(history: list[np.ndarray], config: ScalerConfig) -> list[np.ndarray]:
    """The anchor after each history's last value: H steps of the smoothed seasonal forecast."""
    x = torch.zeros(len(history), max(map(len, history)), dtype=torch.float64)
    for i, h in enumerate(history):
        x[i, : len(h)] = torch.from_numpy(h)
    _, a, _ = Scaler(config, H).sequence(x)
    return [a[i, len(h) - 1].numpy() for i, h in enumerate(history)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/m4", help="folder of M4-Hourly-{train,test}.csv.gz")
    p.add_argument("--out", default="bench/results/anchor-m4.json")
    args = p.parse_args()
    train = load_series(Path(args.data) / "M4-Hourly-train.csv.gz")
    test = {s.name: s.values for s in load_series(Path(args.data) / "M4-Hourly-test.csv.gz")}
    tune = ([s.values[:-H] for s in train], [s.values[-H:] for s in train])  # tuning: train data only
    report = ([s.values for s in train], [test[s.name] for s in train])
    result: dict = {"snaive": {"tuning": score(*tune, [snaive(x, H, M) for x in tune[0]])}, "grid": []}
    result["snaive"]["test"] = score(*report, [snaive(x, H, M) for x in report[0]])
    grid = itertools.product([(24,), (24, 168)], [0.001, 0.01, 0.1], [0.3, 0.5, 1.0])
    for seasons, alpha, gamma in grid:
        config = ScalerConfig(seasons=seasons, smooth_level=alpha, smooth_season=gamma)
        row = {"seasons": seasons, "alpha": alpha, "gamma": gamma, "tuning": score(*tune, anchors(tune[0], config))}
        result["grid"].append(row)
        print(row, flush=True)
    best = min(result["grid"], key=lambda r: r["tuning"]["owa"])
    config = ScalerConfig(seasons=best["seasons"], smooth_level=best["alpha"], smooth_season=best["gamma"])
    result["best"] = {**best, "test": score(*report, anchors(report[0], config))}
    print("best on the tuning split:", result["best"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
