"""Device-resident per-stream state: one preallocated tensor per state entry, a row per slot."""

from __future__ import annotations

import torch
from torch import Tensor

from forecaster.models.base import COUNTER, COUNTER_ENTRY, State, StateEntry


class StatePool:
    """Rows of every state tensor, on one device; grows by doubling, never shrinks."""

    def __init__(self, spec: dict[str, StateEntry], capacity: int, device: torch.device) -> None:
        self.spec = {COUNTER: COUNTER_ENTRY, **spec}
        self.device = device
        self.tensors: State = {
            k: torch.zeros((capacity, *e.shape), dtype=e.dtype, device=device) for k, e in self.spec.items()
        }
        # Gathered rows land in buffers reused across steps: a fresh multi-MB tensor per step costs
        # more in page faults (large host allocations are fresh mmaps) than the copy itself.
        self._gathered: State = {k: t[:0].clone() for k, t in self.tensors.items() if not self.spec[k].delay}

    @property
    def capacity(self) -> int:
        return self.tensors[COUNTER].shape[0]

    @property
    def bytes_per_stream(self) -> int:
        return sum(t[0].numel() * t.element_size() for t in self.tensors.values())

    def grow(self, capacity: int) -> None:
        """Reallocate to at least ``capacity`` rows (doubling), keeping every existing row."""
        new_cap = self.capacity
        while new_cap < capacity:
            new_cap *= 2
        if new_cap == self.capacity:
            return
        for k, t in self.tensors.items():
            bigger = t.new_zeros((new_cap, *t.shape[1:]))
            bigger[: t.shape[0]] = t
            self.tensors[k] = bigger

    def reset(self, slots: Tensor) -> None:
        """Fresh (zero) state for newly assigned slots."""
        for t in self.tensors.values():
            t.index_fill_(0, slots, 0)

    def gather(self, slots: Tensor) -> State:
        """The rows of ``slots``, in order, a delay line's head alone; valid until the next ``gather``."""
        n = slots.shape[0]
        if n > self._gathered[COUNTER].shape[0]:
            self._gathered = {k: self.tensors[k].new_empty((n, *self.tensors[k].shape[1:])) for k in self._gathered}
        t_now = torch.index_select(self.tensors[COUNTER], 0, slots, out=self._gathered[COUNTER][:n])
        rows = {}
        for k, t in self.tensors.items():
            e = self.spec[k]
            if e.delay:  # the entry written W steps ago, at t % W of the ring
                a = e.ring_axis + 1
                rows[k] = t.movedim(a, 1)[slots, t_now % e.shape[a - 1]].unsqueeze(a)
            elif k != COUNTER:
                rows[k] = torch.index_select(t, 0, slots, out=self._gathered[k][:n])
        return {COUNTER: t_now, **rows}

    def scatter(self, slots: Tensor, t_before: Tensor, update: State) -> None:
        """Write one step's update in place: plain entries whole, ring entries one row at t % W."""
        for k, e in self.spec.items():
            if k == COUNTER:
                self.tensors[k].index_copy_(0, slots, t_before + 1)
            elif e.ring_axis is not None:
                ring = self.tensors[k].movedim(e.ring_axis + 1, 1)  # a view: writes land in the pool
                ring.index_put_((slots, t_before % e.shape[e.ring_axis]), update[k])
            else:
                self.tensors[k].index_copy_(0, slots, update[k])

    def rows(self, slots: Tensor) -> dict[str, Tensor]:
        """Copies of the given rows on the CPU (for snapshots)."""
        return {k: t.index_select(0, slots).cpu() for k, t in self.tensors.items()}

    def load_rows(self, slots: Tensor, rows: dict[str, Tensor]) -> None:
        for k, t in self.tensors.items():
            t.index_copy_(0, slots, rows[k].to(self.device, t.dtype))
