"""A shadow model (``forecaster swap --shadow``): a candidate warmed up as for a swap, then stepped
beside the serving model on the same events, scored live, never served.

From its first step it holds exactly what the serving state holds (its warm-up ended there), so
its scores are what it would have scored serving, and a promotion switches to it at once: its
state is already what a from-the-start run of it would hold.
"""

from __future__ import annotations

import numpy as np

from forecaster.metrics import Metrics
from workers.accuracy import Contest, LiveAccuracy
from workers.warmup import Warmup


class Shadow:
    """The finished warm-up (kept: a rebalance sends the candidate back to it), the candidate's live
    accuracy and, with a ``window``, its contest against the serving model."""

    def __init__(self, warmup: Warmup, metrics: Metrics, window: int) -> None:
        self.warmup, self.fc, self.swap = warmup, warmup.fc, warmup.swap
        self.accuracy = LiveAccuracy(metrics, self.fc.version)
        self.contest = Contest(window) if window else None
        self.promoting = False  # a promotion of it is on the control topic

    def step(
        self,
        streams: list[str],
        ts: list[float],
        values: list[float],
        scales: list[float],
        live: list[bool],
        serving_errors: np.ndarray,
    ) -> tuple[np.ndarray, tuple[float, float] | None]:
        """Advance on the serving batch's valid events, scored with the serving model's scales (the
        same yardstick for both); returns the forecasts and a finished contest window's mean errors
        (serving, shadow), if one finished."""
        rows = self.fc.engine.advance_all(streams, ts, values).numpy().astype(np.float32)
        errors = self.accuracy.observe(streams, values, rows, scales, live)
        verdict = self.contest.add(serving_errors, errors) if self.contest is not None else None
        return rows, verdict
