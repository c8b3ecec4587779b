"""One batch of input records: read in order, joined, then handed to its checkpoint.

Per batch (:meth:`BatchJoin.run`):

1. re-read any skipped offset range, and the records past the last joined
   offset of a partition that has been quiet for ``gap_check_s`` (a
   fetch-based read, see :mod:`preflog.processors.faust_compat`);
2. join every record in order; state changes are only staged, every output
   is already encoded (a record that cannot make one becomes a dead letter);
3. commit the batch's :class:`~preflog.processors.checkpoint.Checkpoint`:
   outputs, then state, then the re-read ranges, each acknowledged before the
   next; then the batch's messages are acknowledged, and Faust may commit
   their offsets.

Step 3 runs as a task while the next batch goes through steps 1 and 2 (its
join is CPU work, the checkpoint mostly waits for the broker). At most one
checkpoint is in flight, and each starts only after the one before it is
committed, so batches are committed in order. The messages of a batch are
held (:func:`~preflog.processors.faust_compat.hold`) past the ack Faust's
``take_events`` gives them when the agent asks for the next batch, and
released when their checkpoint is committed: no offset is committed before
everything its records caused is in Kafka. The next batch reads the state
the one in flight staged (:meth:`~preflog.processors.staged.StagedState.seal`).

If anything fails, the checkpoint is abandoned: the process exits before
any offset of the batch is acknowledged (why: :mod:`preflog.processors.checkpoint`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from . import faust_compat, metrics
from .checkpoint import EXIT_BATCH_ABANDONED, Checkpoint
from .gaps import Gap, InputRecord, Record, in_join_order, read_after, read_range
from .join import Emit, Joiner

__all__ = ["EXIT_BATCH_ABANDONED", "PROBE_TIMEOUT_S", "BatchJoin"]

log = logging.getLogger(__name__)
#: how long the quiet-partition check may hold up a batch (it is retried after ``gap_check_s``)
PROBE_TIMEOUT_S = 5.0


class BatchJoin:
    """Reads, orders and joins batches of one worker's input records; their checkpoints make them durable.

    Args:
        joiner: the join.
        checkpoint: makes a new, empty checkpoint (one per batch).
        consumer: Faust's consumer (for committed offsets).
        kafka_config: client config of the direct reads.
        inputs: the inference and feedback topics.
        ticks: the ticks topic.
        gap_check_s: how long an input partition may be quiet before it is read on directly.
        read_limit: the most records one direct read of a quiet partition takes.
        stopping: whether the worker is being stopped.
    """

    def __init__(
        self,
        joiner: Joiner,
        checkpoint: Callable[[], Checkpoint],
        consumer: Callable[[], Any],
        kafka_config: dict[str, Any],
        inputs: tuple[str, str],
        ticks: str,
        gap_check_s: float,
        read_limit: int,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.joiner = joiner
        self.checkpoint = checkpoint
        self.consumer = consumer
        self.kafka_config = kafka_config
        self.inputs = inputs
        self.ticks = ticks
        self.gap_check_s = gap_check_s
        self.read_limit = read_limit
        self.stopping = stopping
        self.last_offset: dict[tuple[str, int], int] = {}
        self.last_seen: dict[tuple[str, int], float] = {}  # monotonic time the agent last got a record there
        self.last_check: dict[tuple[str, int], float] = {}
        self.in_flight: asyncio.Future[None] | None = None  # the checkpoint being committed

    def on_assigned(self) -> None:
        """After a rebalance: positions are found again from the committed offsets."""
        self.joiner.forget_index()
        self.last_offset.clear()
        self.last_seen.clear()
        self.last_check.clear()

    async def run(self, events: list[Any]) -> None:
        """Read and join one batch, then commit it in the background, or exit without acknowledging any of it.

        Returns once the batch is joined and the checkpoint before it is
        committed; the batch's own checkpoint is then in flight.

        Args:
            events: the batch, as Faust's ``take_events`` yields it.
        """
        checkpoint = self.checkpoint()
        previous = self.in_flight
        try:
            ordered = await self.read(events, checkpoint)  # 1
            self.join(ordered, checkpoint)  # 2
            checkpoint.seal()
        except BaseException as exc:  # every failure ends the same way: nothing acked
            checkpoint.abandon(exc, stopping=isinstance(exc, asyncio.CancelledError) and self.stopping())
        faust_compat.hold(events)  # acknowledged when their checkpoint is committed, not when take_events says
        if previous is not None:
            await previous  # at most one checkpoint in flight, committed in order
        self.in_flight = asyncio.ensure_future(self._commit(checkpoint, events))  # 3

    async def _commit(self, checkpoint: Checkpoint, events: list[Any]) -> None:
        try:
            await checkpoint.commit()
        except BaseException as exc:
            checkpoint.abandon(exc, stopping=isinstance(exc, asyncio.CancelledError) and self.stopping())
        faust_compat.release(events)

    async def drain(self) -> None:
        """Wait until the checkpoint in flight is committed."""
        if self.in_flight is not None:
            await self.in_flight

    async def read(self, events: list[Any], checkpoint: Checkpoint) -> list[InputRecord]:
        """The batch's records in join order, with the records Faust skipped read directly and put in place."""
        records = [
            InputRecord(
                e.message.topic,
                e.message.partition,
                e.message.offset,
                e.key,
                e.value,
                e,
                int(e.message.timestamp * 1000) if e.message.timestamp else None,
            )
            for e in events
        ]
        now = time.monotonic()
        for r in records:
            if r.topic != self.ticks:
                self.last_seen[(r.topic, r.partition)] = now
        ordered, gaps = await in_join_order(records, self.last_offset, self.committed_offset, self.refetch)
        ordered, more = await self.read_quiet_partitions(ordered, now)
        checkpoint.gaps += gaps + more
        return ordered

    # -- 1. records Faust did not deliver -------------------------------------------------------------

    def committed_offset(self, topic: str, partition: int) -> int | None:
        """Where Faust's consumer will start ``topic[partition]`` (None: not known)."""
        return faust_compat.committed_offset(self.consumer(), topic, partition)

    async def refetch(self, topic: str, partition: int, first: int, upto: int) -> list[Record]:
        """Records ``first..upto-1`` never reached the agent: read them directly (see faust_compat)."""
        missed = await asyncio.to_thread(read_range, self.kafka_config, topic, partition, first, upto)
        metrics.REFETCHED.labels(topic).inc(len(missed))
        log.warning(
            "%s[%d]: offsets %d-%d were skipped by the consumer; re-read %d record(s) directly (see faust_compat)",
            topic,
            partition,
            first,
            upto - 1,
            len(missed),
        )
        return missed

    def _quiet(self, ordered: list[InputRecord], now: float) -> dict[tuple[str, int], tuple[int, Any]]:
        """Input partitions of this batch's ticks that had no record for ``gap_check_s``: where to read from."""
        due: dict[tuple[str, int], tuple[int, Any]] = {}
        for r in ordered:
            if r.topic != self.ticks:
                continue
            for topic in self.inputs:
                where = (topic, r.partition)
                seen = self.last_seen.setdefault(where, now)  # counted from the assignment
                if now - max(seen, self.last_check.get(where, 0.0)) < self.gap_check_s or where in due:
                    continue
                previous = self.last_offset.get(where)
                start = previous + 1 if previous is not None else self.committed_offset(topic, r.partition)
                if start is not None:  # no position yet: faust_compat's seek covers it
                    due[where] = (start, r.event)
        return due

    async def read_quiet_partitions(
        self, ordered: list[InputRecord], now: float
    ) -> tuple[list[InputRecord], list[Gap]]:
        """Records past the last joined offset of quiet partitions, read directly and put before their tick.

        Faust delivers a record only when it fetched it; one it skipped after a
        restart is noticed in :func:`in_join_order` only when a later record of
        the same partition arrives, which for the tail of a topic may be never.
        """
        due = self._quiet(ordered, now)
        if not due:
            return ordered, []
        for where in due:
            self.last_check[where] = now
        starts = {where: start for where, (start, _) in due.items()}
        try:
            found = await asyncio.to_thread(read_after, self.kafka_config, starts, self.read_limit, PROBE_TIMEOUT_S)
        except Exception as exc:  # only a check: a broker that does not answer now is asked again later
            log.warning("checking quiet partitions %s for records not delivered failed (%s); will retry", starts, exc)
            return ordered, []
        extra: list[InputRecord] = []
        gaps: list[Gap] = []
        for (topic, partition), missed in sorted(found.items()):
            if not missed:
                continue
            event = due[(topic, partition)][1]
            extra += [InputRecord(topic, partition, m.offset, m.key, m.value, event, m.timestamp_ms) for m in missed]
            gaps.append(Gap(topic, partition, starts[(topic, partition)], missed[-1].offset))
            self.last_offset[(topic, partition)] = missed[-1].offset
            metrics.REFETCHED.labels(topic).inc(len(missed))
            log.warning(
                "%s[%d]: quiet for %.0f s with %d record(s) from offset %d not delivered; read them directly",
                topic,
                partition,
                self.gap_check_s,
                len(missed),
                missed[0].offset,
            )
        return extra + ordered, gaps

    # -- 2. join --------------------------------------------------------------------------------------

    def join(self, ordered: list[InputRecord], checkpoint: Checkpoint) -> None:
        """Every record through the join, in order; outputs go to the checkpoint, state changes stay staged."""
        emits: list[Emit] = checkpoint.emits
        events, process, ticks = checkpoint.events, self.joiner.process, self.ticks
        counts: dict[str, int] = {}
        duplicates = self.joiner.duplicates
        partition = None
        try:
            for r in ordered:
                if r.partition != partition:  # the RocksDB store reads only the current event's partition
                    faust_compat.set_current_event(r.event)
                    partition = r.partition
                events[r.partition] = r.event
                if r.topic == ticks:
                    emits += self.joiner.tick(r.partition)
                    continue
                counts[r.topic] = counts.get(r.topic, 0) + 1
                emits += process(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp_ms)
        finally:  # the metrics once per batch (labels() per record was ~3% of the join)
            for topic, n in counts.items():
                metrics.EVENTS_IN.labels(topic).inc(n)
            metrics.DUPLICATES.inc(self.joiner.duplicates - duplicates)
