"""The audit log end to end: real broker, real processor and sink processes, local files and moto's S3."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import preflog
from preflog.producers import PreflogProducer
from preflog.producers.traffic import send_traffic
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import TopicSettings
from preflog.sinks.storage import Storage
from preflog.sinks.verify import verify

from ..kafka_helpers import read_topic
from .conftest import StartProcessor
from .processor_helpers import clean_traffic, expected_pairs
from .s3_helpers import CREDENTIALS, MotoServer, Proxy
from .sink_helpers import all_samples_schema, produce_pairs, wait_rows

pytestmark = pytest.mark.integration
CODEC = SingleObjectCodec()


def test_pairs_land_in_parquet_end_to_end_with_every_field(
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    start_processor: StartProcessor,
    start_sink: Any,
    tmp_path: Path,
) -> None:
    events = clean_traffic(300)
    expected = expected_pairs(events)
    with PreflogProducer(kafka_config, CODEC, topics) as log:
        send_traffic(events, log, pace=False)
    start_processor()
    url = f"file://{tmp_path / 'audit'}"
    start_sink(url)
    table = wait_rows(url, len(expected))
    assert table is not None and set(table.column("pair_id").to_pylist()) == expected
    assert table.num_rows == len(expected)
    topic_pairs = {
        r["pair_id"]: r
        for r in (
            CODEC.decode(m.value() or b"", "PreferencePair", topics.pairs)
            for m in read_topic(kafka_config, topics.pairs, topics.partitions, expect=len(expected))
        )
    }
    stored = table.to_pylist()
    schema_fields = [f["name"] for f in all_samples_schema()]
    for row in stored[:50]:
        original = topic_pairs[row["pair_id"]]
        for name in schema_fields:
            value = row[name]
            if name.endswith("metadata"):
                value = dict(value)
            if name == "sampling":
                value = {**value, "extra": dict(value["extra"])}
            assert value == original[name], name
    assert verify(Storage(url)).ok


def test_kill_9_of_the_sink_mid_file_leaves_no_gap_and_no_duplicate(
    kafka_config: dict[str, Any], topics: TopicSettings, start_sink: Any, tmp_path: Path
) -> None:
    expected = produce_pairs(kafka_config, topics.pairs, 3000, duplicates=300)
    url = f"file://{tmp_path / 'audit'}"
    first = start_sink(url, max_rows=100, idle_flush_s=30)
    deadline = time.monotonic() + 60
    while len(list((tmp_path / "audit").rglob("*.parquet"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.kill()
    written_before = len(list((tmp_path / "audit").rglob("*.parquet")))
    assert written_before >= 5
    start_sink(url, max_rows=100, idle_flush_s=1)
    table = wait_rows(url, len(expected))
    time.sleep(3)  # anything extra would show up now
    table = preflog.read_table(url, "pairs")
    ids = table.column("pair_id").to_pylist()
    assert set(ids) == expected and len(ids) == len(expected)
    report = verify(Storage(url))
    assert report.ok, report
    assert report.rows == len(expected)


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


def test_s3_audit_log_survives_a_storage_outage(
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    start_sink: Any,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    moto.create_bucket("audit")
    proxy = Proxy(moto.port)
    expected = produce_pairs(kafka_config, topics.pairs, 300)
    url = "s3://audit/log"
    sink = start_sink(url, max_rows=50, s3_endpoint_url=f"http://127.0.0.1:{proxy.port}")
    direct = {"client_kwargs": {"endpoint_url": moto.endpoint}}
    storage = Storage(url, direct)
    deadline = time.monotonic() + 60
    while len([p for p in storage.list("pairs") if p.endswith(".parquet")]) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    proxy.cut()  # the object store goes away for a while, and traffic goes on
    expected |= produce_pairs(kafka_config, topics.pairs, 700)
    time.sleep(12)
    proxy.restore()
    table = wait_rows(url, len(expected), timeout=120, **direct)
    assert table is not None
    assert sorted(table.column("pair_id").to_pylist()) == sorted(expected)
    report = verify(Storage(url, direct))
    assert report.ok, report
    assert "offsets stay uncommitted" in sink.log.read_text()  # the writer saw the outage and retried
