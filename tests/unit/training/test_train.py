from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from forecaster.data import DataError, Series
from forecaster.models import ForecastModel, ModelConfig, ScalerConfig
from forecaster.training import TrainConfig, train
from forecaster.training.loss import forecast_loss, horizon_loss
from forecaster.training.trainer import (
    EQUAL,
    MAX_VALIDATION_SERIES,
    MIN_FULL_ORIGINS,
    MIN_VALIDATION_ORIGINS,
    POWERS,
    _band_coverage,
    _Held,
    _validation_outputs,
    _validation_sample,
    calibrate_interval,
    calibration_target,
    default_validation,
    fit_blend,
)
from forecaster.training.windows import head, prepare

TINY = {"d_model": 16, "n_layer": 1, "d_ff": 32, "window": 16, "horizon": 4}
FAST = TrainConfig(
    epochs=8, batch_size=16, span=48, burn_in=8, windows_per_epoch=128, patience=8, validation=24, lr=5e-3
)


def seasonal_series(n: int = 6, length: int = 300, seed: int = 0) -> list[Series]:
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    return [
        Series(f"s{i}", t, 100 + 10 * np.sin(2 * np.pi * (t + 3 * i) / 12) + rng.normal(0, 0.5, length))
        for i in range(n)
    ]


def test_pinball_loss_is_minimised_by_the_quantile() -> None:
    y = torch.randn(4000)
    levels = (0.1, 0.5, 0.9)

    def loss(q10: float) -> float:
        out = torch.zeros(4000, 4, 1)
        out[:, 1] = q10
        out[:, 2] = 0.0
        out[:, 3] = 1.2816
        return float(forecast_loss(out, y[:, None], levels))

    assert loss(-1.2816) < loss(-0.8) and loss(-1.2816) < loss(-1.8)


def test_loss_ignores_unknown_targets() -> None:
    y = torch.zeros(2, 4, 3)
    t = torch.tensor([[1.0, 2.0, float("nan")], [float("nan")] * 3])
    assert forecast_loss(y, t, (0.1, 0.5, 0.9)) == forecast_loss(y[:1, :, :2], t[:1, :2], (0.1, 0.5, 0.9))


def test_the_validation_loss_weighs_every_step_ahead_the_same() -> None:
    """Held-out origins near the end know their first steps only: step 1 errs by 1 at three
    origins, step 2 by 3 at the one origin that knows it. Pooled, step 1 would weigh thrice."""
    y = torch.zeros(3, 2, 2)  # a point and the 0.5 quantile: |error| + |error| / 2
    t = torch.tensor([[1.0, 3.0], [1.0, float("nan")], [1.0, float("nan")]])
    assert float(horizon_loss(y, t, (0.5,))) == pytest.approx((1.5 + 4.5) / 2)
    assert float(forecast_loss(y, t, (0.5,))) == pytest.approx((3 * 1.5 + 4.5) / 4)
    full = torch.tensor([[1.0, 3.0]] * 3)
    assert float(horizon_loss(y, full, (0.5,))) == pytest.approx(float(forecast_loss(y, full, (0.5,))))


@pytest.mark.parametrize("family", ["gru", "transformer"])
def test_training_learns_a_seasonal_signal(family: str) -> None:
    series = seasonal_series()
    config = ModelConfig(family=family, **TINY)
    _, untrained = train(series, config, FAST.model_copy(update={"epochs": 1, "lr": 1e-9}), progress=False)
    model, report = train(series, config, FAST, progress=False)
    assert report.validation["loss"] < 0.8 * untrained.validation["loss"]
    assert report.best_epoch >= 1 and len(report.history) == report.epochs


