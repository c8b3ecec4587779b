"""Read one offset range of one partition directly, outside Faust's consumer.

The worker uses it when records of an input partition never reached its agent
(see :mod:`preflog.processors.faust_fixes`): it reads them itself and joins
them before the record that revealed the gap. With transactional producers an
offset gap can be genuine (commit markers hold offsets); the read then finds
no records in it and nothing is joined twice.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from .exceptions import ProcessorError

__all__ = ["Gap", "InputRecord", "Record", "in_join_order", "missing_range", "read_after", "read_range"]


@dataclass(frozen=True)
class Record:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class InputRecord:
    """One record to join; ``event`` is the Faust event it came with (for a re-read record, the one after it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    event: Any = None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Gap:
    """Offsets ``first..last`` of a partition that were re-read directly."""

    topic: str
    partition: int
    first: int
    last: int


async def in_join_order(
    records: Sequence[InputRecord],
    last_offset: dict[tuple[str, int], int],
    committed: Callable[[str, int], int | None],
    refetch: Callable[[str, int, int, int], Awaitable[list[Record]]],
) -> tuple[list[InputRecord], list[Gap]]:
    """``records`` with every skipped range re-read and put before the record that revealed it.

    ``last_offset`` (partition -> last offset joined) is updated; ``committed``
    gives a partition's committed offset, ``refetch(topic, partition, first, end)``
    reads ``first..end-1`` directly. A record at or before the partition's last
    joined offset was already joined (read directly by the worker's quiet-partition
    check) and is left out.
    """
    ordered: list[InputRecord] = []
    gaps: list[Gap] = []
    for r in records:
        where = (r.topic, r.partition)
        previous = last_offset.get(where)
        if previous is not None and r.offset <= previous:
            continue
        gap = missing_range(previous, committed(r.topic, r.partition), r.offset)
        if gap:
            for m in await refetch(r.topic, r.partition, *gap):
                ordered.append(InputRecord(r.topic, r.partition, m.offset, m.key, m.value, r.event, m.timestamp_ms))
            gaps.append(Gap(r.topic, r.partition, gap[0], gap[1] - 1))
        last_offset[where] = r.offset
        ordered.append(r)
    return ordered, gaps


def missing_range(previous: int | None, committed: int | None, offset: int) -> tuple[int, int] | None:
    """Offsets ``(first, end)`` that should have come before ``offset``, or None when nothing is missing.

    ``previous`` is the last offset the agent saw on the partition since its
    assignment (None before the first); ``committed`` is the partition's
    committed offset (None or 0 when unknown), where the first record should be.
    Going backwards (a re-read) is never a gap.
    """
    expected = previous + 1 if previous is not None else committed
    if expected and offset > expected:
        return expected, offset
    return None


def read_range(
    config: dict[str, Any], topic: str, partition: int, first: int, end: int, timeout: float = 30.0
) -> list[Record]:
    """Records with offsets ``first <= offset < end`` (``end`` must exist: it is where reading stops)."""
    consumer = Consumer(
        {**config, "group.id": "preflog-gap-reader", "enable.auto.commit": False, "enable.partition.eof": True}
    )
    out: list[Record] = []
    try:
        consumer.assign([TopicPartition(topic, partition, first)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                error = msg.error()
                offset = msg.offset() or 0
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF and offset >= end:
                        return out
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise ProcessorError(f"re-reading {topic}[{partition}] {first}-{end - 1}: {error}")
                    continue
                if offset >= end:
                    return out
                out.append(Record(offset, msg.key(), msg.value(), msg.timestamp()[1]))
        raise ProcessorError(f"re-reading {topic}[{partition}] {first}-{end - 1}: not done within {timeout:.0f} s")
    finally:
        consumer.close()


def read_after(
    config: dict[str, Any], starts: dict[tuple[str, int], int], limit: int, timeout: float = 30.0
) -> dict[tuple[str, int], list[Record]]:
    """Records from each ``(topic, partition)``'s start offset up to its end, at most ``limit`` per partition.

    Where a partition ends is what the fetch response reports (end-of-partition),
    never ListOffsets, which the embedded broker answers low
    (tests/integration/test_broker_quirks.py).
    """
    consumer = Consumer(
        {
            **config,
            "group.id": "preflog-gap-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,  # the end is what the first fetch reports: no waiting for new records
        }
    )
    out: dict[tuple[str, int], list[Record]] = {where: [] for where in starts}
    open_ = set(starts)
    try:
        consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in starts.items()])
        deadline = time.monotonic() + timeout
        while open_:
            if time.monotonic() > deadline:
                raise ProcessorError(f"reading on from {sorted(open_)}: no end of partition within {timeout:.0f} s")
            for msg in consumer.consume(500, 0.02):
                where = (msg.topic() or "", msg.partition() or 0)
                if where not in open_:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_.discard(where)
                        continue
                    raise ProcessorError(f"reading on from {where[0]}[{where[1]}] {starts[where]}: {error}")
                out[where].append(Record(msg.offset() or 0, msg.key(), msg.value(), msg.timestamp()[1]))
                if len(out[where]) >= limit:
                    open_.discard(where)
                    consumer.pause([TopicPartition(*where)])
        return out
    finally:
        consumer.close()
