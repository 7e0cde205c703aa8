"""Fitting a model to series: windows, loss, the training loop and interval calibration."""

from forecaster.training.trainer import TrainConfig, TrainReport, default_validation, train

__all__ = ["TrainConfig", "TrainReport", "default_validation", "train"]
