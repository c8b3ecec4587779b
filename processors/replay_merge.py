"""Replay's deterministic merge of a partition's two input topics (see :mod:`preflog.processors.replay`)."""

from __future__ import annotations

from collections import deque

from confluent_kafka import Message

from .ranges import Range

__all__ = ["ROLE_ORDER", "Merge"]

#: at one timestamp, inference comes before feedback
ROLE_ORDER = {"inference": 0, "feedback": 1}


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

    def push(self, role: str, msg: Message) -> None:
        """Queue the next record of input ``role``."""
        self.queues[role].append((msg.timestamp()[1], ROLE_ORDER[role], msg.offset() or 0, msg))

    def ready(self) -> list[Message]:
        """Records whose place in the order is settled: every open input has a record queued, or is done."""
        out: list[Message] = []
        queues, done = self.queues, self.done
        while True:
            best: deque[tuple[int, int, int, Message]] | None = None
            for role, q in queues.items():
                if not q:
                    if not done[role]:
                        return out  # a record of this input could still come before the others' heads
                elif best is None or q[0] < best[0]:
                    best = q
            if best is None:
                return out
            out.append(best.popleft()[3])

    @property
    def finished(self) -> bool:
        """Both inputs are done and every record was handed out."""
        return all(self.done.values()) and not any(self.queues.values())
