"""GRU: update gate z and reset gate r; the hidden state is all it carries.

r = σ(W_xr x + W_hr h + b_r),   z = σ(W_xz x + W_hz h + b_z)
n = tanh(W_xn x + b_xn + r ⊙ (W_hn h + b_hn))
h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
"""

from __future__ import annotations

import torch
from torch import Tensor

from forecaster.models.base import State
from forecaster.models.recurrent import RecurrentCore


class GRU(RecurrentCore):
    n_gates = 3

    def cell(self, gx: Tensor, gh: Tensor, s: State) -> State:
        xr, xz, xn = gx.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return {"h": (1 - z) * n + z * s["h"]}
