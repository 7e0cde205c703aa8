"""Our families on an ETT set under the long-horizon benchmark protocol, beside the published
Transformer (and linear) figures and the Repeat and seasonal-naive baselines.

    .venv/bin/python bench/ett.py --data ../shared/data/ltsf --set ETTh1 --minutes 5 --out bench/results/ett

The protocol of the published tables (../shared/data/README.md): rows [0, 8640) train, [8640,
11520) validation, [11520, 14400) test (ETTm: ×4); every channel forecast H = 96 steps ahead
from every origin whose 96 values lie in the test span (stride 1); MSE and MAE on values
standardised with the train rows' mean and std, averaged over channels, steps and origins. Ours
are channel-independent streams (like PatchTST): ``forecaster train`` with its defaults on the
train + validation rows (the validation rows are its early-stopping hold-out, as in the papers),
then each channel streamed from its first row through the test span. The test rows are never
seen in training or in choosing anything.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import forecaster
from forecaster.data import Series, load_series
from forecaster.evaluation.evaluate import model_forecasts
from forecaster.models import FAMILIES

H = 96
BOUNDS = {"ETTh": (8640, 11520, 14400), "ETTm": (34560, 46080, 57600)}  # train end, validation end, test end
PUBLISHED = ("PatchTST/64", "PatchTST/42", "DLinear", "FEDformer", "FEDformer-f", "Autoformer", "Informer")


def standardised_errors(
    series: list[Series], forecasts: dict[str, np.ndarray], train_end: int, test_start: int
) -> dict[str, float]:
    """MSE and MAE over channels, steps and origins; forecasts[name] is (origins, H) from
    origin test_start - 1 on, in raw units."""
    se, ae = [], []
    for s in series:
        std = s.values[:train_end].std()  # the mean cancels in a difference
        f = forecasts[s.name]
        truth = np.lib.stride_tricks.sliding_window_view(s.values[test_start:], H)[: len(f)]
        err = (f - truth) / std
        se.append((err**2).mean())
        ae.append(np.abs(err).mean())
    return {"mse": round(float(np.mean(se)), 4), "mae": round(float(np.mean(ae)), 4)}


def baseline(series: list[Series], test_start: int, test_end: int, period: int) -> dict[str, np.ndarray]:
    """Repeat the last value (period 1) or the last cycle, from every origin."""
    out = {}
    for s in series:
        rows = []
        for t in range(test_start, test_end - H + 1):  # forecast x[t : t + H] from x[:t]
            cycle = s.values[t - period : t]
            rows.append(np.resize(cycle, H))
        out[s.name] = np.array(rows)
    return out


def ours(checkpoint: Path, series: list[Series], test_start: int, test_end: int) -> tuple[dict[str, np.ndarray], float]:
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


def published(path: Path, dataset: str) -> dict[str, dict[str, float]]:
    """The published multivariate MSE/MAE at H = 96 for ``dataset``, first source per model."""
    out: dict[str, dict[str, float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["dataset"].lower() == dataset.lower() and row["horizon"] == str(H) and row["model"] in PUBLISHED:
                if row["setting"] == "multivariate" and not row["note"]:
                    key = f"{row['model']} ({row['source'].split()[0]})"
                    out.setdefault(key, {}).setdefault(row["metric"].lower(), float(row["value"]))
    return out


def write(path: Path, dataset: str, rows: dict[str, dict], data: Path) -> None:
    published_rows = published(data / "published_results_ltsf.csv", dataset)
    result = {"set": dataset, "horizon": H, "rows": rows, "published": published_rows}
    path.write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/ltsf", help="folder of the ltsf files")
    p.add_argument("--set", default="ETTh1", choices=("ETTh1", "ETTh2", "ETTm1", "ETTm2"))
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--minutes", type=float, default=5.0, help="training budget per family")
    p.add_argument("--out", default="bench/results/ett")
    p.add_argument(
        "--reuse", action="store_true", help="score a family's checkpoint already in --out instead of training"
    )
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_end, val_end, test_end = BOUNDS[args.set[:4]]
    series = [s.head(test_end) for s in load_series(Path(args.data) / f"{args.set}.csv.gz")]
    period = 24 if args.set.startswith("ETTh") else 96
    saved = out / f"{args.set}.json"  # rows of families not rerun this time stay
    rows: dict[str, dict] = json.loads(saved.read_text())["rows"] if saved.is_file() else {}
    rows |= {
        "repeat": standardised_errors(series, baseline(series, val_end, test_end, 1), train_end, val_end),
        f"seasonal naive ({period})": standardised_errors(
            series, baseline(series, val_end, test_end, period), train_end, val_end
        ),
    }
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
        forecasts, coverage = ours(checkpoint, series, val_end, test_end)
        config = json.loads((checkpoint / "config.json").read_text())
        rows[family] = {
            **standardised_errors(series, forecasts, train_end, val_end),
            "coverage": coverage,
            "train_minutes": config["training"]["minutes"],
            "seasons": config["model"]["scaler"]["seasons"],
        }
        print(args.set, family, rows[family], f"({round(time.monotonic() - start)} s)", flush=True)
        write(saved, args.set, rows, Path(args.data))  # after each family: a stopped run keeps what it scored
    write(saved, args.set, rows, Path(args.data))
    result = json.loads(saved.read_text())
    for name, row in {**rows, **result["published"]}.items():
        print(f"{name:36s} " + "  ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
