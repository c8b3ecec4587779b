"""The Faust worker: reads both input topics (co-partitioned on request_id), runs the Joiner, emits outputs.

Faust's ``Stream.join`` is not implemented, so the join is one agent over the
inference topic, the feedback topic and an internal ticks topic, with its
state in a changelog-backed Table. All three topics have the same partition
count, so partition N of each lands on the same worker and table writes go
to changelog partition N.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from pathlib import Path
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import TP

from preflog.schemas.registry import OUTPUT_RECORDS
from preflog.settings import KafkaSettings, Settings

from . import faust_fixes, metrics
from .gaps import InputRecord, in_join_order, read_range
from .join import Emit, JoinConfig, Joiner
from .staged import StagedState

__all__ = ["create_app", "faust_credentials"]

log = logging.getLogger(__name__)
TABLE = "join-state"


def faust_credentials(kafka: KafkaSettings) -> Any:
    """Faust/aiokafka credentials for the configured security protocol (None for PLAINTEXT)."""
    import ssl

    context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=kafka.ssl_ca_location)
    if kafka.security_protocol.startswith("SASL"):
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=password,
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def join_config(settings: Settings) -> JoinConfig:
    p = settings.processor
    return JoinConfig(
        window_ms=int(p.window_s * 1000),
        grace_ms=int(p.grace_s * 1000),
        late_retention_ms=int(p.late_retention_s * 1000),
        idle_timeout_ms=int(p.idle_timeout_s * 1000),
        score_margin=p.score_margin,
        score_mode=p.score_mode,
    )


def create_app(settings: Settings, partitions: int) -> faust.App:
    """The processor app for topics with ``partitions`` partitions each."""
    faust_fixes.install()
    p, t = settings.processor, settings.topics
    app = faust.App(
        p.app_id,
        broker=[f"kafka://{host}" for host in settings.kafka.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(settings.kafka),
        store=p.store,
        datadir=str(p.state_dir or Path(settings.data_dir) / "processor"),
        topic_partitions=partitions,
        topic_replication_factor=t.replication_factor,
        broker_session_timeout=p.session_timeout_s,
        broker_heartbeat_interval=min(3.0, p.session_timeout_s / 4),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
        table_standby_replicas=0,
        producer_max_batch_size=p.producer_max_batch_size,
    )
    codec = settings.make_codec()
    kafka_config = settings.kafka.client_config()

    def raw_topic(*names: str) -> faust.TopicT:
        return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    inputs = raw_topic(t.inference, t.feedback, t.ticks)
    ticks = raw_topic(t.ticks)
    outputs = {role: raw_topic(getattr(t, role)) for role in OUTPUT_RECORDS}
    table = app.Table(TABLE, default=None, partitions=partitions, key_type=str)
    state = StagedState(table)
    changelog = table.changelog_topic
    joiner = Joiner(join_config(settings), codec, state, t.inference, t.feedback)
    app.joiner = joiner  # type: ignore[attr-defined]

    def count(emits: list[Emit]) -> None:
        for e in emits:
            if e.role == "pairs":
                metrics.PAIRS_OUT.inc()
                metrics.JOIN_LATENCY.observe(e.record["join_latency_ms"] / 1000)
            elif e.role == "unpaired":
                metrics.UNPAIRED_OUT.inc()
            elif e.role == "unmatched":
                metrics.UNMATCHED.labels(e.record["reason"]).inc()
            else:
                metrics.DEAD_LETTERS.labels(e.record["error_class"]).inc()

    async def deliver(emits: list[Emit]) -> None:
        """Send the outputs and wait until Kafka has acknowledged every one."""
        if not emits:
            return
        sent = [
            await outputs[e.role].send(
                key=e.key, value=codec.encode(OUTPUT_RECORDS[e.role], e.record, outputs[e.role].get_topic_name())
            )
            for e in emits
        ]
        await asyncio.gather(*sent)
        count(emits)

    async def write_state(last_event: dict[int, Any]) -> None:
        """Apply the batch's state changes and wait until their changelog records are acknowledged.

        Written directly, not through the table's buffered changelog: Faust gives up
        flushing that buffer before a commit after 0.1 s without progress, so a kill -9
        right after a commit could lose state the committed offset depends on. The
        RocksDB store files a key under the partition of the current event, so each
        partition's changes are applied with one of its own events current.
        """
        sent = []
        for partition, changes in state.drain().items():
            _current_event.set(weakref.ref(last_event[partition]))
            for key, value in changes:
                if value is None:
                    table.data.pop(key, None)
                else:
                    table.data[key] = value
                serializer = "raw" if value is None else None  # a tombstone is sent as an empty value
                sent.append(
                    await changelog.send(
                        key=key, value=value, partition=partition, value_serializer=serializer, force=True
                    )
                )
        await asyncio.gather(*sent)

    last_offset: dict[tuple[str, int], int] = {}

    def committed_offset(topic: str, partition: int) -> int | None:
        offset: int | None = cast(Any, app.consumer)._committed_offset.get(TP(topic, partition))
        return offset

    def join_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> list[Emit]:
        """One input record through the join (state changes are staged until the batch is written)."""
        state.partition = partition
        if topic == t.ticks:
            return joiner.tick(partition)
        metrics.EVENTS_IN.labels(topic).inc()
        duplicates = joiner.duplicates
        emits = joiner.process(topic, partition, offset, key, value)
        metrics.DUPLICATES.inc(joiner.duplicates - duplicates)
        return emits

    async def refetch(topic: str, partition: int, first: int, upto: int) -> list[Any]:
        """Records ``first..upto-1`` never reached the agent: read them directly (see faust_fixes)."""
        missed = await asyncio.to_thread(read_range, kafka_config, topic, partition, first, upto)
        metrics.REFETCHED.labels(topic).inc(len(missed))
        log.warning(
            "%s[%d]: offsets %d-%d were skipped by the consumer; re-read %d record(s) directly (see faust_fixes)",
            topic,
            partition,
            first,
            upto - 1,
            len(missed),
        )
        return missed

    @app.agent(inputs)
    async def join(stream: faust.StreamT) -> None:
        """Per batch: join every record in order, deliver the outputs, write the state; Faust then acks the
        batch, so an offset is committed only after its outputs and state are in Kafka."""
        async for events in cast(Any, stream).take_events(p.batch_max, within=p.batch_wait_s):
            records = [
                InputRecord(e.message.topic, e.message.partition, e.message.offset, e.key, e.value, e) for e in events
            ]
            ordered, gaps = await in_join_order(records, last_offset, committed_offset, refetch)
            emits: list[Emit] = []
            last_event: dict[int, Any] = {}
            for r in ordered:
                _current_event.set(weakref.ref(r.event))  # the RocksDB store reads the current event's partition
                last_event[r.partition] = r.event
                emits += join_record(r.topic, r.partition, r.offset, r.key, r.value)
            await deliver(emits)  # outputs acknowledged before the state that records them is written
            await write_state(last_event)  # state acknowledged before the batch is acked and can be committed
            for g in gaps:  # Faust may now commit past the records it never delivered
                await cast(Any, app.consumer)._add_gap(TP(g.topic, g.partition), g.first, g.last)

    @app.timer(interval=p.tick_interval_s)
    async def idle_ticks() -> None:
        for tp in app.consumer.assignment():
            if tp.topic == t.inference:
                await ticks.send(key=b"tick", value=b"", partition=tp.partition)
        metrics.STATE_KEYS.set(sum(len(h) for h in joiner._due.values()))

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        joiner.forget_index()
        last_offset.clear()

    return app
