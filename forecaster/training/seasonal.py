"""Choosing a data set's seasonal state before training: which periods to keep and the
Holt-Winters weights, by how well the anchor alone (the model's forecast when the network adds
nothing) forecasts the training data's own recent values.

A new stream has no per-series coefficients, so the weights are global: one pair per data set,
fitted here on the data the model trains on (never its validation or test values). The same
data decides whether a period earns its place: a candidate set of periods is kept only if its
anchor beats the level alone (simple exponential smoothing, at the best of the same level
weights) there, so daily prices, with no weekly cycle, get no season, while daily demand keeps
its week. The reference is not the last value: on trending series (M1 quarterly) the random walk
beats every smoothed level, seasonal or not, yet the profiles still help the network (OWA 0.87–0.89
with the 4-quarter season against 0.91–0.93 without, three seeds of the LSTM).

Score: for every origin t in the last ``span`` positions with H known values ahead,
mean_k |x_{t+k} - a_{t,k}|, divided by the series' mean |Δx| (scale-free), averaged over series.
Of the weights whose score is within one standard error (and 2%) of the best, the smoothest is
taken (one series: its best). Then the streams are offered their own level weights among
``LEVEL_CHOICES`` (``ScalerConfig.level_choices``: each stream also forecasts with the weight it
forecasts best, for the model to blend with the network's forecast): offered where that forecast
beats the chosen weight's, as on business series that differ in how fast their level moves; and beside
them a drift (``ScalerConfig.drift``: Theta's half slope, and with ``trend`` the whole), where it
forecasts better still, as on trending ones.
Where no season is kept (or none is a candidate: yearly data), the same own forecasts are offered
without profiles where they beat the random walk, the anchor then (``_without_seasons``); one
short series, judged on the few origins it has, must beat it by a standard error, and one too
short to judge gets them all, for each stream to choose among as it is served.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from forecaster.data import Series
from forecaster.models.config import ScalerConfig
from forecaster.models.scaling import Scaler

ALPHAS = (0.001, 0.01, 0.05, 0.2, 0.5)  # level weights tried (1 would freeze the profiles)
GAMMAS = (0.05, 0.2, 0.5)  # seasonal weights tried
TOLERANCE = 0.02  # the one-standard-error rule's margin, at most this share of the best score
LEVEL_CHOICES = (*ALPHAS, 0.8)  # the level weights a stream may choose among (0.8: trending quarterly series)
# The own forecasts tried without a drift and with one: Theta's half slope or the whole, each
# stream's choice. Offering the whole slope only where it beat the half on the training data
# forecast worse on every M1 set than offering it wherever a drift is (OWA of the own forecast
# alone, series trained alone: quarterly 0.915 against 0.907, yearly 0.957 against 0.948).
DRIFTS = ({"drift": False, "trend": False}, {"drift": True, "trend": True})
MIN_SHARE = 0.05  # a level weight is offered to the streams if it forecasts this share of the series best
MIN_ORIGINS = 4  # the fewest forecast origins a series without seasons is judged on
MAX_SERIES = 256  # a seeded sample of a wider data set: the weights are global, a sample pins them
# The level weight where no series is long enough to judge the weights on (one monthly series of
# up to ~4 years): a level that follows the data. The default, 0.001, suits long series (M4
# Hourly's), but it held a short one at its first values: M1 monthly series of 38-48 months
# trained alone, GRU OWA 1.093 at 0.001, 1.007 at 0.05, 0.978 at 0.2, 1.084 at 0.5.
UNJUDGED_LEVEL = 0.2


@dataclass(frozen=True)
class SeasonalChoice:
    """The chosen scaler, the score of every candidate (``(seasons, form, alpha, gamma) -> error``)
    and of the references: the random walk and the best level alone; ``per_stream``: the score
    with the level weight (and drift) chosen by each stream, and ``alone`` the chosen weight's on
    the same longer histories (NaN where not tried)."""

    scaler: ScalerConfig
    scores: dict[tuple[tuple[int, ...], str, float, float], float]
    random_walk: float
    level: float
    per_stream: float = float("nan")
    alone: float = float("nan")


def _level_anchor(x: torch.Tensor, alpha: float, horizon: int) -> torch.Tensor:
    """Simple exponential smoothing's flat forecast (B, T, H): the level without the profiles."""
    level, out = x[:, 0], []
    for t in range(x.shape[1]):
        level = level + alpha * (x[:, t] - level)
        out.append(level)
    return torch.stack(out, dim=1)[:, :, None].expand(-1, -1, horizon)


