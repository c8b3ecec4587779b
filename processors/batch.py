"""One batch of input records: all of it is done, or none of it is acknowledged.

The one door for the worker's guarantee. Per batch (:meth:`BatchJoin.run`):

1. re-read any skipped offset range, and the records past the last joined
   offset of a partition that has been quiet for ``gap_check_s`` (a
   fetch-based read, see :mod:`preflog.processors.faust_fixes`);
2. join every record in order; state changes are only staged, every output
   is already encoded (a record that cannot make one becomes a dead letter);
3. deliver the outputs and wait until Kafka has acknowledged every one;
4. write the staged state and wait until its changelog records are acknowledged;
5. mark the re-read ranges done, so Faust may commit past them;
6. return: Faust's ``take_events`` acks the batch in its ``finally:`` and
   its commit loop commits the offsets later.

If anything in 1-5 raises (a produce error, a changelog write, a re-read) or
the agent is cancelled in the middle, the process exits at once with code
70 (:data:`EXIT_BATCH_ABANDONED`; 0 when it was being stopped) after
logging why. Returning or re-raising is not safe in faust-streaming 0.15:
``take_events`` acks the batch in ``finally:`` whatever happened, and the
agent supervisor restarts the agent in the same process, so the offsets of
records whose outputs were never sent would be committed, and their staged
state would be written later with another batch. Exiting before that
``finally:`` runs leaves every offset of the batch unacknowledged: the worker
is restarted (by its supervisor: Kubernetes, systemd) from the last committed
offset, and the records are joined again (at-least-once; pair_ids repeat).
The staged state is discarded first, for a caller that does not exit.

Why the process, not the agent: the ack cannot be stopped from inside the
agent. ``take_events`` yields a copy of its event list and acks its own list
in ``finally:`` (on the exception, on the generator's close, or on its
finalisation); ``Agent._execute_actor`` then marks the actor crashed and the
``OneForOneSupervisor`` starts a new one on the same stream, whose position
is already past the batch. Setting ``message.acked`` by hand would keep the
offsets out of the commit, but Faust would then wait for those messages on
every rebalance and never fetch them again in this process, so a restart
is needed anyway; exiting is the same outcome without the wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faust.streams import _current_event

from . import metrics
from .gaps import Gap, InputRecord, Record, in_join_order, read_after, read_range
from .join import Emit, Joiner
from .staged import StagedState

__all__ = ["EXIT_BATCH_ABANDONED", "BatchJoin"]

log = logging.getLogger(__name__)
#: exit code of a worker that abandoned a batch (EX_SOFTWARE)
EXIT_BATCH_ABANDONED = 70
#: how long the quiet-partition check may hold up a batch (it is retried after ``gap_check_s``)
PROBE_TIMEOUT_S = 5.0

Send = Callable[..., Awaitable[Any]]


def _count(emits: list[Emit]) -> None:
    for e in emits:
        if e.role == "pairs":
            metrics.PAIRS_OUT.inc()
            metrics.JOIN_LATENCY.observe(e.record["join_latency_ms"] / 1000)
        elif e.role == "unpaired":
            metrics.UNPAIRED_OUT.inc()
        elif e.role == "unmatched":
            metrics.UNMATCHED.labels(e.record["reason"]).inc()
        else:
            metrics.DEAD_LETTERS.labels(e.record["error_class"]).inc()


class BatchJoin:
    """Joins, delivers and records batches of one worker's input records (see the module docstring)."""

    def __init__(
        self,
        joiner: Joiner,
        state: StagedState,
        table_data: Callable[[], Any],
        send_output: Mapping[str, Send],
        send_changelog: Send,
        consumer: Callable[[], Any],
        kafka_config: dict[str, Any],
        inputs: tuple[str, str],
        ticks: str,
        gap_check_s: float,
        read_limit: int,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.joiner = joiner
        self.state = state
        self.table_data = table_data
        self.send_output = send_output
        self.send_changelog = send_changelog
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

    def on_assigned(self) -> None:
        """After a rebalance: positions are found again from the committed offsets."""
        self.joiner.forget_index()
        self.last_offset.clear()
        self.last_seen.clear()
        self.last_check.clear()

    async def run(self, events: list[Any]) -> None:
        """Do one batch completely, or exit the process without acknowledging any of it."""
        try:
            await self._run(events)
        except BaseException as exc:  # every failure ends the same way: nothing acked
            self.abandon(exc)

    def abandon(self, exc: BaseException) -> None:
        self.state.discard()
        stopping = isinstance(exc, asyncio.CancelledError) and self.stopping()
        if stopping:
            log.warning("stopped in the middle of a batch; exiting before it is acknowledged (it will be re-read)")
        else:
            log.critical(
                "batch abandoned: %s: %s; exiting with code %d before any of its offsets is acknowledged, so a "
                "restarted worker joins it again from the last committed offset",
                type(exc).__name__,
                exc,
                EXIT_BATCH_ABANDONED,
                exc_info=exc,
            )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0 if stopping else EXIT_BATCH_ABANDONED)

    async def _run(self, events: list[Any]) -> None:
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
        ordered, gaps = await in_join_order(records, self.last_offset, self.committed_offset, self.refetch)  # 1
        ordered, more = await self.read_quiet_partitions(ordered, now)
        emits, last_event = self.join(ordered)  # 2
        await self.deliver(emits)  # 3: outputs acknowledged before the state that records them is written
        await self.write_state(last_event)  # 4: state acknowledged before the batch is acked and can be committed
        await self.mark_gaps(gaps + more)  # 5: Faust may now commit past the records it never delivered

    # -- 1. records Faust did not deliver -------------------------------------------------------------

    def committed_offset(self, topic: str, partition: int) -> int | None:
        from faust.types import TP

        offset: int | None = self.consumer()._committed_offset.get(TP(topic, partition))
        return offset

    async def refetch(self, topic: str, partition: int, first: int, upto: int) -> list[Record]:
        """Records ``first..upto-1`` never reached the agent: read them directly (see faust_fixes)."""
        missed = await asyncio.to_thread(read_range, self.kafka_config, topic, partition, first, upto)
        metrics.REFETCHED.labels(topic).inc(len(missed))
        log.warning(
            "%s[%d]: offsets %d-%d were skipped by the consumer; re-read %d record(s) directly (see faust_fixes)",
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
                if start is not None:  # no position yet: faust_fixes' seek covers it
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

    def join(self, ordered: list[InputRecord]) -> tuple[list[Emit], dict[int, Any]]:
        """Every record through the join, in order; state changes stay staged."""
        emits: list[Emit] = []
        last_event: dict[int, Any] = {}
        for r in ordered:
            _current_event.set(weakref.ref(r.event))  # the RocksDB store reads the current event's partition
            last_event[r.partition] = r.event
            self.state.partition = r.partition
            if r.topic == self.ticks:
                emits += self.joiner.tick(r.partition)
                continue
            metrics.EVENTS_IN.labels(r.topic).inc()
            duplicates = self.joiner.duplicates
            emits += self.joiner.process(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp_ms)
            metrics.DUPLICATES.inc(self.joiner.duplicates - duplicates)
        return emits, last_event

    # -- 3. deliver -----------------------------------------------------------------------------------

    async def deliver(self, emits: list[Emit]) -> None:
        """Send the (already encoded) outputs and wait until Kafka has acknowledged every one."""
        if not emits:
            return
        sent = [await self.send_output[e.role](key=e.key, value=e.value) for e in emits]
        await asyncio.gather(*sent)
        _count(emits)

    # -- 4. state -------------------------------------------------------------------------------------

    async def write_state(self, last_event: dict[int, Any]) -> None:
        """Apply the batch's state changes and wait until their changelog records are acknowledged.

        Written directly, not through the table's buffered changelog: Faust gives up
        flushing that buffer before a commit after 0.1 s without progress, so a kill -9
        right after a commit could lose state the committed offset depends on. The
        RocksDB store files a key under the partition of the current event, so each
        partition's changes are applied with one of its own events current.
        """
        sent = []
        data = self.table_data()
        for partition, changes in self.state.drain().items():
            _current_event.set(weakref.ref(last_event[partition]))
            for key, value in changes:
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
                serializer = "raw" if value is None else None  # a tombstone is sent as an empty value
                sent.append(
                    await self.send_changelog(
                        key=key, value=value, partition=partition, value_serializer=serializer, force=True
                    )
                )
        await asyncio.gather(*sent)

    # -- 5. ranges read directly ----------------------------------------------------------------------

    async def mark_gaps(self, gaps: list[Gap]) -> None:
        from faust.types import TP

        for g in gaps:
            await self.consumer()._add_gap(TP(g.topic, g.partition), g.first, g.last)
