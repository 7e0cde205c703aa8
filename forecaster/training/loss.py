"""Training loss: absolute error of the point forecast plus pinball loss of each quantile.

For quantile level τ and error d = y - q, pinball(d) = max(τ d, (τ - 1) d); its minimiser is the
τ-quantile of y. Positions and horizons whose truth is unknown (NaN) are left out.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _losses(y: Tensor, target: Tensor, quantiles: tuple[float, ...]) -> tuple[Tensor, Tensor]:
    """Per (position, step) loss (…, H), zero where the truth is unknown, and the known mask."""
    known = ~torch.isnan(target)
    t = torch.nan_to_num(target)[..., None, :]  # (…, 1, H)
    tau = torch.tensor(quantiles, dtype=y.dtype, device=y.device)[:, None]  # (Q, 1)
    d = t - y[..., 1:, :]  # (…, Q, H)
    pinball = torch.maximum(tau * d, (tau - 1) * d).mean(dim=-2)  # (…, H)
    point = (t[..., 0, :] - y[..., 0, :]).abs()  # (…, H)
    return (point + pinball) * known, known


def forecast_loss(y: Tensor, target: Tensor, quantiles: tuple[float, ...]) -> Tensor:
    """y (…, 1 + Q, H) normalised outputs; target (…, H) with NaN for unknown -> scalar loss."""
    per, known = _losses(y, target, quantiles)
    return per.sum() / known.sum().clamp(min=1)


def step_mean(values: Tensor, known: Tensor) -> Tensor:
    """values (N, H) over N forecast origins -> the mean of each step ahead over the origins that
    know it, then over the steps: every step weighs the same. Held-out origins near the end of a
    span know only their first steps; pooled, those would speak for the short horizons alone."""
    counted = known.sum(0)
    return ((values * known).sum(0) / counted.clamp(min=1))[counted > 0].mean()


def horizon_loss(y: Tensor, target: Tensor, quantiles: tuple[float, ...]) -> Tensor:
    """As ``forecast_loss`` for forecasts (N, 1 + Q, H), but every step ahead weighs the same."""
    return step_mean(*_losses(y, target, quantiles))
