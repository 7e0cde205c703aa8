"""The forecasts of one update as arrays, readable as a sequence of ``Forecast`` messages."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import pandas as pd

from forecaster.schemas import Forecast


class Forecasts(Sequence[Forecast]):
    """One forecast per valid input event, in input order.

    Read it as a list of ``Forecast`` (each built when it is read, so a batch of 10k events costs
    no 10k Python objects until someone looks) or use the arrays: ``point`` (N, H) and
    ``quantiles`` (N, Q, H) at ``levels``, beside the events' ``streams``, ``ts`` and ``values``.
    """

    def __init__(
        self,
        streams: list[str],
        ts: np.ndarray,
        values: np.ndarray,
        point: np.ndarray,
        quantiles: np.ndarray,
        levels: tuple[float, ...],
        model: str,
        model_version: str,
        produced_at: float,
    ) -> None:
        self.streams, self.ts, self.values = streams, ts, values
        self.point, self.quantiles, self.levels = point, quantiles, levels
        self.model, self.model_version, self.produced_at = model, model_version, produced_at
        self._keys = [str(q) for q in levels]

    def __len__(self) -> int:
        return len(self.streams)

    @overload
    def __getitem__(self, i: int) -> Forecast: ...

    @overload
    def __getitem__(self, i: slice) -> list[Forecast]: ...

    def __getitem__(self, i: int | slice) -> Forecast | list[Forecast]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = operator.index(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"forecast {i} of {len(self)}")
        i %= len(self)
        return Forecast.trusted(
            self.streams[i],
            float(self.ts[i]),
            self.model,
            self.model_version,
            self.point[i].tolist(),
            dict(zip(self._keys, self.quantiles[i].tolist(), strict=True)),
            self.produced_at,
            value=float(self.values[i]),
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which do not hash

    def __repr__(self) -> str:
        return f"<Forecasts: {len(self)} from {self.model}, horizon {self.point.shape[1]}>"

    def to_frame(self, streams: Any = None, ts: Any = None) -> pd.DataFrame:
        """A tidy frame, one row per (event, step): stream, ts, step (1..H), point and one column per
        quantile level named as in the JSON ("0.1", …). ``streams``/``ts``: the values to show in
        those columns (e.g. the input's own, as given); default the validated ones."""
        n, h = self.point.shape
        columns: dict[str, Any] = {
            "stream": np.repeat(np.asarray(self.streams if streams is None else streams, dtype=object), h),
            "ts": np.repeat(np.asarray(self.ts if ts is None else ts), h),
            "step": np.tile(np.arange(1, h + 1), n),
            "point": self.point.reshape(-1),
        }
        for q, key in enumerate(self._keys):
            columns[key] = self.quantiles[:, q].reshape(-1)
        return pd.DataFrame(columns)
