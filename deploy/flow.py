"""What ``preflog up`` shows while it runs: records per topic, counted by a plain consumer."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from preflog.kafka.config import consumer_config

__all__ = ["FlowMonitor"]


class FlowMonitor:
    """Counts records per topic by reading every partition (no consumer group, so no rebalance wait)."""

    def __init__(self, kafka_config: dict[str, Any], topics: dict[str, str], partitions: int) -> None:
        self.counts: Counter[str] = Counter()
        self._consumer = Consumer(consumer_config(kafka_config, "preflog-up-monitor", eof=True, quiet=True))
        self._partitions = {(t, p) for t in topics.values() for p in range(partitions)}
        self._consumer.assign([TopicPartition(t, p, -2) for t, p in sorted(self._partitions)])  # -2: beginning
        self._role = {t: r for r, t in topics.items()}
        self._at_end: set[tuple[str, int]] = set()  # partitions read to the end a fetch reported
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="preflog-monitor", daemon=True)

    def start(self) -> FlowMonitor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.2):
                where = (msg.topic() or "", msg.partition() or 0)
                error = msg.error()
                if error is None:
                    self.counts[self._role.get(where[0], where[0])] += 1
                    self._at_end.discard(where)
                elif error.code() == KafkaError._PARTITION_EOF:
                    self._at_end.add(where)
            if self._at_end >= self._partitions:
                self._caught_up.set()
            else:
                self._caught_up.clear()

    def stop(self, catch_up_s: float = 5.0) -> None:
        """Stop counting, once every partition is read to its end (waiting at most ``catch_up_s``)."""
        self._caught_up.wait(catch_up_s)
        self._stop.set()
        self._thread.join()
        self._consumer.close()
