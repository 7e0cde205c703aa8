"""Live accuracy per model (the worker's scoring of one-step forecasts) and the shadow contest."""

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from forecaster.metrics import Metrics
from workers.accuracy import Contest, LiveAccuracy


def rows(points: list[float], spread: float = 1.0) -> np.ndarray:
    """(N, 1 + 3 quantiles, H=2) forecasts: the point, then point - spread, point, point + spread."""
    p = np.array(points, dtype=np.float32)[:, None]
    return np.stack([p, p - spread, p, p + spread], axis=1).repeat(2, axis=2)


def test_each_model_is_scored_on_its_own_series_in_event_order() -> None:
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    a, b = LiveAccuracy(metrics, "v-a"), LiveAccuracy(metrics, "v-b")
    # a: stream x forecasts 10, then the value 12 arrives in the same batch (scored in order)
    errors = a.observe(["x", "x", "y"], [1.0, 12.0, 5.0], rows([10.0, 13.0, 5.0]), [2.0, 2.0, 1.0], [True] * 3)
    assert np.isnan(errors[0]) and errors[1] == pytest.approx(1.0) and np.isnan(errors[2])
    b.observe(["x"], [1.0], rows([1.0]), [2.0], [True])
    errors = b.observe(["x"], [4.0], rows([4.0]), [2.0], [False])  # replayed: moves on, not scored
    assert np.isnan(errors).all()

    def sample(name: str, version: str) -> float | None:
        return registry.get_sample_value(name, {"model": version})

    assert sample("forecaster_realized_error_count", "v-a") == 1
    assert sample("forecaster_realized_error_sum", "v-a") == pytest.approx(1.0)
    assert sample("forecaster_interval_coverage_ratio", "v-a") == 0.0  # 12 is outside 9..11
    assert sample("forecaster_realized_error_count", "v-b") == 0


def test_the_contest_compares_means_over_events_both_models_scored() -> None:
    contest = Contest(3)
    nan = np.nan
    assert contest.add(np.array([1.0, nan, 2.0]), np.array([0.5, 0.1, nan])) is None  # one event both scored
    serving, shadow = contest.add(np.array([3.0, 1.0]), np.array([1.0, 1.0]))
    assert (serving, shadow) == pytest.approx(((1 + 3 + 1) / 3, (0.5 + 1 + 1) / 3))
    assert contest.add(np.array([1.0]), np.array([1.0])) is None  # a new window starts empty
    with pytest.raises(ValueError, match="at least one event"):
        Contest(0)
