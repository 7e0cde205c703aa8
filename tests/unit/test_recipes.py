"""Training and evaluation from Python: frames, files and the docstrings' own examples."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pandas as pd
import pytest

import forecaster
import forecaster.api
import forecaster.recipes

TINY = {"d_model": 8, "n_layer": 1, "horizon": 4, "epochs": 2, "windows_per_epoch": 32, "span": 48, "burn_in": 8}


@pytest.mark.slow
@pytest.mark.parametrize("module", [forecaster.recipes, forecaster.api])
def test_the_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def nixtla_frame() -> pd.DataFrame:
    """Two hourly series with a daily cycle, in Nixtla's columns (numeric ids, datetimes)."""
    t = np.arange(24 * 20)
    rng = np.random.default_rng(0)
    rows = [
        pd.DataFrame(
            {
                "unique_id": i,
                "ds": pd.Timestamp("2024-01-01") + pd.to_timedelta(t, unit="h"),
                "y": 50 + 10 * np.sin(2 * np.pi * (t + 5 * i) / 24) + rng.normal(0, 0.5, t.size),
            }
        )
        for i in range(2)
    ]
    return pd.concat(rows, ignore_index=True)


def test_train_on_a_frame_then_evaluate_and_save(tmp_path) -> None:
    frame = nixtla_frame()
    fc, report = forecaster.train(frame, "gru", out=tmp_path / "ck", device="cpu", progress=False, **TINY)
    assert fc.config.horizon == 4 and fc.config.scaler.seasons[:1] == (24,)  # from the hourly ds
    assert 0 <= report.validation["coverage"] <= 1 and report.epochs == 2
    scores = forecaster.evaluate(fc, frame, rolling=True)
    assert scores.metrics["series"] == 2 and scores.metrics["forecasts"] == 2 * 4
    assert fc.streams == []  # scored on fresh state: the trained Forecaster is untouched
    again = forecaster.evaluate(tmp_path / "ck", frame, rolling=True)
    assert again.metrics["mase"] == pytest.approx(scores.metrics["mase"])
    snaive, naive = (forecaster.evaluate(b, frame, horizon=4, season=24) for b in ("snaive", "naive"))
    assert snaive.metrics["mase"] < naive.metrics["mase"]  # the cycle is there to find
    (tmp_path / "plot.png").unlink(missing_ok=True)
    scores.plot(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_an_unknown_option_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="unknown option 'epoch'"):
        forecaster.train(nixtla_frame(), "lstm", epoch=3)


def test_the_checkpoint_records_why_yearly_data_gets_its_own_forecasts(tmp_path) -> None:
    """No season is a candidate for yearly data: the choice of own smoothing and drift over the
    random walk is still recorded, and the checkpoint's config stays strict JSON (no NaN)."""
    rng = np.random.default_rng(0)
    t = np.arange(40)
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": i,
                    "ds": pd.date_range("1980-01-01", periods=t.size, freq="YS"),
                    "y": 100 + (2 + i) * t + rng.normal(0, 3, t.size),
                }
            )
            for i in range(6)
        ],
        ignore_index=True,
    )
    fc, _ = forecaster.train(frame, "rnn", out=tmp_path / "ck", device="cpu", progress=False, **TINY)
    assert fc.config.scaler.seasons == () and fc.config.scaler.drift  # trending: the Theta drift is kept
    text = (tmp_path / "ck" / "config.json").read_text()
    chosen = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in config.json"))["seasons"]
    assert chosen["candidates"] == [] and chosen["per_stream_level_error"] < chosen["random_walk_error"]
