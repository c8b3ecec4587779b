"""What the sink tests share: producing pair records, waiting for rows in the audit log."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Producer

import preflog
from preflog.schemas.codec import SingleObjectCodec

from ..samples import all_samples

CODEC = SingleObjectCodec()


def wait_rows(url: str, expected: int, timeout: float = 90, **options: Any) -> Any:
    deadline = time.monotonic() + timeout
    table = None
    while time.monotonic() < deadline:
        try:
            table = preflog.read_pairs(url, storage_options=options or None)
            if table.num_rows >= expected:
                return table
        except FileNotFoundError:
            pass
        time.sleep(0.5)
    return table


def produce_pairs(config: dict[str, Any], topic: str, n: int, duplicates: int = 0) -> set[str]:
    """``n`` distinct pairs, then ``duplicates`` of them again at later offsets (a processor re-emitting)."""
    base = all_samples()["PreferencePair"]
    producer = Producer({**config, "linger.ms": 5})
    records = []
    for _ in range(n):
        rid = str(uuid.uuid4())
        records.append({**base, "pair_id": str(uuid.uuid4()), "request_id": rid})
    for record in records + records[:duplicates]:
        producer.produce(topic, key=record["request_id"].encode(), value=CODEC.encode("PreferencePair", record))
    producer.flush()
    return {r["pair_id"] for r in records}


def all_samples_schema() -> list[dict[str, Any]]:
    from preflog.schemas.registry import default_store

    fields: list[dict[str, Any]] = default_store().latest("PreferencePair").raw["fields"]
    return fields


def recreate(config: dict[str, Any], topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(config)
    for future in admin.delete_topics([topic]).values():
        future.result()
    deadline = time.monotonic() + 30
    while True:
        try:
            for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
                future.result()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def two_day_pairs(config: dict[str, Any], topic: str, n: int) -> set[str]:
    """``n`` pairs on partition 0, alternating between two feedback dates: each batch is split in two files."""
    from datetime import timedelta

    base = all_samples()["PreferencePair"]
    producer = Producer(config)
    ids = set()
    for i in range(n):
        record = {**base, "pair_id": str(uuid.uuid4()), "request_id": str(uuid.uuid4())}
        record["feedback_time"] = base["feedback_time"] + timedelta(days=i % 2)
        producer.produce(
            topic, key=record["request_id"].encode(), value=CODEC.encode("PreferencePair", record), partition=0
        )
        ids.add(record["pair_id"])
    producer.flush()
    return ids
