"""The audit log end to end: real broker, real processor and sink processes, local files and moto's S3."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

import preflog
from preflog.producers import PreflogProducer
from preflog.producers.traffic import send_traffic
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import TopicSettings
from preflog.sinks.storage import Storage
from preflog.sinks.verify import verify

from ..kafka_helpers import read_topic
from ..samples import all_samples
from .conftest import StartProcessor
from .s3_helpers import CREDENTIALS, MotoServer, Proxy
from .test_processor import clean_traffic, expected_pairs

pytestmark = pytest.mark.integration
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


def all_samples_schema() -> list[dict[str, Any]]:
    from preflog.schemas.registry import default_store

    fields: list[dict[str, Any]] = default_store().latest("PreferencePair").raw["fields"]
    return fields


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


def _recreate(config: dict[str, Any], topic: str, partitions: int) -> None:
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


def test_a_recreated_topic_is_written_as_a_new_incarnation_with_nothing_skipped(
    kafka_config: dict[str, Any], topics: TopicSettings, start_sink: Any, tmp_path: Path
) -> None:
    """Offsets start from 0 again in a recreated topic (or a broker that started empty).

    The writer must not resume after the old files' offsets, which would skip every new record below them.
    """
    url = f"file://{tmp_path / 'audit'}"
    first = produce_pairs(kafka_config, topics.pairs, 400)
    sink = start_sink(url, max_rows=60)
    assert wait_rows(url, len(first)).num_rows == len(first)
    sink.stop()
    _recreate(kafka_config, topics.pairs, topics.partitions)
    second = produce_pairs(kafka_config, topics.pairs, 240)  # fewer than before: every new offset is below the old end
    sink = start_sink(url, max_rows=60)
    table = wait_rows(url, len(first) + len(second))
    time.sleep(3)  # anything extra would show up now
    ids = preflog.read_table(url, "pairs").column("pair_id").to_pylist()
    assert len(ids) == len(set(ids)) == len(first | second)
    assert set(ids) == first | second and table is not None
    new_files = [p.name for p in (tmp_path / "audit" / "pairs").rglob("*+i0001+*.parquet")]
    assert new_files, "the new incarnation's files carry its number"
    report = verify(Storage(url))
    assert report.ok, report
    assert report.rows == len(first | second)
    assert "another incarnation" in sink.output()


def test_probe_tells_a_record_from_the_end_of_a_partition(kafka_config: dict[str, Any], topics: TopicSettings) -> None:
    from preflog.sinks.incarnation import END, probe

    produce_pairs(kafka_config, topics.pairs, 40)
    ends = {p: 0 for p in range(topics.partitions)}
    for msg in read_topic(kafka_config, topics.pairs, topics.partitions, expect=40):
        ends[msg.partition() or 0] = max(ends[msg.partition() or 0], (msg.offset() or 0) + 1)
    partition = max(ends, key=lambda p: ends[p])
    identity = probe(kafka_config, topics.pairs, partition, ends[partition] - 1)
    assert identity is not None and identity != END and ":" in identity
    assert probe(kafka_config, topics.pairs, partition, ends[partition]) == END
    assert probe(kafka_config, topics.pairs, partition, ends[partition] + 50, timeout=5) in (END, None)


def test_re_emitted_unmatched_records_and_dead_letters_are_stored_once(
    kafka_config: dict[str, Any], topics: TopicSettings, start_sink: Any, tmp_path: Path
) -> None:
    """The processor is at-least-once: a dead letter or unmatched record can reach its topic twice.

    Their ids are deterministic and the writer keeps one of each.
    """
    from preflog.processors.records import dead_letter, unmatched_record

    samples = all_samples()
    producer = Producer(kafka_config)
    dead, unmatched = set(), set()
    for i in range(60):
        at = {"topic": topics.feedback, "partition": 0, "offset": i}
        d = dead_letter("undecodable", "DecodeError", "decode", b"k", bytes([i]), at)
        rid = str(uuid.uuid4())
        u = unmatched_record(
            "NO_FEEDBACK", "none", "InferenceEvent", {**samples["InferenceEvent"], "request_id": rid}, 0, b"v", at
        )
        dead.add(d["dead_letter_id"])
        unmatched.add(u["unmatched_id"])
        for _ in range(2 if i % 3 == 0 else 1):  # every third one twice, at a later offset
            producer.produce(topics.dead_letter, key=b"k", value=CODEC.encode("DeadLetter", d), partition=i % 2)
            producer.produce(topics.unmatched, key=rid.encode(), value=CODEC.encode("UnmatchedRecord", u))
    producer.flush()
    url = f"file://{tmp_path / 'audit'}"
    start_sink(url, max_rows=25)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            got_dead = preflog.read_table(url, "dead_letter")
            got_unmatched = preflog.read_table(url, "unmatched")
            if got_dead.num_rows >= 60 and got_unmatched.num_rows >= 60:
                break
        except FileNotFoundError:
            pass
        time.sleep(0.5)
    time.sleep(3)  # anything extra would show up now
    for table, ids, column in (("dead_letter", dead, "dead_letter_id"), ("unmatched", unmatched, "unmatched_id")):
        stored = [
            i
            for f in (tmp_path / "audit" / table).rglob("*.parquet")
            for i in pq.read_table(f).column(column).to_pylist()
        ]
        assert sorted(stored) == sorted(ids), table  # raw files, not the deduplicating reader
    report = verify(Storage(url))
    assert report.ok, report


def _two_day_pairs(config: dict[str, Any], topic: str, n: int) -> set[str]:
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


@pytest.mark.parametrize("crash", ["after-one-data-file", "before-the-manifests"])
def test_a_batch_split_over_folders_and_cut_short_by_a_crash_is_completed(
    kafka_config: dict[str, Any], topics: TopicSettings, start_sink: Any, tmp_path: Path, crash: str
) -> None:
    """A batch becomes one file per dt= folder; the writer puts every data file, then the manifests.

    A crash between them leaves either some data files (the batch is written again, cut where it was) or all of them
    without manifests (the manifests are written from the files' own batch metadata).
    """
    expected = _two_day_pairs(kafka_config, topics.pairs, 120)
    root = tmp_path / "audit"
    url = f"file://{root}"
    first = start_sink(url, max_rows=60, idle_flush_s=30)
    wait_rows(url, len(expected))
    first.stop()
    data = sorted((root / "pairs").rglob("*.parquet"))
    assert len(data) == 4  # two batches of 60, each in two folders
    last_batch = [p for p in data if p.name == max(p.name for p in data)]
    before = {p: p.read_bytes() for p in last_batch}
    for p in last_batch:  # the crash: the last batch's manifests were never written ...
        (root / "_manifests" / p.relative_to(root)).with_suffix(".parquet.json").unlink()
    if crash == "after-one-data-file":
        last_batch[1].unlink()  # ... nor its second data file
    start_sink(url, max_rows=60, idle_flush_s=30, group_id=f"after-crash-{uuid.uuid4().hex[:6]}")  # nothing committed
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(
        (root / "_manifests" / p.relative_to(root)).with_suffix(".parquet.json").exists() for p in last_batch
    ):
        time.sleep(0.3)
    time.sleep(2)
    assert {p: p.read_bytes() for p in last_batch} == before  # the same files, byte for byte
    ids = preflog.read_table(url, "pairs").column("pair_id").to_pylist()
    assert sorted(ids) == sorted(expected)
    report = verify(Storage(url))
    assert report.ok, report
    assert report.rows == len(expected) and report.files == 4
    manifest = json.loads(
        (root / "_manifests" / last_batch[0].relative_to(root)).with_suffix(".parquet.json").read_text()
    )
    assert manifest["topic_id"] and manifest["last_record"] and manifest["duplicates_skipped"] == 0
