"""Guards against input records that faust-streaming 0.15 + aiokafka 0.14 skip after a restart.

Seen in the kill -9 restart test (tests/integration/test_processor.py): the
restarted worker skipped a block of 10 to 75 records on every input partition,
right where table recovery ends and Faust seeks the stream partitions to their
committed offsets ("Seek stream partitions to committed offsets"). Faust
resumes fetching while it restores tables, and records fetched in that window
were dropped on their way to the agent while the fetch position moved past
them. The agent never saw them, so their pairs were never made. It happened
with and without a committed offset; the code path is the same on any Kafka.

Two defences:

* :func:`install` makes that seek also cover partitions without a committed
  offset (aiokafka's ``seek_to_committed`` skips offsets that are missing or
  0): they go to the beginning, which is what the worker's
  ``auto.offset.reset=earliest`` means. Without it a skip there could not be
  noticed, since the agent's first record would already be past it.
* The agent checks that the offsets of each input partition are contiguous and
  re-reads any skipped range directly (:mod:`preflog.processors.gaps`),
  joining those records before the one that revealed the gap; the metric
  ``preflog_processor_refetched_total`` counts them.
* A skipped range at the tail of a partition has no later record to reveal
  it. So when an input partition has delivered nothing for ``gap_check_s``,
  the agent (on its next idle tick) reads on from the partition's last joined
  offset, or its committed offset, to the end the fetch response reports
  (never ListOffsets, which the embedded broker answers low), and joins what
  it finds (:meth:`preflog.processors.batch.BatchJoin.read_quiet_partitions`).
  Faust may still deliver those records later: a record at or before the last
  joined offset of its partition is left out.

The join ignores what it has already seen, so reading records again is safe.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install"]


async def _seek_to_beginning(consumer: Any, partitions: list[Any]) -> None:
    await consumer.seek_to_beginning(*partitions)


def install() -> None:
    """Patch Faust's aiokafka consumer thread (idempotent)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = AIOKafkaConsumerThread.seek_to_committed
    if getattr(original, "preflog_fix", False):
        return

    async def seek_to_committed(self: Any) -> Any:
        committed = await original(self)
        uncommitted = [tp for tp, offset in committed.items() if not offset]
        if uncommitted:
            await self.call_thread(_seek_to_beginning, self._ensure_consumer(), uncommitted)
        return committed

    seek_to_committed.preflog_fix = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
