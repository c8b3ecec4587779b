"""Guards against skipped input records: uncommitted partitions start at the beginning; gaps are found."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from preflog.processors import faust_fixes
from preflog.processors.gaps import missing_range


class FakeAIOKafkaConsumer:
    def __init__(self, committed: dict[str, int | None]) -> None:
        self.committed = committed
        self.to_beginning: list[str] = []

    async def seek_to_committed(self) -> dict[str, int | None]:
        return self.committed

    async def seek_to_beginning(self, *partitions: str) -> None:
        self.to_beginning += partitions


class FakeThread:
    def __init__(self, consumer: FakeAIOKafkaConsumer) -> None:
        self.consumer = consumer

    def _ensure_consumer(self) -> FakeAIOKafkaConsumer:
        return self.consumer

    async def call_thread(self, fun: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return await fun(*args)


def test_uncommitted_partitions_are_sought_to_the_beginning() -> None:
    faust_fixes.install()
    faust_fixes.install()  # idempotent: one wrapper, not two
    consumer = FakeAIOKafkaConsumer({"committed": 120, "never": None, "zero": 0})
    seek = AIOKafkaConsumerThread.seek_to_committed
    result = asyncio.run(seek(FakeThread(consumer)))  # type: ignore[arg-type]
    assert result == {"committed": 120, "never": None, "zero": 0}  # Faust still sees what was committed
    assert consumer.to_beginning == ["never", "zero"]  # aiokafka itself leaves these where the fetcher got to


@pytest.mark.parametrize(
    ("previous", "committed", "offset", "gap"),
    [
        (None, None, 0, None),  # first record, nothing committed
        (None, 120, 120, None),  # first record is the committed one
        (None, 120, 135, (120, 135)),  # first record is past the committed one: 120-134 were skipped
        (None, 0, 7, None),  # committed 0 means "from the start": the log may begin later (retention)
        (40, 120, 41, None),  # contiguous
        (40, 120, 60, (41, 60)),  # a jump forward
        (40, 120, 3, None),  # a re-read after a seek goes backwards
        (40, None, 40, None),  # the same record again
    ],
)
def test_missing_range(previous: int | None, committed: int | None, offset: int, gap: tuple[int, int] | None) -> None:
    assert missing_range(previous, committed, offset) == gap
