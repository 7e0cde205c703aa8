"""Create the service's topics when they do not exist yet (development and the demo; a
production cluster creates them up front, see docker-compose.yml)."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from workers.settings import WorkerSettings


def ensure_topics(settings: WorkerSettings, partitions: int = 4) -> None:
    admin = KafkaAdminClient(**settings.options_for(KafkaAdminClient))
    try:
        for name in (settings.input, settings.output, settings.dead_letters, settings.state_topic):
            try:
                admin.create_topics([NewTopic(name, partitions if name == settings.input else 1, 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
