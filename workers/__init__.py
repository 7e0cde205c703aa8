"""Processes that join Kafka and the ``forecaster`` library (worker, publisher, watcher, broker)."""
