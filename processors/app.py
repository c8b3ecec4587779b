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
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import TP

from preflog.schemas.registry import OUTPUT_RECORDS
from preflog.settings import KafkaSettings, Settings

from . import faust_fixes, metrics
from .gaps import missing_range, read_range
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

    async def write_state(partition: int) -> None:
        """Apply the event's state changes and wait until their changelog records are acknowledged.

        Written directly, not through the table's buffered changelog: Faust gives up
        flushing that buffer before a commit after 0.1 s without progress, so a kill -9
        right after a commit could lose state the committed offset depends on.
        """
        sent = []
        for key, value in state.drain():
            if value is None:
                table.data.pop(key, None)
                sent.append(
                    await changelog.send(key=key, value=None, partition=partition, value_serializer="raw", force=True)
                )
            else:
                table.data[key] = value
                sent.append(await changelog.send(key=key, value=value, partition=partition, force=True))
        await asyncio.gather(*sent)

    last_offset: dict[TP, int] = {}

    async def handle(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        """One input record: join it, deliver what it emits, then save the state it changed."""
        if topic == t.ticks:
            emits = joiner.tick(partition)
        else:
            metrics.EVENTS_IN.labels(topic).inc()
            duplicates = joiner.duplicates
            emits = joiner.process(topic, partition, offset, key, value)
            metrics.DUPLICATES.inc(joiner.duplicates - duplicates)
        if emits:
            sent = [
                await outputs[e.role].send(
                    key=e.key,
                    value=codec.encode(OUTPUT_RECORDS[e.role], e.record, outputs[e.role].get_topic_name()),
                )
                for e in emits
            ]
            await asyncio.gather(*sent)  # delivered before the state that records them is written
            count(emits)
        await write_state(partition)  # and the state is in Kafka before the offset can be committed

    async def fill_gap(topic: str, partition: int, first: int, upto: int) -> None:
        """Records ``first..upto-1`` never reached the agent: read them directly and join them, in order."""
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
        for record in missed:
            await handle(topic, partition, record.offset, record.key, record.value)
        await cast(Any, app.consumer)._add_gap(TP(topic, partition), first, upto - 1)  # Faust may commit past them

    @app.agent(inputs)
    async def join(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            tp = TP(msg.topic, msg.partition)
            committed = cast(Any, app.consumer)._committed_offset.get(tp)
            gap = missing_range(last_offset.get(tp), committed, msg.offset)
            if gap:
                await fill_gap(msg.topic, msg.partition, *gap)
            last_offset[tp] = msg.offset
            await handle(msg.topic, msg.partition, msg.offset, event.key, event.value)

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
