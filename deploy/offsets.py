"""Consumer-group offsets of preflog's processes: show them with lag, and reset them safely.

Lag is end offset minus committed offset. End offsets come from the fetch
path (:func:`log_ends`), which is right on real Kafka and on the embedded
broker, whose ListOffsets reports them low (tests/integration/test_broker_quirks.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from preflog.errors import PreflogError

__all__ = ["EndOffsetError", "GroupOffsets", "LiveGroupError", "describe", "log_ends", "reset", "target_offsets"]

IDLE_STATES = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD, ConsumerGroupState.UNKNOWN}


class EndOffsetError(PreflogError):
    """The broker did not report where a partition ends."""


class LiveGroupError(PreflogError):
    """Offsets of a group with live members cannot be reset (the members would overwrite them)."""


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(self.end - self.committed, 0)


@dataclass(frozen=True)
class GroupOffsets:
    group: str
    state: str
    members: int
    partitions: list[PartitionOffsets]

    @property
    def live(self) -> bool:
        return self.members > 0 or self.state not in {s.name for s in IDLE_STATES}


def _list_offsets(admin: AdminClient, tps: Iterable[tuple[str, int]], spec: Any) -> dict[tuple[str, int], int]:
    request = {TopicPartition(t, p): spec for t, p in tps}
    if not request:
        return {}
    return {(tp.topic, tp.partition): f.result(timeout=30).offset for tp, f in admin.list_offsets(request).items()}


def log_ends(config: dict[str, Any], tps: list[tuple[str, int]], timeout: float = 60.0) -> dict[tuple[str, int], int]:
    """The offset after the last record of each partition, as the fetch path reports it.

    A consumer is placed at the end ListOffsets reports and polled until each
    partition reports end-of-partition. On real Kafka that is immediate and
    gives the same figure; the embedded broker's ListOffsets is low
    (tests/integration/test_broker_quirks.py) and the fetch reads on to the
    true end.
    """
    consumer = Consumer(
        {
            **config,
            "group.id": "preflog-log-ends",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 1024 * 1024,
        }
    )
    ends: dict[tuple[str, int], int] = {}
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_END) for t, p in tps])
        deadline = time.monotonic() + timeout
        while len(ends) < len(tps):
            if time.monotonic() > deadline:
                missing = sorted(set(tps) - set(ends))
                raise EndOffsetError(f"no end-of-partition from the broker within {timeout:.0f} s for {missing}")
            for msg in consumer.consume(1000, 0.2):
                error = msg.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    ends[(msg.topic() or "", msg.partition() or 0)] = msg.offset() or 0
                elif error is not None and error.fatal():
                    raise EndOffsetError(f"finding the end of {msg.topic()}[{msg.partition()}]: {error}")
    finally:
        consumer.close()
    return ends


def describe(config: Mapping[str, Any], group: str, topics: Iterable[str]) -> GroupOffsets:
    """Committed offsets, end offsets and lag of ``group`` on ``topics``, and whether it has live members."""
    admin = AdminClient(dict(config))
    info = admin.describe_consumer_groups([group])[group].result(timeout=30)
    committed_list = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    committed = {(tp.topic, tp.partition): tp.offset for tp in committed_list.topic_partitions if tp.offset >= 0}
    metadata = admin.list_topics(timeout=10).topics
    topics = list(topics) or sorted({t for t, _ in committed})  # a group preflog does not name: what it committed
    tps = [(t, p) for t in topics if t in metadata for p in sorted(metadata[t].partitions)]
    ends = log_ends(dict(config), tps)
    rows = [PartitionOffsets(t, p, committed.get((t, p)), ends[(t, p)]) for t, p in tps]
    return GroupOffsets(group, info.state.name, len(info.members), rows)


def target_offsets(
    config: Mapping[str, Any],
    tps: Iterable[tuple[str, int]],
    to: str,
    when: datetime | None = None,
    explicit: Mapping[tuple[str, int], int] | None = None,
) -> dict[tuple[str, int], int]:
    """Where each partition would go: ``earliest``, ``latest``, ``datetime`` (first offset at or after ``when``)
    or ``explicit`` offsets."""
    admin = AdminClient(dict(config))
    tps = list(tps)
    if to == "earliest":
        return _list_offsets(admin, tps, OffsetSpec.earliest())
    if to == "latest":
        return log_ends(dict(config), tps)
    if to == "datetime":
        assert when is not None
        found = _list_offsets(admin, tps, OffsetSpec.for_timestamp(int(when.timestamp() * 1000)))
        latest = log_ends(dict(config), tps)
        return {tp: (off if off >= 0 else latest[tp]) for tp, off in found.items()}
    return {tp: off for tp, off in (explicit or {}).items() if tp in set(tps)}


def reset(config: Mapping[str, Any], group: str, offsets: Mapping[tuple[str, int], int]) -> None:
    """Commit ``offsets`` for ``group``; refuses while the group has live members."""
    admin = AdminClient(dict(config))
    info = admin.describe_consumer_groups([group])[group].result(timeout=30)
    if info.members or info.state not in IDLE_STATES:
        raise LiveGroupError(
            f"group {group} is {info.state.name.lower()} with {len(info.members)} member(s); stop its processes "
            "(preflog process / preflog sink) first, then reset"
        )
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())])
    admin.alter_consumer_group_offsets([request])[group].result(timeout=30)
