"""Every private Faust (and aiokafka) internal the worker touches, behind one wall.

The worker relies on these, tested against faust-streaming 0.15 with
aiokafka 0.14 (:data:`TESTED_FAUST`; :func:`check_version` refuses another
version at start-up, and ``tests/unit/test_faust_compat.py`` has one test per
internal, so an upgrade fails in CI rather than in production):

* ``faust.streams._current_event``: the RocksDB store files a key under the
  partition of the current event, so the worker sets it to an event of the
  partition it reads or writes (:func:`set_current_event`).
* ``Consumer._committed_offset``: where a partition's first record should be
  (:func:`committed_offset`).
* ``Consumer._add_gap``: offsets the worker read itself, so Faust may commit
  past them (:func:`add_gap`).
* ``Collection.data``: the table's store, written directly (:func:`table_store`)
  and read directly (:class:`StoreView`: a Table reads a key twice, ``in``
  and then get, and calls a sensor on each get).
* ``AIOKafkaConsumerThread.seek_to_committed``, ``._ensure_consumer`` and
  ``.call_thread``: patched by :func:`install` (below).
* ``AIOKafkaConsumerThread._create_worker_consumer`` and aiokafka's
  ``AIOKafkaConsumer._fetch_max_wait_ms``: Faust fixes the worker's fetch wait
  at 1.5 s; :func:`set_fetch_max_wait` makes it a setting. On real Kafka a
  fetch returns as soon as data arrives; the embedded broker answers only when
  the wait is over, so there it is the latency of every record.
* ``Recovery._build_highwaters``: patched by :func:`recover_to_fetched_end`,
  so a table's changelog recovery reads to the end the fetch path reports.
* ``Message.incref`` and ``Event.ack``: a batch's messages are held
  (:func:`hold`) past the ack ``take_events`` gives them when the agent asks
  for the next batch, and acknowledged (:func:`release`) once their
  checkpoint is committed, so the next batch is joined meanwhile.
* ``App.producer`` (its ``send``): outputs and changelog records go straight
  to the producer (:func:`producer_send`), without Faust's per-message
  ``Topic.send`` wrapping.

Why the recovery patch. Faust restores a table by reading its changelog up to
the high watermark that ListOffsets reports. The embedded broker reports the
base offset of the last batch + 1 (tests/integration/test_broker_quirks.py),
so with multi-record produce batches a restarted worker stopped short and
lost the last batch's state. The patch takes the larger of ListOffsets' end
and the end a fetch reports (:func:`preflog.kafka.offsets.log_ends`). On
real Kafka the two agree and nothing changes; on the embedded broker the
worker can batch its produce requests.

Why the patch. In the kill -9 restart test (tests/integration/test_processor.py)
the restarted worker skipped a block of 10 to 75 records on every input
partition, right where table recovery ends and Faust seeks the stream
partitions to their committed offsets. Faust resumes fetching while it
restores tables, and records fetched in that window were dropped on their
way to the agent while the fetch position moved past them. Three defences:

* :func:`install` makes that seek also cover partitions without a committed
  offset (aiokafka's ``seek_to_committed`` skips offsets that are missing or
  0): they go to the beginning, which is what ``auto.offset.reset=earliest``
  means. Without it a skip there could not be noticed.
* The agent checks that the offsets of each input partition are contiguous and
  re-reads any skipped range directly (:mod:`preflog.processors.gaps`),
  joining those records before the one that revealed the gap; the metric
  ``preflog_processor_refetched_total`` counts them.
* A skipped range at the tail of a partition has no later record to reveal
  it. So when an input partition has delivered nothing for ``gap_check_s``,
  the agent (on its next idle tick) reads on from the partition's last joined
  offset, or its committed offset, to the end the fetch response reports, and
  joins what it finds (:meth:`preflog.processors.batch.BatchJoin.read_quiet_partitions`).

The join ignores what it has already seen, so reading records again is safe.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .exceptions import FaustVersionError

__all__ = [
    "TESTED_FAUST",
    "StoreView",
    "add_gap",
    "check_version",
    "committed_offset",
    "hold",
    "install",
    "producer_send",
    "recover_to_fetched_end",
    "release",
    "set_current_event",
    "set_fetch_max_wait",
    "set_persisted_offset",
    "table_store",
]

#: the faust-streaming releases (major.minor) these internals are tested with
TESTED_FAUST = "0.15"


def check_version(installed: str | None = None) -> str:
    """The installed faust-streaming version, if it is one the worker is tested with.

    Args:
        installed: the version to check (default: the installed one).

    Returns:
        The version.

    Raises:
        FaustVersionError: it is another version; the message names the fix.
    """
    if installed is None:
        try:
            installed = version("faust-streaming")
        except PackageNotFoundError:
            installed = "not installed"
    if installed.split(".")[:2] != TESTED_FAUST.split("."):
        raise FaustVersionError(
            f"faust-streaming {installed} is installed, but the preflog worker relies on Faust internals tested "
            f"only with faust-streaming {TESTED_FAUST}.x (processors/faust_compat.py): install "
            f'"faust-streaming>={TESTED_FAUST},<0.{int(TESTED_FAUST.split(".")[1]) + 1}", or, to support '
            f"{installed}, run tests/unit/test_faust_compat.py and the processor integration tests against it "
            "and update TESTED_FAUST"
        )
    return installed


def set_current_event(event: Any) -> None:
    """Make ``event`` Faust's current event (the RocksDB store reads and writes its partition's database)."""
    from faust.streams import _current_event

    _current_event.set(weakref.ref(event))


def committed_offset(consumer: Any, topic: str, partition: int) -> int | None:
    """The offset Faust's consumer last committed (or found committed) for a partition, None if unknown."""
    from faust.types import TP

    offset: int | None = consumer._committed_offset.get(TP(topic, partition))
    return offset


