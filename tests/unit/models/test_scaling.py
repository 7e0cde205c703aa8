from __future__ import annotations

import torch

from forecaster.models import ScalerConfig
from forecaster.models.scaling import Scaler
from tests.conftest import random_walks


def test_features_are_scale_free() -> None:
    scaler = Scaler(ScalerConfig())
    x = torch.from_numpy(random_walks(3, 50))
    f, s = scaler.sequence(x)
    f_scaled, s_scaled = scaler.sequence(1000.0 * x)
    assert torch.allclose(f, f_scaled, atol=1e-5)
    assert torch.allclose(s_scaled, 1000.0 * s, rtol=1e-12)


def test_constant_and_zero_streams_give_finite_features() -> None:
    scaler = Scaler(ScalerConfig())
    x = torch.zeros(2, 10, dtype=torch.float64)
    x[1] = 5.0
    f, s = scaler.sequence(x)
    assert torch.isfinite(f).all() and (s > 0).all()
    assert (f == 0).all()


def test_outliers_are_clipped() -> None:
    scaler = Scaler(ScalerConfig(clip=3.0))
    x = torch.tensor([[100.0, 100.1, 100.0, 1e6]], dtype=torch.float64)
    f, _ = scaler.sequence(x)
    assert f.abs().max() == 3.0


def test_lag_features_are_past_values_relative_to_now() -> None:
    scaler = Scaler(ScalerConfig(lags=3, clip=1e9))
    x = torch.from_numpy(random_walks(2, 12, seed=5))
    f, s = scaler.sequence(x)
    assert f.shape == (2, 12, 5)
    for t in range(12):
        for j in range(1, 4):
            want = (x[:, t - j] - x[:, t]) / s[:, t] if t >= j else torch.zeros(2, dtype=torch.float64)
            assert torch.allclose(f[:, t, 1 + j].double(), want, atol=1e-5), (t, j)
