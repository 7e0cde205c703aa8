"""Scoring a model or a baseline on held-out data, through the same streaming path as the worker.

For a model, each series' history is fed through ``Forecaster.update`` (batch i holds the i-th
observation of every series); the forecast made after the last history value is scored against
the next H values (the M4 protocol). With ``rolling``, the held-out values are then fed in too,
one per series per step, and the forecast from every origin inside the held-out span is scored
on the steps whose truth is known (what a live service's accuracy is).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import forecaster
from forecaster.data import DataError, Series, as_batches
from forecaster.evaluation import baselines
from forecaster.evaluation.metrics import inside, mase, mase_scale, owa, pinball, smape


@dataclass
class Scored:
    """One forecast: the series, the history before it, the truth, point (H,), quantiles (Q, H) or None."""

    series: str
    history: np.ndarray
    truth: np.ndarray
    point: np.ndarray
    quantiles: np.ndarray | None


def split(history: list[Series], test: list[Series] | None, horizon: int) -> list[tuple[Series, np.ndarray]]:
    """(history, held-out values) per series: the test file's series by name, or the last H values."""
    if test is None:
        short = [s.name for s in history if len(s) <= horizon + 1]
        if short:
            raise DataError(f"series {short[0]!r} is too short to hold out {horizon} values")
        return [(s.head(len(s) - horizon), s.values[len(s) - horizon :]) for s in history]
    by_name = {s.name: s for s in test}
    missing = [s.name for s in history if s.name not in by_name]
    if missing:
        raise DataError(f"series {missing[0]!r} has no held-out values in the test file")
    return [(s, by_name[s.name].values) for s in history]


