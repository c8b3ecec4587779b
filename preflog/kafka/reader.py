"""The one reader of partition ranges: from offset A up to an end offset, or up to the end a fetch reports.

Where a partition ends is what the fetch path says (an end-of-partition event,
``enable.partition.eof``), never ListOffsets, which the embedded broker answers
low (tests/integration/test_broker_quirks.py). A span with an ``end`` is read
until a record at or past ``end - 1`` arrives, or an end-of-partition at or past
``end``; an end-of-partition below ``end`` only means "wait for more". So an
offset held by a transaction marker (no record there) never stalls a read.

The reader assigns partitions (no group join, no rebalance wait) and commits
only when asked (:meth:`RangeReader.commit`). Users: the worker's gap repair
(:mod:`preflog.processors.gaps`), replay, ``preflog tail``, end offsets for lag
(:func:`preflog.kafka.offsets.log_ends`) and reconcile.

Example:
    >>> with RangeReader(config, "preflog-gap-reader", [Span("t", 0, 150, end=230)]) as reader:  # doctest: +SKIP
    ...     records = list(reader.records())
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Message, TopicPartition

from preflog.errors import PreflogError

from .config import consumer_config

__all__ = ["OFFSET_BEGINNING", "OFFSET_END", "RangeReader", "ReadError", "Span"]

log = logging.getLogger(__name__)
Where = tuple[str, int]


@dataclass(frozen=True)
class Span:
    """What to read of one partition.

    Attributes:
        topic: The topic.
        partition: The partition.
        start: First offset, or ``OFFSET_BEGINNING`` / ``OFFSET_END``.
        end: Offset to stop before; None: the end the fetch reports.
        limit: At most this many records (None: no limit).
    """

    topic: str
    partition: int
    start: int
    end: int | None = None
    limit: int | None = None

    @property
    def where(self) -> Where:
        """(topic, partition)."""
        return (self.topic, self.partition)

    @property
    def empty(self) -> bool:
        """Nothing to read: an end at or before a concrete start."""
        return self.end is not None and self.start >= 0 and self.start >= self.end


class ReadError(PreflogError):
    """A span could not be read to its end: a client error, or no progress in time.

    Attributes:
        pending: The spans not read to their end, as (topic, partition).
        error: The client's error, when one stopped the read.
    """

    def __init__(self, message: str, pending: Iterable[Where] = (), error: KafkaError | None = None) -> None:
        super().__init__(message)
        self.pending = sorted(pending)
        self.error = error


class RangeReader:
    """Reads :class:`Span` s of partitions with one assigned consumer; use it as a context manager.

    Args:
        config: The cluster's client configuration (``settings.kafka.client_config()``-style).
        group: The consumer's ``group.id`` (commits go there, and only from :meth:`commit`).
        spans: What to read.
        timeout: Raise :class:`ReadError` unless every span is read within this many seconds (None: no limit).
        idle: Seconds without any message from the broker after which the reader gives up (None: never).
        on_idle: ``raise`` a :class:`ReadError` naming the unread spans, or ``stop`` quietly (``tail``).
        strict: Raise on any client error; otherwise only on fatal ones (transient ones are retried by the client).
        follow: Ignore ends altogether: read until ``idle`` or until the caller stops (spans need ``end=None``).
        settle: A span that gets records after its end-of-partition is read on to its next end, so the
            reading stops only once every span has reported its end with nothing after it.
        batch: At most this many records per ``consume`` call (it takes what the client has fetched, not waiting
            for more).
        poll_s: Longest wait for the next message or event when the client has none fetched.
        extra: More consumer keys (e.g. ``auto.offset.reset``, ``fetch.wait.max.ms``).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        group: str,
        spans: Iterable[Span],
        *,
        timeout: float | None = 30.0,
        idle: float | None = None,
        on_idle: Literal["raise", "stop"] = "raise",
        strict: bool = True,
        follow: bool = False,
        settle: bool = False,
        batch: int = 500,
        poll_s: float = 0.2,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.spans = {s.where: s for s in spans}
        self.timeout, self.idle, self.on_idle = timeout, idle, on_idle
        self.strict, self.follow, self.settle = strict, follow, settle
        self.batch, self.poll_s = batch, poll_s
        self.config = consumer_config(config, group, eof=not follow, extra=extra)
        #: (topic, partition) -> offset of the last end-of-partition the fetch reported
        self.ends: dict[Where, int] = {}
        #: spans read to their end (or limit)
        self.finished: set[Where] = {w for w, s in self.spans.items() if s.empty}
        self.counts: dict[Where, int] = dict.fromkeys(self.spans, 0)
        self._consumer: Consumer | None = None

    def __enter__(self) -> RangeReader:
        self._consumer = Consumer(self.config)
        todo = [s for w, s in self.spans.items() if w not in self.finished]
        if todo:
            self._consumer.assign([TopicPartition(s.topic, s.partition, s.start) for s in todo])
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    @property
    def consumer(self) -> Consumer:
        """The assigned consumer (only inside the ``with`` block)."""
        if self._consumer is None:
            raise RuntimeError("RangeReader is used outside its `with` block")
        return self._consumer

    @property
    def pending(self) -> list[Where]:
        """Spans not read to their end yet."""
        return sorted(set(self.spans) - self.finished)

    def done(self, topic: str, partition: int) -> bool:
        """Whether the span of ``topic[partition]`` is read to its end (or has none to read)."""
        return (topic, partition) in self.finished

    def records(self) -> Iterator[Message]:
        """Every record of the spans, in the order the broker delivers them."""
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Message]]:
        """Non-empty lists of records of the spans, until every span is read (or the reader is idle).

        Raises:
            ReadError: A client error (see ``strict``), the ``timeout`` passed, or ``idle`` with ``on_idle="raise"``.
        """
        consumer = self.consumer
        started = last = time.monotonic()
        while self.follow or len(self.finished) < len(self.spans):
            now = time.monotonic()
            if self.timeout is not None and now - started > self.timeout:
                raise ReadError(f"no end of partition within {self.timeout:.0f} s for {self.pending}", self.pending)
            if self.idle is not None and now - last > self.idle:
                if self.on_idle == "stop":
                    return
                waiting = ", ".join(f"{t}[{p}]" for t, p in self.pending)
                raise ReadError(f"no records for {self.idle:.0f} s while {waiting} are unread", self.pending)
            # what the client has fetched already, without waiting; else wait for the next message or event only:
            # consume(batch, poll_s) would wait out poll_s whenever fewer than `batch` remain (every read's tail)
            msgs = consumer.consume(self.batch, 0) or consumer.consume(1, self.poll_s)
            if msgs:
                last = time.monotonic()
            taken = [m for m in msgs if self._take(m)]
            if taken:
                yield taken

    def _take(self, msg: Message) -> bool:
        """Whether ``msg`` is a record of an unfinished span; notes ends and finished spans on the way."""
        where = (msg.topic() or "", msg.partition() or 0)
        span = self.spans.get(where)
        error = msg.error()
        offset = msg.offset() or 0
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self.ends[where] = offset
                if span is not None and (span.end is None or offset >= span.end):
                    self._finish(where, pause=not self.settle)
                return False
            if self.strict or error.fatal():
                raise ReadError(f"reading {where[0]}[{where[1]}]: {error}", self.pending, error)
            log.debug("reading %s[%d]: %s (retried by the client)", where[0], where[1], error)
            return False
        if span is None:
            return False
        if where in self.finished:
            if not (self.settle and span.end is None and span.limit is None):
                return False
            self.finished.discard(where)  # more came after its end-of-partition: read on to the next one
        if span.end is not None and offset >= span.end:
            self._finish(where)
            return False
        self.counts[where] += 1
        if (span.end is not None and offset >= span.end - 1) or (
            span.limit is not None and self.counts[where] >= span.limit
        ):
            self._finish(where)
        return True

    def _finish(self, where: Where, pause: bool = True) -> None:
        self.finished.add(where)
        if pause:
            self.consumer.pause([TopicPartition(*where)])

    def commit(self, offsets: Mapping[Where, int]) -> None:
        """Commit ``offsets`` to the reader's group, synchronously (raises the client's error)."""
        if offsets:
            request = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
            self.consumer.commit(offsets=request, asynchronous=False)
