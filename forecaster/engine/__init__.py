"""Device-resident per-stream state and the batched step. Never imports Kafka."""

from forecaster.engine.engine import Engine, plan_rounds
from forecaster.engine.pool import StatePool
from forecaster.engine.slots import SlotTable

__all__ = ["Engine", "SlotTable", "StatePool", "plan_rounds"]
