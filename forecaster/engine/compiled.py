"""The model step compiled into fused kernels (``torch.compile``), made in the background.

The step is a long chain of small element-wise operations over (B, …) tensors: the scaler's
seasons and candidates, the band, the read-out. Eagerly each one is a pass over memory; compiled,
inductor fuses them into few kernels. Compiling takes tens of seconds on a small CPU, so it runs
in a thread while the engine goes on stepping eagerly; the engine switches once it is done.
Compiled forecasts equal the eager ones to rounding (the fused kernels order some operations
differently).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import torch
from torch import Tensor

from forecaster.engine.pool import StatePool
from forecaster.models import ForecastModel
from forecaster.models.base import State

log = logging.getLogger(__name__)

Step = Callable[[Tensor, State], tuple[Tensor, State]]

# torch specialises a dimension of size 1, so one stream and any other batch size are two graphs;
# both are made up front (an odd size, so that no per-stream dimension is taken for the batch's).
WARM_SIZES = (1, 997)


class CompiledStep:
    """``model.step`` compiled in a background thread; ``step`` is the eager one until then."""

    def __init__(self, model: ForecastModel, device: torch.device) -> None:
        self.model, self.device = model, device
        self._compiled: Step | None = None
        self._error: BaseException | None = None
        # One eager step first: it makes the model's constant tables, which a graph traced before
        # they exist would guard on being absent (and be traced again once they are there).
        self._warm(model.step, 1)
        self._thread = threading.Thread(target=self._compile, name="forecaster-compile", daemon=True)
        self._thread.start()

    @property
    def ready(self) -> bool:
        """Whether the compiled step is in use."""
        return self._compiled is not None

    @property
    def step(self) -> Step:
        """The compiled step once it is made, the eager one until then; raises if compiling failed."""
        self._raise_failure()
        return self._compiled or self.model.step

    def wait(self, timeout: float | None = None) -> bool:
        """Block until compiling has finished (or ``timeout`` seconds); returns ``ready``."""
        self._thread.join(timeout)
        self._raise_failure()
        return self.ready

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"compiling the model step failed: {self._error}") from self._error

    def _compile(self) -> None:
        began = time.monotonic()
        try:
            step = torch.compile(self.model.step, dynamic=True)
            for n in WARM_SIZES:
                self._warm(step, n)
            self._compiled = step
            log.info(
                "%s step compiled in %.0f s: it serves from the next batch",
                self.model.config.family,
                time.monotonic() - began,
            )
        except Exception as e:  # handed to the engine's thread, which raises it at its next step
            self._error = e

    def _warm(self, step: Step, n: int) -> None:
        """One step of ``n`` fresh streams, gathered as the engine gathers them (the same layout)."""
        rows = torch.arange(n, device=self.device)
        with torch.inference_mode():
            state = StatePool(self.model.state_spec(), n, self.device).gather(rows)
            step(torch.ones(n, dtype=torch.float64, device=self.device), state)
