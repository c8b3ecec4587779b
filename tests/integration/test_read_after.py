"""The quiet-partition check's fetch-based read (processors/gaps.py read_after) on the embedded broker."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Producer

from preflog.kafka.topics import ensure_topics
from preflog.processors.gaps import read_after

pytestmark = pytest.mark.integration


def test_read_after_reads_to_the_true_end_across_produce_batches(kafka_config: dict[str, Any]) -> None:
    """ListOffsets on this broker reports the end low (base offset of the last batch + 1); the fetch path does not."""
    topic, empty = "gaps-read-after", "gaps-read-after-empty"
    ensure_topics(kafka_config, [topic, empty], 2)
    producer = Producer({**kafka_config, "linger.ms": 20})
    for batch in range(3):
        for i in range(100):
            producer.produce(topic, key=b"k", value=f"v{batch * 100 + i}".encode(), partition=0)
        producer.flush()
    found = read_after(kafka_config, {(topic, 0): 150, (topic, 1): 0, (empty, 0): 0}, limit=1000)
    assert [r.offset for r in found[(topic, 0)]] == list(range(150, 300))
    assert found[(topic, 0)][-1].value == b"v299" and found[(topic, 0)][0].timestamp_ms
    assert found[(topic, 1)] == [] and found[(empty, 0)] == []
    assert [r.offset for r in read_after(kafka_config, {(topic, 0): 10}, limit=40)[(topic, 0)]] == list(range(10, 50))
    assert read_after(kafka_config, {(topic, 0): 300}, limit=10)[(topic, 0)] == []