def test_same_seed_same_weights() -> None:
    series = seasonal_series(n=3, length=120)
    cfg = FAST.model_copy(update={"epochs": 2})
    a, _ = train(series, ModelConfig(family="lstm", **TINY), cfg, progress=False)
    b, _ = train(series, ModelConfig(family="lstm", **TINY), cfg, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_an_ensembles_members_are_the_single_models_of_their_seeds() -> None:
    """The members share one preparation of the data; each trains as a single model would."""
    series = seasonal_series(n=3, length=120)
    cfg = FAST.model_copy(update={"epochs": 2})
    config = ModelConfig(family="lstm", **TINY)
    ensemble, report = train(series, config.model_copy(update={"members": 2}), cfg, progress=False)
    second, _ = train(series, config, cfg.model_copy(update={"seed": 1}), progress=False)
    assert [r.epochs for r in report.members] == [2, 2]
    member = ensemble.core.members[1].state_dict()
    assert all(torch.equal(member[k], v) for k, v in second.core.state_dict().items())


def test_calibration_hits_the_nominal_coverage_on_validation_corrected_for_few_forecasts() -> None:
    model, report = train(seasonal_series(), ModelConfig(family="rnn", **TINY), FAST, progress=False)
    target = calibration_target(0.8, 6 * FAST.validation)  # 144 held-out forecasts: 0.8056
    assert target == pytest.approx(0.8 * 145 / 144)
    assert abs(report.validation["coverage"] - target) < 0.01
    assert report.validation["coverage_target"] == round(target, 4)
    assert model.config.interval_scale == pytest.approx(report.validation["interval_scale"], abs=1e-4)


def test_calibration_factor_covers_the_requested_share() -> None:
    rng = np.random.default_rng(1)
    t = torch.tensor(rng.normal(0, 2.0, (500, 3)))
    y = torch.zeros(500, 4, 3)
    y[:, 1], y[:, 3] = -1.0, 1.0  # band ±1 around zero; truth has sd 2
    c = calibrate_interval(y, t, 0.8)
    assert abs(float(((t.abs() <= c).float()).mean()) - 0.8) < 0.01


def test_calibration_widens_a_band_shrunk_twenty_times_by_the_blend() -> None:
    t = torch.tensor(np.random.default_rng(3).normal(0, 50.0, (500, 3)))
    y = torch.zeros(500, 4, 3)
    y[:, 1], y[:, 3] = -0.05, 0.05  # a band of ±1 blended with v = 0.95; truths of sd 50
    c = calibrate_interval(y, t, 0.8)
    assert abs(float(((t.abs() <= 0.05 * c).float()).mean()) - 0.8) < 0.01  # c > 1000, past the old cap of 100


def test_calibration_weighs_every_horizon_alike_though_later_ones_are_known_at_fewer_origins() -> None:
    rng = np.random.default_rng(2)
    t = torch.tensor(rng.normal(0, 1.0, (900, 3)) * np.array([1.0, 2.0, 4.0]))  # spread grows with the horizon
    t[300:, 2] = float("nan")  # the last origins of a held-out span do not know their last steps
    t[600:, 1] = float("nan")
    y = torch.zeros(900, 4, 3)
    y[:, 1], y[:, 3] = -1.0, 1.0
    c = calibrate_interval(y, t, 0.8)
    per_step = [float((t[:, h].abs() <= c)[~t[:, h].isnan()].float().mean()) for h in range(3)]
    assert abs(np.mean(per_step) - 0.8) < 0.01
    pooled = float((t.abs() <= c).sum() / (~t.isnan()).sum())
    assert pooled > 0.85  # pooled, the short horizons' many origins would have called this band too wide


def test_a_series_head_is_prepared_as_its_prefix() -> None:
    """Training reads each series' head off the whole series' preparation: causal features, and
    targets past the head unknown, exactly as preparing the head alone."""
    s = seasonal_series(n=1, length=80)[0]
    per_stream = ScalerConfig(seasons=(12,), level_choices=(0.5,))
    scaler = ForecastModel(ModelConfig(family="rnn", **TINY, scaler=per_stream)).scaler
    cut, alone = head(prepare([s], scaler, 4)[0], 60), prepare([s.head(60)], scaler, 4)[0]
    assert torch.equal(cut.features, alone.features)
    assert torch.equal(cut.targets.isnan(), alone.targets.isnan()) and int(cut.targets.isnan().sum()) == 1 + 2 + 3 + 4
    assert torch.equal(torch.nan_to_num(cut.targets), torch.nan_to_num(alone.targets))
    assert cut.own is not None and torch.equal(cut.own, alone.own)  # the streams' own forecasts too


def test_the_blend_takes_the_share_of_the_streams_own_forecasts_that_forecasts_best() -> None:
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(200, 4, generator=g)
    noise = torch.randn(200, 3, 4, generator=g)
    network = truth[:, None, :] + noise  # point and quantiles, off the truth
    ones = torch.ones(200)
    assert fit_blend(_Held(network, truth, truth, ones)) == (0.95, 0.0)  # own is the truth: all but the band's share
    assert fit_blend(_Held(truth[:, None, :].expand(-1, 3, -1), truth, truth + noise[:, 0], ones)) == (0.0, 0.0)
    assert fit_blend(_Held(network, truth, truth - noise[:, 0], ones)) == (0.5, 0.0)  # opposite errors cancel halfway
    weights = torch.where(torch.arange(200) < 100, 1.0, 1e-3)  # the first hundred rows weigh: there own is the truth
    mixed = torch.where(torch.arange(200)[:, None] < 100, truth, truth + 3 * noise[:, 0])
    assert fit_blend(_Held(network, truth, mixed, weights)) == (0.95, 0.0)
    partly_unknown = truth.clone()
    partly_unknown[:150, 2:] = float("nan")  # only the last 50 origins know every step: they alone decide
    off_early = truth + 5 * (torch.arange(200) < 150)[:, None]
    assert fit_blend(_Held(network, partly_unknown, off_early, ones)) == (0.95, 0.0)


def test_without_own_forecasts_the_anchor_is_blended_in_where_the_network_forecasts_worse() -> None:
    """A network far off on a short seasonal series is pulled towards the seasonal anchor:
    validation holds the anchor (0, normalised) as the streams' own forecast."""
    series = seasonal_series(n=2, length=120)
    config = ModelConfig(family="rnn", **TINY, scaler=ScalerConfig(seasons=(12,), smooth_level=0.05))
    model = ForecastModel(config)
    with torch.no_grad():
        model.head.bias.add_(5.0)  # every forecast far above the anchor
    data = prepare(series, model.scaler, 4)
    assert all(d.own is None and d.to_mase is not None for d in data)
    held = _validation_outputs(model.eval(), data, 24)
    assert held.own is not None and torch.equal(held.own, torch.zeros_like(held.target))
    assert held.block is not None and held.block.unique().tolist() == [0, 1]  # the gain judged across the series
    v, power = fit_blend(held)
    assert v == 0.95 and power == 0.0


def test_the_anchor_is_blended_in_only_where_it_gains_more_than_its_standard_error() -> None:
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(200, 4, generator=g)
    anchor, ones, quarter = torch.zeros(200, 4), torch.ones(200), torch.arange(200) // 50
    late = (quarter >= 2)[:, None]
    network = torch.where(late, 0.8 * truth, truth)[:, None, :].expand(-1, 3, -1)
    target = torch.where(late, 0.8 * truth, torch.zeros(200, 4))  # early: the anchor is right; late: the network
    assert fit_blend(_Held(network, target, anchor, ones)) == (0.95, 0.0)  # pooled, the anchor gains a little
    assert fit_blend(_Held(network, target, anchor, ones, None, quarter)) == (0.0, 0.0)  # half the span disagrees
    everywhere = _Held(network, 0.3 * network[:, 0], anchor, ones, None, quarter)
    assert fit_blend(everywhere)[0] == 0.7  # the truth 30% of the way from the anchor to the network, everywhere


def test_on_a_span_of_overlapping_quarters_an_unclear_gain_weighs_the_two_the_same() -> None:
    """One series with fewer than 4H complete origins: each quarter's forecasts overlap, so an
    unclear gain is not evidence for the network alone; where no share gains, it still stands alone."""
    H = 4

    def span(n: int, exact: bool = False, quarters: bool = True) -> _Held:
        """Early: the anchor (0) is right; late: the network (unless ``exact``: right everywhere)."""
        truth, quarter = torch.randn(n, H, generator=torch.Generator().manual_seed(0)), torch.arange(n) * 4 // n
        late = (quarter >= 2)[:, None]
        network = torch.where(late, 0.8 * truth, truth)[:, None, :].expand(-1, 3, -1)
        target = network[:, 0] if exact else torch.where(late, 0.8 * truth, torch.zeros(n, H))
        return _Held(network, target, torch.zeros(n, H), torch.ones(n), None, quarter, quarters)

    assert fit_blend(span(4 * H - 1)) == (EQUAL, 0.0)
    assert fit_blend(span(4 * H - 1, exact=True)) == (0.0, 0.0)  # no share gains
    assert fit_blend(span(4 * H - 1, quarters=False)) == (0.0, 0.0)  # four series: their gains are independent
    assert fit_blend(span(4 * H)) == (0.0, 0.0)  # 4H complete origins: the quarters judge
    assert fit_blend(replace(span(4 * H), block=None))[0] > 0  # there pooled, a share gains


def test_a_span_with_too_few_complete_forecasts_weighs_the_network_and_the_own_forecast_equally() -> None:
    """One short series holds out H values: a single origin knows all H ahead, too little to fit
    a share on, however well the own forecast did there."""
    H, n = 4, MIN_FULL_ORIGINS - 1 + 4  # held-out origins: all but the last H - 1 know every step
    truth = torch.randn(n, H, generator=torch.Generator().manual_seed(0))
    truth[torch.arange(n)[:, None] + torch.arange(H)[None, :] >= n] = float("nan")  # origin i knows n - i steps
    network = torch.nan_to_num(truth)[:, None, :].expand(-1, 3, -1) + 1.0  # off by one everywhere
    own = torch.nan_to_num(truth)  # right everywhere
    assert fit_blend(_Held(network[1:], truth[1:], own[1:], torch.ones(n - 1))) == (EQUAL, 0.0)
    assert fit_blend(_Held(network, truth, own, torch.ones(n))) == (0.95, 0.0)  # MIN_FULL_ORIGINS: fitted


def test_a_share_per_stream_is_taken_where_the_tracked_errors_tell_which_forecast_serves_a_stream() -> None:
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(200, 4, generator=g)
    noise = torch.randn(200, 4, generator=g)
    own_right = (torch.arange(200) < 100)[
        :, None
    ]  # the own forecast is right for the first hundred, the network for the rest
    network = torch.where(own_right, truth + noise, truth)[:, None, :].expand(-1, 3, -1)
    own = torch.where(own_right, truth, truth - noise)
    errors = torch.where(own_right, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))  # (network, own) so far
    held = _Held(network, truth, own, torch.ones(200), errors)
    v, power = fit_blend(held)
    assert power in POWERS  # one share for all leaves half the rows' noise in, whatever the share
    assert fit_blend(_Held(network, truth, own, torch.ones(200), errors.flip(1))) == (
        v,
        0.0,
    )  # errors that mislead: one share


