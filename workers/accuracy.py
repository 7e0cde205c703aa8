"""Live accuracy: each model's one-step forecasts scored against the values that then arrive,
and the contest that decides whether a shadow model beats the serving one.

Errors are in units of the stream's mean |one-step change| (its scaler's ``x_scale``), so streams
of any price level add up; the metrics' ``model`` label is the model version, never a stream.
"""

from __future__ import annotations

from collections.abc import Container

import numpy as np

from forecaster.metrics import Metrics


class LiveAccuracy:
    """Scores one model's one-step forecast of each stream when its next value arrives (in event
    order, also within a batch): the scaled absolute error, and whether the value fell inside the
    outer quantile band. Exported as ``forecaster_realized_error{model=version}`` and
    ``forecaster_interval_coverage_ratio{model=version}``."""

    def __init__(self, metrics: Metrics, version: str) -> None:
        self.error = metrics.realized_error.labels(version)
        self.coverage = metrics.interval_coverage.labels(version)
        self.pending: dict[str, tuple[float, float, float]] = {}  # stream -> point, lo, hi one step ahead
        self.inside = self.scored = 0

    def observe(
        self, streams: list[str], values: list[float], rows: np.ndarray, scales: list[float], live: list[bool]
    ) -> np.ndarray:
        """``rows``: the engine's (N, 1 + Q, H) forecasts. ``live`` False: a replayed record, scored
        when first seen; it only moves the forecast on. Returns each event's scaled error (NaN
        where there was none to score)."""
        ahead = zip(rows[:, 0, 0].tolist(), rows[:, 1, 0].tolist(), rows[:, -1, 0].tolist(), strict=True)
        errors = np.full(len(streams), np.nan)
        for i, (stream, value, nxt, scale, fresh) in enumerate(zip(streams, values, ahead, scales, live, strict=True)):
            prev = self.pending.get(stream)
            if prev is not None and fresh:
                point, lo, hi = prev
                if scale > 0:
                    errors[i] = abs(value - point) / scale
                self.scored += 1
                self.inside += lo <= value <= hi
            self.pending[stream] = nxt
        self.error.observe_many(errors[~np.isnan(errors)])
        if self.scored:
            self.coverage.set(self.inside / self.scored)
        return errors

    def forget_all_but(self, resident: Container[str]) -> None:
        self.pending = {s: v for s, v in self.pending.items() if s in resident}


class Contest:
    """The shadow model against the serving one, on the events both scored: after each window of
    ``window`` such events, ``add`` returns the window's mean scaled errors (serving, shadow)."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"a contest window needs at least one event, not {window}")
        self.window = window
        self.count, self.serving, self.shadow = 0, 0.0, 0.0

    def add(self, serving: np.ndarray, shadow: np.ndarray) -> tuple[float, float] | None:
        both = ~np.isnan(serving) & ~np.isnan(shadow)
        self.count += int(both.sum())
        self.serving += float(serving[both].sum())
        self.shadow += float(shadow[both].sum())
        if self.count < self.window:
            return None
        means = self.serving / self.count, self.shadow / self.count
        self.count, self.serving, self.shadow = 0, 0.0, 0.0
        return means
