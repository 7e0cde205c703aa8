"""Per-stream normalisation: raw values <-> scale-free model features.

For each stream we track, in float64, the last value x_{t-1}, a scale s_t (mean absolute one-step
change: a running mean during warm-up, then an EMA) and an EMA level m_t. The model sees

    f_t = clip([ (x_t - x_{t-1}) / s_t ,  (x_t - m_t) / s_t ])

and its outputs y are read back as  x_t + s_t * y.  Every statistic moves with the data, so values
× c (c > 0) gives forecasts × c exactly (up to rounding), and shifting all values shifts the
forecasts: the model never sees the price level itself. The first observation of a stream seeds
s with ``initial_scale`` × |x_0| as one pseudo-observation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from forecaster.models.base import StateEntry
from forecaster.models.config import ScalerConfig

N_FEATURES = 2
_TINY = 1e-12  # floor of the scale, only reached by all-zero streams


class Scaler:
    """Stateless math; the per-stream statistics live in the state dict like the model's."""

    def __init__(self, config: ScalerConfig) -> None:
        self.config = config

    @staticmethod
    def state_spec() -> dict[str, StateEntry]:
        f64 = torch.float64
        return {"x_last": StateEntry((), f64), "x_scale": StateEntry((), f64), "x_level": StateEntry((), f64)}

    def step(self, x: Tensor, t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """x (B,) float64, t (B,) observations seen before -> features (B, F) float32, scale (B,), new state."""
        c = self.config
        first = t == 0
        d = torch.where(first, torch.zeros_like(x), x - state["x_last"])
        weight = torch.clamp(1.0 / (t + 1).to(x.dtype), min=c.scale_alpha)
        scale = torch.where(first, c.initial_scale * x.abs(), state["x_scale"] + weight * (d.abs() - state["x_scale"]))
        level = torch.where(first, x, state["x_level"] + c.level_beta * (x - state["x_level"]))
        s = scale.clamp(min=_TINY)
        features = torch.stack([d / s, (x - level) / s], dim=-1).clamp(-c.clip, c.clip)  # (B, F)
        return features.float(), s, {"x_last": x, "x_scale": scale, "x_level": level}

    def sequence(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T) float64 from each series' start -> features (B, T, F) float32, scale (B, T)."""
        B, T = x.shape
        state = {k: torch.zeros(B, dtype=torch.float64, device=x.device) for k in self.state_spec()}
        feats, scales = [], []
        for i in range(T):
            t = torch.full((B,), i, dtype=torch.int64, device=x.device)
            f, s, state = self.step(x[:, i], t, state)
            feats.append(f)
            scales.append(s)
        return torch.stack(feats, dim=1), torch.stack(scales, dim=1)
