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

from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from preflog.errors import PreflogError
from preflog.kafka.config import consumer_config
from preflog.kafka.offsets import OffsetSpec, OffsetSpecError, log_ends, pick_offset
from preflog.kafka.offsets import parse_offset_spec as parse_spec

__all__ = ["ROLES", "OffsetSpec", "Range", "RangeError", "parse_offset_spec", "plan"]

#: the names a replay's offsets may carry: the roles of its two input topics
ROLES = ("inference", "feedback")


class RangeError(PreflogError):
    """A replay range that cannot be resolved (unknown topic, bad offset spec, unreachable partition)."""


def parse_offset_spec(text: str) -> OffsetSpec:
    """A replay offset: ``[inference:|feedback:][PARTITION=]OFFSET`` (see :mod:`preflog.kafka.offsets`).

    Raises:
        RangeError: Not of that form; the message shows the form.
    """
    try:
        return parse_spec(text, ROLES)
    except OffsetSpecError as exc:
        raise RangeError(str(exc)) from None


@dataclass(frozen=True)
class Range:
    """Offsets ``start`` (inclusive) to ``end`` (exclusive) of one topic-partition, with a timestamp filter.

    ``low`` and ``log_end`` are the partition's first offset and its end when the plan was made (None: unknown),
    what a range that selects nothing is explained by.
    """

    role: str
    topic: str
    partition: int
    start: int
    end: int
    from_ms: int | None = None
    to_ms: int | None = None
    low: int | None = None
    log_end: int | None = None

    @property
    def planned(self) -> int:
        """Records in the offset range (an upper bound when a timestamp filter applies)."""
        return max(self.end - self.start, 0)

    def wants(self, timestamp_ms: int) -> bool:
        """Whether a record with this timestamp is inside the ``from_ms``/``to_ms`` filter."""
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
    """Ranges for ``topics`` (role -> topic name) that a replay reads, one per topic-partition.

    Args:
        config: The cluster's client configuration.
        topics: Role (inference, feedback) -> topic name.
        partitions: Only these partitions (None: all).
        starts: First offsets (default: the first record at or after ``from_ms``, else the log start).
        ends: Offsets to stop before (default, and at most: the end a fetch reports).
        from_ms: Only records with a timestamp at or after this.
        to_ms: Only records with a timestamp before this.

    Raises:
        RangeError: A topic or partition does not exist.
    """
    consumer = Consumer(consumer_config(config, "preflog-plan"))
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
            start = pick_offset(starts or [], role, p)
            if start is None:
                by_time = starts_by_time.get((topic, p), low)
                start = end if by_time < 0 else by_time  # -1: no record at or after from_ms
            stop = pick_offset(ends or [], role, p)
            stop = end if stop is None else min(stop, end)
            ranges.append(Range(role, topic, p, max(start, low), max(stop, low), from_ms, to_ms, low, end))
        return ranges
    finally:
        consumer.close()
