"""The one streaming interface every model family implements.

A *core* maps normalised features to hidden vectors. It works in two modes that must agree:

- ``forward(x)``: a whole sequence at once, ``x`` (B, T, F) -> ``h`` (B, T, D); used for training.
- ``step(x, state)``: one observation for each of B streams, ``x`` (B, F) -> ``h`` (B, D), plus
  the per-stream state update. ``step`` is pure: it never writes into ``state``.

State is a dict of tensors, one row per stream, described by ``state_spec()`` so that the engine
can preallocate it for many streams without knowing the family. Three kinds of entry:

- plain: ``step`` returns the full new value (B, *shape);
- ring (``ring_axis=a``): a rolling buffer of length W = shape[a] along per-stream axis a.
  ``step`` returns only the new entry (B, *shape without axis a); the caller writes it at
  position ``t % W`` of that axis. This keeps a Transformer step O(W) with no copy of the window.
- delay line (a ring with ``delay=True``): a step reads only the entry written W steps ago (zero
  before), its *head* at index 0 of axis a, and returns the entry that replaces it. The engine
  keeps it as a ring and hands the step the head alone (length 1 along a), so a stream's forecasts
  of W steps ago cost one entry per step, not W; ``advance`` keeps it as a queue, oldest first.

Every state also carries ``t`` (B,) int64, the number of observations the stream has seen before
this one; callers maintain it (``advance`` below, or the engine in place).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

State = dict[str, Tensor]


@dataclass(frozen=True)
class StateEntry:
    """Shape (per stream), dtype and kind of one state tensor."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    ring_axis: int | None = None  # per-stream axis of a rolling buffer; None: a plain entry
    delay: bool = False  # a ring whose step reads only its head (see above)


COUNTER = "t"
COUNTER_ENTRY = StateEntry((), torch.int64)


class StreamingCore(nn.Module):
    """Base class of the four families: features (…, F) -> hidden (…, D)."""

    def state_spec(self) -> dict[str, StateEntry]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        raise NotImplementedError


def init_state(spec: dict[str, StateEntry], n: int, device: torch.device | str = "cpu") -> State:
    """Zero state for ``n`` fresh streams, the counter included."""
    full = {COUNTER: COUNTER_ENTRY, **spec}
    return {k: torch.zeros((n, *e.shape), dtype=e.dtype, device=device) for k, e in full.items()}


def advance(spec: dict[str, StateEntry], state: State, update: State) -> State:
    """Out-of-place version of what the engine does in its pool: apply one step's update."""
    t = state[COUNTER]
    new = {COUNTER: t + 1}
    for k, e in spec.items():
        if e.delay:  # the oldest entry leaves, the new one joins at the end
            a = e.ring_axis + 1
            new[k] = torch.cat([state[k].narrow(a, 1, e.shape[a - 1] - 1), update[k].unsqueeze(a)], dim=a)
        elif e.ring_axis is not None:
            rows = torch.arange(t.numel(), device=t.device)
            buf = state[k].clone()
            buf.movedim(e.ring_axis + 1, 1)[rows, t % e.shape[e.ring_axis]] = update[k]
            new[k] = buf
        else:
            new[k] = update[k]
    return new