async def add_gap(consumer: Any, topic: str, partition: int, first: int, last: int) -> None:
    """Tell Faust's consumer that offsets ``first..last`` are done, so it may commit past them."""
    from faust.types import TP

    await consumer._add_gap(TP(topic, partition), first, last)


def table_store(table: Any) -> MutableMapping[Any, Any]:
    """The store under a Faust Table, written without the table's own changelog buffer."""
    store: MutableMapping[Any, Any] = table.data
    return store


class StoreView(Mapping[Any, Any]):
    """A table's store, read directly: one store read per lookup.

    Args:
        table: the Faust Table (its store is created when first used).
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: Any) -> Any:
        return self.table.data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.table.data)

    def __len__(self) -> int:
        return len(self.table.data)

    def items(self) -> Any:
        """Every item of the store, in one scan."""
        return self.table.data.items()


async def _seek_to_beginning(consumer: Any, partitions: list[Any]) -> None:
    await consumer.seek_to_beginning(*partitions)


def _patch(cls: Any, name: str, wrap: Callable[[Any], Any]) -> None:
    """Replace ``cls.<name>`` by ``wrap(original)``, once: a patched method is marked, and a second call keeps it."""
    original = getattr(cls, name)
    if getattr(original, "preflog_fix", False):
        return
    patched = wrap(original)
    patched.preflog_fix = True
    setattr(cls, name, patched)


def install() -> None:
    """Patch Faust's aiokafka consumer thread so uncommitted partitions start at the beginning (idempotent)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    def wrap(original: Any) -> Any:
        async def seek_to_committed(self: Any) -> Any:
            committed = await original(self)
            uncommitted = [tp for tp, offset in committed.items() if not offset]
            if uncommitted:
                await self.call_thread(_seek_to_beginning, self._ensure_consumer(), uncommitted)
            return committed

        return seek_to_committed

    _patch(AIOKafkaConsumerThread, "seek_to_committed", wrap)


def set_persisted_offset(store: Any, topic: str, partition: int, offset: int) -> None:
    """Tell the store that it holds every changelog record of ``topic[partition]`` up to ``offset``.

    A RocksDB store keeps the offset, so a restart recovers only the records
    after it (what Faust does after its own changelog sends); the memory store
    ignores it.
    """
    from faust.types import TP

    store.set_persisted_offset(TP(topic, partition), offset)


def producer_send(app: Any) -> Callable[..., Awaitable[Any]]:
    """``send(topic, key, value, partition)`` of the app's producer; awaiting it returns the ack's future."""

    async def send(topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> Any:
        return await app.producer.send(topic, key, value, partition, None, None)

    return send


#: app -> Kafka client config, for the apps whose table recovery reads to the fetch-reported end
_FETCH_ENDS: weakref.WeakKeyDictionary[Any, Mapping[str, Any]] = weakref.WeakKeyDictionary()


def recover_to_fetched_end(app: Any, kafka_config: Mapping[str, Any]) -> None:
    """Make ``app``'s table recovery read each changelog partition to the end a fetch reports (idempotent).

    Args:
        app: the Faust app.
        kafka_config: client config for the reader that finds the ends.
    """
    from faust.tables.recovery import Recovery

    _FETCH_ENDS[app] = dict(kafka_config)

    def wrap(original: Any) -> Any:
        async def _build_highwaters(self: Any, consumer: Any, tps: Any, destination: Any, title: str) -> None:
            await original(self, consumer, tps, destination, title)
            config = _FETCH_ENDS.get(self.app)
            if config is None or not tps:
                return
            from preflog.kafka.offsets import log_ends

            ends = await asyncio.to_thread(log_ends, config, [(tp.topic, tp.partition) for tp in tps])
            for tp in tps:
                last = ends[(tp.topic, tp.partition)] - 1  # Faust counts the last offset, not the end
                if last > destination.get(tp, -1):
                    destination[tp] = last

        return _build_highwaters

    _patch(Recovery, "_build_highwaters", wrap)


def hold(events: Iterable[Any]) -> None:
    """One more reference to each event's message: the ack ``take_events`` gives it then leaves it unacknowledged."""
    for event in events:
        event.message.incref()


def release(events: Iterable[Any]) -> None:
    """Drop the reference :func:`hold` took: each message is acknowledged, and Faust may commit past it."""
    for event in events:
        event.ack()


#: app -> fetch wait (ms) of its worker consumer
_FETCH_WAIT: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def set_fetch_max_wait(app: Any, ms: int) -> None:
    """The longest a fetch of ``app``'s worker consumer waits for data (Faust's own: 1500 ms); idempotent."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    _FETCH_WAIT[app] = ms

    def wrap(original: Any) -> Any:
        def _create_worker_consumer(self: Any, transport: Any) -> Any:
            consumer = original(self, transport)
            wait = _FETCH_WAIT.get(self.app)
            if wait is not None:
                consumer._fetch_max_wait_ms = wait  # read by AIOKafkaConsumer.start, which has not run yet
            return consumer

        return _create_worker_consumer

    _patch(AIOKafkaConsumerThread, "_create_worker_consumer", wrap)
