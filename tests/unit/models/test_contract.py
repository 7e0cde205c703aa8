"""The streaming contract, checked identically for every family (see forecaster/models/base.py)."""

from __future__ import annotations

import pytest
import torch

from forecaster.models import ForecastModel, ModelConfig, advance, init_state
from forecaster.models.forecast_model import sort_rows
from tests.conftest import random_walks

SMALL = {"d_model": 16, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "window": 8, "d_ff": 32, "horizon": 5}


def make(family: str, **overrides) -> ForecastModel:
    torch.manual_seed(0)
    return ForecastModel(ModelConfig(family=family, **{**SMALL, **overrides})).eval()


def stepwise(model: ForecastModel, x: torch.Tensor) -> torch.Tensor:
    spec = model.state_spec()
    state = init_state(spec, x.shape[0])
    out = []
    for i in range(x.shape[1]):
        y, update = model.step(x[:, i], state)
        state = advance(spec, state, update)
        out.append(y)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("window", [2, 8, 64])
def test_step_through_series_equals_sequence_forward(family: str, window: int) -> None:
    model = make(family, window=window)
    x = torch.from_numpy(random_walks(4, 3 * window + 5, seed=1))  # long enough to wrap the ring buffer
    with torch.no_grad():
        seq, step = model(x), stepwise(model, x)
    assert seq.shape == (4, x.shape[1], 1 + 3, 5)
    assert (seq - step).abs().max().item() <= 1e-5


def test_lag_features_keep_step_equal_to_sequence(family: str) -> None:
    from forecaster.models import ScalerConfig

    model = make(family, scaler=ScalerConfig(lags=5))
    x = torch.from_numpy(random_walks(3, 23, seed=4))  # the 5-slot ring wraps several times
    with torch.no_grad():
        assert (model(x) - stepwise(model, x)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("form", ["additive", "multiplicative"])
@pytest.mark.parametrize(
    (
        "own",
        "power",
    ),  # none; a stream's own forecast (level weights, then a drift too) blended by one share, or its own
    [({}, 0.0), ({"level_choices": (0.05, 0.8)}, 0.0), ({"level_choices": (0.05, 0.8), "drift": True}, 0.0)]
    + [({"level_choices": (0.05, 0.8), "drift": True, "trend": True}, 2.0)],
)
def test_seasonal_state_keeps_step_equal_to_sequence(family: str, form: str, own: dict, power: float) -> None:
    from forecaster.models import ScalerConfig

    scaler = ScalerConfig(seasons=(3, 7), lags=4, seasonal_form=form, **own)
    model = make(family, scaler=scaler, blend=0.3, blend_power=power)  # without own forecasts: towards the anchor
    x = torch.from_numpy(random_walks(3, 40, seed=6))  # both rings wrap several times
    with torch.no_grad():
        assert (model(x) - stepwise(model, x)).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "own", [{"level_choices": (0.05, 0.8)}, {"level_choices": (0.2,)}, {"drift": True}, {"drift": True, "trend": True}]
)
def test_own_forecasts_without_seasons_keep_step_equal_to_sequence_and_scale(family: str, own: dict) -> None:
    from forecaster.models import ScalerConfig

    model = make(family, scaler=ScalerConfig(smooth_level=0.2, **own), blend=0.3, blend_power=2.0, band_rate=0.05)
    x = torch.from_numpy(random_walks(3, 40, seed=7))
    with torch.no_grad():
        seq = model(x)
        assert (seq - stepwise(model, x)).abs().max().item() <= 1e-5
        assert torch.allclose(model(x * 7.5), 7.5 * seq, rtol=1e-6, atol=1e-6)
    _, anchor, own_forecast, _ = model.scaler.sequence(x)
    assert torch.equal(anchor[..., 0], x)  # without seasons the network's anchor is the last value
    assert not torch.equal(own_forecast, anchor)  # and the stream's own forecast is smoothed


@pytest.mark.parametrize("own", [{"level_choices": (0.05, 0.8), "drift": True}, {}])
def test_a_blended_forecast_is_the_networks_and_the_streams_own_in_proportion(family: str, own: dict) -> None:
    from forecaster.models import ScalerConfig

    scaler = ScalerConfig(seasons=(3, 7), seasonal_form="multiplicative", **own)
    network, blended = make(family, scaler=scaler), make(family, scaler=scaler, blend=0.3)
    x = torch.from_numpy(random_walks(3, 40, seed=6))
    _, anchor, own_forecast, _ = network.scaler.sequence(x)
    assert torch.equal(own_forecast, anchor) == (not own)  # without own forecasts the blend pulls towards the anchor
    with torch.no_grad():
        want = 0.7 * network(x) + 0.3 * own_forecast[..., None, :]  # the point and every quantile
        assert torch.allclose(blended(x), want, rtol=1e-9, atol=1e-9)


