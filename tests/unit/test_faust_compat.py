"""Faust's internals behind processors/faust_compat.py, one test each; and the guards against skipped records."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from preflog.processors import faust_compat
from preflog.processors.exceptions import FaustVersionError
from preflog.processors.gaps import Gap, InputRecord, Record, in_join_order, missing_range


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
    faust_compat.install()
    faust_compat.install()  # idempotent: one wrapper, not two
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


def test_skipped_records_are_re_read_and_joined_before_the_record_that_revealed_them() -> None:
    """A batch of inference[0] 3, 4, 9 and feedback[1] 7: 5-8 of inference[0] were skipped.

    Feedback[1] starts at its committed offset 7. The re-read records come in order, before offset 9, and only
    that range is a gap.
    """
    calls: list[tuple[str, int, int, int]] = []

    async def refetch(topic: str, partition: int, first: int, end: int) -> list[Record]:
        calls.append((topic, partition, first, end))
        return [Record(o, b"k", f"v{o}".encode()) for o in range(first, end)]

    batch = [
        InputRecord("inf", 0, 3, b"k", b"v3", "e3"),
        InputRecord("inf", 0, 4, b"k", b"v4", "e4"),
        InputRecord("fb", 1, 7, b"k", b"w7", "f7"),
        InputRecord("inf", 0, 9, b"k", b"v9", "e9"),
    ]
    last = {("inf", 0): 2}
    committed = {("inf", 0): 1, ("fb", 1): 7}
    ordered, gaps = asyncio.run(in_join_order(batch, last, lambda t, p: committed[(t, p)], refetch))
    assert [(r.topic, r.offset) for r in ordered] == [("inf", o) for o in (3, 4)] + [("fb", 7)] + [
        ("inf", o) for o in (5, 6, 7, 8, 9)
    ]
    assert [r.value for r in ordered if r.topic == "inf"] == [f"v{o}".encode() for o in (3, 4, 5, 6, 7, 8, 9)]
    assert {r.event for r in ordered if r.offset in (5, 6, 7, 8) and r.topic == "inf"} == {"e9"}
    assert calls == [("inf", 0, 5, 9)]
    assert gaps == [Gap("inf", 0, 5, 8)]
    assert last == {("inf", 0): 9, ("fb", 1): 7}


def test_records_at_or_before_the_last_joined_offset_are_left_out() -> None:
    """Read directly by the quiet-partition check, then delivered by Faust after all: joined once."""

    async def refetch(topic: str, partition: int, first: int, end: int) -> list[Record]:
        raise AssertionError("no gap here")

    batch = [InputRecord("fb", 0, o, b"k", b"v", "e") for o in (8, 9, 10)]
    last = {("fb", 0): 9}
    ordered, gaps = asyncio.run(in_join_order(batch, last, lambda t, p: 5, refetch))
    assert [r.offset for r in ordered] == [10] and gaps == [] and last == {("fb", 0): 10}


class FakeEvent:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.message = type("M", (), {"topic": topic, "partition": partition, "offset": offset, "timestamp": 1.0})
        self.key, self.value = b"tick", b""


def test_a_quiet_partition_is_read_on_past_its_last_joined_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tail of a topic that Faust skipped has no later record to reveal it: a tick does."""
    from preflog.processors import batch

    reads: list[dict[tuple[str, int], int]] = []

    def read_after(config: Any, starts: dict[tuple[str, int], int], limit: int, timeout: float) -> dict[Any, Any]:
        reads.append(dict(starts))
        found = {w: [Record(o, b"k", b"v", 5) for o in range(s, s + 2)] for w, s in starts.items()}
        return {w: records if w[0] == "fb" else [] for w, records in found.items()}

    monkeypatch.setattr(batch, "read_after", read_after)
    consumer = type("C", (), {"_committed_offset": {}})()
    nothing: Any = None
    worker = batch.BatchJoin(nothing, nothing, lambda: consumer, {}, ("inf", "fb"), "ticks", 3.0, 100)
    worker.last_offset[("fb", 0)] = 41
    worker.last_offset[("inf", 0)] = 7
    tick = InputRecord("ticks", 0, 0, b"tick", b"", FakeEvent("ticks", 0, 0))
    worker.last_seen.update({("fb", 0): 0.0, ("inf", 0): 0.0})
    ordered, gaps = asyncio.run(worker.read_quiet_partitions([tick], now=10.0))
    assert reads == [{("inf", 0): 8, ("fb", 0): 42}]
    assert [(r.topic, r.offset, r.timestamp_ms) for r in ordered] == [("fb", 42, 5), ("fb", 43, 5), ("ticks", 0, None)]
    assert {r.event for r in ordered} == {tick.event}  # joined in the tick's partition context
    assert gaps == [Gap("fb", 0, 42, 43)] and worker.last_offset[("fb", 0)] == 43
    assert asyncio.run(worker.read_quiet_partitions([tick], now=11.0)) == ([tick], [])  # checked 1 s ago
    worker.last_seen[("inf", 0)] = 12.0
    asyncio.run(worker.read_quiet_partitions([tick], now=13.5))
    assert reads[-1] == {("fb", 0): 44}  # the inference partition is busy again


