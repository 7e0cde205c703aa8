"""Training loss: absolute error of the point forecast plus pinball loss of each quantile.

For quantile level τ and error d = y - q, pinball(d) = max(τ d, (τ - 1) d); its minimiser is the
τ-quantile of y. Positions and horizons whose truth is unknown (NaN) are left out.
"""

from __future__ import annotations

import torch
from torch import Tensor


def forecast_loss(y: Tensor, target: Tensor, quantiles: tuple[float, ...]) -> Tensor:
    """y (…, 1 + Q, H) normalised outputs; target (…, H) with NaN for unknown -> scalar loss."""
    known = ~torch.isnan(target)
    t = torch.nan_to_num(target)[..., None, :]  # (…, 1, H)
    tau = torch.tensor(quantiles, dtype=y.dtype, device=y.device)[:, None]  # (Q, 1)
    d = t - y[..., 1:, :]  # (…, Q, H)
    pinball = torch.maximum(tau * d, (tau - 1) * d).mean(dim=-2)  # (…, H)
    point = (t[..., 0, :] - y[..., 0, :]).abs()  # (…, H)
    per = (point + pinball) * known
    return per.sum() / known.sum().clamp(min=1)
