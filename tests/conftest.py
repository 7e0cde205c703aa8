"""Shared fixtures. Unit tests need no broker; integration tests (marker ``kafka``) do."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

from forecaster.models import FAMILIES

# Fuzzing explores new inputs on every developer run; CI replays a fixed sequence, so that a
# red CI run names a change, not a lucky draw.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return request.param


def random_walks(n_streams: int, length: int, seed: int = 0, start: float = 100.0) -> np.ndarray:
    """Positive price-like paths (n_streams, length): geometric random walks."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 0.01, size=(n_streams, length))
    return start * np.exp(np.cumsum(steps, axis=1))


def events(values: np.ndarray, names: list[str] | None = None, t0: float = 1.7e9) -> list[list[dict]]:
    """Batches of events: batch i holds observation i of every stream (one event per stream)."""
    names = names or [f"s{i}" for i in range(values.shape[0])]
    return [
        [{"stream": s, "ts": t0 + 60.0 * i, "value": float(v)} for s, v in zip(names, values[:, i], strict=True)]
        for i in range(values.shape[1])
    ]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail after ``seconds``: the tests' only way to wait."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


def exited(pid: int) -> bool:
    """Whether process ``pid`` has exited (an orphan's zombie counts: init reaps it when it will)."""
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def cuda_available() -> bool:
    return torch.cuda.is_available()
