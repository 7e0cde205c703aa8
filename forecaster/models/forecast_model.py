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

With ``band_rate`` r > 0 each stream also widens or narrows its own band, online, as adaptive
conformal inference does (Gibbs and Candès, 2021), so that it covers its nominal share c (0.8
for 0.1–0.9) of the stream's values, however far that stream is from the data the band was
calibrated on:

    u_t  = u_{t-1} + r (miss_t - (1 - c))      u = 0 at the start; bounded to ±log 10
    band = mid + e^{u_t} (q - mid)             mid: the middle of the outer band

where miss_t is the share of the bands made k steps ago (k: the tracked steps) that x_t fell
outside, counted once their origin is past the first longest cycle. A band that misses more than
1 - c of the time widens, one that misses less narrows; a miss is the same at any scale, so the
forecasts stay scale-equivariant.

``step`` and ``forward`` are the streaming and the sequence forms of the same function. With
``members`` K > 1 the core and the head are K networks side by side (``ensemble``) and y is the
mean of their forecasts.
"""

from __future__ import annotations

import math

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


BAND_LIMIT = math.log(10.0)  # a stream's band stays within 1/10 and 10 times the calibrated one
MAX_NETWORK_ROWS = 8  # more quantile levels than this: torch.sort (the network's passes grow as Q²)


def sort_rows(q: Tensor) -> Tensor:
    """q (…, Q, H) with each column sorted along the Q rows. Serving a few quantile levels, an
    odd-even transposition network (Q passes of element-wise min / max over row pairs): torch.sort
    sorts each of the B × H tiny columns on its own, 2.5 times slower at 10k streams × 3 × 48.
    Where gradients flow (training), torch.sort: its backward is one scatter, the network's a
    chain of masks (1.6 times slower)."""
    if q.shape[-2] > MAX_NETWORK_ROWS or (q.requires_grad and torch.is_grad_enabled()):
        return q.sort(dim=-2).values
    rows = list(q.unbind(-2))
    for p in range(len(rows)):
        for i in range(p % 2, len(rows) - 1, 2):
            rows[i], rows[i + 1] = torch.minimum(rows[i], rows[i + 1]), torch.maximum(rows[i], rows[i + 1])
    return torch.stack(rows, dim=-2)


def widen(quantiles: Tensor, factor: Tensor | float) -> Tensor:
    """Quantiles (…, Q, H) spread by ``factor`` (a number, or one per row (…, 1, 1)) about the
    midpoint of the outermost two."""
    if isinstance(factor, float) and factor == 1.0:
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
        steps = self.scaler.tracked_steps if config.blend_power or config.band_rate else ()
        self.register_buffer("tracked", torch.tensor([k - 1 for k in steps], dtype=torch.long), persistent=False)

    def state_spec(self) -> dict[str, StateEntry]:
        """Per-stream state: the scaler's statistics, the core's recurrent state or cache, and
        what the outputs track (``output_spec``)."""
        return {**self.scaler.state_spec(), **self.core.state_spec(), **self.output_spec()}

    def output_spec(self) -> dict[str, StateEntry]:
        """The state of the outputs' own recursions: with ``blend_power`` the network's and the
        own forecast's tracked errors; with ``band_rate`` the log width u and, per tracked step
        k, the band's outer quantiles made k steps ago (a delay line of k)."""
        spec = self.scaler.tracking_spec("blend", 2) if self.config.blend_power else {}
        if self.config.band_rate:
            spec |= {"band_width": StateEntry((), torch.float64), **self.scaler.delay_spec("band", 2)}
        return spec

    def read_out(self, h: Tensor, width: Tensor | None = None) -> Tensor:
        """h (…, D), or (…, K, D) for K members -> normalised forecasts (…, 1 + Q, H); quantiles
        sorted so they never cross, and spread about the middle of the outer band by the
        calibrated ``interval_scale`` (times each stream's own ``width`` (…), if given)."""
        c = self.config
        y = self.head(h).unflatten(-1, (1 + len(c.quantiles), c.horizon))  # (…, [K,] 1 + Q, H)
        point, quantiles = y[..., :1, :], sort_rows(y[..., 1:, :])
        if c.members > 1:  # the members' mean, of the points and of each quantile level
            point, quantiles = point.mean(dim=-3), quantiles.mean(dim=-3)
        spread = c.interval_scale if width is None else c.interval_scale * width[..., None, None].float()
        return torch.cat([point, widen(quantiles, spread)], dim=-2)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One observation per stream: x (B,) float64 -> forecasts (B, 1 + Q, H) float64, state update."""
        t = state[COUNTER]
        features, anchor, own, s, update = self.scaler.step(x, t, state)
        h, core_state = self.core.step(features, state)
        forecast, outputs = self._outputs(x, t, state, anchor, own, s, h)
        return forecast, update | core_state | outputs

    def forward(self, x: Tensor) -> Tensor:
        """Whole series from their first observation: x (B, T) float64 -> forecasts (B, T, 1 + Q, H)."""
        features, anchor, own, s = self.scaler.sequence(x)
        h = self.core(features)
        spec = self.output_spec()
        if not spec:
            return self._forecast(self.read_out(h), anchor, own, s, self.config.blend)
        state, forecasts = init_state(spec, len(x), x.device), []
        for i in range(x.shape[1]):  # the outputs' recursions, step by step as they stream
            f, update = self._outputs(x[:, i], state[COUNTER], state, anchor[:, i], own[:, i], s[:, i], h[:, i])
            state = advance(spec, state, update)
            forecasts.append(f)
        return torch.stack(forecasts, dim=1)

    def _outputs(
        self, x: Tensor, t: Tensor, state: State, anchor: Tensor, own: Tensor, s: Tensor, h: Tensor
    ) -> tuple[Tensor, State]:
        """The core's output h after x_t -> forecasts (B, 1 + Q, H) in the stream's units, blended
        and with each stream's band, and the update of ``output_spec``'s state."""
        c, update = self.config, {}
        width = None
        if c.band_rate:
            u = self._band_width(x, t, state)
            width, update = u.exp(), {"band_width": u}
        y = self.read_out(h, width)
        share: Tensor | float = c.blend
        if c.blend_power:
            share, tracked = self._share(x, t, state, anchor, own, s, y[:, 0])
            update |= tracked
        forecast = self._forecast(y, anchor, own, s, share)
        if c.band_rate:  # the outer band at the tracked steps joins the delay lines
            update |= self.scaler.made_now("band", forecast.index_select(2, self.tracked)[:, [1, -1]])
        return forecast, update

    def _band_width(self, x: Tensor, t: Tensor, state: State) -> Tensor:
        """Each stream's log width u_t (B,) after x_t (see above), from the bands made k steps ago."""
        c = self.config
        made = self.scaler.made_ago("band", state)  # (B, 2, S): the outer band made k steps ago
        known = t[:, None] - (self.tracked + 1) >= self.scaler.warm  # (B, S)
        miss = ((x[:, None] < made[:, 0]) | (x[:, None] > made[:, 1])) & known
        n = known.sum(dim=1)
        off = miss.sum(dim=1) / n.clamp(min=1) - (1 - (c.quantiles[-1] - c.quantiles[0]))
        return (state["band_width"] + c.band_rate * torch.where(n > 0, off, 0.0)).clamp(-BAND_LIMIT, BAND_LIMIT)

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