def test_validation_tracks_each_streams_errors_as_the_served_model_does() -> None:
    from forecaster.models import advance, init_state

    series = [Series(s.name, s.ts, s.values * (1 + i)) for i, s in enumerate(seasonal_series(length=80))]
    scaler = ScalerConfig(seasons=(12,), seasonal_form="multiplicative", level_choices=(0.05, 0.5), drift=True)
    torch.manual_seed(0)
    model = ForecastModel(ModelConfig(family="gru", scaler=scaler, blend=0.3, blend_power=2.0, **TINY)).eval()
    held = _validation_outputs(model, prepare(series, model.scaler, 4), held_out=10, track=True)
    x = torch.tensor(np.stack([s.values for s in series]))
    spec, served = model.state_spec(), []
    state = init_state(spec, len(series))
    with torch.no_grad():
        for i in range(x.shape[1]):
            state = advance(spec, state, model.step(x[:, i], state)[1])
            served.append(state["blend_error"])
    served = torch.stack(served, dim=1)[:, -11:-1].reshape(-1, 2)  # the held-out origins, series by series
    assert held.errors is not None and bool((served > 0).all())
    ratio = held.errors[:, 0] / held.errors[:, 1]  # in other units (MASE's), so compared as ratios: the shares
    assert torch.allclose(ratio, served[:, 0] / served[:, 1], rtol=1e-4)


