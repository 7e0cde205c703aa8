"""The batched step: stream ids -> slots -> one model step per round -> forecasts.

A batch may hold several events of one stream; they must apply in order, so the batch is cut
into rounds: round r holds every stream's r-th event of the batch, and each round is one
gather -> ``model.step`` -> scatter over the pool. With one event per stream (the common case)
a batch is exactly one step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from forecaster.engine.compiled import CompiledStep
from forecaster.engine.pool import StatePool
from forecaster.engine.slots import SlotTable
from forecaster.models import ForecastModel
from forecaster.models.base import COUNTER


def plan_rounds(streams: Sequence[str]) -> list[list[int]]:
    """Event indices per round: round r holds each stream's r-th event, in input order."""
    rounds: list[list[int]] = []
    occurrence: dict[str, int] = {}
    for i, s in enumerate(streams):
        r = occurrence.get(s, 0)
        occurrence[s] = r + 1
        if r == len(rounds):
            rounds.append([])
        rounds[r].append(i)
    return rounds


class Staging:
    """A batch's slots and values on their way to the device. On a GPU they are written into
    reused page-locked (pinned) host buffers and copied asynchronously (``non_blocking``): no
    pinned allocation per batch, and the copy overlaps the host's work until the next sync. A
    buffer is reused only after the batch's forecasts came back to the host (a sync point)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.slots = torch.empty(0, dtype=torch.int64)
        self.values = torch.empty(0, dtype=torch.float64)

    def to_device(self, slots: np.ndarray, values: Sequence[float]) -> tuple[Tensor, Tensor]:
        if self.device.type != "cuda":
            return torch.from_numpy(slots), torch.tensor(values, dtype=torch.float64)
        n = len(slots)
        if self.slots.numel() < n:  # grow by doubling, pinned
            size = max(n, 2 * self.slots.numel())
            self.slots = torch.empty(size, dtype=torch.int64, pin_memory=True)
            self.values = torch.empty(size, dtype=torch.float64, pin_memory=True)
        self.slots.numpy()[:n] = slots
        self.values.numpy()[:n] = values
        return (
            self.slots[:n].to(self.device, non_blocking=True),
            self.values[:n].to(self.device, non_blocking=True),
        )


class Engine:
    """Per-stream state of many streams on one device, advanced in batched steps.

    ``max_streams`` caps resident streams (least recently used evicted first); streams unseen
    for ``idle_timeout`` seconds of ``clock`` time are evicted too. An evicted stream that comes
    back starts from fresh state. With ``compile`` the model step is compiled into fused kernels
    in the background (``compiled``), and used once it is ready.
    """

    def __init__(
        self,
        model: ForecastModel,
        device: torch.device,
        capacity: int = 1024,
        max_streams: int | None = None,
        idle_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        compile: bool = False,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if max_streams is not None and max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, got {max_streams}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive seconds, got {idle_timeout}")
        self.model = model.to(device).eval()
        self.device = device
        self.max_streams, self.idle_timeout, self.clock = max_streams, idle_timeout, clock
        self.pool = StatePool(model.state_spec(), capacity, device)
        self.table = SlotTable()
        self.staging = Staging(device)
        self.evictions = 0
        self.compiled = CompiledStep(self.model, device) if compile else None

    @torch.inference_mode()
    def advance(self, streams: Sequence[str], ts: Sequence[float], values: Sequence[float]) -> Tensor:
        """Apply validated events in order; returns forecasts (N, 1 + Q, H) float64 on the CPU.

        Events must already be valid and in time order per stream (``validate_batch``)."""
        if len(ts) != len(streams):
            raise ValueError(f"{len(streams)} streams but {len(ts)} times")
        distinct = self._make_room(streams)
        self.table.last_ts.update(zip(streams, ts, strict=True))  # in order: a stream's last time stays
        slots, x = self.staging.to_device(self.table.slots(streams), values)
        if distinct == len(streams):  # one event per stream: a single step
            return self._step(slots, x).cpu()  # sync point
        out = torch.empty((len(streams), *self._out_shape), dtype=torch.float64, device=self.device)
        for events in plan_rounds(streams):
            idx = torch.tensor(events, dtype=torch.int64).to(self.device)
            out[idx] = self._step(slots[idx], x[idx])
        return out.cpu()  # sync point: the staging buffers are free again after it

    def advance_all(self, streams: Sequence[str], ts: Sequence[float], values: Sequence[float]) -> Tensor:
        """``advance`` for a batch that may hold more distinct streams than ``max_streams`` (which
        ``advance`` refuses): in chunks of at most that many events."""
        n = self.max_streams or len(streams)
        if len(streams) <= n:
            return self.advance(streams, ts, values)
        return torch.cat(
            [self.advance(streams[i : i + n], ts[i : i + n], values[i : i + n]) for i in range(0, len(streams), n)]
        )

    @property
    def _out_shape(self) -> tuple[int, int]:
        c = self.model.config
        return 1 + len(c.quantiles), c.horizon

    def _step(self, slots: Tensor, x: Tensor) -> Tensor:
        state = self.pool.gather(slots)
        step = self.compiled.step if self.compiled else self.model.step
        forecasts, update = step(x, state)
        self.pool.scatter(slots, state[COUNTER], update)
        return forecasts

    def _make_room(self, streams: Sequence[str]) -> int:
        """Evict as configured, give every new stream of the batch a fresh slot; returns how many
        distinct streams the batch has."""
        batch = dict.fromkeys(streams)
        if self.max_streams is not None and len(batch) > self.max_streams:
            raise ValueError(f"a batch of {len(batch)} distinct streams exceeds max_streams={self.max_streams}")
        now = self.clock()
        table = self.table
        if self.idle_timeout is not None:
            self.evictions += table.evict_idle(now, self.idle_timeout)
        found = table.lookup(batch)
        table.touch(found[found >= 0], now)  # batch streams go last in LRU order
        new = [s for s, slot in zip(batch, found.tolist(), strict=True) if slot < 0]
        if self.max_streams is not None:
            self.evictions += table.evict_lru(len(table) + len(new) - self.max_streams)
        if new:
            fresh = torch.tensor([table.assign(s, now) for s in new], dtype=torch.int64)
            self.pool.grow(table.high_water)
            self.pool.reset(fresh.to(self.device))
        return len(batch)

    def load(self, streams: list[str], last_ts: list[float], rows: dict[str, Tensor], merge: bool = False) -> None:
        """Set the given streams' state rows and last times (in LRU order). Without ``merge`` they
        replace every resident stream; with it they join them (overwriting streams of the same id)."""
        now = self.clock()
        if not merge:
            self.table = SlotTable()
        table = self.table
        for s in streams:
            if s not in table:
                table.assign(s, now)
        slots = table.slots(streams)
        table.touch(slots, now)  # known and new streams end in the given LRU order
        table.last_ts.update(zip(streams, last_ts, strict=True))
        self.pool.grow(max(1, table.high_water))
        self.pool.load_rows(torch.from_numpy(slots).to(self.device), rows)

    def drop(self, streams: Sequence[str]) -> None:
        """Forget these streams (e.g. of partitions this worker no longer owns); not counted as evictions."""
        for s in streams:
            if s in self.table:
                self.table.evict(s)

    def read(self, name: str, streams: Sequence[str]) -> Tensor:
        """State entry ``name`` of the given resident streams, on the CPU (e.g. the scaler's
        ``x_scale`` to put a live forecast error in the stream's units)."""
        slots = torch.tensor(self.table.slots(streams), dtype=torch.int64, device=self.device)
        return self.pool.tensors[name].index_select(0, slots).cpu()