def _anchor_errors(
    x: torch.Tensor, lengths: np.ndarray, anchor: torch.Tensor, horizon: int, span: int, warm: int
) -> np.ndarray:
    """Scaled absolute error of ``anchor`` (B, T, H) over the last ``span`` origins from ``warm``
    on, one mean per series (per quarter of the span for a single series, so that its spread can
    be judged too)."""
    errors = []
    for i, n in enumerate(lengths):
        last = n - horizon  # origins t < last have all H values ahead
        first = max(warm, last - span)
        values = x[i, :n]
        ahead = values.unfold(0, horizon, 1)[first + 1 : last + 1]  # (origins, H): x_{t+1..t+H}
        scale = float(values.diff().abs().mean().clamp(min=1e-12))
        per_origin = (ahead - anchor[i, first:last]).abs().mean(dim=1) / scale
        blocks = 4 if len(lengths) == 1 and len(per_origin) >= 4 else 1
        errors += [float(b.mean()) for b in per_origin.tensor_split(blocks)]
    return np.array(errors)


def _tails(series: list[Series], n: int) -> tuple[torch.Tensor, np.ndarray]:
    """The last ``n`` values of each series, (B, T) padded at the end, and their lengths."""
    tails = [np.array(s.values[-n:], dtype=np.float64) for s in series]  # writable copies
    lengths = np.array([len(t) for t in tails])
    x = torch.zeros(len(tails), int(lengths.max()), dtype=torch.float64)
    for i, t in enumerate(tails):
        x[i, : len(t)] = torch.from_numpy(t)
    return x, lengths


def _standard_error(e: np.ndarray) -> float:
    """The standard error of the mean of ``e`` (0 for a single value)."""
    return float(e.std(ddof=1) / np.sqrt(len(e))) if len(e) > 1 else 0.0


def _sample(series: list[Series], seed: int) -> list[Series]:
    """At most MAX_SERIES of ``series``, a seeded sample in their order."""
    if len(series) <= MAX_SERIES:
        return series
    pick = np.random.default_rng(seed).choice(len(series), MAX_SERIES, replace=False)
    return [series[i] for i in sorted(pick)]


def _offered(each: np.ndarray) -> tuple[float, ...]:
    """The LEVEL_CHOICES that forecast at least MIN_SHARE of the series best, from ``each``
    (weights × series errors): each one costs a stream a Holt-Winters state."""
    share = np.bincount(each.argmin(axis=0), minlength=len(LEVEL_CHOICES)) / each.shape[1]
    return tuple(a for a, p in zip(LEVEL_CHOICES, share, strict=True) if p >= MIN_SHARE)


