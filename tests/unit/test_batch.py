"""The checkpoint's bookkeeping: what the metrics count once a batch is delivered."""

from __future__ import annotations

import asyncio
from typing import Any

from preflog.processors import metrics
from preflog.processors.checkpoint import Checkpoint
from preflog.processors.outputs import Emit
from preflog.processors.staged import StagedState


def _value(counter: Any, label: str) -> float:
    return float(counter.labels(label)._value.get())


def test_delivered_outputs_are_counted_by_dead_letter_class_and_unmatched_reason() -> None:
    sent: list[tuple[bytes | None, bytes]] = []

    async def send(topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> Any:
        sent.append((key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    nothing: Any = None
    topics = {r: r for r in ("dead_letter", "unmatched", "turns")}
    checkpoint = Checkpoint(send, topics, "changelog", StagedState({}), dict, lambda: nothing)
    classes = ["OutputTooLarge", "OutputNotEncodable", "InputTooLarge", "EventTimeSkew", "JoinError"]
    before = {c: _value(metrics.DEAD_LETTERS, c) for c in classes}
    no_pairs = _value(metrics.UNMATCHED, "NO_PAIRS")
    turns = metrics.TURNS_OUT._value.get()
    emits = [Emit("dead_letter", b"k", {"error_class": c}, c.encode()) for c in classes]
    emits.append(Emit("unmatched", b"k", {"reason": "NO_PAIRS"}, b"u"))
    emits.append(Emit("turns", b"k", {"request_id": "r"}, b"t"))  # a conversation turn: no error class
    checkpoint.emits += emits
    asyncio.run(checkpoint.deliver())
    assert sent == [(b"k", e.value) for e in emits]  # the bytes encoded in the join, as they are
    assert {c: _value(metrics.DEAD_LETTERS, c) - before[c] for c in classes} == dict.fromkeys(classes, 1.0)
    assert _value(metrics.UNMATCHED, "NO_PAIRS") - no_pairs == 1.0
    assert metrics.TURNS_OUT._value.get() - turns == 1.0


def test_a_checkpoint_commits_outputs_then_state_then_re_read_ranges() -> None:
    """Each step starts after the previous one is acknowledged; state goes to the partition that staged it."""
    from faust.types import TP

    from preflog.processors.gaps import Gap

    log: list[tuple[Any, ...]] = []

    class Ack:
        def __init__(self, partition: int, offset: int) -> None:
            self.partition, self.offset = partition, offset

    offsets = {"changelog": 40}

    async def send(topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        offset = offsets.get(topic, 0)
        offsets[topic] = offset + 1

        def ack() -> None:
            log.append(("acked", topic))
            future.set_result(Ack(partition or 0, offset))

        asyncio.get_running_loop().call_soon(ack)
        log.append((topic, key, value, partition))
        return future

    class Consumer:
        async def _add_gap(self, tp: Any, first: int, last: int) -> None:
            log.append(("gap", tp, first, last))

    class Store(dict[bytes, bytes]):
        def set_persisted_offset(self, tp: Any, offset: int) -> None:
            log.append(("persisted", tp, offset))

    store = Store({b"old": b"x"})
    staged: StagedState[bytes, bytes] = StagedState(store)
    staged.set(1, b"a", b"1")
    staged.delete(0, b"old")
    consumer = Consumer()
    checkpoint = Checkpoint(send, {"pairs": "output"}, "changelog", staged, lambda: store, lambda: consumer)
    checkpoint.emits.append(Emit("pairs", b"k", {"join_latency_ms": 5}, b"p"))
    checkpoint.gaps.append(Gap("fb", 1, 5, 8))
    event = type("Event", (), {})
    checkpoint.events.update({0: event(), 1: event()})
    asyncio.run(checkpoint.commit())
    assert log == [
        ("output", b"k", b"p", None),
        ("acked", "output"),
        ("changelog", b"a", b"1", 1),
        ("changelog", b"old", None, 0),  # a tombstone
        ("acked", "changelog"),
        ("acked", "changelog"),
        ("persisted", TP("changelog", 1), 40),  # each partition's last changelog offset, once acknowledged
        ("persisted", TP("changelog", 0), 41),
        ("gap", TP("fb", 1), 5, 8),
    ]
    assert store == {b"a": b"1"} and staged.drain() == {}


def test_stream_times_are_written_after_every_entry_of_the_batch() -> None:
    """A kill -9 in the middle of step 2 must never leave a stream time saved ahead of the entries it expires."""
    from preflog.processors.entry import stream_time_key

    order: list[bytes] = []

    class Store(dict[bytes, bytes]):
        def __setitem__(self, key: bytes, value: bytes) -> None:
            order.append(key)
            super().__setitem__(key, value)

    async def send(*args: Any) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    store = Store()
    staged: StagedState[bytes, bytes] = StagedState(store)
    staged.set(0, stream_time_key(0), b"t0")
    staged.set(0, b'"a"', b"1")
    staged.set(1, stream_time_key(1), b"t1")
    staged.set(1, b'"b"', b"2")
    nothing: Any = None
    checkpoint = Checkpoint(send, {}, "changelog", staged, lambda: store, lambda: nothing)
    event = type("Event", (), {})
    checkpoint.events.update({0: event(), 1: event()})
    asyncio.run(checkpoint.write_state())
    assert order == [b'"a"', b'"b"', stream_time_key(0), stream_time_key(1)]