def test_each_stream_leans_on_the_forecast_that_has_served_it_better(family: str) -> None:
    from forecaster.models import ScalerConfig
    from forecaster.models.forecast_model import own_share

    scaler = ScalerConfig(seasons=(7,), seasonal_form="multiplicative", level_choices=(0.05, 0.8))
    network, own_only = make(family, scaler=scaler), make(family, scaler=scaler, blend=1.0)
    per_stream = make(family, scaler=scaler, blend=0.3, blend_power=2.0)
    t = torch.arange(60, dtype=torch.float64)
    cycle = 100 * (1 + 0.3 * torch.sin(2 * torch.pi * t / 7))  # what its own forecast learns exactly
    walk = torch.from_numpy(random_walks(1, 60, seed=3))[0]  # an untrained network can do no worse
    with torch.no_grad():
        out = per_stream(torch.stack([cycle, walk]))
        assert torch.allclose(out[0, -1], own_only(cycle[None])[0, -1], rtol=1e-3)
        assert not torch.allclose(out[0, -1], network(cycle[None])[0, -1], rtol=1e-3)
    share = own_share(torch.tensor([[2.0, 1.0], [1.0, 2.0], [0.0, 0.0]]), 2.0, 0.3)
    assert torch.allclose(share, torch.tensor([0.8, 0.2, 0.3]))  # 4 / (4 + 1); before any error: blend
    huge = own_share(torch.tensor([[2e200, 1e200], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64), 4.0, 0.3)
    assert torch.allclose(huge, torch.tensor([16 / 17, 0.0, 1.0], dtype=torch.float64))  # no overflow, either alone


@pytest.mark.parametrize("own", [{}, {"seasons": (3, 7), "level_choices": (0.05, 0.8), "drift": True, "trend": True}])
def test_each_streams_band_keeps_step_equal_to_sequence(family: str, own: dict) -> None:
    from forecaster.models import ScalerConfig

    blend = {"blend": 0.3, "blend_power": 2.0} if own else {}
    model = make(family, scaler=ScalerConfig(**own), band_rate=0.1, **blend)
    x = torch.from_numpy(random_walks(3, 40, seed=6))  # every delay line wraps several times
    with torch.no_grad():
        adapted, fixed = model(x), make(family, scaler=ScalerConfig(**own), **blend)(x)
        assert (adapted - stepwise(model, x)).abs().max().item() <= 1e-5
    # The points are the network's alone (to float32 rounding: the head reads one step at a time).
    assert torch.allclose(adapted[..., 0, :], fixed[..., 0, :], rtol=1e-6, atol=0)
    assert not torch.allclose(adapted, fixed)


def band_coverage(out: torch.Tensor, x: torch.Tensor, steps: tuple[int, ...], last: int) -> float:
    """The share of the last ``last`` values inside the 0.1-0.9 band made k steps before, over ``steps``."""
    T, inside = x.shape[1], []
    for k in steps:
        lo, hi = out[:, T - last - k : T - k, 1, k - 1], out[:, T - last - k : T - k, -1, k - 1]
        inside.append(((x[:, T - last :] >= lo) & (x[:, T - last :] <= hi)).double().mean())
    return float(torch.stack(inside).mean())


@pytest.mark.parametrize("scale", [3.0, 30.0])  # bands far too narrow, then far too wide
def test_each_stream_moves_its_band_towards_the_nominal_coverage(family: str, scale: float) -> None:
    x = torch.from_numpy(random_walks(8, 800, seed=9))
    fixed, adapted = make(family, interval_scale=scale), make(family, interval_scale=scale, band_rate=0.05)
    steps = adapted.scaler.tracked_steps
    with torch.no_grad():
        before, after = band_coverage(fixed(x), x, steps, 300), band_coverage(adapted(x), x, steps, 300)
    assert abs(before - 0.8) > 0.09  # what the untrained band covers, unadapted
    assert abs(after - 0.8) < 0.03


def test_a_share_per_stream_needs_own_forecasts() -> None:
    with pytest.raises(ValueError, match="own forecast"):
        make("lstm", blend_power=2.0)


def test_default_config_step_equals_sequence(family: str) -> None:
    torch.manual_seed(0)
    model = ForecastModel(ModelConfig(family=family)).eval()
    x = torch.from_numpy(random_walks(2, 80, seed=2))
    with torch.no_grad():
        assert (model(x) - stepwise(model, x)).abs().max().item() <= 1e-5


def test_step_never_writes_into_its_input_state(family: str) -> None:
    model = make(family)
    spec = model.state_spec()
    state = init_state(spec, 3)
    x = torch.from_numpy(random_walks(3, 12))
    with torch.no_grad():
        for i in range(10):  # get a non-trivial state first
            state = advance(spec, state, model.step(x[:, i], state)[1])
        before = {k: v.clone() for k, v in state.items()}
        model.step(x[:, 10], state)
    for k in before:
        assert torch.equal(before[k], state[k]), k


def test_step_update_matches_state_spec(family: str) -> None:
    model = make(family)
    spec = model.state_spec()
    state = init_state(spec, 5)
    with torch.no_grad():
        y, update = model.step(torch.full((5,), 10.0, dtype=torch.float64), state)
    assert y.shape == (5, 4, 5) and y.dtype == torch.float64
    assert set(update) == set(spec)
    for k, e in spec.items():
        per_stream = tuple(s for a, s in enumerate(e.shape) if a != e.ring_axis)
        assert update[k].shape == (5, *per_stream), k
        assert update[k].dtype == e.dtype, k


def test_quantiles_never_cross(family: str) -> None:
    model = make(family)
    x = torch.from_numpy(random_walks(8, 30, seed=3))
    with torch.no_grad():
        q = model(x)[..., 1:, :]  # (B, T, Q, H)
    assert (q.diff(dim=-2) >= 0).all()


@pytest.mark.parametrize("levels", [1, 2, 3, 8, 9])  # 9: past the sorting network, torch.sort
def test_the_quantiles_sorting_network_sorts_as_torch_does(levels: int) -> None:
    q = torch.randn(6, 5, levels, 7)
    q[0, 0, :, 0] = 1.0  # ties
    assert torch.equal(sort_rows(q), q.sort(dim=-2).values)


def test_forward_is_differentiable_for_training(family: str) -> None:
    model = make(family).train()
    x = torch.from_numpy(random_walks(2, 20))
    model(x).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_transformer_sees_exactly_its_receptive_field() -> None:
    """Banded attention: L layers of window W see back (W - 1) * L positions, and no further."""
    model = make("transformer", window=4, n_layer=2)  # receptive field: 6 steps back
    x = torch.randn(1, 20, model.scaler.n_features)
    bumped = x.clone()
    bumped[0, 5] += 3.0
    with torch.no_grad():
        delta = (model.core(bumped) - model.core(x)).abs().amax(dim=-1)[0]  # (T,)
    assert (delta[:5] == 0).all()
    assert (delta[5:12] > 0).all()  # positions 5 .. 5 + 6
    assert (delta[12:] == 0).all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"family": "transformer", "d_model": 30, "n_head": 4}, "divisible by n_head"),
        ({"family": "transformer", "n_head": 4, "n_kv_head": 3}, "divisible by n_kv_head"),
        ({"family": "lstm", "quantiles": (0.9, 0.1)}, "ascending"),
        ({"family": "gru", "window": 1}, "greater than or equal to 2"),
        ({"family": "cnn"}, "family"),
    ],
)
def test_bad_config_is_a_clear_value_error(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**overrides)


