"""The compiled step (``compile=True``): eager until it is ready, then the same forecasts to
rounding, for one stream, many, and several events of a stream in one batch; a failure surfaces."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import forecaster
from tests.conftest import random_walks
from tests.unit.engine.test_forecaster import MOST, SCALERS, SMALL, run


def build(compile: bool) -> forecaster.Forecaster:
    """The most per-stream state: seasons, own forecasts blended per stream, each stream's band."""
    return forecaster.build(
        "gru", seed=0, device="cpu", scaler=SCALERS["own_forecast"], compile=compile, **MOST, **SMALL
    )


def steps(walks: np.ndarray, start: int, stop: int, streams: int | None = None) -> list[list[dict]]:
    """Batch i: observation i of each stream (the first ``streams``), at minute i."""
    n = streams or walks.shape[0]
    return [
        [{"stream": f"s{k}", "ts": 60.0 * i, "value": float(walks[k, i])} for k in range(n)] for i in range(start, stop)
    ]


@pytest.mark.skipif(shutil.which("g++") is None, reason="inductor compiles the fused kernels with g++")
def test_compiled_step_gives_the_eager_forecasts() -> None:
    walks = random_walks(5, 40, seed=21)
    parts = [
        steps(walks, 10, 20, streams=1),  # one stream alone: a graph of its own
        [b + c for b, c in zip(steps(walks, 20, 30)[::2], steps(walks, 20, 30)[1::2], strict=True)],  # two rounds
        steps(walks, 30, 40),
    ]
    compiled, eager = build(True), build(False)
    first = steps(walks, 0, 10)  # stepped eagerly while compiling, or compiled: the same either way
    np.testing.assert_allclose(run(compiled, first), run(eager, first), rtol=1e-6)
    assert compiled.engine.compiled.wait(timeout=600)
    for part in parts:
        np.testing.assert_allclose(run(compiled, part), run(eager, part), rtol=1e-6)


def test_a_step_that_fails_to_compile_is_raised_at_the_next_update(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(torch, "compile", broken)
    fc = build(True)
    with pytest.raises(RuntimeError, match="compiling the model step failed: no C compiler"):
        fc.engine.compiled.wait()
    with pytest.raises(RuntimeError, match="compiling the model step failed"):
        fc.update(steps(random_walks(2, 1), 0, 1)[0])
