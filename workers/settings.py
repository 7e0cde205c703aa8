"""Worker configuration: one frozen pydantic object, from flags, environment variables
(``FORECASTER_<FIELD>``) or a JSON file, flags winning. Any Kafka client option (security
included: ``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``, ``ssl_cafile``, …)
passes through ``kafka`` unchanged to the consumer and the producer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Self

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from pydantic import BaseModel, ConfigDict, Field, field_validator

SECRET_KEYS = ("password", "secret", "token", "key")  # never printed or logged


class KafkaSettings(BaseModel):
    """What every Kafka client of the service needs: where the brokers are, and client options."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers, comma separated")
    kafka: dict[str, Any] = Field(default_factory=dict, description="extra kafka-python client options")

    @classmethod
    def load(cls, flags: dict[str, Any], file: str | None = None, env: dict[str, str] | None = None) -> Self:
        """Merge a JSON file, ``FORECASTER_*`` environment variables and flags (later wins)."""
        values: dict[str, Any] = json.loads(Path(file).read_text()) if file else {}
        env = os.environ if env is None else env
        for name in cls.model_fields:
            raw = env.get(f"FORECASTER_{name.upper()}")
            if raw is not None:
                values[name] = json.loads(raw) if name == "kafka" else raw
        values.update({k: v for k, v in flags.items() if v is not None})
        return cls.model_validate(values)

    @field_validator("kafka")
    @classmethod
    def _known_options(cls, kafka: dict[str, Any]) -> dict[str, Any]:
        known = {*KafkaConsumer.DEFAULT_CONFIG, *KafkaProducer.DEFAULT_CONFIG, *KafkaAdminClient.DEFAULT_CONFIG}
        unknown = sorted(set(kafka) - known)
        if unknown:
            raise ValueError(f"unknown kafka-python option {unknown[0]!r} (see the KafkaConsumer/KafkaProducer docs)")
        return kafka

    def options_for(self, client: type) -> dict[str, Any]:
        """The bootstrap servers and those ``kafka`` options that ``client`` (a kafka-python class) takes."""
        options = {"bootstrap_servers": self.bootstrap.split(","), **self.kafka}
        return {k: v for k, v in options.items() if k in client.DEFAULT_CONFIG}

    def redacted(self) -> dict[str, Any]:
        """For logs: the settings with secret-looking Kafka options masked."""
        kafka = {k: "***" if any(s in k.lower() for s in SECRET_KEYS) else v for k, v in self.kafka.items()}
        return {**self.model_dump(), "kafka": kafka}

    def __repr_args__(self) -> Any:
        """``str`` and ``repr`` show the redacted options: a settings object printed anywhere leaks nothing."""
        for name, value in super().__repr_args__():
            yield name, self.redacted()["kafka"] if name == "kafka" else value


class WorkerSettings(KafkaSettings):
    """Everything ``forecaster serve`` takes."""

    input: str = Field("prices", description="topic of observations (key = stream id)")
    output: str = Field("forecasts", description="topic of forecasts")
    dead_letters: str = Field("prices.dlq", description="topic of rejected records with their reason")
    state_topic: str = Field("forecaster.state", description="topic of state snapshots")
    control_topic: str = Field("forecaster.control", description="topic of models handed over by forecaster swap")
    shadow_output: str | None = Field(
        None, description="topic of a shadow model's forecasts (forecaster swap --shadow); none: scored, not published"
    )
    promote_window: int = Field(
        0,
        ge=0,
        description="promote a shadow model after a window of this many events scored for both models in which its "
        "mean error is lower than the serving model's (0: only by command)",
    )
    group: str = Field("forecaster", description="consumer group: workers of one group share the partitions")
    model: str = Field("lstm", description="bundled family name or checkpoint directory")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    compile: bool = Field(
        False,
        description="compile the model step into fused kernels (torch.compile), in the background: faster once "
        "ready (about a minute on a small CPU), eager until then",
    )
    metrics_host: str = Field("127.0.0.1", description="address the /metrics endpoint binds to")
    metrics_port: int = Field(9100, ge=0, le=65535, description="0: no metrics endpoint")
    threads: int = Field(
        1, ge=0, description="CPU threads of the model step (0: torch's choice); the Kafka clients need the rest"
    )
    max_batch: int = Field(10_000, ge=1, description="most records per engine batch")
    max_wait_ms: int = Field(5, ge=0, description="longest a poll waits for records (latency at low rates)")
    auto_offset_reset: str = Field("earliest", pattern="^(earliest|latest)$", description="a new group starts here")
    snapshot_interval_s: float = Field(30.0, gt=0, description="seconds between state snapshots")
    snapshot_chunk_bytes: int = Field(
        512 * 1024, ge=1024, le=1024 * 1024, description="bytes of state per state-topic record (broker limit: 1 MB)"
    )
    snapshot_slice_bytes: int = Field(
        1 << 20, ge=1024, description="bytes of a base snapshot written per loop turn (bounds the loop's pause)"
    )
    broker_timeout_s: float = Field(
        10.0, gt=0, description="seconds without an answer from the broker before it counts as down (hung)"
    )
    max_streams: int | None = Field(None, ge=1, description="resident stream cap (LRU eviction)")
    idle_timeout_s: float | None = Field(None, gt=0, description="evict streams idle this long")
