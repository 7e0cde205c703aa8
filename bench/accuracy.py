"""Accuracy side by side, on the same splits and the same M4 scoring: our families (the JSON that
``forecaster evaluate`` wrote for each, e.g. by bench/m4.sh), seasonal naive, statsforecast
(AutoETS, AutoTheta, MSTL on the hourly set's two seasons; AutoARIMA on request: slow) and River's
Holt-Winters, on M4 Hourly and Weekly; with bench/ltsf.py's JSON, the ETT rows beside the
published Transformer figures. Writes JSON and a chart.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/accuracy.py --data ../shared/data/m4 --ours-hourly bench/results/m4-hourly \
        --ours-weekly bench/results/m4-weekly-auto --ltsf bench/results/ltsf/ETTh1.json \
        --out bench/results/accuracy.json

Each series' train file is the history and its test file the truth (M4's split). Only River needs
settings a user would otherwise pick by hand: its (alpha, beta, gamma) are chosen on the train
file's own last H values (the tuning split), then scored on the test file, as ours were.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.data import load_series
from forecaster.evaluation.baselines import naive2, snaive
from forecaster.evaluation.metrics import inside, mase, mase_scale, owa, smape

SETS = {"hourly": ("Hourly", 48, 24), "weekly": ("Weekly", 13, 1)}  # file name, horizon, M4 period


def m4_score(
    history: list[np.ndarray],
    truth: list[np.ndarray],
    forecasts: list[np.ndarray],
    m: int,
    bands: list[np.ndarray] | None = None,
) -> dict:
    """sMAPE, MASE (M4 scale, period m) and OWA against Naive2 on the same split, as M4 scores them;
    with ``bands`` (each (2, H): the 0.1 and 0.9 quantiles) also the share of truths inside them."""
    scales = [mase_scale(x, m) for x in history]
    base = [naive2(x, len(y), m) for x, y in zip(history, truth, strict=True)]
    s_ours, s_naive2 = (np.mean([smape(y, f) for y, f in zip(truth, fs, strict=True)]) for fs in (forecasts, base))
    m_ours = np.mean([mase(y, f, c) for y, f, c in zip(truth, forecasts, scales, strict=True)])
    m_naive2 = np.mean([mase(y, f, c) for y, f, c in zip(truth, base, scales, strict=True)])
    out = {
        "smape": round(float(s_ours), 3),
        "mase": round(float(m_ours), 4),
        "owa": round(float(owa(s_ours, m_ours, s_naive2, m_naive2)), 4),
    }
    if bands is not None:
        hits = np.concatenate([inside(y, b[0, : len(y)], b[1, : len(y)]) for y, b in zip(truth, bands, strict=True)])
        out["coverage"] = round(float(hits.mean()), 4)
    return out


def statsforecast_forecasts(history: list[np.ndarray], names: list[str], h: int, m: int, models: list[str]) -> dict:
    """Forecasts of each statsforecast model for every series, its 80% prediction intervals (each
    (2, h): the 0.1 and 0.9 quantiles, the band our models give) and its fitting time (2 jobs).
    MSTL takes the set's seasons (hourly: 24 and 168) with AutoETS on the remainder."""
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
        if name == "MSTL":
            if m == 1:
                continue  # no season to decompose
            model = sfm.MSTL(season_length=[m, 7 * m] if m == 24 else [m], trend_forecaster=sfm.AutoETS(model="ZZN"))
        else:
            model = getattr(sfm, name)(season_length=m)
        start = time.monotonic()
        fc = StatsForecast(models=[model], freq=1, n_jobs=2).forecast(df=frame, h=h, level=[80])
        by_id = {uid: g for uid, g in fc.groupby("unique_id", sort=False)}
        points = [by_id[n][name].to_numpy() for n in names]
        bands = [by_id[n][[f"{name}-lo-80", f"{name}-hi-80"]].to_numpy().T for n in names]
        out[name] = (points, bands, round(time.monotonic() - start, 1))
    return out


def river_forecasts(history: list[np.ndarray], h: int, m: int, params: tuple) -> list[np.ndarray]:
    """River's Holt-Winters per series, fed one value at a time (additive; no season for series
    shorter than two cycles, or m = 1)."""
    from river import time_series

    alpha, beta, gamma = params
    out = []
    for x in history:
        seasonal = m > 1 and len(x) >= 2 * m
        model = time_series.HoltWinters(
            alpha=alpha, beta=beta, gamma=gamma if seasonal else None, seasonality=m if seasonal else 0
        )
        for v in x.tolist():
            model.learn_one(v)
        out.append(np.asarray(model.forecast(horizon=h), dtype=np.float64))
    return out


