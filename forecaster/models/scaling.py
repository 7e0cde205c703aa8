"""Per-stream normalisation: raw values <-> scale-free model features.

For each stream we track, in float64, the last value x_{t-1}, a scale s_t (mean absolute one-step
change: a running mean during warm-up, then an EMA) and an EMA level m_t. The model sees

    f_t = clip([ (x_t - x_{t-1}) / s_t ,  (x_t - m_t) / s_t ])

and its outputs y are read back as  x_t + s_t * y.  Every statistic moves with the data, so values
× c (c > 0) gives forecasts × c exactly (up to rounding): the model never sees the price level
itself. The first observation of a stream seeds s with ``initial_scale`` × |x_0| as one
pseudo-observation. With ``lags`` = L > 0 the features also hold (x_{t-j} - x_t) / s_t for
j = 1..L (0 before the stream's start), from a ring buffer of the last L values: with L one
season, the seasonal-naive forecast is a linear function of the inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from forecaster.models.base import COUNTER, StateEntry, advance, init_state
from forecaster.models.config import ScalerConfig

_TINY = 1e-12  # floor of the scale, only reached by all-zero streams


class Scaler:
    """Stateless math; the per-stream statistics live in the state dict like the model's."""

    def __init__(self, config: ScalerConfig) -> None:
        self.config = config

    @property
    def n_features(self) -> int:
        return 2 + self.config.lags

    def state_spec(self) -> dict[str, StateEntry]:
        f64 = torch.float64
        spec = {"x_last": StateEntry((), f64), "x_scale": StateEntry((), f64), "x_level": StateEntry((), f64)}
        if self.config.lags:
            spec["x_lags"] = StateEntry((self.config.lags,), f64, ring_axis=0)  # x_{t-j} at slot (t - j) % L
        return spec

    def step(self, x: Tensor, t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """x (B,) float64, t (B,) observations seen before -> features (B, F) float32, scale (B,), new state."""
        c = self.config
        first = t == 0
        d = torch.where(first, torch.zeros_like(x), x - state["x_last"])
        weight = torch.clamp(1.0 / (t + 1).to(x.dtype), min=c.scale_alpha)
        scale = torch.where(first, c.initial_scale * x.abs(), state["x_scale"] + weight * (d.abs() - state["x_scale"]))
        level = torch.where(first, x, state["x_level"] + c.level_beta * (x - state["x_level"]))
        s = scale.clamp(min=_TINY)
        columns = [d[:, None] / s[:, None], (x - level)[:, None] / s[:, None]]
        update = {"x_last": x, "x_scale": scale, "x_level": level}
        if c.lags:
            j = torch.arange(1, c.lags + 1, device=x.device)
            past = state["x_lags"].gather(1, (t[:, None] - j[None, :]) % c.lags)  # (B, L): x_{t-j}
            have = j[None, :] <= t[:, None]
            columns.append(torch.where(have, (past - x[:, None]) / s[:, None], 0.0))
            update["x_lags"] = x  # the ring's new entry
        features = torch.cat(columns, dim=-1).clamp(-c.clip, c.clip)  # (B, F)
        return features.float(), s, update

    def sequence(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T) float64 from each series' start -> features (B, T, F) float32, scale (B, T)."""
        B, T = x.shape
        spec = self.state_spec()
        state = init_state(spec, B, x.device)
        feats, scales = [], []
        for i in range(T):
            f, s, update = self.step(x[:, i], state[COUNTER], state)
            state = advance(spec, state, update)
            feats.append(f)
            scales.append(s)
        return torch.stack(feats, dim=1), torch.stack(scales, dim=1)
