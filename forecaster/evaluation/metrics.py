"""Accuracy metrics as the M4 competition defines them (``Benchmarks and Evaluation.R``).

Per series, over the H held-out steps:
    sMAPE = mean_k 200 |y_k - f_k| / (|y_k| + |f_k|)
    MASE  = mean_k |y_k - f_k| / scale,   scale = mean_t |x_t - x_{t-m}| over the in-sample x
and over a whole set, OWA = ½ (sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) of the set averages.
"""

from __future__ import annotations

import numpy as np


def smape(y: np.ndarray, f: np.ndarray) -> float:
    denom = np.abs(y) + np.abs(f)
    ratio = np.divide(np.abs(y - f), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(200.0 * ratio.mean())


def mase_scale(insample: np.ndarray, m: int) -> float:
    """Mean absolute m-step seasonal difference of the history (the M4 scale)."""
    if len(insample) <= m:
        raise ValueError(f"history of {len(insample)} values is too short for season {m}")
    return float(np.mean(np.abs(insample[m:] - insample[:-m])))


def mase(y: np.ndarray, f: np.ndarray, scale: float) -> float:
    return float(np.mean(np.abs(y - f)) / scale) if scale > 0 else float("nan")


def owa(smape_: float, mase_: float, smape_naive2: float, mase_naive2: float) -> float:
    return 0.5 * (smape_ / smape_naive2 + mase_ / mase_naive2)


def pinball(y: np.ndarray, q: np.ndarray, levels: tuple[float, ...], scale: float) -> float:
    """Mean quantile (pinball) loss over levels and steps, in units of ``scale``; q is (Q, H)."""
    levels_ = np.asarray(levels)[:, None]
    d = y[None, :] - q
    return float(np.mean(np.maximum(levels_ * d, (levels_ - 1) * d)) / scale) if scale > 0 else float("nan")


def inside(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Which truths fall inside [lo, hi]."""
    return (y >= lo) & (y <= hi)