def river_tuned(history: list[np.ndarray], h: int, m: int) -> tuple[tuple, dict]:
    """River's (alpha, beta, gamma) of least OWA on the tuning split: each history's last h values."""
    past, future = [x[:-h] for x in history], [x[-h:] for x in history]
    betas = (None, 0.01, 0.1) if m == 1 else (0.001, 0.01, 0.1)  # None: no trend (River allows it without a season)
    grid = itertools.product((0.1, 0.3, 0.6), betas, (0.1, 0.3, 0.6))
    scores = {p: m4_score(past, future, river_forecasts(past, h, m, p), m)["owa"] for p in grid}
    best = min(scores, key=scores.get)
    return best, {"alpha": best[0], "beta": best[1], "gamma": best[2], "tuning_owa": scores[best]}


def chart(result: dict, path: Path) -> None:
    """One panel per set: OWA (M4) or standardised MSE (ETT) of every row, ours highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(result), figsize=(5.5 * len(result), 4.5))
    for ax, (key, r) in zip(np.atleast_1d(axes), result.items(), strict=True):
        metric = "owa" if "period" in r else "mse"
        rows = {**r["rows"], **r.get("published", {})}
        names = [n for n in rows if rows[n].get(metric) is not None]
        values = [rows[n][metric] for n in names]
        colors = ["tab:blue" if n in ("rnn", "lstm", "gru", "transformer") else "tab:gray" for n in names]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(f"{key}: {metric.upper()} (lower is better)")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/m4", help="folder of the M4 train and test files")
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    p.add_argument("--ours-hourly", default="bench/results/m4-hourly", help="folder of <family>.json")
    p.add_argument("--ours-weekly", default="bench/results/m4-weekly-auto", help="folder of <family>.json")
    p.add_argument("--ltsf", default=None, help="bench/ltsf.py's JSON, to chart beside the M4 sets")
    p.add_argument("--statsforecast", nargs="*", default=["AutoETS", "AutoTheta", "MSTL"])
    p.add_argument("--out", default="bench/results/accuracy.json")
    args = p.parse_args()
    result: dict = {}
    for key in args.sets:
        file, h, m = SETS[key]
        train = load_series(Path(args.data) / f"M4-{file}-train.csv.gz")
        test = {s.name: s.values for s in load_series(Path(args.data) / f"M4-{file}-test.csv.gz")}
        history, truth, names = [s.values for s in train], [test[s.name] for s in train], [s.name for s in train]
        rows = {"snaive": m4_score(history, truth, [snaive(x, h, m) for x in history], m)}
        for name, (forecasts, bands, seconds) in statsforecast_forecasts(
            history, names, h, m, args.statsforecast
        ).items():
            rows[f"statsforecast {name}"] = {**m4_score(history, truth, forecasts, m, bands), "fit_seconds": seconds}
            print(key, name, rows[f"statsforecast {name}"], flush=True)
        params, tuning = river_tuned(history, h, m)
        start = time.monotonic()
        rows["river HoltWinters"] = {
            **m4_score(history, truth, river_forecasts(history, h, m, params), m),
            "fit_seconds": round(time.monotonic() - start, 1),
            **tuning,
        }
        print(key, "river", rows["river HoltWinters"], flush=True)
        ours = Path(getattr(args, f"ours_{key}"))
        for family in ("rnn", "lstm", "gru", "transformer"):
            if (ours / f"{family}.json").is_file():
                scored = json.loads((ours / f"{family}.json").read_text())
                rows[family] = {k: scored[k] for k in ("smape", "mase", "owa", "coverage")}
        result[key] = {"series": len(train), "horizon": h, "period": m, "rows": rows}
    if args.ltsf:
        ett = json.loads(Path(args.ltsf).read_text())
        result[f"{ett['set']} (H {ett['horizon']})"] = ett
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    chart(result, out.with_suffix(".png"))
    for key, r in result.items():
        for name, row in {**r["rows"], **r.get("published", {})}.items():
            print(f"{key:16s} {name:36s} " + "  ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
