"""What an ensemble of trained checkpoints would score: each member evaluated as ``forecaster
evaluate`` does (streamed through ``update``), then their forecasts combined per origin, with no
weights fitted (so nothing is tuned on the test values). Checkpoints of any families: a seed
ensemble to serve is trained as one model by `forecaster train --members K`.

    .venv/bin/python bench/ensemble.py --data ../shared/data/m4/M4-Hourly-train.csv.gz \\
        --test ../shared/data/m4/M4-Hourly-test.csv.gz \\
        --members bench/results/m4-hourly-additive/{rnn,lstm,gru,transformer} \\
        --out bench/results/m4-hourly-additive/ensemble.json

Point forecasts combine by mean and by median (both reported); quantiles by their mean, which
keeps a band's coverage near its members'. The JSON holds each member's metrics and each
combination's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import forecaster
from forecaster.evaluation.evaluate import Scored, naive2_reference, score


def combine(members: list[list[Scored]], how: str) -> list[Scored]:
    """One ensemble forecast per origin (members agree on the origins: same data, same order)."""
    out = []
    for rs in zip(*members, strict=True):
        points = np.stack([r.point for r in rs])
        point = np.median(points, axis=0) if how == "median" else points.mean(axis=0)
        quantiles = np.mean([r.quantiles for r in rs], axis=0)
        out.append(Scored(rs[0].series, rs[0].history, rs[0].truth, point, quantiles))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--members", nargs="+", required=True, help="checkpoint directories")
    p.add_argument("--season", type=int, help="default: from the data, as forecaster evaluate")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    scored, result = [], {"members": {}, "ensembles": {}}
    for member in args.members:
        ev = forecaster.evaluate(member, args.data, args.test, season=args.season, device="cpu")
        scored.append(ev.forecasts)
        result["members"][member] = {k: ev.metrics[k] for k in ("smape", "mase", "owa", "coverage")}
        season = ev.metrics["season"]
        print(member, result["members"][member], flush=True)
    levels = forecaster.load(args.members[0], device="cpu").config.quantiles
    for how in ("mean", "median"):
        rs = combine(scored, how)
        metrics = score(rs, naive2_reference(rs, season), season, levels)
        result["ensembles"][how] = {k: metrics[k] for k in ("smape", "mase", "owa", "coverage", "series")}
        print(how, result["ensembles"][how], flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
