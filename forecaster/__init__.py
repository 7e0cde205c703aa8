"""Streaming neural time-series forecasting: per-stream state on the device, batched steps.

Entry points: ``build``, ``load`` and ``Forecaster`` (``forecaster.api``).
"""

from forecaster.api import Forecaster, build, load
from forecaster.errors import CheckpointError, ForecasterError, InvalidEventError, SnapshotError
from forecaster.forecasts import Forecasts
from forecaster.schemas import Forecast, Observation, Source

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Forecast",
    "Forecaster",
    "ForecasterError",
    "Forecasts",
    "InvalidEventError",
    "Observation",
    "SnapshotError",
    "Source",
    "build",
    "load",
]
