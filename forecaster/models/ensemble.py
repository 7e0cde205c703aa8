"""Seed ensembles: K networks of one family, trained apart, stepped together as one model.

The members share a stream's scaler state (the same features, anchor and scale) and each keeps
its own recurrent state or cache, named ``m0.h``, ``m1.h``, … beside the scaler's; each has its
own head. ``ForecastModel.read_out`` averages their forecasts (points, and each quantile level)
before the band is widened by the ensemble's own calibrated factor. Every leading M4 entry
averaged several networks; on M4 Hourly three LSTM seeds averaged beat each of them
(docs/ACCURACY.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from forecaster.models.base import COUNTER, State, StateEntry, StreamingCore


class Members(StreamingCore):
    """K cores side by side: features (…, F) -> hidden (…, K, D)."""

    def __init__(self, cores: list[StreamingCore]) -> None:
        super().__init__()
        self.members = nn.ModuleList(cores)

    def state_spec(self) -> dict[str, StateEntry]:
        return {f"m{i}.{k}": e for i, core in enumerate(self.members) for k, e in core.state_spec().items()}

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([core(x) for core in self.members], dim=-2)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        hidden, update = [], {}
        for i, core in enumerate(self.members):
            prefix = f"m{i}."
            own = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            h, new = core.step(x, {**own, COUNTER: state[COUNTER]})
            hidden.append(h)
            update |= {prefix + k: v for k, v in new.items()}
        return torch.stack(hidden, dim=-2), update


class MemberHeads(nn.Module):
    """One linear head per member: hidden (…, K, D) -> (…, K, out)."""

    def __init__(self, heads: list[nn.Linear]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, h: Tensor) -> Tensor:
        return torch.stack([head(h[..., i, :]) for i, head in enumerate(self.heads)], dim=-2)
