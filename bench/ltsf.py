"""Our families on a long-horizon benchmark set (ETT, Exchange, ILI, Weather) under its published
protocol, beside the published Transformer (and linear) figures and the Repeat and
seasonal-naive baselines.

    .venv/bin/python bench/ltsf.py --data ../shared/data/ltsf --set ETTh1 --minutes 5 --out bench/results/ltsf

The protocol of the published tables (../shared/data/README.md): ETTh rows [0, 8640) train,
[8640, 11520) validation, [11520, 14400) test (ETTm: ×4); Exchange, ILI and Weather: the first
70% train, the last 20% test, the 10% between validation. Every channel is forecast H steps
ahead (96; ILI 24) from every origin whose H values lie in the test span (stride 1); MSE and
MAE on values standardised with the train rows' mean and std, averaged over channels, steps
and origins. Ours are channel-independent streams (like PatchTST): ``forecaster train`` with
its defaults on the train + validation rows (the validation rows are its early-stopping
hold-out, as in the papers), then each channel streamed from its first row through the test
span. The test rows are never seen in training or in choosing anything.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from accuracy import statsforecast_forecasts  # bench/accuracy.py: the same fits as the M4 rows

import forecaster
from forecaster.data import Series, load_series
from forecaster.evaluation.evaluate import model_forecasts
from forecaster.models import FAMILIES


@dataclass(frozen=True)
class LtsfSet:
    """A benchmark set: its file, its name in the published tables, the horizon, the season of
    the seasonal-naive baseline, and the fixed bounds (train end, validation end, test end)
    where the protocol fixes them (otherwise 70% / 10% / 20% of the rows)."""

    file: str
    published_as: str
    horizon: int
    period: int
    bounds: tuple[int, int, int] | None = None

    def split(self, rows: int) -> tuple[int, int, int]:
        if self.bounds:
            return self.bounds
        train, test = int(rows * 0.7), int(rows * 0.2)  # as the published code rounds them
        return train, rows - test, rows


SETS = {
    "ETTh1": LtsfSet("ETTh1.csv.gz", "ETTh1", 96, 24, (8640, 11520, 14400)),
    "ETTh2": LtsfSet("ETTh2.csv.gz", "ETTh2", 96, 24, (8640, 11520, 14400)),
    "ETTm1": LtsfSet("ETTm1.csv.gz", "ETTm1", 96, 96, (34560, 46080, 57600)),
    "ETTm2": LtsfSet("ETTm2.csv.gz", "ETTm2", 96, 96, (34560, 46080, 57600)),
    "Exchange": LtsfSet("exchange_rate.csv.gz", "Exchange Rate", 96, 7),  # daily (its dates are synthetic)
    "ILI": LtsfSet("national_illness.csv.gz", "ILI", 24, 52),  # weekly
    "Weather": LtsfSet("weather.csv.gz", "Weather", 96, 144),  # every 10 minutes
}
STATS = ["AutoETS", "AutoTheta"]
PUBLISHED = ("PatchTST/64", "PatchTST/42", "DLinear", "NLinear", "FEDformer", "FEDformer-f", "Autoformer", "Informer")


def rows_as_steps(path: Path) -> pd.DataFrame:
    """The file with row i at time t_0 + i × the usual spacing: the published protocol reads rows
    as steps, and Weather has one repeated row (2020-05-12 06:00) and one 100-minute gap, which
    ``load_series`` would refuse (a repeated time) or a season would count in steps, not rows."""
    frame = pd.read_csv(path)
    times = pd.to_datetime(frame["date"])
    step = times.diff().median()
    frame["date"] = (times.iloc[0] - pd.Timestamp(0)).total_seconds() + step.total_seconds() * np.arange(len(frame))
    return frame


def standardised_errors(
    series: list[Series], forecasts: dict[str, np.ndarray], train_end: int, test_start: int, stride: int = 1
) -> dict[str, float]:
    """MSE and MAE over channels, steps and origins; forecasts[name] is (origins, H) from
    origin test_start - 1 on, every ``stride``-th, in raw units."""
    H = next(iter(forecasts.values())).shape[1]
    se, ae = [], []
    for s in series:
        std = s.values[:train_end].std()  # the mean cancels in a difference
        f = forecasts[s.name]
        truth = np.lib.stride_tricks.sliding_window_view(s.values[test_start:], H)[::stride][: len(f)]
        err = (f - truth) / std
        se.append((err**2).mean())
        ae.append(np.abs(err).mean())
    return {"mse": round(float(np.mean(se)), 4), "mae": round(float(np.mean(ae)), 4)}


def baseline(series: list[Series], test_start: int, test_end: int, period: int, H: int) -> dict[str, np.ndarray]:
    """Repeat the last value (period 1) or the last cycle, from every origin."""
    out = {}
    for s in series:
        rows = []
        for t in range(test_start, test_end - H + 1):  # forecast x[t : t + H] from x[:t]
            cycle = s.values[t - period : t]
            rows.append(np.resize(cycle, H))
        out[s.name] = np.array(rows)
    return out


def ours(
    checkpoint: Path, series: list[Series], test_start: int, test_end: int, H: int
) -> tuple[dict[str, np.ndarray], float]:
    """Each channel streamed from its first row; the forecasts from origins test_start - 1 on."""
    fc = forecaster.load(checkpoint, device="cpu")
    pairs = [(s.head(test_start), s.values[test_start:test_end]) for s in series]
    scored = model_forecasts(fc, pairs, rolling=True)
    n = test_end - test_start - H + 1
    by_name: dict[str, list[np.ndarray]] = {s.name: [] for s in series}
    inside: dict[str, list[bool]] = {s.name: [] for s in series}
    for r in scored:
        if len(r.truth) == H and len(by_name[r.series]) < n:
            by_name[r.series].append(r.point)
            inside[r.series].append(((r.truth >= r.quantiles[0]) & (r.truth <= r.quantiles[-1])).mean())
    coverage = float(np.mean([np.mean(v) for v in inside.values()]))
    return {k: np.array(v) for k, v in by_name.items()}, round(coverage, 4)


def statsforecast_rows(
    series: list[Series], bounds: tuple[int, int, int], H: int, period: int, stride: int
) -> dict[str, dict]:
    """statsforecast's AutoETS and AutoTheta (season ``period``), refitted at every ``stride``-th
    origin of the test span on all values before it: MSE, MAE and its 80% intervals' coverage."""
    train_end, test_start, test_end = bounds
    points: dict[str, dict[str, list[np.ndarray]]] = {m: {s.name: [] for s in series} for m in STATS}
    inside: dict[str, list[float]] = {m: [] for m in STATS}
    for t in range(test_start, test_end - H + 1, stride):
        runs = statsforecast_forecasts([s.values[:t] for s in series], [s.name for s in series], H, period, STATS)
        for model, (fc, bands, _) in runs.items():
            for s, f, band in zip(series, fc, bands, strict=True):
                points[model][s.name].append(f)
                truth = s.values[t : t + H]
                inside[model].append(float(((truth >= band[0]) & (truth <= band[1])).mean()))
    return {
        f"statsforecast {m}": {
            **standardised_errors(
                series, {k: np.array(v) for k, v in points[m].items()}, train_end, test_start, stride
            ),
            "coverage": round(float(np.mean(inside[m])), 4),
            "stride": stride,
        }
        for m in STATS
    }


