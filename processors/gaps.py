"""Read one offset range of one partition directly, outside Faust's consumer.

The worker uses it when records of an input partition never reached its agent
(see :mod:`preflog.processors.faust_compat`): it reads them itself and joins
them before the record that revealed the gap. With transactional producers an
offset gap can be genuine (commit markers hold offsets); the read then finds
no records in it and nothing is joined twice. The reading itself is
:class:`preflog.kafka.reader.RangeReader`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message

from preflog.kafka.reader import RangeReader, ReadError, Span

from .exceptions import ProcessorError

__all__ = ["Gap", "InputRecord", "Record", "in_join_order", "missing_range", "read_after", "read_range"]

GAP_READER = "preflog-gap-reader"


@dataclass(frozen=True)
class Record:
    """One record read directly: offset, key, value and timestamp (ms)."""

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


def _record(msg: Message) -> Record:
    return Record(msg.offset() or 0, msg.key(), msg.value(), msg.timestamp()[1])


def read_range(
    config: dict[str, Any], topic: str, partition: int, first: int, end: int, timeout: float = 30.0
) -> list[Record]:
    """Records with offsets ``first <= offset < end`` (``end`` must exist: it is where reading stops).

    Offsets in the range that hold no record (transaction markers) are simply not there.

    Raises:
        ProcessorError: A client error, or the range not read within ``timeout`` s.
    """
    span = Span(topic, partition, first, end=end)
    try:
        with RangeReader(config, GAP_READER, [span], timeout=timeout) as reader:
            return [_record(m) for m in reader.records()]
    except ReadError as exc:
        raise ProcessorError(f"re-reading {topic}[{partition}] {first}-{end - 1}: {exc}") from exc


def read_after(
    config: dict[str, Any], starts: dict[tuple[str, int], int], limit: int, timeout: float = 30.0
) -> dict[tuple[str, int], list[Record]]:
    """Records from each ``(topic, partition)``'s start offset up to its end, at most ``limit`` per partition.

    Where a partition ends is what the fetch response reports (end-of-partition),
    never ListOffsets, which the embedded broker answers low
    (tests/integration/test_broker_quirks.py).

    Raises:
        ProcessorError: A client error, or a partition without an end within ``timeout`` s.
    """
    spans = [Span(t, p, offset, limit=limit) for (t, p), offset in starts.items()]
    # the end is what the first fetch reports: no waiting for new records
    extra = {"auto.offset.reset": "earliest", "fetch.wait.max.ms": 10}
    out: dict[tuple[str, int], list[Record]] = {where: [] for where in starts}
    try:
        with RangeReader(config, GAP_READER, spans, timeout=timeout, poll_s=0.02, extra=extra) as reader:
            for msg in reader.records():
                out[(msg.topic() or "", msg.partition() or 0)].append(_record(msg))
    except ReadError as exc:
        raise ProcessorError(f"reading on from {sorted(starts.items())}: {exc}") from exc
    return out
