"""The M4 benchmarks ``naive``, ``snaive`` and ``naive2``, as in the M4 R code.

Naive2 is the random walk on the seasonally adjusted series: if the series is seasonal by the
M4 test (lag-m autocorrelation beyond its 90% limit), it is divided by the seasonal indices of
R's ``decompose(type = "multiplicative")``, the last adjusted value is carried forward, and the
indices are put back.
"""

from __future__ import annotations

import numpy as np

BASELINES = ("naive", "snaive", "naive2")


def naive(x: np.ndarray, h: int, m: int = 1) -> np.ndarray:
    return np.full(h, x[-1])


def snaive(x: np.ndarray, h: int, m: int = 1) -> np.ndarray:
    if len(x) < m:
        return naive(x, h)
    return np.array([x[len(x) - m + (k % m)] for k in range(h)])


def acf(x: np.ndarray, nlags: int) -> np.ndarray:
    """R's ``acf``: biased autocorrelations r_1..r_nlags of the demeaned series."""
    d = x - x.mean()
    c0 = d @ d
    return np.array([(d[: len(d) - k] @ d[k:]) / c0 for k in range(1, nlags + 1)])


def is_seasonal(x: np.ndarray, m: int) -> bool:
    """M4's ``SeasonalityTest``: |r_m| > 1.645 sqrt((1 + 2 Σ_{k<m} r_k²) / n), needs n >= 3m."""
    if m <= 1 or len(x) < 3 * m:
        return False
    r = acf(x, m)
    limit = 1.645 / np.sqrt(len(x)) * np.sqrt(1 + 2 * np.sum(r[: m - 1] ** 2))
    return bool(abs(r[m - 1]) > limit)


def seasonal_indices(x: np.ndarray, m: int) -> np.ndarray:
    """R's multiplicative ``decompose`` figure: mean ratio to the centred moving average per
    position in the cycle (the cycle starts at the first value), normalised to mean 1."""
    w = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    trend = np.full(len(x), np.nan)
    half = len(w) // 2
    trend[half : len(x) - half] = np.convolve(x, w, mode="valid")
    ratio = x / trend
    figure = np.array([np.nanmean(ratio[i::m]) for i in range(m)])
    return figure / figure.mean()


def naive2(x: np.ndarray, h: int, m: int = 1) -> np.ndarray:
    if not is_seasonal(x, m):
        return naive(x, h)
    figure = seasonal_indices(x, m)
    n = len(x)
    adjusted_last = x[-1] / figure[(n - 1) % m]
    return adjusted_last * figure[(n + np.arange(h)) % m]


def forecast(name: str, x: np.ndarray, h: int, m: int) -> np.ndarray:
    """H-step point forecast of baseline ``name`` from history x with season m."""
    return {"naive": naive, "snaive": snaive, "naive2": naive2}[name](x, h, m)
