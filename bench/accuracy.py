"""Accuracy side by side, on the same splits and the same M4 scoring: our families (the JSON that
``forecaster evaluate`` wrote for each, e.g. by bench/m4.sh), seasonal naive, and
statsforecast's AutoETS and AutoTheta (AutoARIMA on request: slow), on M4 Hourly and Weekly.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/accuracy.py --data ../shared/data/m4 --ours bench/results/m4-seasonal \\
        --out bench/results/accuracy-m4.json

Each series' train file is the history and its test file the truth (M4's split); nothing is
tuned here. Not yet in this run: River, ETT with its published Transformer figures, a chart.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.data import load_series
from forecaster.evaluation.baselines import naive2, snaive
from forecaster.evaluation.metrics import mase, mase_scale, owa, smape

SETS = {"hourly": ("Hourly", 48, 24), "weekly": ("Weekly", 13, 1)}  # file name, horizon, M4 period


def m4_score(history: list[np.ndarray], truth: list[np.ndarray], forecasts: list[np.ndarray], m: int) -> dict:
    """sMAPE, MASE (M4 scale, period m) and OWA against Naive2 on the same split, as M4 scores them."""
    scales = [mase_scale(x, m) for x in history]
    base = [naive2(x, len(y), m) for x, y in zip(history, truth, strict=True)]
    s_ours, s_naive2 = (np.mean([smape(y, f) for y, f in zip(truth, fs, strict=True)]) for fs in (forecasts, base))
    m_ours = np.mean([mase(y, f, c) for y, f, c in zip(truth, forecasts, scales, strict=True)])
    m_naive2 = np.mean([mase(y, f, c) for y, f, c in zip(truth, base, scales, strict=True)])
    return {
        "smape": round(float(s_ours), 3),
        "mase": round(float(m_ours), 4),
        "owa": round(float(owa(s_ours, m_ours, s_naive2, m_naive2)), 4),
    }


def statsforecast_forecasts(history: list[np.ndarray], names: list[str], h: int, m: int, models: list[str]) -> dict:
    """Forecasts of each statsforecast model for every series, and its fitting time (2 jobs)."""
    from statsforecast import StatsForecast
    from statsforecast import models as sfm

    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(names, [len(x) for x in history]),
            "ds": np.concatenate([np.arange(len(x)) for x in history]),
            "y": np.concatenate(history),
        }
    )
    out = {}
    for name in models:
        start = time.monotonic()
        sf = StatsForecast(models=[getattr(sfm, name)(season_length=m)], freq=1, n_jobs=2)
        fc = sf.forecast(df=frame, h=h)
        by_id = {uid: g[name].to_numpy() for uid, g in fc.groupby("unique_id", sort=False)}
        out[name] = ([by_id[n] for n in names], round(time.monotonic() - start, 1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/m4", help="folder of the M4 train and test files")
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    p.add_argument("--ours", default="bench/results/m4-seasonal", help="folder of <family>.json (Hourly)")
    p.add_argument("--statsforecast", nargs="*", default=["AutoETS", "AutoTheta"])
    p.add_argument("--out", default="bench/results/accuracy-m4.json")
    args = p.parse_args()
    result: dict = {}
    for key in args.sets:
        file, h, m = SETS[key]
        train = load_series(Path(args.data) / f"M4-{file}-train.csv.gz")
        test = {s.name: s.values for s in load_series(Path(args.data) / f"M4-{file}-test.csv.gz")}
        history, truth, names = [s.values for s in train], [test[s.name] for s in train], [s.name for s in train]
        rows = {"snaive": m4_score(history, truth, [snaive(x, h, m) for x in history], m)}
        for name, (forecasts, seconds) in statsforecast_forecasts(history, names, h, m, args.statsforecast).items():
            rows[f"statsforecast {name}"] = {**m4_score(history, truth, forecasts, m), "fit_seconds": seconds}
            print(key, name, rows[f"statsforecast {name}"], flush=True)
        if key == "hourly":
            for family in ("rnn", "lstm", "gru", "transformer"):
                path = Path(args.ours) / f"{family}.json"
                if path.is_file():
                    ours = json.loads(path.read_text())
                    rows[family] = {k: ours[k] for k in ("smape", "mase", "owa", "coverage")}
        result[key] = {"series": len(train), "horizon": h, "period": m, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for key, r in result.items():
        for name, row in r["rows"].items():
            print(f"{key:7s} {name:26s} " + "  ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
