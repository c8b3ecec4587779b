"""The writer resuming from its files.

A recreated topic, the end of a partition, re-emitted records, a crash between data files and manifests.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

import preflog
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import TopicSettings
from preflog.sinks.storage import Storage
from preflog.sinks.verify import verify

from ..kafka_helpers import read_topic
from ..samples import all_samples
from .sink_helpers import produce_pairs, recreate, two_day_pairs, wait_rows

pytestmark = pytest.mark.integration
CODEC = SingleObjectCodec()


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
    recreate(kafka_config, topics.pairs, topics.partitions)
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


@pytest.mark.parametrize("crash", ["after-one-data-file", "before-the-manifests"])
def test_a_batch_split_over_folders_and_cut_short_by_a_crash_is_completed(
    kafka_config: dict[str, Any], topics: TopicSettings, start_sink: Any, tmp_path: Path, crash: str
) -> None:
    """A batch becomes one file per dt= folder; the writer puts every data file, then the manifests.

    A crash between them leaves either some data files (the batch is written again, cut where it was) or all of them
    without manifests (the manifests are written from the files' own batch metadata).
    """
    expected = two_day_pairs(kafka_config, topics.pairs, 120)
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
