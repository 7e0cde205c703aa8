"""A forecasting model: per-stream scaling -> a family's core -> a multi-horizon quantile head.

    features = scaler(x)                    scale-free inputs, see ``scaling``
    h        = core(features)               RNN | LSTM | GRU | Transformer, see ``base``
    y        = head(h)  -> (1 + Q, H)       row 0: point forecast; rows 1..Q: quantiles (sorted)
    forecast = a_t + s_t * y                back in the stream's units, around the scaler's anchor
                                            (the last value, or the seasonal forecast with seasons)

With ``blend`` v > 0 (fitted on the validation span after training) the forecast is a
combination, (1 - v) (a_t + s_t y) + v o_t, with o_t the stream's own Holt-Winters forecast at
the level weight that stream forecasts best (``ScalerConfig.level_choices``): a forecast fitted
per stream beside one learnt across streams, as the leading M4 entries combined. With
``blend_power`` p > 0 each stream has its own share instead, from how well each of the two has
forecast it lately (errors tracked as the scaler tracks its candidates', ``Scaler.track``):

    v_t = E_net^p / (E_net^p + E_own^p)      (v until any error is counted)

so a stream whose own forecast does well leans on it and one that it fails leans on the network.

``step`` and ``forward`` are the streaming and the sequence forms of the same function. With
``members`` K > 1 the core and the head are K networks side by side (``ensemble``) and y is the
mean of their forecasts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from forecaster.models.base import COUNTER, State, StateEntry, StreamingCore, advance, init_state
from forecaster.models.config import Family, ModelConfig
from forecaster.models.ensemble import MemberHeads, Members
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
        width = (1 + len(config.quantiles)) * config.horizon
        self.core: StreamingCore
        self.head: nn.Module
        if config.members == 1:
            self.core = CORES[config.family](config, self.scaler.n_features)
            self.head = nn.Linear(config.d_model, width)
        else:  # a seed ensemble (forecaster.models.ensemble)
            self.core = Members([CORES[config.family](config, self.scaler.n_features) for _ in range(config.members)])
            self.head = MemberHeads([nn.Linear(config.d_model, width) for _ in range(config.members)])
        if config.blend_power and not self.scaler.gives_own_forecast:
            raise ValueError("blend_power needs each stream's own forecast: seasons, and level_choices or drift")
        # The positions of the tracked steps in a forecast (a buffer: it moves to the model's device once).
        tracked = torch.tensor([k - 1 for k in self.scaler.tracked_steps]) if config.blend_power else torch.zeros(0)
        self.register_buffer("tracked", tracked.long(), persistent=False)

    def state_spec(self) -> dict[str, StateEntry]:
        """Per-stream state: the scaler's statistics, the core's recurrent state or cache and,
        with ``blend_power``, the network's and the own forecast's tracked errors."""
        spec = {**self.scaler.state_spec(), **self.core.state_spec()}
        if self.config.blend_power:
            spec |= self.scaler.tracking_spec("blend", 2)
        return spec

    def read_out(self, h: Tensor) -> Tensor:
        """h (…, D), or (…, K, D) for K members -> normalised forecasts (…, 1 + Q, H); quantiles
        sorted so they never cross, and spread about the middle of the outer band by the
        calibrated ``interval_scale``."""
        c = self.config
        y = self.head(h).unflatten(-1, (1 + len(c.quantiles), c.horizon))  # (…, [K,] 1 + Q, H)
        point, quantiles = y[..., :1, :], y[..., 1:, :].sort(dim=-2).values
        if c.members > 1:  # the members' mean, of the points and of each quantile level
            point, quantiles = point.mean(dim=-3), quantiles.mean(dim=-3)
        return torch.cat([point, widen(quantiles, c.interval_scale)], dim=-2)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One observation per stream: x (B,) float64 -> forecasts (B, 1 + Q, H) float64, state update."""
        t = state[COUNTER]
        features, anchor, own, s, update = self.scaler.step(x, t, state)
        h, core_state = self.core.step(features, state)
        y = self.read_out(h)
        update |= core_state
        share: Tensor | float = self.config.blend
        if self.config.blend_power:
            share, tracked = self._share(x, t, state, anchor, own, s, y[:, 0])
            update |= tracked
        return self._forecast(y, anchor, own, s, share), update

    def forward(self, x: Tensor) -> Tensor:
        """Whole series from their first observation: x (B, T) float64 -> forecasts (B, T, 1 + Q, H)."""
        features, anchor, own, s = self.scaler.sequence(x)
        y = self.read_out(self.core(features))
        share: Tensor | float = self.config.blend
        if self.config.blend_power:  # the streaming recursion, step by step
            spec = self.scaler.tracking_spec("blend", 2)
            state, shares = init_state(spec, len(x), x.device), []
            for i in range(x.shape[1]):
                v, update = self._share(x[:, i], state[COUNTER], state, anchor[:, i], own[:, i], s[:, i], y[:, i, 0])
                state = advance(spec, state, update)
                shares.append(v)
            share = torch.stack(shares, dim=1)
        return self._forecast(y, anchor, own, s, share)

    def _share(
        self, x: Tensor, t: Tensor, state: State, anchor: Tensor, own: Tensor, s: Tensor, point: Tensor
    ) -> tuple[Tensor, State]:
        """Each stream's share of its own forecast (B,) after x_t, from the tracked errors of the
        network's point forecasts (anchor (B, H) + s (B,) × point (B, H)) and its own (B, H), made
        now, and the tracking's update."""
        at = self.tracked
        network = anchor.index_select(1, at) + s[:, None] * point.index_select(1, at).double()
        ahead = torch.stack([network, own.index_select(1, at)], dim=1)  # (B, 2, S)
        errors, update = self.scaler.track("blend", x, t, state, ahead)
        return own_share(errors, self.config.blend_power, self.config.blend), update

    def _forecast(self, y: Tensor, anchor: Tensor, own: Tensor, s: Tensor, share: Tensor | float) -> Tensor:
        """Normalised outputs (…, 1 + Q, H) -> forecasts in the stream's units, blended with the
        own forecast by ``share`` (a number, or one per stream (…))."""
        if isinstance(share, float):
            v: Tensor | float = share
            if not v:
                return anchor[..., None, :] + s[..., None, None] * y.double()
        else:
            v = share[..., None]
        base = anchor + v * (own - anchor)
        return base[..., None, :] + ((1 - v) * s[..., None])[..., None] * y.double()


