"""Create the service's topics when they do not exist yet (development and the demo; a
production cluster creates them up front, see docker-compose.yml)."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from workers.settings import KafkaSettings, WorkerSettings


def ensure_topics(settings: KafkaSettings, partitions: dict[str, int]) -> None:
    """Create each named topic with its partition count, leaving existing ones as they are."""
    admin = KafkaAdminClient(**settings.options_for(KafkaAdminClient))
    try:
        for name, count in partitions.items():
            try:
                admin.create_topics([NewTopic(name, count, 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def worker_topics(settings: WorkerSettings, partitions: int) -> dict[str, int]:
    """Input and forecasts (a shadow model's too) partitioned alike, all keyed by stream; dead
    letters, state and control in one."""
    one = (settings.dead_letters, settings.state_topic, settings.control_topic)
    keyed = [t for t in (settings.input, settings.output, settings.shadow_output) if t]
    return {**dict.fromkeys(keyed, partitions), **dict.fromkeys(one, 1)}
