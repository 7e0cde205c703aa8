"""A forecasting model: per-stream scaling -> a family's core -> a multi-horizon quantile head.

    features = scaler(x)                    scale-free inputs, see ``scaling``
    h        = core(features)               RNN | LSTM | GRU | Transformer, see ``base``
    y        = head(h)  -> (1 + Q, H)       row 0: point forecast; rows 1..Q: quantiles (sorted)
    forecast = a_t + s_t * y                back in the stream's units, around the scaler's anchor
                                            (the last value, or the seasonal forecast with seasons)

``step`` and ``forward`` are the streaming and the sequence forms of the same function.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from forecaster.models.base import COUNTER, State, StateEntry, StreamingCore
from forecaster.models.config import Family, ModelConfig
from forecaster.models.gru import GRU
from forecaster.models.lstm import LSTM
from forecaster.models.rnn import RNN
from forecaster.models.scaling import Scaler
from forecaster.models.transformer import Transformer

CORES: dict[Family, type[StreamingCore]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU, "transformer": Transformer}


def widen(quantiles: Tensor, factor: float) -> Tensor:
    """Quantiles (…, Q, H) spread by ``factor`` about the midpoint of the outermost two."""
    if factor == 1.0:
        return quantiles
    mid = (quantiles[..., :1, :] + quantiles[..., -1:, :]) / 2
    return mid + factor * (quantiles - mid)


class ForecastModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.scaler = Scaler(config.scaler, config.horizon)
        self.core = CORES[config.family](config, self.scaler.n_features)
        self.head = nn.Linear(config.d_model, (1 + len(config.quantiles)) * config.horizon)

    def state_spec(self) -> dict[str, StateEntry]:
        """Per-stream state: the scaler's statistics and the core's recurrent state or cache."""
        return {**self.scaler.state_spec(), **self.core.state_spec()}

    def read_out(self, h: Tensor) -> Tensor:
        """h (…, D) -> normalised forecasts (…, 1 + Q, H); quantiles sorted so they never cross,
        and spread about the middle of the outer band by the calibrated ``interval_scale``."""
        c = self.config
        y = self.head(h).unflatten(-1, (1 + len(c.quantiles), c.horizon))
        return torch.cat([y[..., :1, :], widen(y[..., 1:, :].sort(dim=-2).values, c.interval_scale)], dim=-2)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One observation per stream: x (B,) float64 -> forecasts (B, 1 + Q, H) float64, state update."""
        features, anchor, s, scaler_state = self.scaler.step(x, state[COUNTER], state)
        h, core_state = self.core.step(features, state)
        y = self.read_out(h).double()
        return anchor[:, None, :] + s[:, None, None] * y, {**scaler_state, **core_state}

    def forward(self, x: Tensor) -> Tensor:
        """Whole series from their first observation: x (B, T) float64 -> forecasts (B, T, 1 + Q, H)."""
        features, anchor, s = self.scaler.sequence(x)
        y = self.read_out(self.core(features)).double()
        return anchor[..., None, :] + s[..., None, None] * y
