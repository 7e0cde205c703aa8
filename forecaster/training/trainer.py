"""The training loop: random windows, Adam, time-based validation, early stopping, calibration.

Validation is time-based: the last ``validation`` values of every series are never trained on.
The model is scored on forecasts made from every origin in that held-out span (causal, so one
forward pass over each whole series gives them all), every step ahead weighing the same, as in
the scores of a forecast from one origin (``horizon_loss``). Training keeps the weights of the best
validation loss and stops after ``patience`` epochs without improvement, or once ``max_minutes``
have passed since the data's preparation began (checked after every batch, so a large data set's
long epoch cannot outlast it; a set of more than ``MAX_VALIDATION_SERIES`` series validates on a
sample of them).
Finally two scalars are fitted on the same held-out forecasts: the share of the streams' own
forecast blended with the network's (``fit_blend``; their own Holt-Winters forecasts where they
carry them, ``ScalerConfig.level_choices``, else the anchor itself, which pulls the network's
forecast towards it where it forecasts better, as on a single short seasonal series); then the
spread of the quantiles around the point forecast, so that the 0.1–0.9 band covers its nominal share
of new values (``calibration_target``: a little more of the held-out span where it is short).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from tqdm.auto import tqdm  # a widget in a notebook, text in a terminal

from forecaster.data import DataError, Series
from forecaster.models import ForecastModel, ModelConfig
from forecaster.models.forecast_model import ensemble_of, own_share, widen
from forecaster.models.scaling import Scaler
from forecaster.training.loss import forecast_loss, horizon_loss, step_mean
from forecaster.training.windows import Prepared, head, prepare, sample_windows


class TrainConfig(BaseModel):
    """Options of ``forecaster train`` (model hyper-parameters live in ``ModelConfig``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(100, ge=1, description="upper bound; early stopping usually ends sooner")
    batch_size: int = Field(32, ge=1)
    span: int = Field(256, ge=1, description="positions scored per training window")
    burn_in: int = Field(64, ge=0, description="positions a mid-series window runs before it is scored")
    windows_per_epoch: int | None = Field(None, ge=1, description="default: as many as score every position once")
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    patience: int = Field(6, ge=1, description="epochs without validation improvement before stopping")
    validation: int | None = Field(
        None, ge=1, description="held-out values at the end of each series; default: default_validation"
    )
    max_minutes: float | None = Field(None, gt=0, description="stop after this long, keeping the best weights")
    calibrate: bool = Field(True, description="scale the quantile band to its nominal coverage on validation")
    seed: int = 0


# Fewer held-out origins than this and a day of one stream would decide early stopping and the band.
MIN_VALIDATION_ORIGINS = 512
# Series scored on validation at most (a seeded sample of a wider set): recurrent cores run each
# from its start, and on 48,000 series every epoch's validation would outlast a short budget.
MAX_VALIDATION_SERIES = 2048
# The shares of the streams' own forecasts tried; never all: the band is the network's, shrunk by
# 1 - v with its point, and calibration can widen a narrow band but not one of no width.
BLENDS = tuple(i / 20 for i in range(20))
POWERS = (1.0, 2.0, 4.0)  # the powers of a share per stream tried (``own_share``; 4: near the better of the two)
# Fewer held-out origins that know all H values ahead than this cannot tell a share (a series
# shorter than 4H trained alone holds out H values: one such origin), and the network and the
# own forecast then weigh the same: a combination of two forecasts is hard to beat without
# evidence. 60 M1 monthly series trained alone, GRU: OWA 0.933 with the network alone (the
# standard-error rule cannot judge one origin), 0.905 with halves.
MIN_FULL_ORIGINS = 8
EQUAL = 0.5


def default_validation(series: list[Series], horizon: int) -> int:
    """Values held out at the end of each series when ``validation`` is not given: the horizon,
    or more where few series would leave fewer than ``MIN_VALIDATION_ORIGINS`` forecast origins
    (one stream holds out its last 512 values), but never more than a quarter of the shortest."""
    wanted = math.ceil(MIN_VALIDATION_ORIGINS / max(1, len(series)))
    return max(horizon, min(wanted, min(len(s) for s in series) // 4))


@dataclass
class TrainReport:
    epochs: int
    best_epoch: int
    minutes: float
    validation: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # too short to train on (still forecast when served)
    members: list[TrainReport] = field(default_factory=list)  # an ensemble's, one per member


@dataclass
class _Held:
    """The network's normalised outputs (N, 1 + Q, H) from every origin of the held-out span, the
    truths there (N, H) and the streams' own forecasts (N, H), normalised alike."""

    y: Tensor
    target: Tensor
    own: Tensor | None = None  # the anchor (0) where the scaler gives no own forecast
    to_mase: Tensor | None = None  # (N,): see ``Prepared``
    errors: Tensor | None = None  # (N, 2): the network's and the own forecast's tracked errors there
    block: Tensor | None = None  # (N,) where own is the anchor: each row's series (one series: its quarter)
    quarters: bool = False  # ``block`` holds the quarters of one series' span


def _validation_outputs(
    model: ForecastModel, data: list[Prepared], held_out: int, track: bool = False, chunk: int = 64
) -> _Held:
    """The network's forecasts from every origin of the held-out span, beside the truths; with
    ``track`` (and own forecasts) also each stream's tracked errors of both there."""
    hs, ts, owns, to_mase, errors, blocks = [], [], [], [], [], []
    by_length = sorted(data, key=lambda d: len(d.features))  # chunks of like lengths: little padding
    with torch.no_grad():
        for i in range(0, len(by_length), chunk):
            part = by_length[i : i + chunk]
            feats = torch.zeros(len(part), len(part[-1].features), part[0].features.shape[1])
            for j, d in enumerate(part):
                feats[j, : len(d.features)] = d.features  # padding at the end cannot leak backwards
            h = model.core(feats)  # (B, T, [K,] D)
            tracked = _tracked_errors(model, h, part) if track and part[0].own is not None else None
            for j, d in enumerate(part):
                n = len(d.features)
                origins = slice(n - held_out - 1, n - 1)
                hs.append(h[j, origins])
                ts.append(d.targets[origins])
                if d.to_mase is not None:  # without own forecasts the anchor is the own: 0, normalised
                    owns.append(d.own[origins] if d.own is not None else torch.zeros_like(d.targets[origins]))
                    to_mase.append(d.to_mase[origins])
                    quarter = torch.arange(held_out) * 4 // held_out
                    blocks.append(quarter if len(data) == 1 else torch.full((held_out,), len(blocks)))
                if tracked is not None:
                    errors.append(tracked[j, origins])
        y, target = model.read_out(torch.cat(hs)), torch.cat(ts)
        if not owns:
            return _Held(y, target)
        anchor_only = all(d.own is None for d in data)
        return _Held(
            y,
            target,
            torch.cat(owns),
            torch.cat(to_mase).float(),
            torch.cat(errors) if errors else None,
            torch.cat(blocks) if anchor_only else None,
            len(data) == 1,
        )


def _tracked_errors(model: ForecastModel, h: Tensor, part: list[Prepared]) -> Tensor:
    """The errors (B, T, 2) of the network's point forecasts and the streams' own, tracked at
    every position as the model tracks them when it serves (``Scaler.update_errors``), in units
    of each series' MASE scale: a normalised error times ``to_mase`` at its origin."""
    B, T = h.shape[:2]
    forecasts = torch.zeros(B, T, 2, model.config.horizon, dtype=torch.float64)
    truth = torch.full((B, T, 1, model.config.horizon), math.nan, dtype=torch.float64)
    to_mase = torch.zeros(B, T, 1, dtype=torch.float64)
    for j, d in enumerate(part):
        n = len(d.features)
        forecasts[j, :n, 0] = model.read_out(h[j, :n])[:, 0].double()
        forecasts[j, :n, 1] = d.own.double()  # type: ignore[union-attr]  # the caller checked
        truth[j, :n, 0] = d.targets.double()
        to_mase[j, :n, 0] = d.to_mase.double()  # type: ignore[union-attr]
    steps = model.scaler.tracked_steps
    misses = torch.zeros(B, T, 2, len(steps), dtype=torch.float64)
    for i, k in enumerate(steps):  # the truth at t against the forecasts of it made at t - k
        miss = (truth[:, : T - k, :, k - 1] - forecasts[:, : T - k, :, k - 1]).abs() * to_mase[:, : T - k]
        misses[:, k:, :, i] = miss.nan_to_num()  # past a series' end: never read
    tracked, out = torch.zeros(B, 2, dtype=torch.float64), []
    for t in range(T):
        tracked = model.scaler.update_errors(tracked, misses[:, t], torch.full((B,), t))
        out.append(tracked)
    return torch.stack(out, dim=1)


def _band_coverage(y: Tensor, target: Tensor) -> float:
    """The band's coverage averaged over horizons: the last origins of a held-out span know only
    their first steps, and pooled they would calibrate the band to the short horizons."""
    inside = (target >= y[:, 1]) & (target <= y[:, -1])
    return float(step_mean(inside.float(), ~torch.isnan(target)))


def _spread(y: Tensor, factor: float) -> Tensor:
    """Outputs (N, 1 + Q, H) with the quantiles spread by ``factor``, as ``read_out`` would."""
    return torch.cat([y[:, :1], widen(y[:, 1:], factor)], dim=1)


def fit_blend(held: _Held) -> tuple[float, float]:
    """The share v of the streams' own forecasts in (1 - v) * network + v * own whose point
    forecasts have the least mean absolute scaled error (MASE's scale) on the held-out span, on
    a grid of 0.05 in [0, 0.95]; then, where the tracked errors are known, the power p of a share
    per stream (``own_share``, v before any error is counted) if one of ``POWERS`` does better
    still (else 0). Scored from the origins that know all H values ahead, as a forecast is
    scored (the last origins know only their first steps, where the network is at its best);
    with fewer than ``MIN_FULL_ORIGINS`` of them, v is ``EQUAL``.
    Where the own forecast is the anchor (``held.block``), the network is pulled towards it by v
    only if that gains more than one standard error of the gain across series (a single series:
    across the quarters of its span): a small gain on one validation span is its noise (Taylor's
    demand: gains of 1–2% there, losses of up to 6% on the test week). Else the network stands
    alone, but on one series whose complete origins are fewer than 4H: there each quarter's
    forecasts overlap, and four of them cannot tell a share's gain from noise either way, so where
    some share gained the two weigh the same (``EQUAL``), as where too few origins fit one (the
    twelve classics: electrical equipment's RNN OWA 0.692 with the network alone, 0.603 with
    halves)."""
    target = held.target
    full = ~torch.isnan(target).any(dim=1)
    if held.own is None or held.to_mase is None:
        raise ValueError("no own forecasts to blend: the scaler needs seasons and level_choices")
    if int(full.sum()) < MIN_FULL_ORIGINS:
        return EQUAL, 0.0
    y, own, truth, weight = held.y[full], held.own[full], target[full], held.to_mase[full, None]

    def error(share: Tensor | float) -> float:  # complete origins: each step's mean, then over steps
        return float((weight * (truth - _blended(y, own, share)[:, 0]).abs()).mean(0).mean())

    errors = {(v, 0.0): error(v) for v in BLENDS}
    v = min(errors, key=errors.__getitem__)[0]
    if held.block is not None:
        if _clearly_better(_blended(y, own, v)[:, 0], y[:, 0], truth, weight, held.block[full]):
            return v, 0.0
        overlapping = held.quarters and len(truth) // 4 < truth.shape[1]  # a quarter shorter than a horizon
        return (EQUAL if overlapping and v > 0 else 0.0), 0.0
    if held.errors is not None:
        errors |= {(v, p): error(own_share(held.errors[full], p, v)) for p in POWERS}
    return min(errors, key=errors.__getitem__)


def _clearly_better(a: Tensor, b: Tensor, truth: Tensor, weight: Tensor, block: Tensor) -> bool:
    """Whether the point forecasts ``a`` (N, H) have a lower scaled error than ``b`` by more than
    one standard error of the gain across ``block`` (each row's series, or quarter of a single
    series' span)."""
    per_row = (((truth - b).abs() - (truth - a).abs()) * weight).mean(dim=1)
    ids, index = block.unique(return_inverse=True)
    means = torch.zeros(len(ids)).index_add_(0, index, per_row.float()) / torch.bincount(index).float()
    if len(means) < 2:
        return False
    return float(means.mean()) > float(means.std() / math.sqrt(len(means)))


def _blended(y: Tensor, own: Tensor, share: Tensor | float) -> Tensor:
    """Outputs (N, 1 + Q, H) blended with the streams' own forecasts (N, H), as the model does;
    ``share``: one for all, or one per row (N,)."""
    v = share if isinstance(share, float) else share[:, None, None].to(y.dtype)
    return (1 - v) * y + v * own[:, None, :]


def calibration_target(nominal: float, forecasts: int) -> float:
    """The coverage a band is calibrated to on ``forecasts`` held-out forecasts: split conformal's
    finite-sample correction, nominal × (n + 1) / n, at most 1. A band fitted to exactly its nominal
    share of a few forecasts covers less of new ones: one short series holds out 6-30 (40 M1
    quarterly series trained alone, GRU test coverage 0.61 at 0.80, 0.69 with it; on a data set
    of many series it is the nominal share to the third digit)."""
    return min(1.0, nominal * (forecasts + 1) / forecasts)


def calibrate_interval(y: Tensor, target: Tensor, coverage: float) -> float:
    """The spread factor of ``widen`` (as ``read_out`` applies it) after which the outer band
    covers ``coverage`` of the held-out truths: a bisection on log c (coverage grows with c).
    The bracket is wide: a blend with the streams' own forecasts shrinks the network's band with
    its point, by up to 20 times (v = 0.95), before it is calibrated."""

    def covered(c: float) -> float:
        return _band_coverage(_spread(y, c), target)

    lo, hi = math.log(1e-4), math.log(1e4)
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if covered(math.exp(mid)) < coverage else (lo, mid)
    return math.exp(hi)


@dataclass
class _Split:
    """A data set made ready once, for one network or every member of an ensemble."""

    train: list[Prepared]  # each series less its held-out span
    validation: list[Prepared]  # whole series (a sample of a wide set)
    held_out: int
    left_out: list[str]


def _split(series: list[Series], model_config: ModelConfig, cfg: TrainConfig) -> _Split:
    """The series long enough to train on, normalised once, less and with their held-out spans."""
    H = model_config.horizon
    held_out = cfg.validation or default_validation(series, H)
    need = held_out + H + 2
    left_out = [s.name for s in series if len(s) < need]
    series = [s for s in series if len(s) >= need]
    if not series:
        raise DataError(
            f"every series is too short to train on: each needs at least {need} values "
            f"(validation {held_out} + horizon {H} + 2)"
        )
    prepared = prepare(series, Scaler(model_config.scaler, H), H)
    train_data = [head(d, len(d.features) - held_out) for d in prepared]
    return _Split(train_data, _validation_sample(prepared, cfg.seed), held_out, left_out)


def train(
    series: list[Series], model_config: ModelConfig, cfg: TrainConfig | None = None, progress: bool = True
) -> tuple[ForecastModel, TrainReport]:
    """Fit a fresh model of ``model_config`` to ``series``; returns the best model and a report.
    An ensemble (``members`` K > 1) trains K networks one after another, seeds ``seed`` … ``seed
    + K - 1``, each with a K-th of what is left of ``max_minutes``, and calibrates their averaged band."""
    start = time.monotonic()  # the budget counts the data's preparation and validation too
    cfg = cfg or TrainConfig()
    data = _split(series, model_config, cfg)
    if model_config.members > 1:
        return _train_members(data, model_config, cfg, progress, start)
    return _fit(data, model_config, cfg, progress, start)


def _fit(
    data: _Split, model_config: ModelConfig, cfg: TrainConfig, progress: bool, start: float
) -> tuple[ForecastModel, TrainReport]:
    """One network on prepared data, its budget counted from ``start``."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = ForecastModel(model_config)
    lengths = np.array([len(d.features) for d in data.train])
    # A window scores `span` positions of a long series but all of a shorter one (sampled in
    # proportion to length): an epoch is as many windows as score every position once, on average.
    scored = float((lengths * np.minimum(lengths, cfg.span)).sum() / lengths.sum())
    per_epoch = cfg.windows_per_epoch or max(cfg.batch_size, math.ceil(lengths.sum() / scored))
    window = min(cfg.burn_in + cfg.span, int(lengths.max()))  # no window longer than the longest series
    batches = math.ceil(per_epoch / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * batches, eta_min=cfg.lr / 20)

    def out_of_time() -> bool:
        return cfg.max_minutes is not None and (time.monotonic() - start) / 60 >= cfg.max_minutes

    best, best_state, best_epoch, history = math.inf, copy.deepcopy(model.state_dict()), 0, []
    bar = tqdm(total=cfg.epochs, unit="epoch", disable=not progress, dynamic_ncols=True)
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        for _ in range(batches):
            feats, targs = sample_windows(data.train, cfg.batch_size, window, cfg.burn_in, rng)
            loss = forecast_loss(model.read_out(model.core(feats)), targs, model_config.quantiles)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if out_of_time():  # a large data set's epoch can outlast the budget: validate what there is
                break
        running = sum(losses) / len(losses)
        model.eval()
        held = _validation_outputs(model, data.validation, data.held_out)
        val = float(horizon_loss(held.y, held.target, model_config.quantiles))
        history.append(
            {"epoch": epoch, "batches": len(losses), "train_loss": round(running, 5), "val_loss": round(val, 5)}
        )
        if val < best:
            best, best_state, best_epoch = val, copy.deepcopy(model.state_dict()), epoch
        bar.set_postfix(loss=f"{running:.4f}", val=f"{val:.4f}", best=f"{best:.4f}@{best_epoch}")
        bar.update()
        if epoch - best_epoch >= cfg.patience or out_of_time():
            break
    bar.close()

    model.load_state_dict(best_state)
    outputs = _validation_outputs(model.eval(), data.validation, data.held_out, track=cfg.calibrate)
    model, report = _calibrated(model, outputs, cfg.calibrate)
    minutes = round((time.monotonic() - start) / 60, 2)
    return model, TrainReport(epoch, best_epoch, minutes, report, history, data.left_out)


def _validation_sample(data: list[Prepared], seed: int) -> list[Prepared]:
    """At most ``MAX_VALIDATION_SERIES`` of ``data``, a seeded sample in their order."""
    if len(data) <= MAX_VALIDATION_SERIES:
        return data
    pick = np.random.default_rng(seed).choice(len(data), MAX_VALIDATION_SERIES, replace=False)
    return [data[i] for i in sorted(pick)]


def _calibrated(model: ForecastModel, held: _Held, calibrate: bool) -> tuple[ForecastModel, dict[str, float]]:
    """The model with its blend and band fitted on validation, and the figures; ``held``: its
    outputs there (``_validation_outputs``)."""
    c, y, t = model.config, held.y, held.target
    report = {
        "loss": round(float(horizon_loss(y, t, c.quantiles)), 5),
        "coverage_uncalibrated": round(_band_coverage(y, t), 4),
    }
    if not calibrate:
        return model, report
    blend, power = 0.0, 0.0
    if held.own is not None:
        blend, power = fit_blend(held)
        y = _blended(y, held.own, own_share(held.errors, power, blend) if power and held.errors is not None else blend)
    target = calibration_target(c.quantiles[-1] - c.quantiles[0], len(t))
    scale = calibrate_interval(y, t, target)
    fitted = {"blend": blend, "blend_power": power, "interval_scale": scale}
    # Where the streams' own forecasts go unused, no state for them (the network's inputs are the same).
    if not blend and not power:
        fitted["scaler"] = c.scaler.model_copy(update={"level_choices": (), "drift": False})
    calibrated = ForecastModel(c.model_copy(update=fitted))
    calibrated.load_state_dict(model.state_dict())
    report |= {
        "blend": blend,
        "blend_power": power,
        "loss_blended": round(float(horizon_loss(y, t, c.quantiles)), 5),
        "interval_scale": round(scale, 4),
        "coverage": round(_band_coverage(_spread(y, scale), t), 4),
        "coverage_target": round(target, 4),
    }
    return calibrated.eval(), report


def _train_members(
    data: _Split, model_config: ModelConfig, cfg: TrainConfig, progress: bool, start: float
) -> tuple[ForecastModel, TrainReport]:
    """K single models, seeds seed … seed + K - 1, each with a K-th of the budget left after the
    preparation; then one model of them, its averaged band calibrated on the same validation values."""
    K = model_config.members
    single = model_config.model_copy(update={"members": 1})
    left = cfg.max_minutes - (time.monotonic() - start) / 60 if cfg.max_minutes else None
    each = {"max_minutes": max(left / K, 1e-6) if left is not None else None, "calibrate": False}
    fits = [
        _fit(data, single, cfg.model_copy(update={**each, "seed": cfg.seed + i}), progress, time.monotonic())
        for i in range(K)
    ]
    reports = [r for _, r in fits]
    ensemble = ensemble_of([m for m, _ in fits])
    outputs = _validation_outputs(ensemble, data.validation, data.held_out, track=cfg.calibrate)
    model, report = _calibrated(ensemble, outputs, cfg.calibrate)
    report |= {f"member_{i}_loss": r.validation["loss"] for i, r in enumerate(reports)}
    history = [{"member": i, **h} for i, r in enumerate(reports) for h in r.history]
    minutes = round((time.monotonic() - start) / 60, 2)
    total = sum(r.epochs for r in reports)
    return model, TrainReport(total, reports[-1].best_epoch, minutes, report, history, data.left_out, reports)
