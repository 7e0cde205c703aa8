"""Plumbing shared by the recurrent families; each family file supplies only its cell math.

A layer l computes its gate pre-activations from the input, gx = W_x x + b_x (for a whole
sequence at once in training), and from the previous hidden state, gh = W_h h + b_h, then
hands both to the family's ``cell``. Layers stack: the hidden output of layer l is the input of
layer l+1. State per stream: one (L, D) tensor per carried vector (h; c for the LSTM).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from forecaster.models.base import State, StateEntry, StreamingCore
from forecaster.models.config import ModelConfig


class RecurrentCore(StreamingCore):
    n_gates: int  # G: gate blocks of width D in gx and gh
    carried: tuple[str, ...] = ("h",)  # state vectors per layer; "h" is the output

    def __init__(self, config: ModelConfig, n_features: int) -> None:
        super().__init__()
        D, L, G = config.d_model, config.n_layer, self.n_gates
        self.d_model, self.n_layer = D, L
        self.w_x = nn.ModuleList(nn.Linear(n_features if i == 0 else D, G * D) for i in range(L))
        self.w_h = nn.ModuleList(nn.Linear(D, G * D) for _ in range(L))
        self.drop = nn.Dropout(config.dropout)

    def cell(self, gx: Tensor, gh: Tensor, s: State) -> State:
        """gx, gh (B, G*D); s: this layer's carried vectors, each (B, D) -> the new ones."""
        raise NotImplementedError

    def state_spec(self) -> dict[str, StateEntry]:
        return {k: StateEntry((self.n_layer, self.d_model)) for k in self.carried}

    def forward(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        for layer in range(self.n_layer):
            gx = self.w_x[layer](x)  # (B, T, G*D): the input half of every step in one matmul
            s = {k: x.new_zeros(B, self.d_model) for k in self.carried}
            out = []
            for i in range(T):
                s = self.cell(gx[:, i], self.w_h[layer](s["h"]), s)
                out.append(s["h"])
            x = self.drop(torch.stack(out, dim=1))  # (B, T, D)
        return x

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        new: dict[str, list[Tensor]] = {k: [] for k in self.carried}
        for layer in range(self.n_layer):
            s = {k: state[k][:, layer] for k in self.carried}  # (B, D) each
            s = self.cell(self.w_x[layer](x), self.w_h[layer](s["h"]), s)
            for k in self.carried:
                new[k].append(s[k])
            x = s["h"]
        return x, {k: torch.stack(v, dim=1) for k, v in new.items()}  # (B, L, D) each
