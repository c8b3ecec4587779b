"""One topic-partition's writer: its batch, where to cut it, the files it becomes, the ids already stored.

bytewax's ``StatefulSinkPartition`` idea, with the audit log as the snapshot:
a :class:`PartitionWriter` is only ever built by :meth:`PartitionWriter.resume`
from the files already in the log (:mod:`.resume`), never from the consumer
group's committed offset, so a writer restarted after any crash is the one
that would have carried on. It knows no consumer: the loop (:mod:`.writer`)
feeds it records, writes the files it cuts, commits :attr:`~PartitionWriter.next_offset`
and then calls :meth:`~PartitionWriter.written`.

The processor is at-least-once: after its own crash the same pair can reach
the topic twice, at two offsets, with one id. The writer remembers the recent
ids of its partition and skips ids already in the log; manifests count what
was skipped.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from preflog.schemas.tables import TABLES

from . import metrics
from .batch import Origin, TableFormat, batch_files
from .incarnation import record_identity
from .resume import ProbeAt, ResumeState, read_resume_state_retrying

if TYPE_CHECKING:
    from confluent_kafka import Message

    from preflog.schemas.codec import Codec
    from preflog.settings import SinkSettings

    from .storage import Storage

__all__ = ["PartitionWriter"]


class PartitionWriter:
    """What the sink holds for one topic-partition; build it with :meth:`resume`.

    Attributes:
        topic: The output topic.
        partition: Its partition.
        table: The audit-log table the topic is written to.
        written_upto: The last offset in files (-1: none yet).
        origin: The topic's incarnation the files continue.
        redo_until: While set, the batch is cut exactly at this offset (a batch a crash cut short, written
            again), and at no other limit.
        ids: Recent ids already in the log, oldest first, at most ``dedupe_window`` after each batch.
        batch: The records taken and not yet in files.
    """

    def __init__(
        self, topic: str, partition: int, fmt: TableFormat, codec: Codec, conf: SinkSettings, state: ResumeState
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.fmt = fmt
        self.table = fmt.table
        self.codec = codec
        self.conf = conf
        self.written_upto = state.written_upto
        self.origin = state.origin
        self.redo_until = state.redo_until
        self.ids: OrderedDict[str, None] = state.ids
        self.batch: list[Message] = []
        self.batch_bytes = 0
        self.batch_started = 0.0
        self.last_seen = 0.0

    @classmethod
    def resume(
        cls,
        storage: Storage,
        topic: str,
        partition: int,
        fmt: TableFormat,
        codec: Codec,
        conf: SinkSettings,
        topic_id: str,
        probe_at: ProbeAt,
    ) -> PartitionWriter:
        """The writer of ``topic[partition]``, its whole state read from the files in ``storage``.

        Reading is retried through an object-store outage; a batch a crash cut short is completed or
        marked to be written again (see :mod:`.resume`).

        Args:
            storage: The audit log.
            topic: The output topic.
            partition: Its partition.
            fmt: The format of the topic's table.
            codec: Decodes the records.
            conf: The sink's settings (batch limits, dedupe window, partition columns).
            topic_id: The broker's id of the topic now ('' if unknown).
            probe_at: Reads the identity of the record at an offset (see :func:`.incarnation.probe`).
        """
        state = read_resume_state_retrying(storage, fmt, topic, partition, topic_id, probe_at, conf.dedupe_window)
        return cls(topic, partition, fmt, codec, conf, state)

    @property
    def next_offset(self) -> int:
        """The first offset not in files: where the partition resumes, and the offset to commit."""
        return self.written_upto + 1

    def add(self, msg: Message, now: float) -> bool:
        """Takes one record into the batch (a record already in files is ignored).

        Args:
            msg: A record of this partition.
            now: ``time.monotonic()``.

        Returns:
            True when the batch is to be cut now: at ``max_rows`` or ``max_bytes``, or, for a batch written
            again, at exactly the offset it was cut at before.
        """
        offset = msg.offset() or 0
        if offset <= self.written_upto:
            return False
        if not self.batch:
            self.batch_started = now
        self.batch.append(msg)
        self.batch_bytes += len(msg.value() or b"")
        self.last_seen = now
        if self.redo_until is not None:  # a batch to write again: cut exactly where it was cut
            if offset >= self.redo_until:
                self.redo_until = None
                return True
            return False
        return len(self.batch) >= self.conf.max_rows or self.batch_bytes >= self.conf.max_bytes

    def due(self, now: float) -> bool:
        """Whether the batch is to be cut by time: ``max_age_s`` old or idle for ``idle_flush_s``.

        Never while a batch is being written again (it is cut by offset only).
        """
        return bool(
            self.batch
            and self.redo_until is None
            and (now - self.batch_started >= self.conf.max_age_s or now - self.last_seen >= self.conf.idle_flush_s)
        )

    def cut(self) -> tuple[int, list[tuple[str, bytes]]]:
        """The files the batch becomes, ids already in the log skipped; the batch's ids are remembered.

        The batch stays held until :meth:`written`: the caller writes the files, commits, then calls it.

        Returns:
            The batch's last offset, and (relative path, bytes) of its data files followed by their manifests.
        """
        first, last = self.batch[0].offset() or 0, self.batch[-1].offset() or 0
        column = TABLES[self.table].id_column
        rows = self.fmt.decoder.decode([msg.value() or b"" for msg in self.batch], self.codec, self.topic)
        keep: list[int] = []
        ids = self.ids
        for i, record_id in enumerate(rows.ids(column) if column else [None] * len(rows)):
            if record_id:
                if record_id in ids:
                    continue
                ids[record_id] = None
            keep.append(i)
        skipped = len(self.batch) - len(keep)
        if skipped:
            rows = rows.take(keep)
            metrics.DUPLICATES.labels(self.table).inc(skipped)
        origin = Origin(self.origin.incarnation, self.origin.topic_id, record_identity(self.batch[-1]))
        files = batch_files(
            self.fmt, rows, self.topic, self.partition, first, last, self.conf.partition_by, skipped, origin
        )
        metrics.ROWS.labels(self.table).inc(len(rows))
        metrics.FILES.labels(self.table).inc(sum(1 for path, _ in files if path.endswith(".parquet")))
        return last, files

    def written(self, last: int) -> None:
        """The batch cut up to ``last`` is in files: moves past it and trims the ids to the dedupe window."""
        self.written_upto = last
        self.batch, self.batch_bytes = [], 0
        while len(self.ids) > self.conf.dedupe_window:
            self.ids.popitem(last=False)
