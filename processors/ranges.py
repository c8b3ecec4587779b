"""Which records a replay reads: per topic-partition offset ranges, from offsets or record timestamps.

Ends are found by fetching, not from ListOffsets: a consumer is placed at the
reported end and polled until the fetch response says end-of-partition. On
real Kafka that happens at once, at the same offset; on the embedded broker,
whose ListOffsets is wrong (tests/integration/test_broker_quirks.py), the fetch
reads on to the true end. Timestamp lookups (``offsets_for_times``) are used
only as a starting point: records are filtered by timestamp while reading,
so a broker whose lookup is coarse costs reading time, never correctness.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from preflog.deploy.offsets import log_ends
from preflog.errors import PreflogError

__all__ = ["OffsetSpec", "Range", "RangeError", "parse_offset_spec", "plan"]


class RangeError(PreflogError):
    """A replay range that cannot be resolved (unknown topic, bad offset spec, unreachable partition)."""


SPEC = re.compile(r"^(?:(?P<role>inference|feedback):)?(?:(?P<partition>\d+)=)?(?P<offset>\d+)$")


@dataclass(frozen=True)
class OffsetSpec:
    """An offset for ``role`` (None: both topics) and ``partition`` (None: every partition)."""

    role: str | None
    partition: int | None
    offset: int

    def matches(self, role: str, partition: int) -> bool:
        return self.role in (None, role) and self.partition in (None, partition)

    @property
    def specificity(self) -> int:
        return (self.role is not None) + 2 * (self.partition is not None)


def parse_offset_spec(text: str) -> OffsetSpec:
    """``[inference:|feedback:][PARTITION=]OFFSET``, e.g. ``1200``, ``2=1200``, ``feedback:2=1200``."""
    m = SPEC.match(text.strip())
    if m is None:
        raise RangeError(
            f"bad offset {text!r}: write [inference:|feedback:][PARTITION=]OFFSET, "
            "e.g. 1200 (every partition of both topics), 2=1200, or feedback:2=1200"
        )
    partition = m["partition"]
    return OffsetSpec(m["role"], int(partition) if partition is not None else None, int(m["offset"]))


def _pick(specs: Iterable[OffsetSpec], role: str, partition: int) -> int | None:
    matching = sorted((s for s in specs if s.matches(role, partition)), key=lambda s: s.specificity)
    return matching[-1].offset if matching else None


@dataclass(frozen=True)
class Range:
    """Offsets ``start`` (inclusive) to ``end`` (exclusive) of one topic-partition, with a timestamp filter."""

    role: str
    topic: str
    partition: int
    start: int
    end: int
    from_ms: int | None = None
    to_ms: int | None = None

    @property
    def planned(self) -> int:
        """Records in the offset range (an upper bound when a timestamp filter applies)."""
        return max(self.end - self.start, 0)

    def wants(self, timestamp_ms: int) -> bool:
        return (self.from_ms is None or timestamp_ms >= self.from_ms) and (
            self.to_ms is None or timestamp_ms < self.to_ms
        )


def plan(
    config: dict[str, Any],
    topics: dict[str, str],
    partitions: list[int] | None = None,
    starts: list[OffsetSpec] | None = None,
    ends: list[OffsetSpec] | None = None,
    from_ms: int | None = None,
    to_ms: int | None = None,
) -> list[Range]:
    """Ranges for ``topics`` (role -> topic name) that a replay reads, one per topic-partition."""
    consumer = Consumer({**config, "group.id": "preflog-plan", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=30)
        tps: list[tuple[str, str, int]] = []
        for role, topic in topics.items():
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                raise RangeError(
                    f"topic {topic} ({role}) does not exist; create it, or point "
                    "PREFLOG_TOPICS__INFERENCE / PREFLOG_TOPICS__FEEDBACK at the right one"
                )
            available = sorted(found.partitions)
            unknown = sorted(set(partitions or []) - set(available))
            if unknown:
                raise RangeError(f"{topic} has partitions {available}; there is no partition {unknown}")
            tps += [(role, topic, p) for p in (partitions or available)]
        log_end = log_ends(config, [(t, p) for _, t, p in tps])
        starts_by_time: dict[tuple[str, int], int] = {}
        if from_ms is not None:
            request = [TopicPartition(t, p, from_ms) for _, t, p in tps]
            for tp in consumer.offsets_for_times(request, timeout=30):
                starts_by_time[(tp.topic, tp.partition)] = tp.offset
        ranges = []
        for role, topic, p in tps:
            low = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[0]
            end = log_end[(topic, p)]
            start = _pick(starts or [], role, p)
            if start is None:
                by_time = starts_by_time.get((topic, p), low)
                start = end if by_time < 0 else by_time  # -1: no record at or after from_ms
            stop = _pick(ends or [], role, p)
            stop = end if stop is None else min(stop, end)
            ranges.append(Range(role, topic, p, max(start, low), max(stop, low), from_ms, to_ms))
        return ranges
    finally:
        consumer.close()