def published(path: Path, dataset: str, H: int) -> dict[str, dict[str, float]]:
    """The published multivariate MSE/MAE at horizon H for ``dataset``, first source per model."""
    out: dict[str, dict[str, float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["dataset"].lower() == dataset.lower() and row["horizon"] == str(H) and row["model"] in PUBLISHED:
                if row["setting"] == "multivariate" and not row["note"]:
                    key = f"{row['model']} ({row['source'].split()[0]})"
                    out.setdefault(key, {}).setdefault(row["metric"].lower(), float(row["value"]))
    return out


def write(path: Path, name: str, rows: dict[str, dict], published_rows: dict[str, dict[str, float]]) -> None:
    result = {"set": name, "horizon": SETS[name].horizon, "rows": rows, "published": published_rows}
    path.write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/ltsf", help="folder of the ltsf files")
    p.add_argument("--set", default="ETTh1", choices=SETS)
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--minutes", type=float, default=5.0, help="training budget per family")
    p.add_argument("--out", default="bench/results/ltsf")
    p.add_argument(
        "--stats-stride",
        type=int,
        default=0,
        help="also refit statsforecast's AutoETS and AutoTheta at every N-th test origin (0: not)",
    )
    p.add_argument(
        "--reuse", action="store_true", help="score a family's checkpoint already in --out instead of training"
    )
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = SETS[args.set]
    H, period = spec.horizon, spec.period
    series = load_series(rows_as_steps(Path(args.data) / spec.file))
    train_end, val_end, test_end = spec.split(len(series[0].values))
    series = [s.head(test_end) for s in series]
    saved = out / f"{args.set}.json"  # rows of families not rerun this time stay
    rows: dict[str, dict] = json.loads(saved.read_text())["rows"] if saved.is_file() else {}
    published_rows = published(Path(args.data) / "published_results_ltsf.csv", spec.published_as, H)
    stride = args.stats_stride

    def errors(forecasts: dict[str, np.ndarray]) -> dict:
        """Over every origin and, with a stride, over the origins statsforecast is scored on."""
        row: dict = standardised_errors(series, forecasts, train_end, val_end)
        if stride:
            strided = {k: v[::stride] for k, v in forecasts.items()}
            row[f"stride {stride}"] = standardised_errors(series, strided, train_end, val_end, stride)
        return row

    rows["repeat"] = errors(baseline(series, val_end, test_end, 1, H))
    rows[f"seasonal naive ({period})"] = errors(baseline(series, val_end, test_end, period, H))
    fit_file = out / f"{args.set}-fit.csv"  # train + validation rows: all that training may see
    with fit_file.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", *(s.name for s in series)])
        for i in range(val_end):
            w.writerow([int(series[0].ts[i]), *(repr(float(s.values[i])) for s in series)])
    for family in args.families:
        checkpoint = out / f"{args.set}-{family}"
        start = time.monotonic()
        if args.reuse and (checkpoint / "config.json").is_file():
            print(f"{family}: scoring the checkpoint already in {checkpoint}", flush=True)
        else:
            subprocess.run(
                [sys.executable, "-m", "workers.cli", "train", "--data", str(fit_file), "--model", family]
                + ["--out", str(checkpoint), "--horizon", str(H), "--validation", str(val_end - train_end)]
                + ["--max-minutes", str(args.minutes), "--seed", "0", "--quiet"],
                check=True,
            )
        forecasts, coverage = ours(checkpoint, series, val_end, test_end, H)
        config = json.loads((checkpoint / "config.json").read_text())
        rows[family] = {
            **errors(forecasts),
            "coverage": coverage,
            "train_minutes": config["training"]["minutes"],
            "seasons": config["model"]["scaler"]["seasons"],
        }
        print(args.set, family, rows[family], f"({round(time.monotonic() - start)} s)", flush=True)
        write(saved, args.set, rows, published_rows)  # after each family: a stopped run keeps what it scored
    if stride:
        rows |= statsforecast_rows(series, (train_end, val_end, test_end), H, period, stride)
    write(saved, args.set, rows, published_rows)
    for name, row in {**rows, **published_rows}.items():
        print(f"{name:36s} " + "  ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
