"""The Faust internals of the worker's produce path and table recovery (processors/faust_compat.py)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import Producer
from faust.types import TP

from preflog.processors import faust_compat


class App:
    """Stands in for a Faust app (weakly referenced, as one)."""


def _recovery(app: Any) -> Any:
    return SimpleNamespace(app=app, log=logging.getLogger("test"), _highwater_logtable=lambda *a, **k: "")


class Consumer:
    """ListOffsets as the embedded broker answers it: the base offset of the last batch + 1."""

    async def highwaters(self, *tps: TP) -> dict[TP, int | None]:
        return {TP("cl", 0): 201, TP("cl", 1): None, TP("cl", 2): 50}


def test_recovery_reads_each_changelog_to_the_end_the_fetch_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Any] = []

    def log_ends(config: dict[str, Any], tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        asked.append((config, sorted(tps)))
        return {("cl", 0): 300, ("cl", 1): 0, ("cl", 2): 40}  # 2: lower than ListOffsets, never taken

    monkeypatch.setattr("preflog.kafka.offsets.log_ends", log_ends)
    app, other = App(), App()
    faust_compat.recover_to_fetched_end(app, {"bootstrap.servers": "b:1"})
    faust_compat.recover_to_fetched_end(app, {"bootstrap.servers": "b:1"})  # idempotent: patched once
    tps = {TP("cl", 0), TP("cl", 1), TP("cl", 2)}
    found: Any = {}
    consumer: Any = Consumer()
    asyncio.run(Recovery._build_highwaters(_recovery(app), consumer, tps, found, "active"))
    assert found == {TP("cl", 0): 299, TP("cl", 1): -1, TP("cl", 2): 49}  # last offsets, as Faust counts them
    assert asked == [({"bootstrap.servers": "b:1"}, [("cl", 0), ("cl", 1), ("cl", 2)])]
    untouched: Any = {}
    asyncio.run(Recovery._build_highwaters(_recovery(other), consumer, tps, untouched, "active"))
    assert untouched == {TP("cl", 0): 200, TP("cl", 1): -1, TP("cl", 2): 49}  # another app: Faust's own figures
    assert len(asked) == 1


def test_producer_send_calls_the_faust_producer_with_its_positional_signature() -> None:
    assert list(inspect.signature(Producer.send).parameters)[:7] == [
        "self",
        "topic",
        "key",
        "value",
        "partition",
        "timestamp",
        "headers",
    ]
    calls: list[tuple[Any, ...]] = []

    async def send(*args: Any) -> str:
        calls.append(args)
        return "future"

    app = SimpleNamespace(producer=SimpleNamespace(send=send))
    send_now: Any = faust_compat.producer_send(app)
    assert asyncio.run(send_now("t", b"k", b"v", 3)) == "future"
    assert calls == [("t", b"k", b"v", 3, None, None)]


def test_a_store_takes_its_persisted_offset_by_tp() -> None:
    seen: list[tuple[TP, int]] = []
    store = SimpleNamespace(set_persisted_offset=lambda tp, offset: seen.append((tp, offset)))
    faust_compat.set_persisted_offset(store, "cl", 2, 41)
    assert seen == [(TP("cl", 2), 41)]
    from faust.stores.rocksdb import Store

    assert list(inspect.signature(Store.set_persisted_offset).parameters) == ["self", "tp", "offset"]


def test_the_rocksdb_databases_get_the_configured_memory_bounds(tmp_path: Any) -> None:
    from preflog.processors.app import TABLE, create_app
    from preflog.settings import load_settings

    settings = load_settings(
        {"processor": {"store": "rocksdb://", "state_dir": str(tmp_path), "rocksdb_write_buffer_mb": 4}}
    )
    app = create_app(settings, partitions=2)
    table: Any = app.tables[TABLE]
    options = faust_compat.table_store(table).rocksdb_options  # type: ignore[attr-defined]
    mb = 1024 * 1024
    assert (options.write_buffer_size, options.max_write_buffer_number) == (4 * mb, 2)
    assert options.block_cache_size == settings.processor.rocksdb_block_cache_mb * mb < 2 * 1024 * mb


def test_a_store_view_reads_the_table_store_once_per_lookup() -> None:
    import faust

    class Counting(dict[bytes, bytes]):
        reads = 0

        def __getitem__(self, key: bytes) -> bytes:
            self.reads += 1
            return super().__getitem__(key)

        def __contains__(self, key: object) -> bool:
            self.reads += 1
            return super().__contains__(key)

    counting = Counting({b"a": b"1"})
    assert faust_compat.StoreView(SimpleNamespace(data=counting))[b"a"] == b"1" and counting.reads == 1
    app = faust.App("preflog-view-test", store="memory://", autodiscover=False)
    table: Any = app.Table("t", default=None, partitions=2, key_type=bytes, value_type=bytes)
    faust_compat.table_store(table)[b"a"] = b"1"
    view = faust_compat.StoreView(table)
    assert view[b"a"] == b"1" and view.get(b"missing") is None
    assert dict(view.items()) == {b"a": b"1"} and list(view) == [b"a"] and len(view) == 1


def test_the_worker_consumer_gets_the_configured_fetch_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    made = SimpleNamespace(_fetch_max_wait_ms=1500)
    monkeypatch.setattr(AIOKafkaConsumerThread, "_create_worker_consumer", lambda self, transport: made)
    app, other = App(), App()
    faust_compat.set_fetch_max_wait(app, 100)
    thread: Any = SimpleNamespace(app=other)
    create: Any = AIOKafkaConsumerThread._create_worker_consumer
    assert create(thread, None)._fetch_max_wait_ms == 1500  # another app: Faust's own
    thread.app = app
    assert create(thread, None)._fetch_max_wait_ms == 100
