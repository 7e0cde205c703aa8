"""The public Python API: ``build``, ``load`` and the ``Forecaster`` they return.

fc = forecaster.load("lstm")
out = fc.update([{"stream": "AAPL", "ts": 1704205800.0, "value": 185.64}])
blob = fc.snapshot(); fc2 = forecaster.load("lstm"); fc2.restore(blob)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from forecaster.checkpoint import load_checkpoint, model_version, save_checkpoint
from forecaster.device import resolve_device
from forecaster.engine import Engine
from forecaster.forecasts import Forecasts
from forecaster.models import Family, ForecastModel, ModelConfig
from forecaster.schemas import Observation
from forecaster.state import decode_snapshot, encode_snapshot
from forecaster.validation import Batch, validate_batch, validate_columns


class Forecaster:
    """Forecasts for many streams at once; each stream's state stays on ``device``.

    Engine options: ``capacity`` (initial slots; grows by doubling), ``max_streams`` (cap, least
    recently used evicted first), ``idle_timeout`` (seconds of ``clock`` time after which an
    unseen stream is evicted), ``compile`` (compile the model step into fused kernels, in the
    background: the first minute or so is stepped eagerly; ``engine.compiled.wait()`` blocks
    until it is done). An evicted stream that returns starts from fresh state.
    """

    def __init__(
        self,
        model: ForecastModel,
        device: str | torch.device = "auto",
        *,
        capacity: int = 1024,
        max_streams: int | None = None,
        idle_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        compile: bool = False,
    ) -> None:
        self.version = model_version(model)
        self._engine = Engine(model, resolve_device(device), capacity, max_streams, idle_timeout, clock, compile)

    @property
    def config(self) -> ModelConfig:
        return self._engine.model.config

    @property
    def name(self) -> str:
        """The model family, as the ``model`` field of forecasts."""
        return self.config.family

    @property
    def device(self) -> torch.device:
        return self._engine.device

    @property
    def model(self) -> ForecastModel:
        return self._engine.model

    @property
    def engine(self) -> Engine:
        """The batched state engine: ``engine.advance(stream_ids, values)`` skips per-event
        validation and ``Forecast`` objects (for callers that validated already, e.g. a worker)."""
        return self._engine

    @property
    def streams(self) -> list[str]:
        """Resident streams, least recently used first."""
        return self._engine.table.streams

    @property
    def evictions(self) -> int:
        """Streams evicted so far (idle or over the cap)."""
        return self._engine.evictions

    @property
    def bytes_per_stream(self) -> int:
        return self._engine.pool.bytes_per_stream

    def update(self, events: Sequence[Mapping[str, Any] | Observation]) -> Forecasts:
        """Advance the streams of ``events`` and return one forecast per event, in input order
        (a sequence of ``Forecast``, with the numbers as arrays too: see ``Forecasts``).

        The whole batch is validated first: an invalid event raises ``ValueError``
        (``InvalidEventError``, with ``index`` and ``reason``) and no state changes.
        """
        return self._advance(validate_batch(events, self._engine.table.last_ts))

    def update_arrays(self, streams: Sequence[str], ts: Sequence[float], values: Sequence[float]) -> Forecasts:
        """``update`` for columns of length N (lists or numpy arrays; ``ts`` in epoch seconds, or
        datetime64): same validation, same numbers, no Python object per event.

        >>> fc = load("lstm", device="cpu")
        >>> res = fc.update_arrays(["AAPL", "MSFT"], [1704205800.0, 1704205800.0], [185.64, 370.87])
        >>> res.point.shape, res.quantiles.shape  # (N, H), (N, Q, H)
        ((2, 8), (2, 3, 8))
        """
        return self._advance(validate_columns(streams, ts, values, self._engine.table.last_ts))

    def update_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``update`` for a pandas frame with columns ``stream, ts, value`` (or Nixtla's
        ``unique_id, ds, y``; ``ts`` numbers in epoch seconds or datetimes, naive = UTC), rows in
        time order per stream. Returns a tidy frame, one row per (input row, step): stream, ts (as
        given), step (1..H), point and one column per quantile ("0.1", "0.5", "0.9").

        >>> frame = pd.DataFrame({"unique_id": ["AAPL"], "ds": [pd.Timestamp("2024-01-02 14:30")], "y": [185.64]})
        >>> load("lstm", device="cpu").update_frame(frame).shape  # H rows per input row
        (8, 7)
        """
        names = next((n for n in (("stream", "ts", "value"), ("unique_id", "ds", "y")) if set(n) <= set(frame)), None)
        if names is None:
            raise ValueError(f"the frame needs columns stream, ts, value (or unique_id, ds, y), not {list(frame)}")
        stream, ts, value = (frame[n] for n in names)
        ids = stream.astype(str) if pd.api.types.is_integer_dtype(stream) else stream  # Nixtla's ids may be integers
        if isinstance(ts.dtype, pd.DatetimeTZDtype):
            ts_seconds: Any = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        else:
            ts_seconds = ts.to_numpy()
        batch = validate_columns(ids.to_numpy(), ts_seconds, value.to_numpy(), self._engine.table.last_ts)
        return self._advance(batch).to_frame(stream.to_numpy(), ts.to_numpy())

    def _advance(self, batch: Batch) -> Forecasts:
        """One engine step for validated events."""
        y = self._engine.advance(batch.streams, batch.ts.tolist(), batch.values).numpy()  # (N, 1 + Q, H)
        c = self.config
        return Forecasts(
            batch.streams, batch.ts, batch.values, y[:, 0], y[:, 1:], c.quantiles, self.name, self.version, time.time()
        )

    def snapshot(self, streams: Iterable[str] | None = None, dropped: Iterable[str] = ()) -> bytes:
        """Per-stream state as bytes (no pickle), of every resident stream or of ``streams`` (those
        of them that are resident), least recently used first; ``restore`` on the same model
        continues exactly. ``dropped``:
        streams a merging ``restore`` forgets first, so that a snapshot of the streams changed
        since an earlier one, restored over it, also carries the streams evicted since."""
        engine = self._engine
        table = engine.table
        # in LRU order, whatever order they come in: a merge then restores that order too
        streams = table.streams if streams is None else table.in_lru_order(streams)
        slots = torch.tensor(engine.table.slots(streams), dtype=torch.int64, device=self.device)
        rows = engine.pool.rows(slots)
        return encode_snapshot(self._identity(), streams, [table.last_ts[s] for s in streams], rows, list(dropped))

    def restore(self, blob: bytes, merge: bool = False) -> list[str]:
        """Replace all per-stream state with a snapshot's (or, with ``merge``, forget the streams
        it drops and add its streams to the resident ones) and return the snapshot's streams;
        ``ValueError`` if it is corrupt or foreign, and then nothing changes."""
        spec = {k: (e.shape, e.dtype) for k, e in self._engine.pool.spec.items()}
        streams, last_ts, rows, dropped = decode_snapshot(blob, self._identity(), spec)
        if merge:
            self._engine.drop(dropped)
        self._engine.load(streams, last_ts, rows, merge)
        return streams

    def forget(self, streams: Iterable[str]) -> None:
        """Drop the state of these streams (they start fresh if they come back)."""
        self._engine.drop(list(streams))

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write the model as a checkpoint directory that ``load`` reads."""
        return save_checkpoint(self.model, directory, metadata)

    def _identity(self) -> dict[str, Any]:
        c = self.config.model_dump(mode="json")
        return {"family": c.pop("family"), "horizon": c.pop("horizon"), **c, "version": self.version}


def build(family: Family, seed: int = 0, device: str | torch.device = "auto", **options: Any) -> Forecaster:
    """An untrained model of ``family`` (weights from ``seed``). ``options``: ``ModelConfig`` fields
    (``d_model``, ``horizon``, …) and the engine options of ``Forecaster``."""
    config_keys = set(ModelConfig.model_fields) - {"family"}
    config = {k: options.pop(k) for k in list(options) if k in config_keys}
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = ForecastModel(ModelConfig(family=family, **config))
    finally:
        torch.random.set_rng_state(generator_state)  # build() must not disturb the caller's RNG
    return Forecaster(model, device, **options)


def load(name_or_path: str | Path, device: str | torch.device = "auto", **options: Any) -> Forecaster:
    """A trained model: a checkpoint directory, or a bundled family name ("rnn", "lstm", "gru", "transformer")."""
    model, _ = load_checkpoint(name_or_path)
    return Forecaster(model, device, **options)
