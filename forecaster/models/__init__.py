"""Pure torch models: never imports Kafka, the engine or the state code."""

from forecaster.models.base import State, StateEntry, StreamingCore, advance, init_state
from forecaster.models.config import FAMILIES, Family, ModelConfig, ScalerConfig
from forecaster.models.forecast_model import ForecastModel

__all__ = [
    "FAMILIES",
    "Family",
    "ForecastModel",
    "ModelConfig",
    "ScalerConfig",
    "State",
    "StateEntry",
    "StreamingCore",
    "advance",
    "init_state",
]
