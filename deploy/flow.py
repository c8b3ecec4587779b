"""What ``preflog up`` shows while it runs: records per topic, counted by a plain consumer."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from preflog.kafka.config import consumer_config

__all__ = ["FlowMonitor"]


class FlowMonitor:
    """Counts records per topic by reading every partition (no consumer group, so no rebalance wait)."""

    def __init__(self, kafka_config: dict[str, Any], topics: dict[str, str], partitions: int) -> None:
        self.counts: Counter[str] = Counter()
        self._consumer = Consumer(consumer_config(kafka_config, "preflog-up-monitor", quiet=True))
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
