"""The next batch is joined while the previous batch's checkpoint is in flight (processors/batch.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types.tuples import Message

from preflog.processors.batch import BatchJoin
from preflog.processors.checkpoint import Checkpoint
from preflog.processors.outputs import Emit
from preflog.processors.staged import StagedState


class Consumer:
    _committed_offset: dict[Any, int] = {}

    def ack(self, message: Message) -> bool:  # pragma: no cover - plain Messages ack themselves
        return True


CONSUMER: Any = Consumer()


class Event:
    """A delivered record, as Faust's stream holds it (one reference to its message)."""

    def __init__(self, offset: int, value: bytes) -> None:
        self.key, self.value = b"k", value
        self.message = Message("inference", 0, offset, 1.0, 0, None, b"k", value, None)
        self.message.incref()

    def ack(self) -> bool:
        return self.message.ack(CONSUMER)


class Joiner:
    """Stages ``k = value`` and emits one output per record; remembers what value of ``k`` each record saw."""

    duplicates = 0

    def __init__(self, staged: StagedState[bytes, bytes]) -> None:
        self.staged = staged
        self.saw: list[bytes | None] = []

    def process(self, topic: str, partition: int, offset: int, key: bytes, value: bytes, ts: Any) -> list[Emit]:
        self.saw.append(self.staged.get(b"k"))
        self.staged.set(partition, b"k", value)
        return [Emit("pairs", key, {"join_latency_ms": 1}, value)]

    def tick(self, partition: int) -> list[Emit]:
        return []


def test_batches_commit_in_order_and_offsets_wait_for_their_checkpoint() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        log: list[tuple[str, bytes | None]] = []

        async def send(topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> Any:
            log.append((topic, value))

            async def acked() -> None:
                await gate.wait()

            return asyncio.ensure_future(acked())

        store: dict[bytes, bytes] = {}
        staged: StagedState[bytes, bytes] = StagedState(store)
        joiner = Joiner(staged)
        topics = {"pairs": "out"}
        batches = BatchJoin(
            joiner,  # type: ignore[arg-type]
            lambda: Checkpoint(send, topics, "changelog", staged, lambda: store, lambda: CONSUMER),
            lambda: CONSUMER,
            {},
            ("inference", "feedback"),
            "ticks",
            gap_check_s=3600,
            read_limit=10,
        )
        first, second = [Event(0, b"v1")], [Event(1, b"v2")]
        try:  # a failed check must not cancel a checkpoint in flight: the worker would exit (code 70)
            await batches.run(first)  # joined; its checkpoint waits for the broker
            for e in first:
                e.ack()  # what take_events does when the agent asks for the next batch
            assert not first[0].message.acked  # held until its checkpoint is committed
            later = asyncio.ensure_future(batches.run(second))
            await asyncio.sleep(0.01)
            assert joiner.saw == [None, b"v1"]  # the second batch saw the first one's state before it was stored
            assert store == {} and not later.done()  # and waits for the first checkpoint before committing its own
            gate.set()
            await later
            await batches.drain()
            for e in second:
                e.ack()
            assert first[0].message.acked and second[0].message.acked
            assert store == {b"k": b"v2"} and staged.sealed == []
            assert log == [("out", b"v1"), ("changelog", b"v1"), ("out", b"v2"), ("changelog", b"v2")]
        finally:
            gate.set()
            await batches.drain()

    asyncio.run(scenario())


def test_sealed_changes_stay_visible_until_released_and_newer_ones_win() -> None:
    store = {b"a": b"0"}
    staged: StagedState[bytes, bytes] = StagedState(store)
    staged.set(0, b"a", b"1")
    staged.set(1, b"b", b"1")
    changes, layer = staged.seal()
    assert changes == {0: [(b"a", b"1")], 1: [(b"b", b"1")]}
    staged.delete(0, b"b")
    assert staged[b"a"] == b"1" and staged.get(b"b") is None  # sealed, then deleted in the open batch
    assert dict(staged.items()) == {b"a": b"1"}
    store[b"a"] = b"1"
    staged.release(layer)
    assert staged.drain() == {0: [(b"b", None)]}
    assert staged[b"a"] == b"1" and staged.sealed == []
