"""LSTM: input, forget and output gates; a cell state c carried beside the hidden state h.

i, f, o = σ(W_x x + W_h h + b)      gates
g       = tanh(W_x x + W_h h + b)   candidate
c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
"""

from __future__ import annotations

import torch
from torch import Tensor

from forecaster.models.base import State
from forecaster.models.config import ModelConfig
from forecaster.models.recurrent import RecurrentCore


class LSTM(RecurrentCore):
    n_gates = 4
    carried = ("h", "c")

    def __init__(self, config: ModelConfig, n_features: int) -> None:
        super().__init__(config, n_features)
        D = config.d_model
        with torch.no_grad():  # forget-gate bias 1: remember by default (Jozefowicz et al., 2015)
            for w in self.w_x:
                w.bias[D : 2 * D].fill_(1.0)

    def cell(self, gx: Tensor, gh: Tensor, s: State) -> State:
        i, f, g, o = (gx + gh).chunk(4, dim=-1)  # (B, D) each
        c = torch.sigmoid(f) * s["c"] + torch.sigmoid(i) * torch.tanh(g)
        return {"h": torch.sigmoid(o) * torch.tanh(c), "c": c}
