from __future__ import annotations

import torch

from forecaster.models import ScalerConfig
from forecaster.models.scaling import Scaler
from tests.conftest import random_walks


def test_features_are_scale_free() -> None:
    scaler = Scaler(ScalerConfig(), 4)
    x = torch.from_numpy(random_walks(3, 50))
    f, _, _, s = scaler.sequence(x)
    f_scaled, _, _, s_scaled = scaler.sequence(1000.0 * x)
    assert torch.allclose(f, f_scaled, atol=1e-5)
    assert torch.allclose(s_scaled, 1000.0 * s, rtol=1e-12)


def test_constant_and_zero_streams_give_finite_features() -> None:
    scaler = Scaler(ScalerConfig(), 4)
    x = torch.zeros(2, 10, dtype=torch.float64)
    x[1] = 5.0
    f, _, _, s = scaler.sequence(x)
    assert torch.isfinite(f).all() and (s > 0).all()
    assert (f == 0).all()


def test_outliers_are_clipped() -> None:
    scaler = Scaler(ScalerConfig(clip=3.0), 4)
    x = torch.tensor([[100.0, 100.1, 100.0, 1e6]], dtype=torch.float64)
    f, _, _, _ = scaler.sequence(x)
    assert f.abs().max() == 3.0


def test_lag_features_are_past_values_relative_to_now() -> None:
    scaler = Scaler(ScalerConfig(lags=3, clip=1e9), 4)
    x = torch.from_numpy(random_walks(2, 12, seed=5))
    f, _, _, s = scaler.sequence(x)
    assert f.shape == (2, 12, 5)
    for t in range(12):
        for j in range(1, 4):
            want = (x[:, t - j] - x[:, t]) / s[:, t] if t >= j else torch.zeros(2, dtype=torch.float64)
            assert torch.allclose(f[:, t, 1 + j].double(), want, atol=1e-5), (t, j)