def own_share(errors: Tensor, power: float, fallback: float) -> Tensor:
    """The share of each stream's own forecast from the errors (…, 2) of the network's and its
    own: E_net^p / (E_net^p + E_own^p); ``fallback`` where neither has any. Taken as
    1 / (1 + (E_own / E_net)^p), which no stream's magnitude can overflow."""
    net, own = errors.unbind(-1)
    share = 1 / (1 + (own / net) ** power)  # E_net = 0 < E_own: 1 / inf = 0
    return torch.where(net + own > 0, share, fallback)


def ensemble_of(models: list[ForecastModel]) -> ForecastModel:
    """One model that steps ``models`` (one config, trained apart) together and averages their
    forecasts; its blend and band are unfitted (``blend`` and ``blend_power`` 0, ``interval_scale``
    1) until fitted as a whole."""
    configs = {m.config.model_copy(update={"blend": 0.0, "blend_power": 0.0, "interval_scale": 1.0}) for m in models}
    if len(configs) != 1 or models[0].config.members != 1:
        raise ValueError("an ensemble's members must be single models of one config")
    out = ForecastModel(configs.pop().model_copy(update={"members": len(models)}))
    for i, m in enumerate(models):
        out.core.members[i].load_state_dict(m.core.state_dict())
        out.head.heads[i].load_state_dict(m.head.state_dict())
    return out.eval()
