"""Hyper-parameters of a forecasting model: one frozen object, saved beside the weights."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Family = Literal["rnn", "lstm", "gru", "transformer"]
FAMILIES: tuple[Family, ...] = ("rnn", "lstm", "gru", "transformer")


class ScalerConfig(BaseModel):
    """Per-stream normalisation (see `forecaster.models.scaling`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scale_alpha: float = Field(0.02, gt=0, le=1, description="EMA weight of |Δx| in the scale, after warm-up")
    level_beta: float = Field(0.1, gt=0, le=1, description="EMA weight of the level the 2nd feature is taken from")
    initial_scale: float = Field(
        0.01, gt=0, description="prior scale as a share of the first |value|: one pseudo-observation"
    )
    clip: float = Field(10.0, gt=0, description="features are clipped to ±clip scale units (outliers)")
    lags: int = Field(0, ge=0, description="also feed (x_{t-j} - x_t) / s for j = 1..lags, e.g. a season (24 hourly)")
    seasons: tuple[int, ...] = Field(
        (), description="seasonal periods in observations (24 and 168 hourly): Holt-Winters profiles in the state"
    )
    # Chosen on M4-Hourly-train's own last 48 values (never its test file), by the anchor's OWA
    # alone: a slow level and quick profiles beat seasonal naive there (docs/ACCURACY.md).
    smooth_level: float = Field(
        0.001,
        gt=0,
        le=1,
        description="Holt-Winters level weight alpha (with seasons; without, the first of the streams' own)",
    )
    level_choices: tuple[Annotated[float, Field(gt=0, le=1)], ...] = Field(
        (),
        description="more level weights, each with its own profiles: each stream's own forecast follows the one "
        "with the least recent error (with seasons, or without: simple exponential smoothing)",
    )
    drift: bool = Field(
        False,
        description="each stream's own forecast may also follow a level weight from 0.05 up with a Theta drift "
        "(half the slope of a discounted linear trend of the deseasonalised values) (with seasons or without)",
    )
    trend: bool = Field(
        False,
        description="with drift, each drifted level weight also forecasts with the whole slope (a linear trend, "
        "as Holt's method), beside the Theta drift's half",
    )
    smooth_season: float = Field(0.5, gt=0, le=1, description="Holt-Winters seasonal weight gamma (with seasons)")
    seasonal_form: Literal["additive", "multiplicative"] = Field(
        "additive", description="profiles added to the level (any sign) or factors times it (positive series)"
    )

    @field_validator("seasons")
    @classmethod
    def _distinct_ascending_periods(cls, seasons: tuple[int, ...]) -> tuple[int, ...]:
        if any(m < 2 for m in seasons) or list(seasons) != sorted(set(seasons)):
            raise ValueError("seasons must be distinct periods of at least 2 observations, ascending")
        return seasons


class ModelConfig(BaseModel):
    """Everything needed to rebuild a model's architecture (not its weights)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: Family
    d_model: int = Field(64, ge=1, description="hidden size D")
    n_layer: int = Field(2, ge=1, description="stacked recurrent layers / transformer blocks L")
    n_head: int = Field(4, ge=1, description="transformer query heads (must divide D)")
    n_kv_head: int = Field(
        1, ge=1, description="transformer key/value heads (must divide n_head); 1 = multi-query: n_head× less cache"
    )
    window: int = Field(64, ge=2, description="transformer: each position attends to itself and the W - 1 before")
    d_ff: int = Field(128, ge=1, description="transformer feed-forward width")
    dropout: float = Field(0.0, ge=0, lt=1, description="training only")
    horizon: int = Field(8, ge=1, description="H: forecast steps ahead")
    quantiles: tuple[float, ...] = Field((0.1, 0.5, 0.9), min_length=1, description="Q levels, ascending")
    members: int = Field(1, ge=1, description="K networks trained apart (seeds), their forecasts averaged")
    scaler: ScalerConfig = ScalerConfig()
    blend: float = Field(
        0.0, ge=0, le=1, description="share of each forecast taken from the stream's own Holt-Winters forecast; fitted"
    )
    blend_power: float = Field(
        0.0,
        ge=0,
        description="0: every stream takes the share ``blend``; p > 0: each its own, E_net^p / (E_net^p + E_own^p) "
        "from the recent errors of the network's and its own forecasts (``blend`` until any are counted); fitted",
    )
    interval_scale: float = Field(
        1.0, gt=0, description="quantile offsets from the point forecast × this; calibrated after training"
    )
    band_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="0: every stream's band is the calibrated one; r > 0: each stream widens or narrows its own, "
        "by r at each step, towards the nominal share of its recent values inside it",
    )

    @field_validator("quantiles")
    @classmethod
    def _ascending_in_unit_interval(cls, q: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < x < 1 for x in q) or list(q) != sorted(set(q)):
            raise ValueError("quantiles must be distinct, ascending and inside (0, 1)")
        return q

    def model_post_init(self, _context: object) -> None:
        if self.family == "transformer" and self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        if self.family == "transformer" and self.n_head % self.n_kv_head:
            raise ValueError(f"n_head {self.n_head} is not divisible by n_kv_head {self.n_kv_head}")
