"""Causal Transformer over a sliding window, with a rolling key/value cache for streaming.

Pre-norm blocks:  x = x + Attn(LN(x));  x = x + MLP(LN(x));  then a final LayerNorm.

Attention is local and relative: position i attends to positions j with 0 <= i - j < W of the
layer below, with the ALiBi bias -m_h (i - j) per head h instead of position embeddings
(Press et al., 2022). Both make the key/value of a position independent of where the window
starts, so a per-layer cache of the last W - 1 keys/values is exact: a streaming step computes
one query, key and value per layer and attends over its own key plus the cache, O(W) per layer,
never the whole window from scratch. The cache is a ring buffer of R = W - 1 slots indexed by
t % R (see ``base``).

Query heads share key/value heads in groups (Ainslie et al., 2023); with one key/value head
(multi-query attention, Shazeer 2019) the cache that every step reads is n_head times smaller,
which is what bounds a streaming step's speed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from forecaster.models.base import COUNTER, State, StateEntry, StreamingCore
from forecaster.models.config import ModelConfig

CHUNK = 1024  # positions per attention pass of a long sequence


def alibi_slopes(n_head: int) -> Tensor:
    """m_h = 2^(-8h/n_head), h = 1..n_head: the geometric slopes of the ALiBi paper."""
    return torch.tensor([2.0 ** (-8.0 * h / n_head) for h in range(1, n_head + 1)])


class SlidingWindowAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv, self.window = config.n_head, config.n_kv_head, config.window
        self.hs = config.d_model // config.n_head
        self.q = nn.Linear(config.d_model, config.d_model)
        self.kv = nn.Linear(config.d_model, 2 * self.n_kv * self.hs)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.register_buffer("slopes", alibi_slopes(config.n_head), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        nh, nkv, hs = self.n_head, self.n_kv, self.hs
        q = self.q(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k, v = (z.view(B, T, nkv, hs).transpose(1, 2) for z in self.kv(x).split(nkv * hs, dim=-1))  # (B, nkv, T, hs)
        k, v = (z.repeat_interleave(nh // nkv, dim=1) for z in (k, v))  # (B, nh, T, hs): head i reads kv i // g
        pos = torch.arange(T, device=x.device)
        dist = pos[:, None] - pos[None, :]  # (T, T): i - j
        bias = -self.slopes[:, None, None] * dist  # (nh, T, T)
        bias = bias.masked_fill((dist < 0) | (dist >= self.window), float("-inf"))  # banded causal mask
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.drop(self.proj(y.transpose(1, 2).reshape(B, T, D)))

    def cache_bias(self, t: Tensor, R: int) -> Tensor:
        """ALiBi bias and mask over the R cached slots, (B, nkv, g, R); the same for every layer.

        The slot written at step s is s % R, so relative to step t slot j is (t - j - 1) % R + 1
        steps old (1..R = W - 1, all inside the window); slots older than the stream are masked.
        """
        nkv, g = self.n_kv, self.n_head // self.n_kv
        age = (t[:, None] - torch.arange(R, device=t.device)[None, :] - 1) % R + 1  # (B, R)
        bias = -self.slopes.view(1, nkv, g, 1) * age[:, None, None, :]
        return bias.masked_fill((age > t[:, None])[:, None, None, :], float("-inf"))

    def step(self, x: Tensor, k_cache: Tensor, v_cache: Tensor, bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, D); caches (B, nkv, R, hs) with the keys/values of steps t-R..t-1 at slot step % R."""
        B, D = x.shape
        nh, nkv, hs, R = self.n_head, self.n_kv, self.hs, k_cache.shape[2]
        g = nh // nkv
        q = self.q(x).view(B * nkv, g, hs) / math.sqrt(hs)  # query heads grouped by the kv head they read
        k, v = (z.reshape(B * nkv, 1, hs) for z in self.kv(x).split(nkv * hs, dim=-1))  # small copies
        s_cache = torch.baddbmm(bias.view(B * nkv, g, R), q, k_cache.view(B * nkv, R, hs).transpose(1, 2))
        s_self = (q * k).sum(-1, keepdim=True)  # (B*nkv, g, 1): this step's own key, age 0, no bias
        att = torch.softmax(torch.cat([s_cache, s_self], dim=-1), dim=-1)  # (B*nkv, g, W)
        y = torch.baddbmm(att[..., R:] * v, att[..., :R], v_cache.view(B * nkv, R, hs))  # (B*nkv, g, hs)
        return self.proj(y.reshape(B, D)), k.view(B, nkv, hs), v.view(B, nkv, hs)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff)
        self.proj = nn.Linear(config.d_ff, config.d_model)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = SlidingWindowAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def step(self, x: Tensor, k_cache: Tensor, v_cache: Tensor, bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, k, v = self.attn.step(self.ln_1(x), k_cache, v_cache, bias)
        x = x + a
        return x + self.mlp(self.ln_2(x)), k, v


class Transformer(StreamingCore):
    def __init__(self, config: ModelConfig, n_features: int) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(n_features, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)

    def state_spec(self) -> dict[str, StateEntry]:
        c = self.config
        # (nkv, L, R, hs): a layer's slice (B, nkv, R, hs) then folds to (B*nkv, R, hs) without a copy
        shape = (c.n_kv_head, c.n_layer, c.window - 1, c.d_model // c.n_head)
        return {k: StateEntry(shape, ring_axis=2) for k in ("k", "v")}

    def forward(self, x: Tensor) -> Tensor:
        # Attention is banded: through the stack a position sees at most n_layer * (W - 1) steps
        # back, so a long sequence runs in chunks that start that much earlier. Same outputs, and
        # memory O(T * CHUNK) instead of the O(T^2) attention bias of one pass (a year of hourly
        # data in one pass needs tens of GB).
        T, reach = x.shape[1], self.config.n_layer * (self.config.window - 1)
        if T <= CHUNK + reach:
            return self._forward(x)
        parts = []
        for s in range(0, T, CHUNK):
            start = max(0, s - reach)
            parts.append(self._forward(x[:, start : s + CHUNK])[:, s - start :])
        return torch.cat(parts, dim=1)

    def _forward(self, x: Tensor) -> Tensor:
        h = self.embed(x)  # (B, T, D)
        for block in self.blocks:
            h = block(h)
        return self.ln_f(h)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        h = self.embed(x)  # (B, D)
        bias = self.blocks[0].attn.cache_bias(state[COUNTER], self.config.window - 1)
        ks, vs = [], []
        for layer, block in enumerate(self.blocks):
            h, k, v = block.step(h, state["k"][:, :, layer], state["v"][:, :, layer], bias)
            ks.append(k)
            vs.append(v)
        return self.ln_f(h), {"k": torch.stack(ks, dim=2), "v": torch.stack(vs, dim=2)}  # new entries (B, nkv, L, hs)
