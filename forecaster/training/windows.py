"""Series -> training tensors, normalised exactly as the engine normalises streams.

Each series runs through ``Scaler.sequence`` from its first value (as a stream would), giving the
model's input features f_t, the anchor a_{t,k} and the scale s_t; the targets are the next H
values in the same units as the model's outputs:  z_{t,k} = (x_{t+k} - a_{t,k}) / s_t,  k = 1..H.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from forecaster.data import Series
from forecaster.evaluation.metrics import mase_scale
from forecaster.models.scaling import Scaler

# A stuck reading (ETTm1: one value for 560 steps) decays the scale by ``scale_alpha`` a step. Past
# a hundredth of the series' median scale, the change that ends it lands thousands of scale units
# away, and one outage outweighs every other origin in the loss: origins inside such a stretch
# (no change now, the scale's warm-up over) are not trained or validated on.
STUCK_SCALE = 0.01


@dataclass
class Prepared:
    """One series: features (T, F), targets (T, H) with NaN where the future is unknown, and,
    with ``level_choices`` or a drift, the stream's own forecast (T, H), both normalised like the
    network's outputs (without them the own forecast is the anchor: 0), and ``to_mase`` (T,): what
    turns a normalised error at each position into one in units of the series' mean seasonal
    difference, as MASE scores it."""

    features: Tensor
    targets: Tensor
    own: Tensor | None = None
    to_mase: Tensor | None = None


def prepare(series: list[Series], scaler: Scaler, horizon: int, chunk: int = 256) -> list[Prepared]:
    """Each series normalised from its start, ``chunk`` series of like lengths per batched pass
    (padded at the end, which causal statistics never look back at); in the order given."""
    order = sorted(range(len(series)), key=lambda i: len(series[i]))
    out: dict[int, Prepared] = {}
    for i in range(0, len(order), chunk):
        part = order[i : i + chunk]
        x = torch.zeros(len(part), len(series[part[-1]]), dtype=torch.float64)  # (B, T)
        for j, n in enumerate(part):
            values = series[n].values
            x[j, : len(values)] = torch.tensor(values, dtype=torch.float64)  # a copy: the values may be read-only
        features, anchor, own, scale = scaler.sequence(x)
        for j, n in enumerate(part):
            T = len(series[n])
            future = torch.full((T, horizon), float("nan"), dtype=torch.float64)
            for k in range(1, horizon + 1):
                future[: T - k, k - 1] = x[j, k:T]
            targets = ((future - anchor[j, :T]) / scale[j, :T, None]).float()
            targets[_stuck(x[j, :T], scale[j, :T], scaler.config.scale_alpha)] = float("nan")
            lag = min(scaler.config.seasons[0] if scaler.config.seasons else 1, max(T - 1, 1))
            per_mase = max(mase_scale(np.asarray(series[n].values, dtype=np.float64), lag), 1e-12)
            ours = ((own[j, :T] - anchor[j, :T]) / scale[j, :T, None]).float() if scaler.gives_own_forecast else None
            out[n] = Prepared(features[j, :T], targets, ours, scale[j, :T] / per_mase)
    return [out[n] for n in range(len(series))]


def _stuck(x: Tensor, scale: Tensor, scale_alpha: float) -> Tensor:
    """(T,) which positions of a series sit in a stuck stretch (see ``STUCK_SCALE``)."""
    flat = torch.zeros_like(x, dtype=torch.bool)
    flat[1:] = x[1:] == x[:-1]
    settled = torch.arange(len(x)) >= 1 / scale_alpha
    return flat & settled & (scale < STUCK_SCALE * scale.median())


def head(data: Prepared, length: int) -> Prepared:
    """The first ``length`` positions, as ``prepare`` makes them from the series' first ``length``
    values: the features are causal, and targets past that end become unknown."""
    steps = torch.arange(length)[:, None] + torch.arange(1, data.targets.shape[1] + 1)[None, :]
    own, to_mase = (v[:length] if v is not None else None for v in (data.own, data.to_mase))
    targets = data.targets[:length].masked_fill(steps >= length, float("nan"))
    return Prepared(data.features[:length], targets, own, to_mase)


def sample_windows(
    data: list[Prepared], n: int, length: int, burn_in: int, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """n windows of ``length`` positions from random series and offsets -> features (n, L, F) and
    targets (n, L, H). A window starting mid-series begins from fresh state, unlike a stream, so
    its first ``burn_in`` targets are masked (NaN); series shorter than L are padded at the end."""
    lengths = np.array([len(d.features) for d in data])
    # Series drawn in proportion to length: a position of a series at least L long is as likely as
    # any other, one of a shorter series (which comes whole) weighs its length / L as much (M1
    # monthly: drawing those in proportion to max(length, L) instead scored within the seed spread).
    weights = lengths / lengths.sum()
    F, H = data[0].features.shape[1], data[0].targets.shape[1]
    feats = torch.zeros(n, length, F)
    targs = torch.full((n, length, H), float("nan"))
    for i, j in enumerate(rng.choice(len(data), size=n, p=weights)):
        d = data[j]
        T = len(d.features)
        start = int(rng.integers(0, max(1, T - length + 1)))
        w = slice(start, min(T, start + length))
        size = w.stop - w.start
        feats[i, :size] = d.features[w]
        targs[i, :size] = d.targets[w]
        if start > 0:
            targs[i, :burn_in] = float("nan")
    return feats, targs
