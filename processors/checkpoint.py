"""One door for exactly-once: a batch's outputs, then its state, then its offsets.

A :class:`Checkpoint` collects what one batch of input records produced:
the encoded outputs, the state changes (staged per partition in
:class:`~preflog.processors.staged.StagedState`), and the offset ranges the
worker read itself. :meth:`Checkpoint.commit` is the one method that makes
them durable, in this order (as Quix Streams' ``Checkpoint.commit``):

1. the outputs are delivered and Kafka has acknowledged every one;
2. the staged state is written to the table's store and its changelog
   records are acknowledged;
3. the ranges read directly are marked done, so Faust may commit past them;
4. it returns: Faust's ``take_events`` acks the batch in its ``finally:``
   and its commit loop commits the offsets later.

Each step starts only when the one before it is acknowledged, so an offset is
committed only after everything its records caused is in Kafka.

Step 2 is not atomic: a ``kill -9`` in its middle leaves some of the batch's
state written (in the store and the changelog) and the rest not, and the
batch is joined again after the restart. That is safe for entries (a record
joined again against its own effect is a duplicate), but not for a stream
time: one saved ahead of the entries its records changed would expire them
in the redo before their records are joined again (an inference both joined
and unmatched NO_FEEDBACK, seen in the fault suite). So stream times are
written after every entry of the batch.

If the batch fails anywhere (a re-read, the join's store, a produce error, a
changelog write) or the agent is cancelled in the middle, :meth:`Checkpoint.abandon`
ends the process at once with code 70 (:data:`EXIT_BATCH_ABANDONED`; 0 when
it was being stopped) after logging why. Returning or re-raising is not safe
in faust-streaming 0.15: ``take_events`` acks the batch in ``finally:``
whatever happened, and the agent supervisor restarts the agent in the same
process, so the offsets of records whose outputs were never sent would be
committed, and their staged state would be written later with another
batch. Exiting before that ``finally:`` runs leaves every offset of the batch
unacknowledged: the worker is restarted (by its supervisor: Kubernetes,
systemd) from the last committed offset, and the records are joined again
(at-least-once; pair_ids repeat). The staged state is discarded first, for a
caller that does not exit.

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
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from . import faust_compat, metrics
from .entry import is_stream_time
from .gaps import Gap
from .outputs import Emit
from .staged import StagedState

__all__ = ["EXIT_BATCH_ABANDONED", "Checkpoint", "Send"]

log = logging.getLogger(__name__)
#: exit code of a worker that abandoned a batch (EX_SOFTWARE)
EXIT_BATCH_ABANDONED = 70

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
        elif e.role == "turns":
            metrics.TURNS_OUT.inc()
        elif e.role == "dead_letter":
            metrics.DEAD_LETTERS.labels(e.record["error_class"]).inc()


@dataclass
class Checkpoint:
    """What one batch produced, and the one way to make it durable (see the module docstring).

    Args:
        send: ``send(topic, key, value, partition)`` of the producer; awaiting it returns the ack's future.
        topics: role -> its output topic.
        changelog: the table's changelog topic.
        state: the staged state changes of this batch, by partition.
        store: the table's store, where the state is written.
        consumer: Faust's consumer (for marking re-read ranges done).
    """

    send: Send
    topics: Mapping[str, str]
    changelog: str
    state: StagedState[bytes, bytes]
    store: Callable[[], MutableMapping[Any, Any]]
    consumer: Callable[[], Any]
    emits: list[Emit] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    events: dict[int, Any] = field(default_factory=dict)  # partition -> an event of it in this batch
    changes: dict[int, list[tuple[bytes, bytes | None]]] = field(default_factory=dict)  # sealed, by partition
    layer: dict[bytes, Any] | None = None  # the sealed changes' layer in ``state``, until in the store

    async def commit(self) -> None:
        """Deliver, write state, mark re-read ranges; each step after the previous one is acknowledged."""
        await self.deliver()  # 1. outputs acknowledged before the state that records them is written
        await self.write_state()  # 2. state acknowledged before the batch can be committed
        await self.mark_done()  # 3. Faust may now commit past the records it never delivered
        # 4. returning to take_events, which acks the batch; Faust's commit loop commits it

    async def deliver(self) -> None:
        """Step 1: send the (already encoded) outputs and wait until Kafka has acknowledged every one.

        Every send is queued before any acknowledgement is awaited, so the
        producer fills its batches (``producer_max_batch_size``).
        """
        if not self.emits:
            return
        send, topics = self.send, self.topics
        sent = [await send(topics[e.role], e.key, e.value) for e in self.emits]
        await asyncio.gather(*sent)
        _count(self.emits)

    def seal(self) -> None:
        """Take the batch's staged changes; later batches still see them until they are in the store."""
        if self.layer is None:
            self.changes, self.layer = self.state.seal()

    async def write_state(self) -> None:
        """Step 2: apply the staged changes to the store and wait until their changelog records are acknowledged.

        Written directly, not through the table's buffered changelog: Faust gives up
        flushing that buffer before a commit after 0.1 s without progress, so a kill -9
        right after a commit could lose state the committed offset depends on. The
        RocksDB store files a key under the partition of the current event, so each
        partition's changes are applied with one of its own events current. Every
        change is in the store before the first send, so the batch being joined
        meanwhile reads them there. Once acknowledged, each partition's last
        changelog offset is saved in the store (RocksDB keeps it), so a restart
        recovers only the changelog after it.
        """
        self.seal()
        assert self.layer is not None
        changes = self.changes
        entries = [(p, key, value) for p, kvs in changes.items() for key, value in kvs if not is_stream_time(key)]
        clocks = [(p, key, value) for p, kvs in changes.items() for key, value in kvs if is_stream_time(key)]
        ordered = entries + clocks  # stream times last: see the module docstring
        store = self.store()
        current = None
        for partition, key, value in ordered:
            if partition != current:
                faust_compat.set_current_event(self.events[partition])
                current = partition
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
        self.state.release(self.layer)
        send, topic = self.send, self.changelog
        # a deletion goes out as a tombstone (value None: the table's raw serializer passes it through)
        sent = [await send(topic, key, value, partition) for partition, key, value in ordered]
        acks = await asyncio.gather(*sent)
        last: dict[int, int] = {}
        for ack in acks:
            offset = getattr(ack, "offset", None)
            if offset is not None:
                last[ack.partition] = max(offset, last.get(ack.partition, -1))
        for partition, offset in last.items():
            faust_compat.set_persisted_offset(store, topic, partition, offset)

    async def mark_done(self) -> None:
        """Step 3: the ranges read directly are done; Faust may commit past them."""
        for g in self.gaps:
            await faust_compat.add_gap(self.consumer(), g.topic, g.partition, g.first, g.last)

    def abandon(self, exc: BaseException, stopping: bool) -> NoReturn:
        """End the process before Faust acks the batch (why: the module docstring).

        Args:
            exc: what went wrong.
            stopping: the worker is being stopped (exit 0 rather than 70).
        """
        self.state.discard()
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