def _without_seasons(series: list[Series], base: ScalerConfig, horizon: int, seed: int) -> SeasonalChoice:
    """No season: the network forecasts around the last value, and each stream may still
    forecast with its own level weight among ``LEVEL_CHOICES`` (and a Theta drift), for the model
    to blend in, where that beats the random walk on the training data (yearly series: the
    Theta method is what the M3 and Tourism competitions' yearly sets favour)."""
    span = 4 * horizon
    long = [s for s in series if len(s) > span + horizon]
    # Where none is that long, the series are judged on the origins they have, and their own
    # forecast must beat the random walk by a standard error there: one M3 monthly series of 4-10
    # years trained alone was otherwise left to the random walk unjudged.
    usable = _sample(long or [s for s in series if len(s) >= horizon + MIN_ORIGINS], seed)
    if not usable:
        # Too short to judge: every own forecast is offered, each stream choosing by its own tracked
        # errors as it is served. The random walk (none offered) left such series to the network
        # alone: the own forecast alone on 40 M1 yearly series of 14-58 values trained one at a
        # time (13 too short to judge) scored OWA 0.948, and 0.829 with all of them offered.
        unjudged = {"smooth_level": UNJUDGED_LEVEL, "level_choices": LEVEL_CHOICES, **DRIFTS[-1]}
        return SeasonalChoice(base.model_copy(update=unjudged), {}, float("nan"), float("nan"))
    x, lengths = _tails(usable, span + horizon + Scaler(base, horizon).memory)

    def own_errors(config: ScalerConfig) -> np.ndarray:
        return _anchor_errors(x, lengths, Scaler(config, horizon).sequence(x)[2], horizon, span, 0)

    walk = own_errors(base.model_copy(update={"level_choices": (), "drift": False}))
    each = np.stack(
        [own_errors(base.model_copy(update={"smooth_level": a, "level_choices": (a,)})) for a in LEVEL_CHOICES]
    )
    alpha = LEVEL_CHOICES[int(each.mean(axis=1).argmin())]
    candidates = [
        base.model_copy(update={"smooth_level": alpha, "level_choices": _offered(each), **drift}) for drift in DRIFTS
    ]
    tried = {c: own_errors(c) for c in candidates}
    best = min(tried, key=lambda c: tried[c].mean())
    gain = walk - tried[best]  # per series, or per quarter of one series' span: two or more
    margin = 0.0 if long else _standard_error(gain)  # few origins: a clear gain
    chosen = best if gain.mean() > margin else base
    random_walk = float(walk.mean())
    return SeasonalChoice(chosen, {}, random_walk, float("nan"), float(tried[best].mean()), random_walk)


