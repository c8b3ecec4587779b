"""Replay: the join and the audit-log writer re-run in one process over ranges of the input topics.

Deterministic by construction, so two replays of one range write the same
files byte for byte:

* Per partition the two input topics are merged in one fixed order: record
  timestamp, then inference before feedback, then offset. Stream time, and so
  expiry, follows event times in that order, never the time of the replay.
* The join is the live worker's :class:`Joiner` over an in-memory dict; no
  wall clock is consulted (the idle fallback is off, and a dead letter's
  ``failed_at`` is its source record's timestamp).
* Output files are cut every ``max_rows`` records of a (table, partition),
  or once they hold ``max_bytes`` of encoded records, as the live sink cuts;
  their names count records of the replay's own output, from 0.

Memory does not grow with the range: the join state holds what the live
worker's does (records inside their window, markers for ``late_retention``);
each (table, partition) buffers one file's outputs at most; and an input read
ahead of the other in event time (feedback is small, so a fetch covers more of
it) is paused while its records pile up in the merge (:func:`.replay_merge.throttle`).

What is still waiting in the join state at the end of the range (inferences
inside their window, feedback whose inference has not come) is counted in
the summary, not emitted: the live pipeline would decide it with later input.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import Message

from preflog.kafka.reader import RangeReader, ReadError, Span
from preflog.schemas.codec import Codec, SingleObjectCodec
from preflog.schemas.registry import default_store
from preflog.schemas.tables import OUTPUTS, TABLES
from preflog.settings import Settings
from preflog.sinks.batch import TableFormat, batch_files
from preflog.sinks.storage import Storage

from .join import Emit, JoinConfig, Joiner
from .ranges import Range, RangeError
from .replay_merge import Merge, throttle
from .replay_output import ReplayOutputError, ensure_unused, replay_output

__all__ = ["Replay", "ReplayOutputError", "Summary", "ensure_unused", "replay_group", "replay_output"]

log = logging.getLogger(__name__)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often meanwhile (never more often), then as before.

    The join state grows by objects that live to the end of the replay; with the default thresholds
    (700, 10, 10) the collector re-scanned them hundreds of times, about 15% of a replay's CPU. Reference
    counting still frees everything else at once; only cycles wait a little longer.
    """
    old = gc.get_threshold()
    if old[0] > 0:  # 0: automatic collection is off; leave it off
        gc.set_threshold(*(max(o, n) for o, n in zip(old, (10_000, 50, 100), strict=False)))
    try:
        yield
    finally:
        gc.set_threshold(*old)