def origins(
    pairs: list[tuple[Series, np.ndarray]], horizon: int, rolling: bool
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(series, history, truth) per forecast origin, in the order the streaming path makes them:
    the end of each history, then (rolling) after each held-out value but the last. Histories
    are views of one copy per series: a copy per origin would hold origins × length values."""
    out = [(s.name, s.values, t[:horizon]) for s, t in pairs]
    if rolling:
        whole = {s.name: np.concatenate([s.values, t]) for s, t in pairs}
        for i in range(1, max(len(t) for _, t in pairs)):
            out += [(s.name, whole[s.name][: len(s) + i], t[i : i + horizon]) for s, t in pairs if i < len(t)]
    return out


def baseline_forecasts(
    name: str, pairs: list[tuple[Series, np.ndarray]], horizon: int, season: int, rolling: bool
) -> list[Scored]:
    return [
        Scored(n, h, t, baselines.forecast(name, h, horizon, season)[: len(t)], None)
        for n, h, t in origins(pairs, horizon, rolling)
    ]


def model_forecasts(
    fc: forecaster.Forecaster, pairs: list[tuple[Series, np.ndarray]], rolling: bool, horizon: int | None = None
) -> list[Scored]:
    """Stream each history, then (rolling) the held-out values; keep the forecast of every origin,
    its first ``horizon`` steps (default: all the model's)."""
    last: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for batch in as_batches([s for s, _ in pairs]):
        out = fc.update(batch)
        for i, stream in enumerate(out.streams):
            last[stream] = out.point[i], out.quantiles[i]
    made = [last[s.name] for s, _ in pairs]
    if rolling:
        step = {s.name: (s.ts[-1] - s.ts[-2]) if len(s) > 1 else 1.0 for s, _ in pairs}
        for i in range(max(len(t) for _, t in pairs) - 1):  # the last held-out value leaves nothing to score
            out = fc.update(
                [
                    {"stream": s.name, "ts": float(s.ts[-1] + (i + 1) * step[s.name]), "value": float(t[i])}
                    for s, t in pairs
                    if i < len(t) - 1
                ]
            )
            made += zip(out.point, out.quantiles, strict=True)
    return [
        Scored(n, h, t, point[: len(t)], quantiles[:, : len(t)])
        for (n, h, t), (point, quantiles) in zip(
            origins(pairs, horizon or fc.config.horizon, rolling), made, strict=True
        )
    ]


def score(results: list[Scored], naive2: list[Scored], season: int, levels: tuple[float, ...] | None) -> dict[str, Any]:
    """M4 metrics averaged over forecasts; OWA against Naive2 on the same series and origins."""

    def averages(rs: list[Scored]) -> tuple[float, float]:
        return (
            float(np.mean([smape(r.truth, r.point) for r in rs])),
            float(np.mean([mase(r.truth, r.point, mase_scale(r.history, season)) for r in rs])),
        )

    s, m = averages(results)
    s2, m2 = averages(naive2)
    out: dict[str, Any] = {
        "smape": round(s, 4),
        "mase": round(m, 4),
        "owa": round(owa(s, m, s2, m2), 4),
        "coverage": None,
        "pinball": None,
        "series": len({r.series for r in results}),
        "forecasts": len(results),
        "season": season,
        "naive2": {"smape": round(s2, 4), "mase": round(m2, 4)},
    }
    if levels is not None:
        hits = np.concatenate([inside(r.truth, r.quantiles[0], r.quantiles[-1]) for r in results])
        out["coverage"] = round(float(hits.mean()), 4)
        out["pinball"] = round(
            float(np.mean([pinball(r.truth, r.quantiles, levels, mase_scale(r.history, season)) for r in results])), 4
        )
    return out


def naive2_reference(results: list[Scored], season: int) -> list[Scored]:
    """Naive2 forecasts from exactly the origins of ``results`` (for OWA)."""
    return [
        Scored(r.series, r.history, r.truth, baselines.naive2(r.history, len(r.truth), season), None) for r in results
    ]


def evaluate(
    model: str | Path | forecaster.Forecaster,
    history: list[Series],
    test: list[Series] | None,
    horizon: int | None,
    season: int,
    rolling: bool = False,
    device: str = "auto",
) -> tuple[dict[str, Any], list[Scored]]:
    """Score ``model`` (a baseline name, a bundled name, a checkpoint directory or a
    ``Forecaster``, whose streams it advances)."""
    if horizon is not None and horizon < 1:
        raise ValueError(f"--horizon must be at least 1 step, got {horizon}")
    if isinstance(model, str) and model in baselines.BASELINES:
        H = horizon or 8
        pairs = split(history, test, H)
        results, levels = baseline_forecasts(model, pairs, H, season, rolling), None
    else:
        fc = model if isinstance(model, forecaster.Forecaster) else forecaster.load(model, device=device)
        model = model.name if isinstance(model, forecaster.Forecaster) else str(model)
        if horizon is not None and horizon > fc.config.horizon:
            raise ValueError(
                f"model {model!r} forecasts {fc.config.horizon} steps ahead, fewer than --horizon {horizon}"
            )
        H = horizon or fc.config.horizon  # fewer steps: each forecast's first H are scored
        pairs = split(history, test, H)
        results, levels = model_forecasts(fc, pairs, rolling, H), fc.config.quantiles
    metrics = score(results, naive2_reference(results, season), season, levels)
    return {"model": model, "horizon": H, **metrics}, results


def plot(results: list[Scored], path: str | Path, title: str, n: int = 4, context: int = 96) -> None:
    """History tail, truth, point forecast and outer quantile band of the first n series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    firsts = list({r.series: r for r in reversed(results)}.values())[::-1][:n]  # each series' first origin
    fig, axes = plt.subplots(len(firsts), 1, figsize=(9, 2.4 * len(firsts)), squeeze=False)
    for ax, r in zip(axes[:, 0], firsts, strict=True):
        hist = r.history[-context:]
        t0 = np.arange(-len(hist) + 1, 1)
        t1 = np.arange(1, len(r.truth) + 1)
        ax.plot(t0, hist, color="0.3", lw=1, label="history")
        ax.plot(t1, r.truth, color="k", lw=1.2, label="truth")
        ax.plot(t1, r.point, color="C3", lw=1.2, label="forecast")
        if r.quantiles is not None:
            ax.fill_between(t1, r.quantiles[0], r.quantiles[-1], color="C3", alpha=0.2, label="0.1–0.9 band")
        ax.set_title(r.series, fontsize=9, loc="left")
    axes[0, 0].legend(fontsize=7, ncol=4, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
