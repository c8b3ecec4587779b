"""The audit-log writer: output topics -> immutable Parquet files, offsets committed only after the write.

Exactly once per id, after any crash:

* Each file is named by the offsets it covers. On assignment the writer lists
  the files already written for the partition and resumes after the highest
  offset covered, so a crash between writing a file and committing its offset
  neither rewrites nor skips anything.
* Only if the topic is the one those files came from: a topic deleted and
  recreated, or a broker that started empty, counts offsets from 0 again. The
  writer checks the topic's incarnation first (:mod:`.incarnation`); a new one
  is read from its beginning into files named with its own number.
* The processor is at-least-once: after its own crash the same pair can reach
  the topic twice, at two offsets, with one pair_id. The writer remembers the
  recent ids of each partition (reloaded from the files at assignment) and
  skips ids already in the log; manifests count what was skipped.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from preflog.errors import PreflogError
from preflog.schemas.codec import Codec
from preflog.schemas.registry import default_store
from preflog.schemas.tables import TABLES
from preflog.settings import Settings

from . import metrics
from .batch import Origin, TableFormat, batch_files, batch_of
from .exceptions import StorageError
from .incarnation import decide, probe, record_identity, topic_ids
from .manifest import MANIFEST_DIR, Manifest, manifest_path
from .naming import FileName, parse_file_name
from .parquet import read_ids
from .storage import Storage

__all__ = ["Sink"]

log = logging.getLogger(__name__)
#: the deterministic id of each table's records: the writer stores each id once (empty ids, in records written
#: before a table had one, are never deduplicated)


@dataclass
class PartitionState:
    """What the writer knows about one topic-partition."""

    table: str
    written_upto: int = -1
    origin: Origin = field(default_factory=Origin)
    redo_until: int | None = None  # a batch cut short by a crash is redone up to exactly this offset
    ids: OrderedDict[str, None] = field(default_factory=OrderedDict)
    batch: list[Message] = field(default_factory=list)
    batch_bytes: int = 0
    batch_started: float = 0.0
    last_seen: float = 0.0


class Sink:
    """Consumes the output topics and writes the audit log under ``storage``."""

    def __init__(self, settings: Settings, storage: Storage, codec: Codec) -> None:
        self.settings = settings
        self.storage = storage
        self.codec = codec
        self.conf = settings.sink
        topics = settings.topics.all()
        self.table_of: dict[str, str] = {topics[table]: table for table in self.conf.tables}
        self.formats: dict[str, TableFormat] = {
            t: TableFormat(t, default_store().latest(TABLES[t].record)) for t in self.conf.tables
        }
        self.parts: dict[tuple[str, int], PartitionState] = {}
        self.admin = AdminClient({**settings.kafka.client_config(), "log_level": 0})
        self.consumer = Consumer(
            {
                **settings.kafka.client_config(),
                "group.id": self.conf.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": int(settings.processor.session_timeout_s * 1000),
            }
        )

    # -- assignment -----------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=30)}
        ids = topic_ids(self.admin, {tp.topic for tp in partitions})
        for tp in partitions:
            state = self._load_retrying(tp.topic, tp.partition, ids.get(tp.topic, ""))
            self.parts[(tp.topic, tp.partition)] = state
            start = committed.get((tp.topic, tp.partition), -1001)
            if state.written_upto < 0 and state.origin.incarnation > 0:
                tp.offset = -2  # a new incarnation: its committed offset (if any) may be the old one's; read it all
            elif state.written_upto >= 0:
                tp.offset = state.written_upto + 1  # the files say where to resume, whatever was committed
            elif start >= 0:
                log.warning(
                    "%s[%d]: group %s committed offset %d, but the audit log at %s has no file of it: resuming there; "
                    "earlier records are not in this log (a new --group-id writes the whole topic)",
                    tp.topic,
                    tp.partition,
                    self.conf.group_id,
                    start,
                    self.storage.url,
                )
                tp.offset = start
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.parts.pop((tp.topic, tp.partition), None)  # unflushed records are read again by the next owner
        consumer.unassign()

    def _load_retrying(self, topic: str, partition: int, topic_id: str, limit_s: float = 240.0) -> PartitionState:
        """:meth:`_load`, retried with backoff while the object store does not answer (an outage); the limit
        stays under the consumer's max.poll.interval.ms (300 s), which this callback holds up."""
        backoff, deadline = 0.5, time.monotonic() + limit_s
        while True:
            try:
                return self._load(topic, partition, topic_id)
            except PreflogError as exc:
                if not isinstance(exc, StorageError) or time.monotonic() > deadline:
                    raise
                error: Exception = exc
            except Exception as exc:  # s3fs/botocore raise their own types for a store that is away
                if time.monotonic() > deadline:
                    raise StorageError(f"reading the audit log at {self.storage.url}: {exc}") from exc
                error = exc
            log.warning(
                "%s[%d]: reading the audit log failed (%s); retrying in %.1f s", topic, partition, error, backoff
            )
            time.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def _load(self, topic: str, partition: int, topic_id: str) -> PartitionState:
        """Where to resume, and recent ids, from the files of this partition."""
        table = self.table_of[topic]
        state = PartitionState(table)
        files: list[tuple[FileName, str]] = []
        ranges: list[tuple[FileName, str]] = []  # (name, manifest path) of every range, with or without a file
        manifests = set(self.storage.list(f"{MANIFEST_DIR}/{table}"))
        unlisted: list[tuple[FileName, str]] = []  # data files whose manifest is missing
        for relative in sorted(set(self.storage.list(table)) | manifests):
            name = parse_file_name(relative.removesuffix(".json"))
            if name is None or name.topic != topic or name.partition != partition:
                continue
            if not relative.endswith(".parquet"):
                ranges.append((name, relative))  # a manifest: of a file (even one deleted since), or of no rows
            elif manifest_path(relative) in manifests:
                files.append((name, relative))
            else:
                unlisted.append((name, relative))
        redo = self._finish_batches(table, unlisted, files, ranges)
        latest = None
        if ranges:
            name, path = max(ranges, key=lambda r: (r[0].incarnation, r[0].last))
            latest = Manifest.from_json(self.storage.read(path))
        config = self.settings.kafka.client_config()
        decision = decide(latest, topic_id, lambda offset: probe(config, topic, partition, offset))
        if decision.new:
            log.warning(
                "%s; this is another incarnation of the topic (deleted and recreated, or a broker that started "
                "empty): writing it from its beginning as incarnation %d, in new files; the earlier files stay",
                decision.reason,
                decision.incarnation,
            )
        state.written_upto = decision.resume_after
        state.origin = Origin(decision.incarnation, topic_id)
        if redo is not None and redo.incarnation == decision.incarnation and redo.first == decision.resume_after + 1:
            state.redo_until = redo.last
            log.warning(
                "%s: a batch was cut short by a crash; writing offsets %d-%d again", redo, redo.first, redo.last
            )
        column = TABLES[table].id_column
        if column and self.conf.dedupe_window:
            for _, relative in sorted(files, key=lambda f: (f[0].incarnation, f[0].last), reverse=True):
                for value in reversed(read_ids(self.storage.read(relative), column)):
                    state.ids[value] = None
                    state.ids.move_to_end(value, last=False)
                if len(state.ids) >= self.conf.dedupe_window:
                    break
        return state

    def _finish_batches(
        self,
        table: str,
        unlisted: list[tuple[FileName, str]],
        files: list[tuple[FileName, str]],
        ranges: list[tuple[FileName, str]],
    ) -> FileName | None:
        """Data files without a manifest (a crash between a batch's writes): a batch whose files are all there
        gets its missing manifests; one missing a file is to be written again (returned; at most one, the last).
        """
        by_range: dict[tuple[int, int, int], list[tuple[FileName, str, dict[str, Any] | None]]] = {}
        for name, relative in unlisted:
            about = batch_of(self.storage.read(relative))
            by_range.setdefault((name.incarnation, name.first, name.last), []).append((name, relative, about))
        redo = None
        for parts in by_range.values():
            listed = sum(
                1
                for n, _ in files
                if (n.incarnation, n.first, n.last) == (parts[0][0].incarnation, parts[0][0].first, parts[0][0].last)
            )
            about = parts[0][2]
            if about is not None and listed + len(parts) < int(about["parts"]):
                redo = parts[0][0]
                continue
            for name, relative, about in parts:
                self._repair_manifest(table, relative, name, about)
                files.append((name, relative))
                ranges.append((name, manifest_path(relative)))
        return redo

    def _repair_manifest(self, table: str, relative: str, name: FileName, about: dict[str, Any] | None) -> None:
        """A crash between a data file and its manifest: write the manifest from the file itself (its batch
        metadata; files written before it existed leave the origin and skipped count unknown)."""
        data = self.storage.read(relative)
        rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        if about is not None:
            origin = Origin(int(about["incarnation"]), str(about["topic_id"]), str(about["last_record"]))
            skipped = int(about["skipped"])
        else:
            origin, skipped = Origin(name.incarnation), -1
        manifest = self.formats[table].manifest(
            relative, name.topic, name.partition, name.first, name.last, rows, skipped, Manifest.digest(data), origin
        )
        self.storage.put(manifest_path(relative), manifest.to_json())
        log.warning("wrote the missing manifest of %s", relative)

    # -- the loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume and write until ``stop`` is set; flushes what it holds before returning."""
        self.consumer.subscribe(list(self.table_of), on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not stop.is_set():
                for msg in self.consumer.consume(1000, 0.2):
                    self._take(msg)
                self._flush_due(time.monotonic())
            for key in list(self.parts):
                self._flush(key)
        finally:
            self.consumer.close()

    def _take(self, msg: Message) -> None:
        error = msg.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
            return
        key = (msg.topic() or "", msg.partition() or 0)
        state = self.parts.get(key)
        if state is None or (msg.offset() or 0) <= state.written_upto:
            return
        now = time.monotonic()
        if not state.batch:
            state.batch_started = now
        state.batch.append(msg)
        state.batch_bytes += len(msg.value() or b"")
        state.last_seen = now
        if state.redo_until is not None:  # a batch to write again: cut exactly where it was cut
            if (msg.offset() or 0) >= state.redo_until:
                self._flush(key)
                state.redo_until = None
            return
        if len(state.batch) >= self.conf.max_rows or state.batch_bytes >= self.conf.max_bytes:
            self._flush(key)

    def _flush_due(self, now: float) -> None:
        for key, state in list(self.parts.items()):
            if (
                state.batch
                and state.redo_until is None
                and (
                    now - state.batch_started >= self.conf.max_age_s or now - state.last_seen >= self.conf.idle_flush_s
                )
            ):
                self._flush(key)

    def _flush(self, key: tuple[str, int]) -> None:
        state = self.parts.get(key)
        if state is None or not state.batch:
            return
        topic, partition = key
        first, last = state.batch[0].offset() or 0, state.batch[-1].offset() or 0
        files = self._files(state, topic, partition, first, last)
        backoff = 0.5
        while True:
            try:
                for relative, data in files:
                    self.storage.put(relative, data)
                break
            except StorageError as exc:
                metrics.WRITE_RETRIES.inc()
                log.warning("%s; retrying in %.1f s (offsets stay uncommitted)", exc, backoff)
                self._wait(backoff)
                backoff = min(backoff * 2, 30.0)
        if self.parts.get(key) is not state:  # revoked (and maybe assigned again) while the store was away
            log.warning("%s[%d] changed hands during a storage retry; its new owner resumes from the files", *key)
            return
        try:
            self.consumer.commit(offsets=[TopicPartition(topic, partition, last + 1)], asynchronous=False)
        except KafkaException as exc:  # e.g. a rebalance under way: the files are written, and say where to resume
            log.warning(
                "%s[%d]: committing offset %d failed (%s); the files decide where to resume", *key, last + 1, exc
            )
        state.written_upto = last
        state.batch, state.batch_bytes = [], 0
        while len(state.ids) > self.conf.dedupe_window:
            state.ids.popitem(last=False)

    def _wait(self, seconds: float) -> None:
        """Sleep while staying in the consumer group (paused: nothing new is fetched)."""
        assignment = self.consumer.assignment()
        self.consumer.pause(assignment)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.consumer.consume(100, min(0.2, max(0.0, deadline - time.monotonic())))
        self.consumer.resume(assignment)

    def _files(
        self, state: PartitionState, topic: str, partition: int, first: int, last: int
    ) -> list[tuple[str, bytes]]:
        """The data files and manifests for one batch (ids already in the log skipped)."""
        fmt = self.formats[state.table]
        column = TABLES[state.table].id_column
        records = []
        for msg in state.batch:
            record = self.codec.decode(msg.value() or b"", fmt.schema.name, topic)
            if column and record.get(column):
                if record[column] in state.ids:
                    continue
                state.ids[record[column]] = None
            records.append(record)
        skipped = len(state.batch) - len(records)
        if skipped:
            metrics.DUPLICATES.labels(state.table).inc(skipped)
        origin = Origin(state.origin.incarnation, state.origin.topic_id, record_identity(state.batch[-1]))
        files = batch_files(fmt, records, topic, partition, first, last, self.conf.partition_by, skipped, origin)
        metrics.ROWS.labels(state.table).inc(len(records))
        metrics.FILES.labels(state.table).inc(sum(1 for path, _ in files if path.endswith(".parquet")))
        return files
