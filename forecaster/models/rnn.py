"""Elman RNN:  h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)."""

from __future__ import annotations

import torch
from torch import Tensor

from forecaster.models.base import State
from forecaster.models.recurrent import RecurrentCore


class RNN(RecurrentCore):
    n_gates = 1

    def cell(self, gx: Tensor, gh: Tensor, s: State) -> State:
        return {"h": torch.tanh(gx + gh)}
