"""The sink's consumer lag metric: each assigned partition's end minus the sink's committed offset.

Measured against a stand-in consumer: the embedded broker's high watermark is wrong (it reports the last batch's
base offset + 1: ../shared/notes/broker.md), so a lag read from it would be wrong there, and right on Kafka.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from preflog.settings import Settings
from preflog.sinks import metrics
from preflog.sinks.storage import Storage
from preflog.sinks.writer import Sink


class Consumer:
    """What the lag measurement asks of a consumer: committed offsets and watermarks, per partition."""

    def __init__(self, committed: dict[int, int], high: dict[int, int], down: bool = False) -> None:
        self.offsets, self.high, self.down = committed, high, down

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        if self.down:
            raise KafkaException("broker away")
        return [TopicPartition(tp.topic, tp.partition, self.offsets.get(tp.partition, -1001)) for tp in tps]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float, cached: bool) -> tuple[int, int]:
        return 5, self.high[tp.partition]

    def unassign(self) -> None:
        pass


def _lag(partition: int) -> float:
    return float(metrics.LAG.labels("pairs", str(partition))._value.get())


def test_lag_is_the_end_of_each_partition_minus_the_committed_offset(tmp_path: Any) -> None:
    settings = Settings(kafka={"bootstrap_servers": "127.0.0.1:1"})
    sink = Sink(settings, Storage(f"file://{tmp_path}"), settings.make_codec())
    pairs = settings.topics.pairs
    sink.parts = {(pairs, 0): None, (pairs, 1): None}  # type: ignore[dict-item]  # assigned: only the keys count
    sink.consumer = Consumer({0: 40}, {0: 100, 1: 30})  # type: ignore[assignment]
    sink.measure_lag()
    assert (_lag(0), _lag(1)) == (60.0, 25.0)  # partition 1: nothing committed, counted from its start (5)
    sink.consumer = Consumer({0: 100, 1: 30}, {0: 100, 1: 30}, down=True)  # type: ignore[assignment]
    sink.measure_lag()
    assert (_lag(0), _lag(1)) == (60.0, 25.0)  # broker away: the last value stays (the alert keeps its clock)
    sink.consumer = Consumer({0: 100, 1: 30}, {0: 100, 1: 30})  # type: ignore[assignment]
    sink.measure_lag()
    assert (_lag(0), _lag(1)) == (0.0, 0.0)
    sink._on_revoke(sink.consumer, [TopicPartition(pairs, 1)])
    names = {s.labels["partition"] for m in metrics.LAG.collect() for s in m.samples if s.labels["table"] == "pairs"}
    assert names == {"0"}  # a revoked partition's lag is the next owner's to report
