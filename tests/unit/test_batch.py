"""The batch protocol's bookkeeping: what the metrics count once a batch is delivered."""

from __future__ import annotations

import asyncio
from typing import Any

from preflog.processors import metrics
from preflog.processors.batch import BatchJoin
from preflog.processors.outputs import Emit
from preflog.processors.staged import StagedState


def _value(counter: Any, label: str) -> float:
    return float(counter.labels(label)._value.get())


def test_delivered_outputs_are_counted_by_dead_letter_class_and_unmatched_reason() -> None:
    sent: list[tuple[bytes | None, bytes]] = []

    async def send(key: bytes | None, value: bytes) -> Any:
        sent.append((key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    nothing: Any = None
    worker = BatchJoin(nothing, StagedState({}), dict, {r: send for r in ("dead_letter", "unmatched")}, send,
                       lambda: nothing, {}, ("inf", "fb"), "ticks", 3.0, 100)  # fmt: skip
    classes = ["OutputTooLarge", "OutputNotEncodable", "InputTooLarge", "EventTimeSkew", "JoinError"]
    before = {c: _value(metrics.DEAD_LETTERS, c) for c in classes}
    no_pairs = _value(metrics.UNMATCHED, "NO_PAIRS")
    emits = [Emit("dead_letter", b"k", {"error_class": c}, c.encode()) for c in classes]
    emits.append(Emit("unmatched", b"k", {"reason": "NO_PAIRS"}, b"u"))
    asyncio.run(worker.deliver(emits))
    assert sent == [(b"k", e.value) for e in emits]  # the bytes encoded in the join, as they are
    assert {c: _value(metrics.DEAD_LETTERS, c) - before[c] for c in classes} == dict.fromkeys(classes, 1.0)
    assert _value(metrics.UNMATCHED, "NO_PAIRS") - no_pairs == 1.0