def test_a_quiet_partition_check_the_broker_does_not_answer_is_retried_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen in the full fault suite: during a broker outage the check timed out and the worker exited."""
    from preflog.processors import batch
    from preflog.processors.exceptions import ProcessorError

    calls: list[float] = []

    def read_after(config: Any, starts: Any, limit: int, timeout: float = 30.0) -> Any:
        calls.append(timeout)
        raise ProcessorError("reading on from ...: no end of partition within 5 s")

    monkeypatch.setattr(batch, "read_after", read_after)
    consumer = type("C", (), {"_committed_offset": {}})()
    nothing: Any = None
    worker = batch.BatchJoin(nothing, nothing, lambda: consumer, {}, ("inf", "fb"), "ticks", 3.0, 100)
    worker.last_offset[("fb", 0)] = 41
    worker.last_seen.update({("fb", 0): 0.0, ("inf", 0): 9.0})
    tick = InputRecord("ticks", 0, 0, b"tick", b"", FakeEvent("ticks", 0, 0))
    assert asyncio.run(worker.read_quiet_partitions([tick], now=10.0)) == ([tick], [])
    assert calls == [batch.PROBE_TIMEOUT_S] and worker.last_offset[("fb", 0)] == 41


# -- one test per Faust internal the worker relies on (processors/faust_compat.py) --------------------


def test_the_installed_faust_is_the_tested_version_and_another_is_refused() -> None:
    assert faust_compat.check_version().startswith(faust_compat.TESTED_FAUST + ".")
    with pytest.raises(FaustVersionError, match=r'install "faust-streaming>=0.15,<0.16"'):
        faust_compat.check_version("0.16.0")


def test_current_event_is_the_context_variable_the_rocksdb_store_reads() -> None:
    import faust.streams

    event = FakeEvent("inf", 3, 7)
    faust_compat.set_current_event(event)
    assert faust.streams.current_event() is event
    try:
        import faust.stores.rocksdb
    except ImportError:  # rocksdict not installed: the memory store needs no current event
        return
    assert faust.stores.rocksdb.current_event is faust.streams.current_event


def test_committed_offsets_are_a_mapping_of_the_consumer_by_tp() -> None:
    from faust.transport.consumer import Consumer
    from faust.types import TP

    assert "_committed_offset" in Consumer.__annotations__
    consumer = type("C", (), {"_committed_offset": {TP("inf", 2): 41}})()
    assert faust_compat.committed_offset(consumer, "inf", 2) == 41
    assert faust_compat.committed_offset(consumer, "inf", 3) is None


def test_add_gap_takes_a_tp_and_an_inclusive_range() -> None:
    import inspect

    from faust.transport.consumer import Consumer
    from faust.types import TP

    assert inspect.iscoroutinefunction(Consumer._add_gap)
    assert list(inspect.signature(Consumer._add_gap).parameters) == ["self", "tp", "offset_from", "offset_to"]
    calls: list[Any] = []

    class Fake:
        async def _add_gap(self, tp: Any, first: int, last: int) -> None:
            calls.append((tp, first, last))

    asyncio.run(faust_compat.add_gap(Fake(), "fb", 1, 5, 8))
    assert calls == [(TP("fb", 1), 5, 8)]


def test_a_bytes_table_has_raw_serializers_and_its_store_is_a_mapping() -> None:
    """Also what the previous version's str-keyed table wrote: its keys were JSON strings, as entry_key makes."""
    import faust
    from faust.serializers import codecs

    from preflog.processors.entry import entry_key

    app = faust.App("preflog-compat-test", store="memory://", autodiscover=False)
    table: Any = app.Table("t", default=None, partitions=2, key_type=bytes, value_type=bytes)
    assert (table.key_serializer, table.value_serializer) == ("raw", "raw")
    store = faust_compat.table_store(table)
    store[b"k"] = b"v"
    assert store[b"k"] == b"v" and store.pop(b"k", None) == b"v"
    old: Any = app.Table("old", default=None, partitions=2, key_type=str)
    assert (old.key_serializer, old.value_serializer) == ("json", "json")
    rid = "0b6f2d1c-49f4-4a57-9b5e-8c0f4a1d2e3f"
    assert codecs.dumps("json", rid) == entry_key(rid)
    assert codecs.dumps("raw", None) is None  # a tombstone stays a tombstone


def test_the_patched_seek_and_what_it_calls_still_exist() -> None:
    import inspect

    from aiokafka import AIOKafkaConsumer

    assert list(inspect.signature(AIOKafkaConsumerThread.seek_to_committed).parameters) == ["self"]
    assert list(inspect.signature(AIOKafkaConsumerThread._ensure_consumer).parameters) == ["self"]
    assert callable(AIOKafkaConsumerThread._ensure_consumer) and callable(AIOKafkaConsumerThread.call_thread)
    assert inspect.iscoroutinefunction(AIOKafkaConsumer.seek_to_beginning)
    assert "partitions" in inspect.signature(AIOKafkaConsumer.seek_to_beginning).parameters
