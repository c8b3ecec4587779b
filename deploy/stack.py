"""``preflog up``: everything preflog needs on one machine, started and stopped together."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from preflog.settings import Settings

from .broker import EmbeddedBroker
from .topics import ensure_topics

__all__ = ["FlowMonitor", "Stack"]


class FlowMonitor:
    """Counts records per topic by reading every partition (no consumer group, so no rebalance wait)."""

    def __init__(self, kafka_config: dict[str, Any], topics: dict[str, str], partitions: int) -> None:
        self.counts: Counter[str] = Counter()
        self._consumer = Consumer({**kafka_config, "group.id": "preflog-up-monitor", "enable.auto.commit": False})
        self._consumer.assign(
            [TopicPartition(t, p, -2) for t in topics.values() for p in range(partitions)]  # -2: OFFSET_BEGINNING
        )
        self._role = {t: r for r, t in topics.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="preflog-monitor", daemon=True)

    def start(self) -> FlowMonitor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.2):
                if msg.error() is None:
                    self.counts[self._role.get(msg.topic() or "", msg.topic() or "")] += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


@dataclass
class Stack:
    """The embedded broker and preflog's topics (the processor and sink join in later releases)."""

    settings: Settings
    broker: EmbeddedBroker | None = None
    created: list[str] = field(default_factory=list)

    def start(self) -> Settings:
        """Start the broker, create the topics; returns settings pointing at the broker."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(self.settings.data_dir / "broker").start()
        self.settings = self.settings.model_copy(
            update={
                "kafka": self.settings.kafka.model_copy(update={"bootstrap_servers": self.broker.bootstrap_servers})
            }
        )
        t = self.settings.topics
        self.created = ensure_topics(
            self.settings.kafka.client_config(), t.all().values(), t.partitions, t.replication_factor
        )
        return self.settings

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()

    def wait(self, duration: float) -> None:
        """Block for ``duration`` seconds (0 = until Ctrl-C)."""
        deadline = time.monotonic() + duration if duration > 0 else float("inf")
        while time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
