"""Fitting a model to series: windows, loss, the training loop and interval calibration."""

from forecaster.training.trainer import TrainConfig, TrainReport, train

__all__ = ["TrainConfig", "TrainReport", "train"]