def seasonal(n: int, T: int, period: int = 6, seed: int = 0) -> torch.Tensor:
    """Random walks plus a fixed seasonal shape of ``period``, crossing zero."""
    g = torch.Generator().manual_seed(seed)
    shape = 3.0 * torch.sin(2 * torch.pi * torch.arange(period, dtype=torch.float64) / period)
    return (
        torch.from_numpy(random_walks(n, T, seed=seed))
        - 100.0
        + shape.repeat(T // period + 1)[:T]
        + torch.randn(n, T, generator=g, dtype=torch.float64) * 0.01
    )


def test_seasonal_anchor_and_features_are_scale_equivariant_and_stay_finite_across_zero() -> None:
    scaler = Scaler(ScalerConfig(seasons=(3, 6)), 8)
    x = seasonal(3, 40)
    assert (x < 0).any() and (x > 0).any() or (x < 0).all()  # additive: the sign does not matter
    f, a, _, s = scaler.sequence(x)
    f2, a2, _, s2 = scaler.sequence(7.5 * x)
    assert f.shape == (3, 40, 2 + 1 + 8) and a.shape == (3, 40, 8)
    assert torch.isfinite(f).all() and torch.isfinite(a).all()
    assert torch.allclose(f, f2, atol=1e-5) and torch.allclose(a2, 7.5 * a, rtol=1e-9)


def test_a_pure_seasonal_stream_is_anchored_on_its_own_cycle() -> None:
    """The profile learns the cycle: the anchor repeats it, k steps ahead, ever more closely."""
    period, H = 6, 8
    cycle = torch.tensor([5.0, 7.0, 4.0, 9.0, 6.0, 3.0], dtype=torch.float64)
    x = cycle.repeat(40)[None, :]  # (1, 240)
    _, anchor, _, _ = Scaler(ScalerConfig(seasons=(period,), smooth_level=0.05, smooth_season=0.5), H).sequence(x)
    want = torch.stack([torch.stack([cycle[(t + k) % period] for k in range(1, H + 1)]) for t in range(240)])
    error = (anchor[0] - want).abs().amax(dim=1)  # (T,)
    assert error[period:].max() < 0.5  # the first cycle's profile is already close
    assert error[-period:].max() < 1e-3 < error[period]  # and converges


def test_a_multiplicative_profile_follows_the_level_where_an_additive_one_keeps_its_old_amplitude() -> None:
    """A cycle of ±50% around 1000, then the same cycle around 10: the factors carry over, the
    additive profile still swings by hundreds."""
    period, H = 6, 6
    cycle = torch.tensor([1.5, 1.0, 0.5, 1.5, 1.0, 0.5], dtype=torch.float64)
    x = torch.cat([1000.0 * cycle.repeat(10), 10.0 * cycle.repeat(5)])[None, :]
    weights = {"seasons": (period,), "smooth_level": 0.5, "smooth_season": 0.2}
    want = 10.0 * torch.stack([cycle[(len(x[0]) - 1 + k) % period] for k in range(1, H + 1)])
    _, mult, _, _ = Scaler(ScalerConfig(**weights, seasonal_form="multiplicative"), H).sequence(x)
    _, add, _, _ = Scaler(ScalerConfig(**weights), H).sequence(x)
    assert (mult[0, -1] - want).abs().max() < 2.0  # learnt at 1000, within 15% at 10 (the fall bent them)
    assert (add[0, -1] - want).abs().max() > 50.0


def test_multiplicative_factors_stay_bounded_and_finite_on_zeros_and_negative_values() -> None:
    scaler = Scaler(ScalerConfig(seasons=(3, 6), seasonal_form="multiplicative"), 8)
    x = torch.from_numpy(random_walks(3, 40, seed=2))
    x[0, 10:20] = 0.0  # all zero for a while
    x[1, 25:] *= -1  # the sign flips: the form was chosen on positive data, the stream left it
    f, a, _, s = scaler.sequence(x)
    assert torch.isfinite(f).all() and torch.isfinite(a).all() and (s > 0).all()
    f2, a2, _, _ = scaler.sequence(7.5 * x)
    assert torch.allclose(f, f2, atol=1e-5) and torch.allclose(a2, 7.5 * a, rtol=1e-9)


def _two_kinds_of_stream(period: int, n: int) -> torch.Tensor:
    """A cycle on a wandering level (a quick level weight forecasts it best) and the same cycle
    under noise around a fixed level (a slow one does)."""
    g = torch.Generator().manual_seed(0)
    cycle = 30 * torch.sin(2 * torch.pi * torch.arange(n) / period).double()
    wander = torch.cumsum(torch.randn(n, generator=g).double() * 10, 0)
    noise = torch.randn(n, generator=g).double() * 8
    return torch.stack([100 + wander + cycle, 100 + cycle + noise])


def test_each_stream_follows_the_level_weight_it_forecasts_best() -> None:
    period, H, n = 6, 8, 600
    x = _two_kinds_of_stream(period, n)
    single = {a: Scaler(ScalerConfig(seasons=(period,), smooth_level=a), H).sequence(x) for a in (0.05, 0.8)}
    chooser = Scaler(ScalerConfig(seasons=(period,), smooth_level=0.05, level_choices=(0.8,)), H)
    features, anchor, own, _ = chooser.sequence(x)
    assert chooser.level_weights == (0.05, 0.8)
    assert torch.equal(features, single[0.05][0]) and torch.equal(anchor, single[0.05][1])  # the network's: the set's
    assert torch.equal(own[:, : period + 1], anchor[:, : period + 1])  # nothing counted yet: the set's weight
    assert torch.equal(own[0, -1], single[0.8][1][0, -1])  # the wandering level: the quick weight
    assert torch.equal(own[1, -1], single[0.05][1][1, -1])  # the noisy one: the slow weight
    _, _, scaled, _ = chooser.sequence(3.5 * x)
    assert torch.allclose(scaled, 3.5 * own, rtol=1e-9)  # errors scale with x: the same choices


def test_level_choices_that_repeat_the_data_sets_weight_change_nothing() -> None:
    x = seasonal(3, 40)
    plain = Scaler(ScalerConfig(seasons=(3, 6), smooth_level=0.2), 8)
    same = Scaler(ScalerConfig(seasons=(3, 6), smooth_level=0.2, level_choices=(0.2,)), 8)
    assert same.state_spec() == plain.state_spec()
    assert all(torch.equal(a, b) for a, b in zip(same.sequence(x), plain.sequence(x), strict=True))


def test_a_trending_stream_follows_its_drift_and_a_level_one_does_not() -> None:
    period, H, n = 6, 8, 400
    t = torch.arange(n + H).double()
    g = torch.Generator().manual_seed(1)
    cycle = 10 * torch.sin(2 * torch.pi * t / period)
    noise = torch.randn(2, n + H, generator=g).double()
    x = torch.stack([100 + 2 * t + cycle, 100 + 0 * t + cycle]) + noise
    past, future = x[:, :n], x[:, n:]
    plain = Scaler(ScalerConfig(seasons=(period,), smooth_level=0.2, level_choices=(0.8,)), H)
    drifting = Scaler(ScalerConfig(seasons=(period,), smooth_level=0.2, level_choices=(0.8,), drift=True), H)
    assert drifting.drifted == (0, 1) and drifting.gives_own_forecast
    f, a, own, _ = drifting.sequence(past)
    f0, a0, own0, _ = plain.sequence(past)
    assert torch.equal(f, f0) and torch.equal(a, a0)  # the network's inputs and anchor: unchanged
    error = (own[:, -1] - future).abs().mean(dim=1)
    error0 = (own0[:, -1] - future).abs().mean(dim=1)
    assert error[0] < 0.7 * error0[0]  # the trend: the drift (half the slope, as Theta) forecasts it better
    assert torch.equal(own[1, -1], own0[1, -1])  # no trend: a candidate without drift is kept
    _, _, scaled, _ = drifting.sequence(4.0 * past)
    assert torch.allclose(scaled, 4.0 * own, rtol=1e-9)  # the slope scales with x: the same choices


def test_a_stream_on_a_straight_line_follows_the_whole_slope_when_offered_it() -> None:
    H, n = 8, 60
    t = torch.arange(n + H).double()
    noise = 0.5 * torch.randn(2, n + H, generator=torch.Generator().manual_seed(2)).double()
    x = torch.stack([100 + 3 * t, 100 + 0 * t]) + noise  # a short trending series, and a level one
    past, future = x[:, :n], x[:, n:]
    theta = Scaler(ScalerConfig(smooth_level=0.2, level_choices=(0.5,), drift=True), H)
    whole = Scaler(ScalerConfig(smooth_level=0.2, level_choices=(0.5,), drift=True, trend=True), H)
    assert whole.state_spec()["hw_error"].shape == (2 + 2 * 2,)  # each drifted weight, at each share of the slope
    own0, own = theta.sequence(past)[2], whole.sequence(past)[2]
    error0, error = ((o[:, -1] - future).abs().mean(dim=1) for o in (own0, own))
    assert error[0] < 0.3 * error0[0]  # half the slope lags a line by half its rise: the whole follows it
    assert error[1] < 1.2 * error0[1]  # no trend: nothing much to lose
    assert torch.allclose(whole.sequence(2.5 * past)[2], 2.5 * own, rtol=1e-9)  # the same choices, scaled


def test_no_level_weight_fast_enough_for_a_drift_leaves_the_state_as_it_was() -> None:
    x = seasonal(3, 40)
    plain = Scaler(ScalerConfig(seasons=(3, 6), smooth_level=0.01), 8)
    slow = Scaler(ScalerConfig(seasons=(3, 6), smooth_level=0.01, drift=True), 8)
    assert slow.drifted == () and not slow.gives_own_forecast
    assert slow.state_spec() == plain.state_spec()
    assert all(torch.equal(a, b) for a, b in zip(slow.sequence(x), plain.sequence(x), strict=True))
