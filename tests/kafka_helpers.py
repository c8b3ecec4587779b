"""Reading topics back in tests, without trusting the broker's high watermark (see notes/broker.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from preflog.kafka.config import consumer_config


def read_topic(
    config: dict[str, Any],
    topic: str,
    partitions: int,
    expect: int,
    timeout: float = 20.0,
    settle: float = 1.0,
    done: Callable[[list[Message]], bool] | None = None,
) -> list[Message]:
    """Every record of ``topic`` from the beginning.

    Reads until ``expect`` records have arrived (or ``done(records)`` is true), then ``settle``
    seconds more to catch extras; gives up after ``timeout`` and returns what it has.
    """
    finished = done or (lambda got: len(got) >= expect)
    consumer = Consumer(consumer_config(config, "test-reader", quiet=True))
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    extra_until: float | None = None
    try:
        while time.monotonic() < (extra_until or deadline):
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is None:
                    out.append(msg)
            if extra_until is None and finished(out):
                extra_until = time.monotonic() + settle
    finally:
        consumer.close()
    return out
