"""The control topic (``forecaster.control``): models handed to a group's workers while they run.

A swap is one checkpoint (``checkpoint_bytes``: config and weights, no pickle) in chunks keyed
``<group>:<swap id>:<part>``, with headers naming the swap, the part, the part count and the mode
(``serve``, or ``shadow``: scored beside the serving model, not published). The checkpoint travels
in the records, so workers need no shared disk. Workers read the topic from its beginning: the
group's newest whole ``serve`` swap is the model a (re)started worker serves, a ``shadow`` swap
after it the model it shadows, and later ones arrive while it runs.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from workers.settings import KafkaSettings

log = logging.getLogger("forecaster.worker")
MODES = ("serve", "shadow")


@dataclass(frozen=True)
class Swap:
    id: str
    mode: str
    blob: bytes


def send_swap(
    producer: KafkaProducer, topic: str, group: str, blob: bytes, mode: str = "serve", chunk: int = 512 << 10
) -> str:
    """Publish a checkpoint blob for ``group``'s workers; returns the swap id (once flushed, it is on the topic)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    swap, parts = uuid.uuid4().hex[:12], max(1, -(-len(blob) // chunk))
    for i in range(parts):
        headers = [("swap", swap.encode()), ("part", b"%d" % i), ("parts", b"%d" % parts), ("mode", mode.encode())]
        producer.send(
            topic, key=f"{group}:{swap}:{i}".encode(), value=blob[i * chunk : (i + 1) * chunk], headers=headers
        )
    return swap


@dataclass
class _Partial:
    parts: int
    mode: str
    chunks: dict[int, bytes] = field(default_factory=dict)


class ControlReader:
    """Follows the control topic for one group: ``catch_up`` reads what is there (at start-up),
    ``poll`` what arrived since (without waiting). Records of other groups are skipped; malformed
    ones with a warning."""

    def __init__(self, settings: KafkaSettings, topic: str, group: str, options: dict[str, Any] | None = None) -> None:
        """``options``: ``KafkaConsumer`` defaults that the settings' own options override (the
        worker's reconnect backoff, say)."""
        self.group, self.topic = group, topic
        config = {"enable_auto_commit": False, **(options or {}), **settings.options_for(KafkaConsumer)}
        self.consumer = KafkaConsumer(**config)
        numbers = self.consumer.partitions_for_topic(topic) or {0}
        self.tps = [TopicPartition(topic, p) for p in sorted(numbers)]
        self.consumer.assign(self.tps)
        self.consumer.seek_to_beginning()
        self.partial: dict[str, _Partial] = {}

    def catch_up(self, timeout_ms: int = 10_000) -> list[Swap]:
        """Every whole swap of the group on the topic now, oldest first."""
        end = self.consumer.end_offsets(self.tps)
        swaps: list[Swap] = []
        quiet = 0
        while any(self.consumer.position(tp) < end[tp] for tp in self.tps) and quiet < timeout_ms // 100:
            got = self.poll(timeout_ms=100)
            swaps += got
            quiet = 0 if got else quiet + 1
        return swaps

    def poll(self, timeout_ms: int = 0) -> list[Swap]:
        """The swaps completed by the records that arrived since the last call."""
        done: list[Swap] = []
        for records in self.consumer.poll(timeout_ms=timeout_ms).values():
            for r in records:
                swap = self._add(r)
                if swap is not None:
                    done.append(swap)
        return done

    def _add(self, record: Any) -> Swap | None:
        key = (record.key or b"").decode(errors="replace")
        fields = key.rsplit(":", 2)
        if len(fields) != 3 or fields[0] != self.group:
            return None  # another group's
        h = dict(record.headers or [])
        try:
            swap, part, parts, mode = h["swap"].decode(), int(h["part"]), int(h["parts"]), h["mode"].decode()
            if swap != fields[1] or str(part) != fields[2] or not 0 <= part < parts or record.value is None:
                raise ValueError(f"headers {h} do not match the key {key!r}")
        except (KeyError, ValueError, UnicodeDecodeError) as e:
            log.warning("control topic offset %d: not a swap record (%s); skipped", record.offset, e)
            return None
        entry = self.partial.setdefault(swap, _Partial(parts, mode))
        entry.chunks[part] = record.value
        if len(entry.chunks) < entry.parts:
            return None
        del self.partial[swap]
        return Swap(swap, entry.mode, b"".join(entry.chunks[i] for i in range(entry.parts)))

    def close(self) -> None:
        self.consumer.close()
