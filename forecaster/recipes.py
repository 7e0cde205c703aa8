"""Training and evaluation from Python: what ``forecaster train`` and ``forecaster evaluate`` do,
as functions that take a file, a pandas frame or a list of ``Series`` and return a
``Forecaster`` and metrics. The command line is a thin shell over them.

>>> import forecaster
>>> from forecaster.data import PRICE_COLUMNS as columns, PRICES as prices
>>> fc, report = forecaster.train(prices, "gru", columns=columns, horizon=4, d_model=16, epochs=1, progress=False)
>>> fc.config.horizon, sorted(report.validation)[:5]
(4, ['blend', 'blend_power', 'coverage', 'coverage_target', 'coverage_uncalibrated'])
>>> scores = forecaster.evaluate(fc, prices, columns=columns)
>>> sorted(scores.metrics)[:3]
['coverage', 'forecasts', 'horizon']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from forecaster.api import Forecaster
from forecaster.checkpoint import save_checkpoint
from forecaster.data import Columns, Layout, Series, fingerprint, load_series, season_of, seasons_of
from forecaster.evaluation.evaluate import Scored, plot
from forecaster.evaluation.evaluate import evaluate as score_model
from forecaster.models import Family, ModelConfig, ScalerConfig
from forecaster.training import TrainConfig, TrainReport, default_validation
from forecaster.training import train as fit
from forecaster.training.seasonal import choose_seasonal

Data = str | Path | pd.DataFrame | Sequence[Series]

_FITTED = {"blend", "blend_power", "interval_scale"}  # after training, on validation
_MODEL_OPTIONS = set(ModelConfig.model_fields) - {"family", "quantiles", "scaler", "band_rate", *_FITTED}
# Each stream's band adapts at this rate (``ModelConfig.band_rate``); chosen on the tuning sets
# (M1, M4 Hourly), where 0.01–0.03 give alike.
BAND_RATE = 0.02
_SCALER_OPTIONS = {"smooth_level", "smooth_season", "seasonal_form"}
_TRAIN_OPTIONS = set(TrainConfig.model_fields) - {"calibrate"}


def series_of(data: Data, layout: Layout = "auto", columns: Columns | None = None) -> list[Series]:
    """The series of a file (CSV, optionally gzipped, or parquet), a frame (long, wide or M4
    layout, like a file) or a list of ``Series`` as given."""
    if isinstance(data, (str, Path, pd.DataFrame)):
        return load_series(data, layout, columns or Columns())
    return list(data)


def _describe(data: Data) -> str:
    return str(data) if isinstance(data, (str, Path)) else f"<{type(data).__name__}>"


def train(
    data: Data,
    model: Family,
    *,
    out: str | Path | None = None,
    seasons: Sequence[int] | None = None,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    lags: int = 0,
    calibrate: bool = True,
    band_rate: float = BAND_RATE,
    layout: Layout = "auto",
    columns: Columns | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    **options: Any,
) -> tuple[Forecaster, TrainReport]:
    """Train a ``model`` ("rnn", "lstm", "gru", "transformer") on ``data`` and return it ready to
    forecast, with the training report (validation loss and coverage, epochs, minutes).

    ``seasons``: the seasonal periods in observations; by default candidates from the
    timestamps (hourly: 24 and 168, daily: 7, …), kept only where they beat the level alone on
    the training data; ``[]`` for none. ``band_rate``: how fast each stream's band widens or
    narrows towards its nominal coverage as the stream is served (0: the band calibrated on the
    validation span, for every stream). ``options``: model fields (``horizon``, ``d_model``,
    ``n_layer``, ``window``, …), training fields (``max_minutes``, ``epochs``, ``lr``,
    ``validation``, ``seed``, …) and the smoothing weights (``smooth_level``,
    ``smooth_season``; chosen on the data unless given). ``out``: also write a checkpoint
    directory that ``forecaster.load`` and ``forecaster serve --model`` read.
    """
    unknown = set(options) - _MODEL_OPTIONS - _SCALER_OPTIONS - _TRAIN_OPTIONS
    if unknown:
        known = ", ".join(sorted(_MODEL_OPTIONS | _SCALER_OPTIONS | _TRAIN_OPTIONS))
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}; options are: {known}")
    pick = {k: v for k, v in options.items() if v is not None}
    series = series_of(data, layout, columns)
    periods = seasons_of(series) if seasons is None else tuple(sorted({m for m in seasons if m > 1}))
    smoothing = {k: pick[k] for k in _SCALER_OPTIONS & set(pick)}
    scaler = ScalerConfig(lags=lags, seasons=periods, **smoothing)
    cfg = TrainConfig(calibrate=calibrate, **{k: pick[k] for k in _TRAIN_OPTIONS & set(pick)})
    config = ModelConfig(  # validated first: the seasonal choice below relies on a sound horizon
        family=model,
        quantiles=tuple(quantiles),
        scaler=scaler,
        band_rate=band_rate,
        **{k: pick[k] for k in _MODEL_OPTIONS & set(pick)},
    )
    horizon = config.horizon
    chosen: dict[str, Any] = {"candidates": list(periods)}
    if not {"smooth_level", "smooth_season"} & set(pick):  # weights (and periods) from the training span
        held_out = cfg.validation or default_validation(series, horizon)
        span = [s.head(max(0, len(s) - held_out)) for s in series]
        choice = choose_seasonal(span, scaler, horizon, may_drop=seasons is None, form_given="seasonal_form" in pick)
        scaler = choice.scaler
        errors = {  # the anchor's scaled error on the training span: why these seasons and own forecasts
            "random_walk_error": choice.random_walk,
            "level_error": choice.level,
            "best_error": min(choice.scores.values(), default=math.nan),
            "one_level_weight_error": choice.alone,  # on longer histories, beside:
            "per_stream_level_error": choice.per_stream,
        }
        chosen |= {k: round(v, 4) for k, v in errors.items() if not math.isnan(v)}
    config = config.model_copy(update={"scaler": scaler})
    trained, report = fit(series, config, cfg, progress=progress)
    if out is not None:
        metadata = {
            "data": {
                "path": _describe(data),
                "layout": layout,
                "series": len(series),
                "too_short_to_train_on": len(report.left_out),
                "hash": fingerprint(series),
            },
            "training": {
                **cfg.model_dump(),
                "epochs_run": report.epochs,
                "best_epoch": report.best_epoch,
                "minutes": report.minutes,
                "members": [
                    {"seed": cfg.seed + i, "epochs_run": r.epochs, "best_epoch": r.best_epoch, "minutes": r.minutes}
                    for i, r in enumerate(report.members)
                ],
            },
            "validation": report.validation,
            "seasons": chosen,
        }
        save_checkpoint(trained, out, metadata)
    return Forecaster(trained, device), report


@dataclass
class Evaluation:
    """Scores of one model or baseline: ``metrics`` (sMAPE, MASE, OWA against Naive2, the band's
    coverage and pinball loss, …) and every scored forecast."""

    metrics: dict[str, Any]
    forecasts: list[Scored]

    def plot(self, path: str | Path, title: str = "") -> None:
        """History tail, truth, forecast and 0.1–0.9 band of the first four series, as an image."""
        plot(self.forecasts, path, title or str(self.metrics["model"]))


def evaluate(
    model: str | Path | Forecaster,
    data: Data,
    test: Data | None = None,
    *,
    horizon: int | None = None,
    season: int | None = None,
    rolling: bool = False,
    layout: Layout = "auto",
    columns: Columns | None = None,
    device: str | torch.device = "auto",
) -> Evaluation:
    """Score ``model`` (a ``Forecaster``, a checkpoint directory, a bundled family, or a baseline:
    "naive", "snaive", "naive2") on ``data``: the forecast after each series' history against
    ``test`` (the same series by name) or, without it, against each series' last H values.
    ``rolling``: also score the forecast from every origin inside the held-out span. A
    ``Forecaster`` is scored from fresh per-stream state (its own is left as it is)."""
    history = series_of(data, layout, columns)
    held_out = series_of(test, layout, columns) if test is not None else None
    if isinstance(model, Forecaster):
        model = Forecaster(model.model, model.device)
    metrics, scored = score_model(model, history, held_out, horizon, season or season_of(history), rolling, device)
    return Evaluation(metrics, scored)
