"""Quirks of the embedded broker (Tansu) that preflog's embedded settings work around.

If one of these starts failing, Tansu fixed the quirk: drop the matching
workaround (named in each test) rather than the test.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from preflog.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration


def _high_watermark(config: dict[str, Any], topic: str) -> int:
    consumer = Consumer({**config, "group.id": "quirks", "log_level": 0})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


@pytest.mark.parametrize(("batch_bytes", "expected_high"), [(1_000_000, 201), (1, 300)])
def test_high_watermark_is_base_offset_of_the_last_batch_plus_one(
    kafka_config: dict[str, Any], batch_bytes: int, expected_high: int
) -> None:
    """300 records in 3 flushes of 100. Real Kafka reports 300 either way; Tansu only with one record per batch.

    Faust's changelog recovery reads up to the high watermark, so on Tansu it stopped
    early and a restarted worker lost state (test_batched_recovery.py). Workaround:
    the worker's recovery reads to the end the fetch reports
    (processors/faust_compat.recover_to_fetched_end).
    """
    topic = f"quirk-hw-{batch_bytes}"
    ensure_topics(kafka_config, [topic], 1)
    producer = Producer({**kafka_config, "linger.ms": 20, "batch.size": batch_bytes})
    for _ in range(3):
        for _ in range(100):
            producer.produce(topic, value=b"x" * 100)
        producer.flush()
    assert _high_watermark(kafka_config, topic) == expected_high


def test_offsets_for_times_returns_offset_zero_for_any_timestamp(kafka_config: dict[str, Any]) -> None:
    """Records stamped 0..99 s after a base: real Kafka maps base+50 s to offset 50, Tansu to 0.

    What preflog does about it: replay uses the lookup only as a starting bound and
    filters records by timestamp while reading (processors/ranges.py), so its ranges
    are exact on both. `preflog offsets reset --to-datetime` commits the looked-up
    offset as it is, which on the embedded broker means the start of the partition.
    """
    topic = "quirk-offsets-for-times"
    ensure_topics(kafka_config, [topic], 1)
    producer = Producer(kafka_config)
    base = 1_700_000_000_000
    for i in range(100):
        producer.produce(topic, value=b"x", timestamp=base + i * 1000)
    producer.flush()
    consumer = Consumer({**kafka_config, "group.id": "quirks", "log_level": 0})
    try:
        [found] = consumer.offsets_for_times([TopicPartition(topic, 0, base + 50_000)], timeout=10)
    finally:
        consumer.close()
    assert found.offset == 0  # real Kafka: 50