def replay_group(settings: Settings, name: str) -> str:
    """The consumer group a replay named ``name`` records its range in (``preflog offsets show --group``)."""
    return f"{settings.processor.app_id}-replay-{name}"


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
    #: (role, partition) -> the earliest and latest timestamp (ms) of its records outside --from/--to
    outside_ms: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    @property
    def selected(self) -> int:
        """Records read that the --from/--to filter kept (all of them without a filter)."""
        return sum(self.events_read.values()) - self.filtered_out


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
        self.output_topic = t.outputs()
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
        for fmt in self.formats.values():
            fmt.prepare()
        self.buffers: dict[tuple[str, int], list[bytes]] = {}  # (table, partition) -> encoded outputs
        self.buffered: dict[tuple[str, int], int] = {}  # (table, partition) -> bytes of its buffered outputs
        self.paused: set[tuple[str, int]] = set()  # inputs paused while the other input of their merge catches up
        self.written_upto: dict[tuple[str, int], int] = {}
        by_partition: dict[int, list[Range]] = {}
        for r in ranges:
            by_partition.setdefault(r.partition, []).append(r)
        self.merges = {p: Merge(rs) for p, rs in by_partition.items()}

    def run(self) -> Summary:
        """Read every range, join, write the outputs and record the ranges' ends in the group.

        Raises:
            RangeError: A client error, or no record for ``stall_timeout_s`` while ranges are unread.
        """
        started = time.monotonic()
        spans = [Span(r.topic, r.partition, r.start, end=r.end) for r in self.ranges.values() if r.planned]
        config = self.settings.kafka.client_config()
        with (
            _fewer_collections(),
            RangeReader(
                config, self.group_id, spans, timeout=None, idle=self.stall_timeout_s, batch=1000, poll_s=0.5
            ) as reader,
        ):
            try:
                self._consume(reader)
            except ReadError as exc:
                raise RangeError(str(exc)) from exc
            for key in sorted(self.buffers):
                self._write(key)
            self._finish()
            self._commit(reader)
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def _consume(self, reader: RangeReader) -> None:
        ranges, merges, summary = self.ranges, self.merges, self.summary
        for batch in reader.batches():
            read: Counter[tuple[str, int]] = Counter()
            for msg in batch:
                where = (msg.topic() or "", msg.partition() or 0)
                r, ts = ranges[where], msg.timestamp()[1]
                if r.wants(ts):
                    merges[r.partition].push(r.role, msg)
                else:  # what they were, to say why a time range selected nothing
                    summary.filtered_out += 1
                    low, high = summary.outside_ms.get((r.role, r.partition), (ts, ts))
                    summary.outside_ms[(r.role, r.partition)] = (min(low, ts), max(high, ts))
                read[where] += 1
            progress: Counter[int] = Counter()
            for where, n in read.items():
                summary.events_read[ranges[where].role] += n
                progress[where[1]] += n
            for partition, n in progress.items():
                self.on_progress(partition, n)
            self._merge(reader)
            throttle(reader, self.ranges.values(), self.merges, self.paused)
        self._merge(reader)  # the last ends may come without records

    def _merge(self, reader: RangeReader) -> None:
        """Join the records whose place in the merged order is settled."""
        for r in self.ranges.values():
            if reader.done(r.topic, r.partition):
                self.merges[r.partition].done[r.role] = True
        for partition, merge in sorted(self.merges.items()):
            for msg in merge.ready():
                self._process(partition, msg)

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
        if e.role == "unmatched":  # the summary's reasons and classes as the live log has them (rare outputs)
            self.summary.unmatched[self.output_codec.decode(e.value, TABLES[e.role].record)["reason"]] += 1
        elif e.role == "dead_letter":
            self.summary.dead_letters[self.output_codec.decode(e.value, TABLES[e.role].record)["error_class"]] += 1
        key = (e.role, partition)
        values = self.buffers.get(key)
        if values is None:
            values = self.buffers[key] = []
        values.append(e.value)
        size = self.buffered[key] = self.buffered.get(key, 0) + len(e.value)
        sink = self.settings.sink
        if len(values) >= sink.max_rows or size >= sink.max_bytes:
            self._write(key)

    def _write(self, key: tuple[str, int]) -> None:
        """Cut the buffered outputs of ``key`` into files; a replay without storage only counts them."""
        values = self.buffers.pop(key, [])
        self.buffered.pop(key, None)
        if not values:
            return
        role, partition = key
        first = self.written_upto.get(key, -1) + 1
        last = first + len(values) - 1
        self.written_upto[key] = last
        self.summary.written[role] += len(values)
        if self.storage is None:
            return
        fmt, topic, partition_by = self.formats[role], self.output_topic[role], self.settings.sink.partition_by
        rows = fmt.decoder.decode(values, self.output_codec, topic)  # decoded as the live sink decodes them
        files = batch_files(fmt, rows, topic, partition, first, last, partition_by)
        for relative, data in files:
            self.storage.put(relative, data)
        self.summary.files += sum(1 for relative, _ in files if relative.endswith(".parquet"))

    def _finish(self) -> None:
        for entry in self.joiner.state.values():
            if entry.done:
                continue
            if entry.inference is not None:
                self.summary.open_inferences += 1
                self.summary.open_without_feedback += entry.judged == 0
            else:
                self.summary.waiting_feedback += len(entry.feedback)

    def _commit(self, reader: RangeReader) -> None:
        """Record the range's end in the replay's own group (shown by ``preflog offsets show``)."""
        if self.storage is None:
            return
        try:
            reader.commit({(r.topic, r.partition): r.end for r in self.ranges.values() if r.planned})
        except Exception as exc:  # the replay itself is complete; only its bookkeeping failed
            log.warning("could not commit the replay's offsets to group %s: %s", self.group_id, exc)