def choose_seasonal(
    series: list[Series],
    base: ScalerConfig,
    horizon: int,
    may_drop: bool = True,
    seed: int = 0,
    form_given: bool = False,
) -> SeasonalChoice:
    """The scaler for ``series`` (the training span only): ``base`` with the Holt-Winters weights
    of least anchor error among ALPHAS × GAMMAS, for ``base.seasons`` and, when ``may_drop``, each
    shorter leading subset of them; no seasons at all if none beats the level alone. The
    multiplicative form is tried too where no value is negative, unless ``form_given``."""
    periods = base.seasons
    if not periods:
        return _without_seasons(series, base, horizon, seed)
    warm, span = 2 * periods[-1], max(4 * horizon, 2 * periods[-1])  # profiles settle, then are scored
    # Origins inside the first cycles would reward a level that chases the data while the
    # profiles form; short series (M1 monthly: 30 values) are judged after one cycle, or left out.
    usable = [s for s in series if len(s) > warm + horizon]
    if not usable:
        warm = periods[-1]
        usable = [s for s in series if len(s) > warm + horizon]
    if not usable:  # nothing to judge the weights on (too short to train on: training says so)
        return SeasonalChoice(base.model_copy(update={"smooth_level": UNJUDGED_LEVEL}), {}, float("nan"), float("nan"))
    usable = _sample(usable, seed)
    x, lengths = _tails(usable, warm + span + horizon)

    def errors_of(anchor: torch.Tensor) -> np.ndarray:
        return _anchor_errors(x, lengths, anchor, horizon, span, warm)

    def holt_winters(update: dict) -> torch.Tensor:  # the scaler's anchor with these seasons and weights
        return Scaler(base.model_copy(update={**update, "level_choices": ()}), horizon).sequence(x)[1]

    random_walk = float(errors_of(x[:, :, None].expand(-1, -1, horizon)).mean())
    level = min(float(errors_of(_level_anchor(x, a, horizon)).mean()) for a in ALPHAS)
    sets = [periods[:i] for i in range(1, len(periods) + 1)] if may_drop else [periods]
    positive = all(float(s.values.min()) >= 0 for s in series)  # zeros: factors are bounded
    forms = [base.seasonal_form] if form_given else (["additive", "multiplicative"] if positive else ["additive"])
    errors = {
        (s, f, a, g): errors_of(holt_winters({"seasons": s, "seasonal_form": f, "smooth_level": a, "smooth_season": g}))
        for s, f, a, g in itertools.product(sets, forms, ALPHAS, GAMMAS)
    }
    scores = {k: float(e.mean()) for k, e in errors.items()}
    best = min(scores, key=scores.__getitem__)
    if may_drop and scores[best] >= level:
        dropped = _without_seasons(series, base.model_copy(update={"seasons": ()}), horizon, seed)
        return SeasonalChoice(dropped.scaler, scores, random_walk, level, dropped.per_stream, dropped.alone)
    # One standard error rule: of the weights as good as the best within its standard error, the
    # smoothest (least alpha, then gamma). Anchors that close score alike alone, but a steadier
    # level was the better base for the network (M4 Hourly: alpha 0.01 scored 1% better alone
    # than 0.001, and the RNN trained on it was 10% worse). The margin is capped at TOLERANCE
    # of the best, and the pick must still beat each reference the best beats (the level alone,
    # the random walk): a handful of series has a wide standard error, which must not buy
    # smoothness with accuracy. One series takes its best: the margin buys a steadier base for a
    # network that many series train, and one short series' network adds little to its anchor
    # (the own forecast alone, 40 series of each of six monthly and quarterly sets, each trained
    # alone: OWA better on all six, by 0.2-1.1%).
    e = errors[best]
    se = _standard_error(e)
    reference = min(level, random_walk) if may_drop else np.inf
    tolerance = TOLERANCE if len(usable) > 1 else 0.0
    bar = min(scores[best] + se, scores[best] * (1 + tolerance), max(scores[best], reference))
    # Within that bar the multiplicative form comes first (where it was tried): its factors follow
    # the level, where additive profiles keep the amplitude of the past (an M1 monthly series that
    # fell thirty-fold kept profiles thirty times its new size).
    seasons, form, alpha, gamma = min(
        (k for k in scores if k[0] == best[0] and scores[k] <= bar),
        key=lambda k: (k[1] != "multiplicative", k[2], k[3]),
    )
    chosen = base.model_copy(
        update={"seasons": seasons, "seasonal_form": form, "smooth_level": alpha, "smooth_season": gamma}
    )
    # Each stream's choice needs a history to settle on: the same origins are scored, against the
    # chosen weight alone, after as many more values as a stream's tracked error remembers.
    longer, long_lengths = _tails(usable, warm + span + horizon + Scaler(chosen, horizon).memory)

    def longer_errors(config: ScalerConfig) -> np.ndarray:
        return _anchor_errors(longer, long_lengths, Scaler(config, horizon).sequence(longer)[2], horizon, span, warm)

    each = np.stack([longer_errors(chosen.model_copy(update={"smooth_level": a})) for a in LEVEL_CHOICES])
    offered = tuple(a for a in _offered(each) if a != alpha)
    alone = float(each[LEVEL_CHOICES.index(alpha)].mean())
    # Then a drift beside those weights (Theta's half slope and the whole), kept where it forecasts
    # better still (trending series).
    candidates = [chosen.model_copy(update={"level_choices": offered, **drift}) for drift in DRIFTS]
    tried = {c: float(longer_errors(c).mean()) for c in candidates if Scaler(c, horizon).gives_own_forecast}
    best_own = min(tried, key=tried.__getitem__, default=chosen)
    score = tried.get(best_own, alone)
    return SeasonalChoice(best_own if score < alone else chosen, scores, random_walk, level, score, alone)