def test_a_band_fitted_on_few_forecasts_aims_wider_and_on_many_at_its_nominal_share() -> None:
    assert calibration_target(0.8, 9) == pytest.approx(0.8 * 10 / 9)  # one short quarterly series
    assert calibration_target(0.8, 3) == 1.0  # never beyond every forecast
    assert calibration_target(0.8, 100_000) == pytest.approx(0.8, abs=1e-5)
    assert calibration_target(0.8, 9) > calibration_target(0.8, 30) > calibration_target(0.8, 512) > 0.8


def test_the_reported_coverage_is_the_calibrated_models_and_validation_is_sampled_on_wide_sets() -> None:
    series = seasonal_series()
    model, report = train(series, ModelConfig(family="gru", **TINY), FAST, progress=False)
    held = _validation_outputs(model, prepare(series, model.scaler, 4), FAST.validation)
    assert report.validation["coverage"] == pytest.approx(_band_coverage(held.y, held.target), abs=1e-3)
    wide = list(range(MAX_VALIDATION_SERIES + 10))
    sample = _validation_sample(wide, seed=0)
    assert len(sample) == MAX_VALIDATION_SERIES and sample == sorted(sample) and sample == _validation_sample(wide, 0)
    assert _validation_sample(wide[:5], seed=0) == wide[:5]


