"""The worker's direct re-read of records its consumer skipped (processors/gaps.py) on the embedded broker."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Producer

from preflog.kafka.topics import ensure_topics
from preflog.processors.gaps import read_range

pytestmark = pytest.mark.integration


def test_read_range_returns_exactly_the_requested_offsets_across_batches(kafka_config: dict[str, Any]) -> None:
    topic = "gaps-read-range"
    ensure_topics(kafka_config, [topic], 1)
    producer = Producer({**kafka_config, "linger.ms": 20})
    for batch in range(3):  # three produce batches: the range starts inside one and ends inside another
        for i in range(100):
            producer.produce(topic, key=f"k{batch * 100 + i}".encode(), value=f"v{batch * 100 + i}".encode())
        producer.flush()
    records = read_range(kafka_config, topic, 0, 150, 230)
    assert [r.offset for r in records] == list(range(150, 230))
    assert [r.value for r in records] == [f"v{i}".encode() for i in range(150, 230)]
    assert read_range(kafka_config, topic, 0, 299, 300)[0].key == b"k299"
    assert read_range(kafka_config, topic, 0, 40, 40) == []  # an empty range reads nothing
