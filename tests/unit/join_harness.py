"""A Joiner driven directly (no Kafka) over the worker's state views, with a fake wall clock."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from preflog.processors.join import Emit, JoinConfig, Joiner
from preflog.processors.staged import StagedState
from preflog.processors.table_state import TableEntries, TableStreamTimes
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record

from ..conftest import T0

__all__ = ["FB", "INF", "MIN", "Harness", "at", "ms", "roles"]

INF, FB = "inference", "feedback"
MIN = 60_000


class Harness:
    """A Joiner over the worker's state views of a bytes table (a dict here), with a fake wall clock.

    Each record is a batch: its staged changes reach the table after it, as a checkpoint writes them.
    """

    def __init__(self, **config: Any) -> None:
        self.codec = SingleObjectCodec()
        self.table: dict[bytes, bytes] = {}
        self.staged: StagedState[bytes, bytes] = StagedState(self.table)
        self.state = TableEntries(self.staged)
        self.wall = 1_000_000
        self.config = JoinConfig(**{"window_ms": 60 * MIN, "grace_ms": 5 * MIN, **config})
        self.joiner = Joiner(
            self.config,
            self.codec,
            self.state,
            INF,
            FB,
            wall_ms=lambda: self.wall,
            stream_times=TableStreamTimes(self.staged),
        )
        self.offsets: Counter[str] = Counter()

    def commit(self) -> None:
        for changes in self.staged.drain().values():
            for key, value in changes:
                if value is None:
                    self.table.pop(key, None)
                else:
                    self.table[key] = value

    def send(
        self,
        topic: str,
        event: dict[str, Any],
        partition: int = 0,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
    ) -> list[Emit]:
        if topic == INF:
            value = self.codec.encode("InferenceEvent", inference_record(event))
        else:
            value = self.codec.encode("FeedbackEvent", feedback_record(event))
        return self.raw(topic, key or event["request_id"].encode(), value, partition, timestamp_ms)

    def raw(
        self, topic: str, key: bytes | None, value: bytes, partition: int = 0, timestamp_ms: int | None = None
    ) -> list[Emit]:
        self.offsets[topic] += 1
        out = self.joiner.process(topic, partition, self.offsets[topic] - 1, key, value, timestamp_ms)
        self.commit()
        return out


def roles(emits: list[Emit]) -> list[str]:
    return [e.role for e in emits]


def at(minutes: float) -> Any:
    return T0 + timedelta(minutes=minutes)


def ms(minutes: float) -> int:
    return int(at(minutes).timestamp() * 1000)
