"""Streaming neural time-series forecasting: per-stream state on the device, batched steps.

Entry points: ``build``, ``load`` and ``Forecaster`` (``forecaster.api``); ``train`` and
``evaluate`` (``forecaster.recipes``).
"""

from forecaster.api import Forecaster, build, load
from forecaster.errors import CheckpointError, ForecasterError, InvalidEventError, SnapshotError
from forecaster.forecasts import Forecasts
from forecaster.recipes import Evaluation, evaluate, train
from forecaster.schemas import Forecast, Observation, Source

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Evaluation",
    "Forecast",
    "Forecaster",
    "ForecasterError",
    "Forecasts",
    "InvalidEventError",
    "Observation",
    "SnapshotError",
    "Source",
    "build",
    "evaluate",
    "load",
    "train",
]
