"""Per-stream normalisation: raw values <-> scale-free model features, and the anchor the
model's forecasts are offsets from.

For each stream we track, in float64, the last value x_{t-1}, a scale s_t (mean absolute one-step
change: a running mean during warm-up, then an EMA) and an EMA level m_t. The model sees

    f_t = clip([ (x_t - x_{t-1}) / s_t ,  (x_t - m_t) / s_t ])

and its outputs y_k (k = 1..H) are read back as  a_{t,k} + s_t * y_k  around an anchor a. Without
seasons the anchor is the last value, a_{t,k} = x_t. Every statistic moves with the data, so values
× c (c > 0) gives forecasts × c exactly (up to rounding): the model never sees the price level
itself. The first observation of a stream seeds s with ``initial_scale`` × |x_0| as one
pseudo-observation. With ``lags`` = L > 0 the features also hold (x_{t-j} - x_t) / s_t for
j = 1..L (0 before the stream's start), from a ring buffer of the last L values.

With ``seasons`` (periods m, e.g. 24 and 168 for hourly data) the stream also carries additive
Holt-Winters state: a level l and one seasonal profile S_m per period (a ring of m values), with
global smoothing weights alpha (level) and gamma (seasons):

    e_t      = x_t - (l + sum_m S_m[t mod m])              one-step error of the smoothed forecast
    l       += alpha e_t                                    (l = x_0 at the start)
    S_m[t mod m] += g (x_t - l - sum_{m' != m} S_m' - S_m[t mod m]),   g = 1 on a phase's first visit, else gamma
    a_{t,k}  = l + sum_m S_m[(t + k) mod m]                 the anchor: the smoothed seasonal forecast

and the features gain e_t / s_t and (a_{t,k} - x_t) / s_t for k = 1..H: the network sees the
seasonal shape ahead and forecasts the deviation from it. A profile starts from its first cycle
(first visits take the value whole), so a new stream needs no per-series coefficients: the weights
are global, chosen per data set before training (``forecaster.training.seasonal``). Additive
seasons suit series that cross zero, and everything stays linear in x, so scale-equivariant.

The multiplicative form (``seasonal_form``, for data that is never negative) keeps factors F_m
instead, stored as F_m - 1 so that an empty ring is neutral:

    e_t      = x_t - l prod_m F_m[t mod m]
    l       += alpha (x_t / prod_m F_m[t mod m] - l)
    F_m[t mod m] += g (x_t / (l prod_{m' != m} F_m') - F_m[t mod m])     ratios bounded to [1/10, 10]
    a_{t,k}  = l prod_m F_m[(t + k) mod m]

so a profile follows the level (a series that falls tenfold keeps its shape, not its old swing).
Ratios are scale-free, so it is scale-equivariant too; the bound keeps a stream that leaves the
positive range (zeros, a sign change) finite.

With ``level_choices`` the stream carries K such states side by side, one per level weight
(``smooth_level`` first, then each choice; gamma shared). The network's anchor and features stay
those of the first; beside them the scaler gives the stream's *own* forecast, that of the weight
it forecasts best, as AutoETS fits a weight per series, but online, so a new stream still needs
no coefficients:

    E_j     = mean over t of  mean_k |x_t - a^j_{t-k,k}|,   k in {1, H/4, H/2, 3H/4, H}
    own_t   = a^j*_t,   j* = argmin_j E_j   (j* = 0 until anything is counted)

and the model blends it with the network's forecast (``ModelConfig.blend``, fitted on validation).
With ``drift`` the candidates j also include, for each level weight alpha from ``MIN_DRIFT_LEVEL``
up, the Theta method's forecast (simple smoothing with drift, as Hyndman and Billah showed it to
be): the same level and profiles, plus half the slope b_t of a straight line fitted to the
deseasonalised values by least squares discounted over ``ERROR_MEMORY`` horizons or cycles,

    drift_{t,k} = c b_t (k - 1 + (1 - (1 - alpha)^n) / alpha),     n = t + 1 values seen, c = 1/2
    a_{t,k} + drift_{t,k}  (additive),   (l + drift_{t,k}) prod_m F_m  (multiplicative)

and with ``trend`` also c = 1, the whole slope: a linear trend from the line's point now (simple
smoothing's level trails a line by b (1 / alpha - 1)), as Holt's method extrapolates, which
trending series with few values (yearly, quarterly) follow better than Theta's half.

Without seasons, ``level_choices`` or ``drift`` still give each stream its own forecast: the same
recursions with no profiles (simple exponential smoothing, and the Theta method with the drift),
while the network's anchor stays the last value. That is what yearly data gets (no season),
where the Theta method is strong.
The sums are kept relative to now (times u = s - t <= 0), so they stay bounded on an endless
stream: sum_s w_s u^i (i = 0, 1, 2; w_s = lambda^-u) per stream, and sum_s w_s d_s and
sum_s w_s u d_s per drifted weight.
Each candidate keeps the forecasts it made k steps ago in a delay line of k per tracked step (a
step reads only the one made k steps ago, so the engine gathers only that). Steps far ahead
count because the one-step error alone favours a level that chases the data, which forecasts
worse far ahead (M4 Hourly). Errors are counted once a forecast's origin is past the
first longest cycle, and the mean forgets over ``ERROR_MEMORY`` such spans, so a stream that
changes its ways can change its choice. Errors scale with x, so the choice is scale-free. The
same tracking (``track``) weighs the network's forecast against the stream's own
(``ModelConfig.blend_power``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from functools import cached_property, partial

import torch
from torch import Tensor

from forecaster.models.base import COUNTER, StateEntry, advance, init_state
from forecaster.models.config import ScalerConfig

_TINY = 1e-12  # floor of the scale, only reached by all-zero streams
_FACTOR = 10.0  # multiplicative factors stay within [1/10, 10]: a stream that leaves the positive range stays finite
ERROR_MEMORY = 10  # a candidate's tracked error averages over about this many horizons or longest cycles
# A slower level lags a trend by more than a short series can settle (1 / alpha steps), which the
# drift's 1 / alpha term would extrapolate: such weights get no drifted candidate.
MIN_DRIFT_LEVEL = 0.05


def _sum(parts: Iterable[Tensor]) -> Tensor | float:
    return sum(parts, 0.0)


def _product(parts: Iterable[Tensor]) -> Tensor | float:
    """The product of factors stored as f - 1 (so that an empty ring, all zeros, is neutral), minus 1."""
    total: Tensor | float = 1.0
    for i, p in enumerate(parts):
        total = total * (1 + p) if i else 1 + p
    return total - 1


def _phases_ahead(m: int, steps: tuple[int, ...], weights: int) -> tuple[tuple[int, ...], ...]:
    """Where in a stream's K rings of m, flattened (K * m), weight j at phase p now finds each step
    k ahead: j * m + (p + k) mod m, row j * m + p of a table made once, not per step."""
    return tuple(tuple(j * m + (p + k) % m for k in steps) for j in range(weights) for p in range(m))


def _factor(x: Tensor, base: Tensor) -> Tensor:
    """x / base as a stored factor (minus 1), bounded; 1 (stored 0) where base is zero."""
    ratio = torch.where(base.abs() > _TINY, x / torch.where(base.abs() > _TINY, base, 1.0), 1.0)
    return ratio.clamp(1 / _FACTOR, _FACTOR) - 1


class Scaler:
    """Stateless math; the per-stream statistics live in the state dict like the model's.
    ``horizon``: H, the steps ahead the anchor covers."""

    def __init__(self, config: ScalerConfig, horizon: int) -> None:
        self.config, self.horizon = config, horizon
        # Constants made once per device: a host-to-device copy at every step would wait for the device.
        self._constants: dict[tuple[Hashable, torch.device, torch.dtype], Tensor] = {}

    @property
    def n_features(self) -> int:
        return 2 + self.config.lags + (1 + self.horizon if self.config.seasons else 0)

    def state_spec(self) -> dict[str, StateEntry]:
        f64 = torch.float64
        spec = {"x_last": StateEntry((), f64), "x_scale": StateEntry((), f64), "x_level": StateEntry((), f64)}
        if self.config.lags:
            spec["x_lags"] = StateEntry((self.config.lags,), f64, ring_axis=0)  # x_{t-j} at slot (t - j) % L
        if self.smooths:
            K = len(self.level_weights)
            each = (K,) if K > 1 else ()  # one Holt-Winters state per level weight; a single one unwrapped
            spec["hw_level"] = StateEntry(each, f64)
            for m in self.config.seasons:
                spec[f"season_{m}"] = StateEntry((*each, m), f64, ring_axis=len(each))  # S_m[phase], phase = t % m
            D = len(self.drifted)
            if D:
                spec["hw_moments"] = StateEntry((3,), f64)  # sum_s w_s u^i, i = 0, 1, 2
                spec["hw_trend"] = StateEntry((D, 2), f64)  # sum_s w_s d_s, sum_s w_s u d_s
            if K + D > 1:
                spec |= self.tracking_spec("hw", K + D * len(self.slope_shares))
        return spec

    def tracking_spec(self, prefix: str, candidates: int) -> dict[str, StateEntry]:
        """The state ``track`` keeps for C forecasts of a stream: their errors E_j (C,) and, per
        tracked step k, the forecasts of each made k steps ago (``delay_spec``)."""
        return {f"{prefix}_error": StateEntry((candidates,), torch.float64), **self.delay_spec(prefix, candidates)}

    def delay_spec(self, prefix: str, rows: int) -> dict[str, StateEntry]:
        """Per tracked step k, ``rows`` values of a stream's forecast made k steps ago: a delay line of k."""
        return {
            f"{prefix}_ahead_{k}": StateEntry((rows, k), torch.float64, ring_axis=1, delay=True)  # f_{t-k,k}
            for k in self.tracked_steps
        }

    def made_ago(self, prefix: str, state: dict[str, Tensor]) -> Tensor:
        """The delay lines' heads (B, rows, S): at tracked step k, what was made k steps ago."""
        return torch.cat([state[f"{prefix}_ahead_{k}"][..., :1] for k in self.tracked_steps], dim=2)

    def made_now(self, prefix: str, ahead: Tensor) -> dict[str, Tensor]:
        """The delay lines' update from ``ahead`` (B, rows, S), made now for the tracked steps."""
        return {f"{prefix}_ahead_{k}": ahead[..., i] for i, k in enumerate(self.tracked_steps)}

    @cached_property
    def level_weights(self) -> tuple[float, ...]:
        """The Holt-Winters level weights a stream chooses among, the data set's choice first."""
        c = self.config
        return (c.smooth_level, *(a for a in dict.fromkeys(c.level_choices) if a != c.smooth_level))

    def _constant(self, name: Hashable, values: tuple | Callable[[], tuple], like: Tensor) -> Tensor:
        """``values`` (or what the function ``values`` makes, called once) as a tensor of
        ``like``'s device and dtype, made once per ``name``."""
        key = (name, like.device, like.dtype)
        if key not in self._constants:
            made = values() if callable(values) else values
            self._constants[key] = torch.tensor(made, dtype=like.dtype, device=like.device)
        return self._constants[key]

    @property
    def warm(self) -> int:
        """Observations before a tracked forecast's errors count: the first longest cycle (0 without seasons)."""
        return max(self.config.seasons, default=0)

    @property
    def memory(self) -> int:
        """Steps a stream's tracked errors and drift remember: ``ERROR_MEMORY`` horizons or longest cycles."""
        return ERROR_MEMORY * max(self.horizon, *self.config.seasons, 0)

    @cached_property
    def drifted(self) -> tuple[int, ...]:
        """The positions in ``level_weights`` of the weights that also forecast with a drift."""
        if not self.config.drift:
            return ()
        return tuple(j for j, a in enumerate(self.level_weights) if a >= MIN_DRIFT_LEVEL)

    @cached_property
    def slope_shares(self) -> tuple[float, ...]:
        """The shares c of the slope the drifted weights forecast with: Theta's half, and with ``trend`` the whole."""
        return (0.5, 1.0) if self.config.trend else (0.5,)

    @property
    def smooths(self) -> bool:
        """Whether the stream carries Holt-Winters state: seasons, or own level weights or a
        drift without them (simple exponential smoothing, the Theta method)."""
        c = self.config
        return bool(c.seasons or c.level_choices or c.drift)

    @property
    def gives_own_forecast(self) -> bool:
        """Whether a stream's own forecast can differ from the anchor (level choices or a drift;
        without seasons, any smoothed level differs from the last value)."""
        if not self.config.seasons:
            return self.smooths
        return len(self.level_weights) + len(self.drifted) > 1

    @cached_property
    def tracked_steps(self) -> tuple[int, ...]:
        """The steps ahead whose errors choose a stream's level weight."""
        H = self.horizon
        return tuple(sorted({1, max(1, H // 4), max(1, H // 2), max(1, 3 * H // 4), H}))

    def step(
        self, x: Tensor, t: Tensor, state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """x (B,) float64, t (B,) observations seen before -> features (B, F) float32, anchor
        (B, H) float64, the stream's own forecast (B, H: the anchor unless ``level_choices``),
        scale (B,), new state."""
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
        anchor = own = x[:, None].expand(-1, self.horizon)
        if self.smooths:
            error, smoothed, own, smoothing = self._holt_winters(x, t, state)
            update |= smoothing
            if c.seasons:  # the network forecasts around the seasonal anchor; without seasons, the last value
                anchor = smoothed
                columns += [error[:, None] / s[:, None], (anchor - x[:, None]) / s[:, None]]
        features = torch.cat(columns, dim=-1).clamp(-c.clip, c.clip)  # (B, F)
        return features.float(), anchor, own, s, update

    def _holt_winters(
        self, x: Tensor, t: Tensor, state: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """The seasonal recursions above: e_t (B,) and anchor (B, H) of the first level weight, the
        stream's own forecast (B, H), state update (levels, each ring's new entry, errors)."""
        c, first = self.config, (t == 0)[:, None]
        add = c.seasonal_form == "additive"
        combine = _sum if add else _product
        weights = self.level_weights
        B, K, H = len(x), len(weights), self.horizon
        alpha = self._constant("alpha", weights, x)
        xk = x[:, None].expand(B, K)  # every candidate j sees the same value: (B, K) below
        level_before = state["hw_level"].reshape(B, K)
        rings = {m: state[f"season_{m}"].reshape(B, K, m) for m in c.seasons}
        phase = {m: (t % m)[:, None, None].expand(B, K, 1) for m in c.seasons}
        now = {m: rings[m].gather(2, phase[m])[..., 0] for m in c.seasons}  # S_m[t mod m], (B, K)
        seasonal = combine(now.values())
        expected = torch.where(first, xk, level_before + seasonal if add else level_before * (1 + seasonal))
        error = xk - expected
        deseasonalised = xk - seasonal if add else xk / (1 + seasonal)
        level = torch.where(first, xk, level_before + alpha * (deseasonalised - level_before))
        for m in c.seasons:  # ascending periods: the short one takes the residual first
            others = [v for k, v in now.items() if k != m]
            target = xk - level - _sum(others) if add else _factor(xk, level * (1 + _product(others)))
            gain = torch.where((t < m)[:, None], 1.0, c.smooth_season).to(x.dtype)
            now[m] = now[m] + gain * (target - now[m])
        update = {"hw_level": level, **{f"season_{m}": now[m] for m in c.seasons}}
        if K == 1:
            update = {name: v[:, 0] for name, v in update.items()}
        full = tuple(range(1, H + 1))
        first_weight = self._constant("first weight", (0,), t).expand(B, 1)
        if K + len(self.drifted) == 1:  # one candidate: nothing to choose
            anchor = self._forecast(level, rings, now, t, full, first_weight)[0][:, 0]
            return error[:, 0], anchor, anchor, update
        if self.drifted:
            j = self._constant("drifted", self.drifted, t)
            slope, lag, trend = self._drift(deseasonalised[:, j], t, state)
            update |= trend
        # Every candidate forecasts only the tracked steps; the full horizon only the first and the chosen one.
        steps = self.tracked_steps
        every_weight = self._constant("every weight", tuple(range(K)), t).expand(B, K)
        ahead, growth = self._forecast(level, rings, now, t, steps, every_weight)  # (B, K, S)
        if self.drifted:
            drift = slope[..., None] * (self._constant("tracked", steps, x) - 1 + lag[..., None])  # (B, D, S)
            drift = drift if growth is None else drift * growth[:, j]
            ahead = torch.cat([ahead, *(ahead[:, j] + c * drift for c in self.slope_shares)], dim=1)
        # The candidates: each level weight, then each drifted one at each share of the slope.
        errors, tracked = self.track("hw", x, t, state, ahead)
        update |= tracked
        best = errors.argmin(dim=1, keepdim=True)  # ties (nothing counted yet): the first, the data set's choice
        drifted = self.drifted * len(self.slope_shares)
        chosen = self._constant("candidate weight", (*range(K), *drifted), t)[best]  # (B, 1)
        forecasts, growth = self._forecast(level, rings, now, t, full, torch.cat([first_weight, chosen], dim=1))
        own = forecasts[:, 1]
        if self.drifted:
            D = len(self.drifted)
            i = (best - K).clamp(min=0)  # the chosen drifted candidate, if the choice is one
            d, share = i % D, self._constant("slope shares", self.slope_shares, x)[i // D]  # its weight, its share
            drift = torch.where(best >= K, share * slope.gather(1, d), 0.0)
            drift = drift * (self._constant("full", full, x) - 1 + lag.gather(1, d))  # (B, H)
            own = own + (drift if growth is None else drift * growth[:, 1])
        return error[:, 0], forecasts[:, 0], own, update

    def track(
        self, prefix: str, x: Tensor, t: Tensor, state: dict[str, Tensor], ahead: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Errors E_j (B, C) of C forecasts of each stream, updated with x_t (B,) against the
        forecasts of it made k steps ago (in ``state``, see ``tracking_spec``); ``ahead``
        (B, C, S): the forecasts made now for the tracked steps. Returns the errors and the update."""
        misses = (x[:, None, None] - self.made_ago(prefix, state)).abs()  # (B, C, S): |x_t - f_{t-k,k}|
        errors = self.update_errors(state[f"{prefix}_error"], misses, t)
        return errors, {f"{prefix}_error": errors, **self.made_now(prefix, ahead)}

    def update_errors(self, errors: Tensor, misses: Tensor, t: Tensor) -> Tensor:
        """E (B, C) after x_t, from the misses |x_t - f_{t-k,k}| (B, C, S) of the forecasts made
        each tracked step k ago: their mean over the steps whose origin is past the first longest
        cycle, averaged in since then (1 / n), then over ``memory`` steps."""
        warm = self.warm
        total, counted = torch.zeros_like(errors), torch.zeros_like(t, dtype=errors.dtype)
        for i, k in enumerate(self.tracked_steps):
            known = (t - k >= warm).to(errors.dtype)  # its origin past the first longest cycle
            total = total + known[:, None] * misses[..., i]
            counted = counted + known
        n = (t - warm).clamp(min=1).to(errors.dtype)  # errors counted so far, this one included
        rate = torch.where(counted > 0, torch.clamp(1 / n, min=1 / self.memory), 0.0)[:, None]
        return errors + rate * (total / counted.clamp(min=1)[:, None] - errors)

    def _forecast(
        self,
        level: Tensor,
        rings: dict[int, Tensor],
        now: dict[int, Tensor],
        t: Tensor,
        steps: tuple[int, ...],
        weights: Tensor,
    ) -> tuple[Tensor, Tensor | None]:
        """Holt-Winters forecasts ``steps`` ahead by the states of the level weights at positions
        ``weights`` (B, J), from every weight's level (B, K), rings (B, K, m) before this step and
        their new entries (B, K) -> forecasts (B, J, S) and, of the multiplicative form, the
        seasonal growth they carry (B, J, S: the product of the factors; a drift is scaled by it)."""
        add = self.config.seasonal_form == "additive"
        (B, K), (J, S) = level.shape, (weights.shape[1], len(steps))
        chosen = level.gather(1, weights)[..., None]
        if not rings:  # simple exponential smoothing: the level, flat
            return chosen.expand(-1, -1, S), None
        profiles = []
        for m, ring in rings.items():
            # Phases ahead from the phase now, and which steps land on it again (those read the new entry).
            at = self._constant(("phases ahead", m, steps, K), partial(_phases_ahead, m, steps, K), t)  # (K * m, S)
            flat = at.index_select(0, (weights * m + (t % m)[:, None]).reshape(-1))  # (B * J, S) into (B, K * m)
            profile = ring.reshape(B, K * m).gather(1, flat.reshape(B, J * S)).reshape(B, J, S)
            wraps = [i for i, k in enumerate(steps) if k % m == 0]
            if wraps:
                profile[..., wraps] = now[m].gather(1, weights)[..., None]
            profiles.append(profile)
        # In place on the gathered profiles: a fresh (B, J, S) tensor per operation costs page faults.
        if add:
            total = profiles[0]
            for p in profiles[1:]:
                total.add_(p)
            return total.add_(chosen), None
        growth = profiles[0].add_(1)
        for p in profiles[1:]:
            growth.mul_(p.add_(1))
        return growth * chosen, growth

    def _drift(self, d: Tensor, t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """The deseasonalised values of the drifted weights (B, D) -> the slope b_t and
        the lag (1 - (1 - alpha)^n) / alpha of each (B, D), and the discounted sums' update."""
        lam = 1 - 1 / self.memory
        m0, m1, m2 = state["hw_moments"].unbind(-1)  # time moves on by one: every u becomes u - 1
        m0, m1, m2 = lam * m0 + 1, lam * (m1 - m0), lam * (m2 - 2 * m1 + m0)
        sums = state["hw_trend"].reshape(len(d), -1, 2)
        sum_d, sum_ud = lam * sums[..., 0] + d, lam * (sums[..., 1] - sums[..., 0])
        det = (m0 * m2 - m1**2)[:, None]  # 0 until two values are seen
        slope = torch.where(det > _TINY, (m0[:, None] * sum_ud - m1[:, None] * sum_d) / det.clamp(min=_TINY), 0.0)
        alpha = self._constant("drifted alpha", tuple(self.level_weights[j] for j in self.drifted), d)
        n = (t + 1).to(d.dtype)[:, None]
        lag = (1 - (1 - alpha) ** n) / alpha  # (B, D): how far simple smoothing's level trails a line
        moments = torch.stack([m0, m1, m2], dim=-1)
        return slope, lag, {"hw_moments": moments, "hw_trend": torch.stack([sum_d, sum_ud], dim=-1)}

    def sequence(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x (B, T) float64 from each series' start -> features (B, T, F) float32, anchor and
        own forecast (B, T, H) float64, scale (B, T)."""
        B, T = x.shape
        spec = self.state_spec()
        state = init_state(spec, B, x.device)
        feats, anchors, owns, scales = [], [], [], []
        for i in range(T):
            f, a, own, s, update = self.step(x[:, i], state[COUNTER], state)
            state = advance(spec, state, update)
            feats.append(f)
            anchors.append(a)
            owns.append(own)
            scales.append(s)
        return (*(torch.stack(v, dim=1) for v in (feats, anchors, owns)), torch.stack(scales, dim=1))
