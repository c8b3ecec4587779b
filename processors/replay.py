"""Replay: the join and the audit-log writer re-run in one process over ranges of the input topics.

Deterministic by construction, so two replays of one range write the same
files byte for byte:

* Per partition the two input topics are merged in one fixed order: record
  timestamp, then inference before feedback, then offset. Stream time, and so
  expiry, follows event times in that order, never the time of the replay.
* The join is the live worker's :class:`Joiner` over an in-memory dict; no
  wall clock is consulted (the idle fallback is off, and a dead letter's
  ``failed_at`` is its source record's timestamp).
* Output files are cut every ``max_rows`` records of a (table, partition);
  their names count records of the replay's own output, from 0.

What is still waiting in the join state at the end of the range (inferences
inside their window, feedback whose inference has not come) is counted in
the summary, not emitted: the live pipeline would decide it with later input.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from preflog.schemas.codec import Codec, SingleObjectCodec
from preflog.schemas.registry import default_store
from preflog.schemas.tables import OUTPUTS, TABLES
from preflog.settings import Settings
from preflog.sinks.batch import TableFormat, batch_files
from preflog.sinks.storage import Storage

from .join import Emit, JoinConfig, Joiner
from .ranges import Range, RangeError

__all__ = ["Replay", "Summary"]

log = logging.getLogger(__name__)
ROLE_ORDER = {"inference": 0, "feedback": 1}


@dataclass
class Summary:
    """What a replay read and wrote."""

    events_read: Counter[str] = field(default_factory=Counter)
    filtered_out: int = 0
    written: Counter[str] = field(default_factory=Counter)
    unmatched: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    files: int = 0
    open_inferences: int = 0
    open_without_feedback: int = 0
    waiting_feedback: int = 0
    seconds: float = 0.0


class _Merge:
    """The two input partitions of one partition number, merged in a fixed order."""

    def __init__(self, ranges: list[Range]) -> None:
        self.queues: dict[str, deque[tuple[tuple[int, int, int], Message]]] = {r.role: deque() for r in ranges}
        self.done: dict[str, bool] = {r.role: r.planned == 0 for r in ranges}

    def push(self, role: str, msg: Message) -> None:
        self.queues[role].append(((msg.timestamp()[1], ROLE_ORDER[role], msg.offset() or 0), msg))

    def ready(self) -> list[Message]:
        """Records whose place in the order is settled: every open input has a record queued, or is done."""
        out: list[Message] = []
        while True:
            heads = {role: q[0][0] for role, q in self.queues.items() if q}
            if not heads or any(not q and not self.done[role] for role, q in self.queues.items()):
                return out
            role = min(heads, key=lambda r: heads[r])
            out.append(self.queues[role].popleft()[1])

    @property
    def finished(self) -> bool:
        return all(self.done.values()) and not any(self.queues.values())


class Replay:
    """Reads ``ranges`` and writes the join's outputs under ``storage`` (nothing when ``storage`` is None)."""

    def __init__(
        self,
        settings: Settings,
        ranges: list[Range],
        storage: Storage | None,
        group_id: str,
        codec: Codec | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        stall_timeout_s: float = 120.0,
    ) -> None:
        self.settings = settings
        self.ranges = {(r.topic, r.partition): r for r in ranges}
        self.storage = storage
        self.group_id = group_id
        self.codec = codec or settings.make_codec()
        self.on_progress = on_progress or (lambda partition, n: None)
        self.stall_timeout_s = stall_timeout_s
        self.summary = Summary()
        self.clock_ms = 0
        t = settings.topics
        self.output_codec = SingleObjectCodec()
        self.output_topic = {o.role: getattr(t, o.role) for o in OUTPUTS}
        self.joiner = Joiner(
            JoinConfig.from_settings(settings),
            self.codec,
            {},
            t.inference,
            t.feedback,
            lambda: self.clock_ms,
            output_topics=self.output_topic,
            output_codec=self.output_codec,
        )
        self.formats = {o.role: TableFormat(o.role, default_store().latest(o.record)) for o in OUTPUTS}
        self.buffers: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.written_upto: dict[tuple[str, int], int] = {}
        by_partition: dict[int, list[Range]] = {}
        for r in ranges:
            by_partition.setdefault(r.partition, []).append(r)
        self.merges = {p: _Merge(rs) for p, rs in by_partition.items()}

    def run(self) -> Summary:
        started = time.monotonic()
        consumer = Consumer(
            {
                **self.settings.kafka.client_config(),
                "group.id": self.group_id,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        try:
            consumer.assign([TopicPartition(r.topic, r.partition, r.start) for r in self.ranges.values() if r.planned])
            self._consume(consumer)
            for key in sorted(self.buffers):
                self._write(key)
            self._finish()
            self._commit(consumer)
        finally:
            consumer.close()
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def _consume(self, consumer: Consumer) -> None:
        last_progress = time.monotonic()
        while not all(m.finished for m in self.merges.values()):
            msgs = consumer.consume(1000, 0.5)
            read: Counter[int] = Counter()
            for msg in msgs:
                if self._take(consumer, msg):
                    read[msg.partition() or 0] += 1
            for partition, n in read.items():
                self.on_progress(partition, n)
            for partition, merge in sorted(self.merges.items()):
                for msg in merge.ready():
                    self._process(partition, msg)
            if msgs:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > self.stall_timeout_s:
                waiting = [f"{r.topic}[{r.partition}]" for r in self.ranges.values() if not self._done(r)]
                raise RangeError(f"no records for {self.stall_timeout_s:.0f} s while {', '.join(waiting)} are unread")

    def _done(self, r: Range) -> bool:
        return self.merges[r.partition].done[r.role]

    def _take(self, consumer: Consumer, msg: Message) -> bool:
        """Queue one record of a range; False for anything else (end-of-partition, records past the end)."""
        key = (msg.topic() or "", msg.partition() or 0)
        r = self.ranges.get(key)
        if r is None or self._done(r):
            return False
        error = msg.error()
        offset = msg.offset() or 0
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF and offset >= r.end:
                self._close(consumer, r)
            elif error.code() != KafkaError._PARTITION_EOF:
                raise RangeError(f"reading {key[0]}[{key[1]}]: {error}")
            return False
        if offset >= r.end:
            self._close(consumer, r)
            return False
        if r.wants(msg.timestamp()[1]):
            self.merges[r.partition].push(r.role, msg)
        else:
            self.summary.filtered_out += 1
        self.summary.events_read[r.role] += 1
        if offset >= r.end - 1:
            self._close(consumer, r)
        return True

    def _close(self, consumer: Consumer, r: Range) -> None:
        self.merges[r.partition].done[r.role] = True
        consumer.pause([TopicPartition(r.topic, r.partition)])

    def _process(self, partition: int, msg: Message) -> None:
        self.clock_ms = msg.timestamp()[1]
        duplicates = self.joiner.duplicates
        emits = self.joiner.process(
            msg.topic() or "", partition, msg.offset() or 0, msg.key(), msg.value(), self.clock_ms
        )
        self.summary.duplicates += self.joiner.duplicates - duplicates
        for e in emits:
            self._emit(partition, e)

    def _emit(self, partition: int, e: Emit) -> None:
        name = TABLES[e.role].record
        record = self.output_codec.decode(e.value, name)  # as the live log has it
        if e.role == "unmatched":
            self.summary.unmatched[record["reason"]] += 1
        elif e.role == "dead_letter":
            self.summary.dead_letters[record["error_class"]] += 1
        key = (e.role, partition)
        self.buffers.setdefault(key, []).append(record)
        if len(self.buffers[key]) >= self.settings.sink.max_rows:
            self._write(key)

    def _write(self, key: tuple[str, int]) -> None:
        records = self.buffers.pop(key, [])
        if not records:
            return
        role, partition = key
        first = self.written_upto.get(key, -1) + 1
        last = first + len(records) - 1
        self.written_upto[key] = last
        self.summary.written[role] += len(records)
        if self.storage is None:
            return
        files = batch_files(
            self.formats[role],
            records,
            self.output_topic[role],
            partition,
            first,
            last,
            self.settings.sink.partition_by,
        )
        for relative, data in files:
            self.storage.put(relative, data)
        self.summary.files += sum(1 for relative, _ in files if relative.endswith(".parquet"))

    def _finish(self) -> None:
        for rid, entry in self.joiner.state.items():
            if rid.startswith("~") or entry.get("done"):
                continue
            if entry.get("inf"):
                self.summary.open_inferences += 1
                self.summary.open_without_feedback += entry["n"] == 0
            else:
                self.summary.waiting_feedback += len(entry["fb"])

    def _commit(self, consumer: Consumer) -> None:
        """Record the range's end in the replay's own group (shown by ``preflog offsets show``)."""
        if self.storage is None:
            return
        offsets = [TopicPartition(r.topic, r.partition, r.end) for r in self.ranges.values() if r.planned]
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:  # the replay itself is complete; only its bookkeeping failed
                log.warning("could not commit the replay's offsets to group %s: %s", self.group_id, exc)
