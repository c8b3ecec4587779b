"""preflog reconcile against a real pipeline: clean, then with each kind of gap planted."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from preflog.kafka.offsets import committed_offsets
from preflog.producers import PreflogProducer
from preflog.producers.generator import TrafficProfile, generate
from preflog.producers.traffic import send_traffic
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import KafkaSettings, ProcessorSettings, Settings, SinkSettings, TopicSettings
from preflog.sinks.reconcile import Reconciliation, reconcile
from preflog.sinks.storage import Storage

from ..samples import all_samples
from .conftest import StartProcessor

pytestmark = pytest.mark.integration
CODEC = SingleObjectCodec()
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def _settle(settings: Settings, storage: Storage, timeout: float = 120) -> Reconciliation:
    """Reconcile until nothing is pending (the processor and the sink have committed everything)."""
    deadline = time.monotonic() + timeout
    while True:
        result = reconcile(settings, storage)
        pending = sum(led.counts["pending"] for led in result.inputs + result.outputs)
        if (pending == 0 and result.ok) or time.monotonic() > deadline:
            return result
        time.sleep(2)


def _problems(result: Reconciliation, topic: str) -> list[str]:
    return [p for led in result.inputs + result.outputs if led.topic == topic for p in led.problems]


def _commit(config: dict[str, Any], group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit offsets for a group with no members (as a processor that skipped records would have)."""
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def test_reconcile_accounts_for_every_record_and_reports_each_planted_gap(
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    start_processor: StartProcessor,
    start_sink: Any,
    tmp_path: Path,
) -> None:
    events = generate(TrafficProfile(requests=150, rate=20, invalid=0.06, duplicates=0.1), start=T0)
    with PreflogProducer(kafka_config, CODEC, topics) as log:
        send_traffic(events, log, pace=False)
    processor = start_processor(window_s=4, grace_s=1)
    url = f"file://{tmp_path / 'audit'}"
    sink = start_sink(url, max_rows=40)
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_config["bootstrap.servers"]),
        topics=topics,
        processor=ProcessorSettings(app_id=processor.env["PREFLOG_PROCESSOR__APP_ID"], window_s=4, grace_s=1),
        sink=SinkSettings(group_id=sink.env["PREFLOG_SINK__GROUP_ID"], url=url),
    )
    storage = Storage(url)
    result = _settle(settings, storage)
    assert result.ok, [
        (led.topic, led.partition, led.problems) for led in result.inputs + result.outputs if led.problems
    ]
    totals: dict[str, int] = {}
    for led in result.inputs:
        for k, n in led.counts.items():
            totals[k] = totals.get(k, 0) + n
    assert sum(totals.values()) == len(events)  # every record sent has exactly one category
    assert totals.get("joined", 0) > 0 and totals.get("dead-lettered", 0) > 0 and totals.get("duplicate", 0) > 0
    assert any(k.startswith("unmatched ") for k in totals) and totals.get("unaccounted", 0) == 0
    outputs = {led.topic: led for led in result.outputs}
    assert sum(led.counts["in_files"] for led in result.outputs) == sum(led.counts["records"] for led in result.outputs)
    assert outputs  # every output partition has a ledger
    sink.stop()
    processor.stop()

    # 1. a middle file of pairs deleted (its manifest stays): its ids are in no file
    pair_files = sorted((tmp_path / "audit" / "pairs").rglob("*.parquet"))
    assert len(pair_files) >= 3
    middle = pair_files[len(pair_files) // 2]
    middle.unlink()
    # 2. the last file of an unmatched partition deleted with its manifest: its offsets were committed, in no file
    unmatched_files = sorted((tmp_path / "audit" / "unmatched").rglob("*.parquet"), key=lambda p: p.name)
    last = unmatched_files[-1]
    last.unlink()
    (tmp_path / "audit" / "_manifests" / last.relative_to(tmp_path / "audit")).with_suffix(".parquet.json").unlink()
    # 3. an input record the processor never emitted anything for, with its offset committed past it
    record = {**all_samples()["InferenceEvent"], "request_id": str(uuid.uuid4()), "event_time": T0 - timedelta(days=1)}
    producer = Producer(kafka_config)
    delivered: list[Any] = []
    producer.produce(
        topics.inference,
        key=record["request_id"].encode(),
        value=CODEC.encode("InferenceEvent", record),
        partition=0,
        on_delivery=lambda err, msg: delivered.append(msg),
    )
    producer.flush()
    offset = delivered[0].offset()
    # the processor's committed offsets, with inference[0] moved past the new record, as a new group's
    committed = committed_offsets(AdminClient(kafka_config), settings.processor.app_id)
    skipped = f"{settings.processor.app_id}-skipped"
    _commit(kafka_config, skipped, {**committed, (topics.inference, 0): offset + 1})
    settings = settings.model_copy(update={"processor": settings.processor.model_copy(update={"app_id": skipped})})
    result = reconcile(settings, storage)
    assert not result.ok
    pairs = _problems(result, topics.pairs)
    assert any("are in no file (covered by a range)" in p for p in pairs), pairs
    unmatched = _problems(result, topics.unmatched)
    assert any("are in no file, below what the sink wrote or committed" in p for p in unmatched), unmatched
    inference = [
        p for led in result.inputs if (led.topic, led.partition) == (topics.inference, 0) for p in led.problems
    ]
    assert inference == [f"offset {offset} (inference {record['request_id']}) has no outcome and its window closed"]