def test_the_budget_ends_an_epoch_that_would_outlast_it() -> None:
    cfg = FAST.model_copy(update={"windows_per_epoch": 10**6, "max_minutes": 0.002})  # 31,250 batches, 0.12 s
    _, report = train(seasonal_series(), ModelConfig(family="rnn", **TINY), cfg, progress=False)
    assert report.epochs == 1
    assert 1 <= report.history[0]["batches"] < 31_250  # stopped mid-epoch, then validated and calibrated
    assert "coverage" in report.validation


def test_series_too_short_to_train_on_are_left_out_and_a_data_error_only_when_all_are() -> None:
    short = Series("x", np.arange(10.0), np.arange(10.0))
    with pytest.raises(DataError, match="every series is too short to train on"):
        train([short], ModelConfig(family="rnn", **TINY), FAST, progress=False)
    _, report = train([*seasonal_series(), short], ModelConfig(family="rnn", **TINY), FAST, progress=False)
    assert report.left_out == ["x"]


def test_few_series_hold_out_enough_origins_to_validate_on_and_many_hold_out_the_horizon() -> None:
    def many(n: int, length: int) -> list[Series]:
        return [Series(str(i), np.arange(float(length)), np.zeros(length)) for i in range(n)]

    assert default_validation(many(1, 4000), 48) == MIN_VALIDATION_ORIGINS
    assert default_validation(many(4, 4000), 8) == MIN_VALIDATION_ORIGINS // 4
    assert default_validation(many(1, 400), 48) == 100  # a quarter of the series at most
    assert default_validation(many(1, 100), 48) == 48  # never less than the horizon
    assert default_validation(many(414, 960), 48) == 48


def test_an_ensemble_trains_its_members_with_their_own_seeds_and_calibrates_their_mean() -> None:
    cfg = FAST.model_copy(update={"epochs": 3})
    model, report = train(seasonal_series(), ModelConfig(family="gru", members=2, **TINY), cfg, progress=False)
    single = ModelConfig(family="gru", **TINY)
    first, _ = train(seasonal_series(), single, cfg.model_copy(update={"calibrate": False}), progress=False)
    assert model.config.members == 2
    assert torch.equal(model.head.heads[0].weight, first.head.weight)  # member 0 is seed 0's model
    assert not torch.equal(model.head.heads[1].weight, first.head.weight)  # member 1 another seed's
    assert {"member_0_loss", "member_1_loss"} <= set(report.validation)
    assert abs(report.validation["coverage"] - 0.8) < 0.01


def test_origins_inside_a_stuck_reading_are_not_trained_on() -> None:
    """A sensor that repeats one value for 400 steps: its scale decays towards zero, and the change
    that ends the outage would weigh thousands of scale units; the origins in the stuck stretch
    are left unknown, every other one is kept."""
    rng = np.random.default_rng(0)
    values = 100 + np.cumsum(rng.standard_normal(1200))
    values[500:900] = values[500]  # stuck from 501 on
    scaler = ForecastModel(ModelConfig(family="rnn", horizon=4)).scaler
    (prepared,) = prepare([Series("s", np.arange(1200.0), values)], scaler, horizon=4)
    unknown = prepared.targets.isnan().all(dim=1)
    assert unknown[750:900].all()  # 228 steps in, the scale has decayed below a hundredth of its median
    assert not unknown[:500].any() and not unknown[900:1195].any()  # a normal stream: every origin kept
    assert prepared.targets.nan_to_num().abs().max() < 1e3  # no origin left thousands of units from its truth
