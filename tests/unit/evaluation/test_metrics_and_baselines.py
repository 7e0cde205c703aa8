"""Metrics and baselines against hand-computed values and, where ../shared/data exists, against
the official M4 Hourly scores (M4-methods, Evaluation and Ranks.xlsx)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forecaster.data import Series, load_series
from forecaster.evaluation import baselines
from forecaster.evaluation.evaluate import origins
from forecaster.evaluation.metrics import mase, mase_scale, owa, pinball, smape

M4 = Path(__file__).parents[4] / "shared" / "data" / "m4"


def test_smape_and_mase_by_hand() -> None:
    y, f = np.array([100.0, 200.0]), np.array([110.0, 180.0])
    assert smape(y, f) == pytest.approx(100 * (10 / 210 + 20 / 380))
    assert mase_scale(np.array([1.0, 3.0, 2.0, 6.0]), 2) == pytest.approx(2.0)  # |2-1|, |6-3|
    assert mase(y, f, 5.0) == pytest.approx(3.0)
    assert owa(10, 2, 20, 4) == pytest.approx(0.5)
    assert smape(np.zeros(3), np.zeros(3)) == 0.0


def test_pinball_is_the_quantile_loss() -> None:
    y = np.array([10.0])
    q = np.array([[8.0], [12.0]])  # 0.1 and 0.9 quantiles, truth inside
    assert pinball(y, q, (0.1, 0.9), 1.0) == pytest.approx((0.1 * 2 + 0.1 * 2) / 2)


def test_naive_and_snaive() -> None:
    x = np.arange(1.0, 8.0)
    assert list(baselines.naive(x, 3)) == [7.0, 7.0, 7.0]
    assert list(baselines.snaive(x, 5, 3)) == [5.0, 6.0, 7.0, 5.0, 6.0]


def test_naive2_continues_an_exact_multiplicative_season() -> None:
    pattern = np.array([0.8, 1.0, 1.3, 0.9])
    x = 50.0 * np.tile(pattern, 12)[:-1]  # ends one step into a cycle
    assert baselines.is_seasonal(x, 4)
    np.testing.assert_allclose(baselines.seasonal_indices(x, 4), pattern / pattern.mean())
    np.testing.assert_allclose(baselines.naive2(x, 6, 4), 50.0 * np.tile(pattern, 3)[3:9])


def test_naive2_is_naive_without_season() -> None:
    x = np.cumsum(np.random.default_rng(0).normal(size=200)) + 100
    assert not baselines.is_seasonal(x, 24)
    assert list(baselines.naive2(x, 3, 24)) == [x[-1]] * 3


@pytest.mark.skipif(not M4.is_dir(), reason="needs ../shared/data/m4 (the M4 competition files)")
@pytest.mark.parametrize(
    ("name", "want"), [("naive", (43.003, 11.608)), ("snaive", (13.912, 1.193)), ("naive2", (18.383, 2.395))]
)
def test_baselines_reproduce_the_official_m4_hourly_scores(name: str, want: tuple[float, float]) -> None:
    train = load_series(M4 / "M4-Hourly-train.csv.gz")
    test = load_series(M4 / "M4-Hourly-test.csv.gz")
    s = np.mean([smape(t.values, baselines.forecast(name, h.values, 48, 24)) for h, t in zip(train, test, strict=True)])
    m = np.mean(
        [
            mase(t.values, baselines.forecast(name, h.values, 48, 24), mase_scale(h.values, 24))
            for h, t in zip(train, test, strict=True)
        ]
    )
    assert (round(s, 3), round(m, 3)) == want


def test_rolling_origins_see_every_value_before_them_without_a_copy_each() -> None:
    pairs = [(Series("a", np.arange(5.0), np.arange(5.0)), np.array([5.0, 6.0, 7.0]))]
    out = origins(pairs, horizon=2, rolling=True)
    assert [(h.tolist(), t.tolist()) for _, h, t in out] == [
        ([0, 1, 2, 3, 4], [5, 6]),
        ([0, 1, 2, 3, 4, 5], [6, 7]),
        ([0, 1, 2, 3, 4, 5, 6], [7]),
    ]
    assert np.shares_memory(out[1][1], out[2][1])  # one copy of the series, however many origins
