"""Replay's deterministic merge of a partition's two input topics (see :mod:`preflog.processors.replay`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from confluent_kafka import Message, TopicPartition

from preflog.kafka.reader import RangeReader

from .ranges import Range

__all__ = ["MERGE_HIGH_BYTES", "RECORD_OVERHEAD", "ROLE_ORDER", "Merge", "throttle"]

#: at one timestamp, inference comes before feedback
ROLE_ORDER = {"inference": 0, "feedback": 1}
#: bytes of one input's records waiting in a partition's merge before its reading pauses (resumed below half)
MERGE_HIGH_BYTES = 16 * 2**20
#: what a queued record costs beside its value: the Message, its key and topic, the queue's tuple (measured ~500)
RECORD_OVERHEAD = 512


class Merge:
    """The two input partitions of one partition number, merged in a fixed order.

    Records are pushed as they arrive, in each input's offset order; :meth:`ready` hands out those whose
    place is settled, smallest (timestamp, inference before feedback, offset) head first. The order depends
    only on the records, never on how fetches interleave the two inputs.
    """

    def __init__(self, ranges: list[Range]) -> None:
        # per role: (timestamp, role order, offset, record); heads of two roles differ in role order, so
        # comparing two heads never reaches the record
        self.queues: dict[str, deque[tuple[int, int, int, Message]]] = {r.role: deque() for r in ranges}
        self.done: dict[str, bool] = {r.role: r.planned == 0 for r in ranges}
        #: bytes queued per input (values and :data:`RECORD_OVERHEAD`): an input read ahead in time waits here
        self.held: dict[str, int] = dict.fromkeys(self.queues, 0)

    def push(self, role: str, msg: Message) -> None:
        """Queue the next record of input ``role``."""
        self.queues[role].append((msg.timestamp()[1], ROLE_ORDER[role], msg.offset() or 0, msg))
        self.held[role] += len(msg.value() or b"") + RECORD_OVERHEAD

    def ready(self) -> list[Message]:
        """Records whose place in the order is settled: every open input has a record queued, or is done."""
        out: list[Message] = []
        queues, done, held = self.queues, self.done, self.held
        while True:
            best: str | None = None
            for role, q in queues.items():
                if not q:
                    if not done[role]:
                        return out  # a record of this input could still come before the others' heads
                elif best is None or q[0] < queues[best][0]:
                    best = role
            if best is None:
                return out
            msg = queues[best].popleft()[3]
            held[best] -= len(msg.value() or b"") + RECORD_OVERHEAD
            out.append(msg)

    @property
    def finished(self) -> bool:
        """Both inputs are done and every record was handed out."""
        return all(self.done.values()) and not any(self.queues.values())


def throttle(
    reader: RangeReader, ranges: Iterable[Range], merges: dict[int, Merge], paused: set[tuple[str, int]]
) -> None:
    """Pause an input whose records pile up in its merge (the other input is behind); resume it once taken.

    Without it, an input whose fetches cover more event time (feedback is small beside inference) waits in the
    merge until the other catches up: most of a topic's range, held at once. Called right after the merge took
    what it could, when every input still being read has an empty queue or is the only one with records, so the
    input the merge waits for is never paused and the reading always goes on. ``paused`` is the caller's record
    of the inputs paused here.
    """
    for r in ranges:
        where = (r.topic, r.partition)
        if reader.done(*where):
            paused.discard(where)
            continue
        held = merges[r.partition].held[r.role]
        if where not in paused and held >= MERGE_HIGH_BYTES:
            reader.consumer.pause([TopicPartition(*where)])
            paused.add(where)
        elif where in paused and held < MERGE_HIGH_BYTES // 2:
            reader.consumer.resume([TopicPartition(*where)])
            paused.discard(where)
