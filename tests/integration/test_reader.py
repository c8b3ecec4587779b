"""The range reader (preflog/kafka/reader.py) on the embedded broker: ends from the fetch, limits, markers, idling."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from preflog.kafka.offsets import log_ends
from preflog.kafka.reader import OFFSET_BEGINNING, RangeReader, ReadError, Span
from preflog.kafka.topics import ensure_topics

pytestmark = pytest.mark.integration


def _topic(config: dict[str, Any], batches: int = 3, per_batch: int = 100, partitions: int = 1) -> str:
    """A new topic whose partition 0 holds ``batches`` produce batches of ``per_batch`` records (values v0, v1...)."""
    topic = f"reader-{uuid.uuid4().hex[:8]}"
    ensure_topics(config, [topic], partitions)
    producer = Producer({**config, "linger.ms": 20})
    for batch in range(batches):
        for i in range(per_batch):
            producer.produce(topic, value=f"v{batch * per_batch + i}".encode(), partition=0)
        producer.flush()
    return topic


def _read(config: dict[str, Any], spans: list[Span], **options: Any) -> list[tuple[int, int]]:
    with RangeReader(config, "test-reader", spans, **options) as reader:
        return [(m.partition() or 0, m.offset() or 0) for m in reader.records()]


def test_a_span_with_an_end_reads_exactly_its_offsets(kafka_config: dict[str, Any]) -> None:
    topic = _topic(kafka_config)
    assert _read(kafka_config, [Span(topic, 0, 150, end=230)]) == [(0, o) for o in range(150, 230)]
    assert _read(kafka_config, [Span(topic, 0, 40, end=40)]) == []  # empty: nothing is even assigned


def test_without_an_end_it_reads_to_the_end_the_fetch_reports_not_list_offsets(kafka_config: dict[str, Any]) -> None:
    topic = _topic(kafka_config, partitions=2)
    consumer = Consumer({**kafka_config, "group.id": "test-reader", "log_level": 0})
    try:
        high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        consumer.close()
    assert high < 300  # the embedded broker's ListOffsets: base offset of the last batch + 1
    spans = [Span(topic, 0, OFFSET_BEGINNING), Span(topic, 1, OFFSET_BEGINNING)]
    with RangeReader(kafka_config, "test-reader", spans) as reader:
        offsets = [m.offset() for m in reader.records()]
        assert reader.ends == {(topic, 0): 300, (topic, 1): 0}
    assert offsets == list(range(300))
    assert log_ends(kafka_config, [(topic, 0), (topic, 1)]) == {(topic, 0): 300, (topic, 1): 0}


def test_a_limit_stops_a_span_and_leaves_the_others_reading(kafka_config: dict[str, Any]) -> None:
    topic, other = _topic(kafka_config), _topic(kafka_config, batches=1, per_batch=30)
    with RangeReader(kafka_config, "test-reader", [Span(topic, 0, 10, limit=40), Span(other, 0, 0, limit=1000)]) as r:
        got = [(m.topic(), m.offset()) for m in r.records()]
    assert [o for t, o in got if t == topic] == list(range(10, 50))
    assert [o for t, o in got if t == other] == list(range(30))


def test_transaction_markers_never_stall_a_span(kafka_config: dict[str, Any]) -> None:
    """Two transactions of 5: records at 0-4 and 6-10, commit markers at 5 and 11 (offsets with no record)."""
    topic = f"reader-tx-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_config, [topic], 1)
    producer = Producer({**kafka_config, "transactional.id": topic, "log_level": 0})
    try:
        producer.init_transactions(10)
        for _ in range(2):
            producer.begin_transaction()
            for i in range(5):
                producer.produce(topic, value=f"v{i}".encode(), partition=0)
            producer.commit_transaction(10)
    except Exception as exc:  # a broker without transactions: nothing to show
        pytest.skip(f"no transactions on this broker: {exc}")
    offsets = [o for _, o in _read(kafka_config, [Span(topic, 0, OFFSET_BEGINNING)])]
    assert offsets == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert _read(kafka_config, [Span(topic, 0, 5, end=6)], timeout=10) == []  # the marker alone
    assert [o for _, o in _read(kafka_config, [Span(topic, 0, 3, end=12)], timeout=10)] == [3, 4, 6, 7, 8, 9, 10]


def test_idle_stops_a_follower_and_fails_a_span_that_cannot_end(kafka_config: dict[str, Any]) -> None:
    topic = _topic(kafka_config, batches=1, per_batch=20)
    follow = {"timeout": None, "idle": 1.0, "on_idle": "stop", "follow": True}
    assert len(_read(kafka_config, [Span(topic, 0, OFFSET_BEGINNING)], **follow)) == 20
    with pytest.raises(ReadError, match=rf"no records for 1 s while {topic}\[0\] are unread") as failed:
        _read(kafka_config, [Span(topic, 0, 0, end=25)], timeout=None, idle=1.0)
    assert failed.value.pending == [(topic, 0)]