def test_a_long_sequence_runs_in_chunks_with_the_same_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long series (a year of hourly data) would need an O(T^2) attention bias in one pass."""
    from forecaster.models import transformer

    model = make("transformer")
    x = torch.from_numpy(random_walks(3, 300, seed=5))
    with torch.no_grad():
        whole = model(x)
        monkeypatch.setattr(transformer, "CHUNK", 32)  # 300 positions: 10 chunks, each 2 * 7 earlier
        chunked = model(x)
    assert (whole - chunked).abs().max().item() <= 1e-5


def test_an_ensemble_steps_as_its_sequence_form_and_forecasts_its_members_mean(family: str) -> None:
    from forecaster.models import ScalerConfig
    from forecaster.models.forecast_model import ensemble_of

    scaler = ScalerConfig(seasons=(3, 7), seasonal_form="multiplicative")
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(ForecastModel(ModelConfig(family=family, **SMALL, scaler=scaler)).eval())
    model = ensemble_of(members)
    assert model.config.members == 3 and {k.split(".")[0] for k in model.core.state_spec()} == {"m0", "m1", "m2"}
    x = torch.from_numpy(random_walks(3, 30, seed=7))
    with torch.no_grad():
        seq = model(x)
        assert (seq - stepwise(model, x)).abs().max().item() <= 1e-5
        each = torch.stack([m(x) for m in members])  # (K, B, T, 1 + Q, H)
    assert torch.allclose(seq[..., 0, :], each[..., 0, :].mean(dim=0), atol=1e-5)  # the members' mean point
    assert torch.allclose(seq[..., 1:, :], each[..., 1:, :].mean(dim=0), atol=1e-5)  # and band (scale 1)
    with pytest.raises(ValueError, match="single models of one config"):
        ensemble_of([members[0], make(family)])
