"""Train the bundled checkpoints and check them on held-out prices (see README.md here).

python -m forecaster.pretrained.build [--families lstm gru] [--max-minutes 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from forecaster.checkpoint import save_checkpoint
from forecaster.data import PRICE_COLUMNS, PRICES, Series, fingerprint, load_series
from forecaster.evaluation.evaluate import evaluate
from forecaster.models import FAMILIES, ModelConfig
from forecaster.recipes import BAND_RATE
from forecaster.training import TrainConfig, train

HERE = Path(__file__).parent
CUTOFF = 1325376000.0  # 2012-01-01T00:00:00Z: train before, test from here on


def split_by_time(series: list[Series], cutoff: float) -> tuple[list[Series], list[Series]]:
    """History before the cutoff (series with any) and the held-out continuation after it."""
    history, test = [], []
    for s in series:
        before = s.ts < cutoff
        if before.sum() and (~before).sum():
            history.append(Series(s.name, s.ts[before], s.values[before]))
            test.append(Series(s.name, s.ts[~before], s.values[~before]))
    return history, test


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--max-minutes", type=float, default=4.0)
    p.add_argument("--out", type=Path, default=HERE)
    a = p.parse_args()

    history, test = split_by_time(load_series(PRICES, "long", PRICE_COLUMNS), CUTOFF)
    cfg = TrainConfig(validation=250, windows_per_epoch=256, patience=8, epochs=60, max_minutes=a.max_minutes)
    report_path = a.out / "REPORT.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    for family in a.families:
        model, fit = train(history, ModelConfig(family=family, horizon=8, band_rate=BAND_RATE), cfg)
        meta = {
            "data": {
                "path": PRICES.name,
                "columns": PRICE_COLUMNS.__dict__,
                "before": "2012-01-01",
                "series": len(history),
                "hash": fingerprint(history),
            },
            "training": {
                **cfg.model_dump(),
                "epochs_run": fit.epochs,
                "best_epoch": fit.best_epoch,
                "minutes": fit.minutes,
            },
            "validation": fit.validation,
        }
        out = save_checkpoint(model, a.out / family, meta)
        held_out, _ = evaluate(str(out), history, test, None, season=1, rolling=True, device="cpu")
        naive, _ = evaluate("naive", history, test, 8, season=1, rolling=True)
        ratio = round(held_out["mase"] / naive["mase"], 4)
        report[family] = {
            "validation": fit.validation,
            "held_out": held_out,
            "naive_held_out": naive,
            "mase_vs_naive": ratio,
            "training_minutes": fit.minutes,
        }
        print(f"{family}: held-out MASE {held_out['mase']} = {ratio} x naive, coverage {held_out['coverage']}")
    report_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
