"""Reading topics back in tests, without trusting the broker's high watermark (see notes/broker.md)."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition


def read_topic(
    config: dict[str, Any], topic: str, partitions: int, expect: int, timeout: float = 20.0, settle: float = 1.0
) -> list[Message]:
    """Every record of ``topic`` from the beginning: waits for ``expect`` records, then ``settle`` s more for extras."""
    consumer = Consumer({**config, "group.id": "test-reader", "enable.auto.commit": False, "log_level": 0})
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    extra_until: float | None = None
    try:
        while time.monotonic() < (extra_until or deadline):
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is None:
                    out.append(msg)
            if len(out) >= expect and extra_until is None:
                extra_until = time.monotonic() + settle
    finally:
        consumer.close()
    return out
