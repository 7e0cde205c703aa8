"""The bundled checkpoints: loadable by name, and as good as their report says on held-out prices."""

from __future__ import annotations

import pytest

import forecaster
from forecaster.data import PRICE_COLUMNS, PRICES, load_series
from forecaster.evaluation.evaluate import evaluate
from forecaster.models import FAMILIES
from forecaster.pretrained.build import CUTOFF, split_by_time


@pytest.fixture(scope="module")
def held_out() -> tuple[list, list]:
    return split_by_time(load_series(PRICES, "long", PRICE_COLUMNS), CUTOFF)


@pytest.mark.parametrize("family", FAMILIES)
def test_bundled_checkpoint_loads_by_name(family: str) -> None:
    fc = forecaster.load(family, device="cpu")
    assert fc.name == family and fc.config.horizon == 8
    (out,) = fc.update([{"stream": "AAPL", "ts": "2024-01-02T14:30:00Z", "value": 185.64}])
    assert len(out.point) == 8 and all(abs(p - 185.64) < 50 for p in out.point)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_bundled_checkpoint_is_calibrated_and_no_worse_than_the_random_walk(family: str, held_out) -> None:
    history, test = held_out
    ours, _ = evaluate(family, history, test, None, season=1, rolling=True, device="cpu")
    naive, _ = evaluate("naive", history, test, 8, season=1, rolling=True)
    assert 0.75 <= ours["coverage"] <= 0.85
    assert ours["mase"] <= 1.05 * naive["mase"]
