"""The audit-log sink's consumer loop: output topics -> immutable Parquet files, offsets committed only after.

Exactly once per id, after any crash:

* Each file is named by the offsets it covers. On assignment the sink builds
  each partition's :class:`~.partition.PartitionWriter` from the files already
  written for it and resumes after the highest offset they cover, so a crash
  between writing a file and committing its offset neither rewrites nor skips
  anything.
* Only if the topic is the one those files came from: a topic deleted and
  recreated, or a broker that started empty, counts offsets from 0 again. The
  writer checks the topic's incarnation first (:mod:`.incarnation`); a new one
  is read from its beginning into files named with its own number.
* The processor is at-least-once; each partition's writer skips ids already
  in the log (:mod:`.partition`).

This module holds what needs the consumer: polling, assignment and
revocation, the write-then-commit door (:meth:`Sink._flush`), and draining on
shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from preflog.kafka.config import admin_config, consumer_config
from preflog.schemas.codec import Codec
from preflog.schemas.registry import default_store
from preflog.schemas.tables import TABLES
from preflog.settings import Settings

from . import metrics
from .batch import TableFormat
from .exceptions import StorageError
from .health import SinkHealth
from .incarnation import probe, topic_ids
from .partition import PartitionWriter
from .storage import Storage

__all__ = ["Sink"]

log = logging.getLogger(__name__)


class Sink:
    """Consumes the output topics and writes the audit log under ``storage``.

    Attributes:
        parts: The writer of each assigned (topic, partition), rebuilt from the files at each assignment.
    """

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
        for fmt in self.formats.values():
            fmt.prepare()
        self.parts: dict[tuple[str, int], PartitionWriter] = {}
        self.health = SinkHealth(storage, self.conf.liveness_timeout_s)
        base = settings.kafka.client_config()
        self.admin = AdminClient(admin_config(base, quiet=True))
        self.consumer = Consumer(
            consumer_config(
                base,
                self.conf.group_id,
                offset_reset="earliest",
                session_timeout_s=settings.processor.session_timeout_s,
            )
        )

    # -- assignment -----------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Builds each assigned partition's writer from the files and seeks to where the files end.

        The files decide where to resume, never a commit ahead of them; a commit without files is resumed
        from with a warning, and a new incarnation of the topic is read from its beginning.
        """
        self.health.busy(f"resuming {len(partitions)} partitions from the files")
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=30)}
        ids = topic_ids(self.admin, {tp.topic for tp in partitions})
        for tp in partitions:
            writer = self._resume(tp.topic, tp.partition, ids.get(tp.topic, ""))
            self.parts[(tp.topic, tp.partition)] = writer
            start = committed.get((tp.topic, tp.partition), -1001)
            if writer.written_upto < 0 and writer.origin.incarnation > 0:
                tp.offset = -2  # a new incarnation: its committed offset (if any) may be the old one's; read it all
            elif writer.written_upto >= 0:
                tp.offset = writer.next_offset  # the files say where to resume, whatever was committed
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

    def _resume(self, topic: str, partition: int, topic_id: str) -> PartitionWriter:
        """The partition's writer, read from the files; the broker is probed where topic ids cannot tell."""
        config = self.settings.kafka.client_config()
        fmt = self.formats[self.table_of[topic]]
        probe_at = partial(probe, config, topic, partition)
        return PartitionWriter.resume(self.storage, topic, partition, fmt, self.codec, self.conf, topic_id, probe_at)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Drops the revoked partitions' writers; what they held unwritten is read again by the next owner."""
        for tp in partitions:
            self.parts.pop((tp.topic, tp.partition), None)  # unflushed records are read again by the next owner
        consumer.unassign()

    # -- the loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume and write until ``stop`` is set; flushes what it holds before returning."""
        self.consumer.subscribe(list(self.table_of), on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not stop.is_set():
                for msg in self.consumer.consume(1000, 0.2):
                    self._take(msg)
                self._flush_due(time.monotonic())
                self.health.turn(len(self.parts))
            for key in list(self.parts):
                self._flush(key)
        finally:
            self.consumer.close()

    def _take(self, msg: Message) -> None:
        """Hands one record to its partition's writer, and writes the batch when the writer cuts it."""
        error = msg.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
            return
        key = (msg.topic() or "", msg.partition() or 0)
        writer = self.parts.get(key)
        if writer is not None and writer.add(msg, time.monotonic()):
            self._flush(key)

    def _flush_due(self, now: float) -> None:
        """Writes every batch that is old enough or whose partition has been idle long enough."""
        for key, writer in list(self.parts.items()):
            if writer.due(now):
                self._flush(key)

    def _flush(self, key: tuple[str, int]) -> None:
        """Writes a partition's batch, then commits it: the one door to exactly-once.

        1. The partition's writer cuts its batch into files (ids already in the log skipped).
        2. Every data file, then every manifest, is created, retried with backoff through a storage
           outage; the consumer is paused meanwhile and stays in its group, the offsets stay uncommitted.
        3. A partition that changed hands during the retry is left to its new owner, which resumes from
           the files.
        4. The offset after the batch is committed; a failed commit (a rebalance) is logged, since the
           files say where to resume.
        5. The writer moves past the batch.
        """
        writer = self.parts.get(key)
        if writer is None or not writer.batch:
            return
        topic, partition = key
        last, files = writer.cut()
        backoff = 0.5
        while True:
            try:
                self.health.busy(f"writing {topic}[{partition}]")
                for relative, data in files:
                    self.storage.put(relative, data)
                break
            except StorageError as exc:
                metrics.WRITE_RETRIES.inc()
                self.health.write_problem = f"writing {topic}[{partition}] fails; retrying (offsets uncommitted)"
                log.warning("%s; retrying in %.1f s (offsets stay uncommitted)", exc, backoff)
                self._wait(backoff)
                backoff = min(backoff * 2, 30.0)
        self.health.write_problem = None
        if self.parts.get(key) is not writer:  # revoked (and maybe assigned again) while the store was away
            log.warning("%s[%d] changed hands during a storage retry; its new owner resumes from the files", *key)
            return
        try:
            self.consumer.commit(offsets=[TopicPartition(topic, partition, last + 1)], asynchronous=False)
        except KafkaException as exc:  # e.g. a rebalance under way: the files are written, and say where to resume
            log.warning(
                "%s[%d]: committing offset %d failed (%s); the files decide where to resume", *key, last + 1, exc
            )
        writer.written(last)

    def _wait(self, seconds: float) -> None:
        """Sleep while staying in the consumer group (paused: nothing new is fetched)."""
        assignment = self.consumer.assignment()
        self.consumer.pause(assignment)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.consumer.consume(100, min(0.2, max(0.0, deadline - time.monotonic())))
            self.health.turn(len(self.parts))
        self.consumer.resume(assignment)
