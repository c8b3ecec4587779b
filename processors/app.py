"""The Faust worker: reads both input topics (co-partitioned on request_id), runs the Joiner, emits outputs.

Faust's ``Stream.join`` is not implemented, so the join is one agent over the
inference topic, the feedback topic and an internal ticks topic, with its
state in a changelog-backed Table (raw bytes: :mod:`preflog.processors.entry`).
All three topics have the same partition count, so partition N of each lands
on the same worker and table writes go to changelog partition N. Per batch the
agent reads and joins (:mod:`preflog.processors.batch`) and commits a
checkpoint (:mod:`preflog.processors.checkpoint`); Faust then acks the batch.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, cast

import faust

from preflog.schemas.tables import TABLES
from preflog.settings import KafkaSettings, ProcessorSettings, Settings

from . import faust_compat, metrics
from .batch import BatchJoin
from .checkpoint import Checkpoint
from .join import JoinConfig, Joiner
from .staged import StagedState
from .table_state import TableEntries, TableStreamTimes

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


def _faust_app(settings: Settings, partitions: int) -> faust.App:
    p, t = settings.processor, settings.topics
    return faust.App(
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
        recovery_consistency_check=p.recovery_consistency_check,
    )


def _rocksdb_options(p: ProcessorSettings) -> dict[str, int]:
    """Memory bounds of each partition's RocksDB database (Faust's defaults: 3 x 64 MB memtables, 2 GB cache)."""
    mb = 1024 * 1024
    return {
        "write_buffer_size": p.rocksdb_write_buffer_mb * mb,
        "max_write_buffer_number": 2,
        "block_cache_size": p.rocksdb_block_cache_mb * mb,
        "block_cache_compressed_size": p.rocksdb_block_cache_mb * mb,
    }


def _raw_topic(app: faust.App, *names: str) -> faust.TopicT:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def create_app(settings: Settings, partitions: int) -> faust.App:
    """The processor app for topics with ``partitions`` partitions each.

    Args:
        settings: the worker's settings.
        partitions: the partition count of the input topics.

    Returns:
        The Faust app, with its agent, idle-tick timer and rebalance hook.

    Raises:
        FaustVersionError: the installed faust-streaming is not the tested version.
    """
    faust_compat.check_version()
    faust_compat.install()
    p, t = settings.processor, settings.topics
    app = _faust_app(settings, partitions)
    table = app.Table(
        TABLE, default=None, partitions=partitions, key_type=bytes, value_type=bytes, options=_rocksdb_options(p)
    )
    staged: StagedState[bytes, bytes] = StagedState(faust_compat.StoreView(table))
    joiner = Joiner(
        JoinConfig.from_settings(settings),
        settings.make_codec(),
        TableEntries(staged),
        t.inference,
        t.feedback,
        output_topics={role: getattr(t, role) for role in TABLES},
        stream_times=TableStreamTimes(staged),
    )
    faust_compat.recover_to_fetched_end(app, settings.kafka.client_config())
    faust_compat.set_fetch_max_wait(app, p.fetch_max_wait_ms)
    checkpoint = functools.partial(
        Checkpoint,
        faust_compat.producer_send(app),
        {role: getattr(t, role) for role in TABLES},
        table.changelog_topic.get_topic_name(),
        staged,
        lambda: faust_compat.table_store(table),
        lambda: app.consumer,
    )
    worker = BatchJoin(
        joiner,
        checkpoint,
        lambda: app.consumer,
        settings.kafka.client_config(),
        (t.inference, t.feedback),
        t.ticks,
        gap_check_s=p.gap_check_s,
        read_limit=p.batch_max,
        stopping=lambda: bool(app.should_stop),
    )
    ticks = _raw_topic(app, t.ticks)

    @app.agent(_raw_topic(app, t.inference, t.feedback, t.ticks))
    async def join(stream: faust.StreamT) -> None:
        """Per batch: read, join, commit its checkpoint; Faust then acks it. A failed batch ends the process."""
        async for events in cast(Any, stream).take_events(p.batch_max, within=p.batch_wait_s):
            await worker.run(events)

    @app.timer(interval=p.tick_interval_s)
    async def idle_ticks() -> None:
        for tp in app.consumer.assignment():
            if tp.topic == t.inference:
                await ticks.send(key=b"tick", value=b"", partition=tp.partition)
        metrics.STATE_KEYS.set(joiner.index_size())

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        worker.on_assigned()

    return app
