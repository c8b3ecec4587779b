"""The worker under restarts, scale-out, wrong topics and malformed traffic: every record still gets one outcome."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import pytest

from preflog.deploy.broker import free_port
from preflog.producers import PreflogProducer
from preflog.producers.traffic import send_traffic
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import TopicSettings

from ..conftest import feedback, inference
from ..kafka_helpers import read_topic
from .conftest import StartProcessor
from .processor_helpers import at, clean_traffic, expected_pairs, metric, outputs

pytestmark = pytest.mark.integration
CODEC = SingleObjectCodec()


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_kill_9_mid_stream_and_restart_loses_no_pair(
    log: PreflogProducer,
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    start_processor: StartProcessor,
    store: str,
) -> None:
    events = clean_traffic(1500)
    expected = expected_pairs(events)
    send_traffic(events, log, pace=False)
    worker = start_processor(store=store)
    partial = read_topic(kafka_config, topics.pairs, topics.partitions, expect=len(expected) // 4, settle=0)
    assert len(partial) > 0
    worker.kill()  # mid-stream, before or after its first offset commit depending on timing
    port = free_port()
    start_processor(store=store, reuse_state_of=0, metrics_port=port)  # a restart in place: same state directory
    pairs = outputs(kafka_config, topics, "pairs", expect=0, timeout=60, settle=5, ids=expected)
    got = {p["pair_id"] for p in pairs}
    if got != expected:  # say what happened to the missing ones
        unmatched = outputs(kafka_config, topics, "unmatched", expect=10_000, timeout=5, settle=0)
        dead = outputs(kafka_config, topics, "dead_letter", expect=10_000, timeout=5, settle=0)
        print(
            "missing", len(expected - got), "extra", len(got - expected), "of", len(expected), "partial", len(partial)
        )
        print("unmatched", Counter(u["reason"] for u in unmatched), "dead", Counter(d["error_class"] for d in dead))
    assert got == expected  # every pair, none invented; redelivered copies share their pair_id
    assert len(pairs) >= len(expected)
    print("re-read directly after a consumer skip:", metric(port, "preflog_processor_refetched_total"))


def test_two_workers_split_partitions_and_produce_the_same_pairs(
    log: PreflogProducer,
    kafka_config: dict[str, Any],
    topics: TopicSettings,
    start_processor: StartProcessor,
) -> None:
    ports = [free_port(), free_port()]
    start_processor(metrics_port=ports[0])
    start_processor(metrics_port=ports[1])
    time.sleep(10)  # both join the group before traffic starts
    events = clean_traffic(600)
    expected = expected_pairs(events)
    send_traffic(events, log, pace=False)
    pairs = outputs(kafka_config, topics, "pairs", expect=0, timeout=120, settle=5, ids=expected)
    assert {p["pair_id"] for p in pairs} == expected
    read = [metric(port, "preflog_processor_events_in_total") for port in ports]
    assert all(n > 0 for n in read), read  # both workers did part of the work
    assert sum(read) >= len(events)


def test_worker_refuses_topics_that_are_not_co_partitioned(
    kafka_config: dict[str, Any], broker: Any, tmp_path: Any
) -> None:
    import subprocess
    import sys

    from preflog.kafka.topics import ensure_topics

    from .conftest import processor_env

    suffix = uuid.uuid4().hex[:8]
    t = TopicSettings(inference=f"inf-{suffix}", feedback=f"fb-{suffix}")
    ensure_topics(kafka_config, [t.inference], 4)
    ensure_topics(kafka_config, [t.feedback], 2)
    env = processor_env(broker, t, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "preflog", "process"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert f"topic fb-{suffix} has 2 partitions but inf-{suffix} has 4" in message
    assert "co-partitioned on request_id" in message


def test_malformed_records_beside_valid_traffic_each_get_an_outcome_and_crash_nothing(
    log: PreflogProducer, kafka_config: dict[str, Any], topics: TopicSettings, start_processor: StartProcessor
) -> None:
    """The held-out corpus' failures, sent raw before valid traffic on the same partitions (issue 9, A.4)."""
    from datetime import datetime, timezone

    from confluent_kafka import Producer

    from preflog.schemas.events import inference_record

    big = inference(prompt="p" * 1_200_000)  # a pair of it is over 1 MiB; its state record would be too
    far = datetime(2150, 1, 1, tzinfo=timezone.utc)  # (the SDK and the join's validation refuse years past 2200)
    future = inference(event_time=far)  # once moved its partition's stream time there for good
    known = inference()
    ties = [{"index": 0, "rank": 1}, {"index": 1, "rank": 1}, {"index": 2, "rank": 1}]
    raw = Producer({**kafka_config, "message.max.bytes": 5_000_000})
    raw.produce(topics.inference, key=big["request_id"], value=CODEC.encode("InferenceEvent", inference_record(big)))
    raw.flush()
    log.log_inference(future)
    log.log_inference(known)
    log.log_feedback(feedback(big["request_id"], event_time=at(1)))
    log.log_feedback(feedback(known["request_id"], event_time=far))  # far-future feedback for a known inference
    log.log_feedback(feedback(known["request_id"], event_time=at(2), kind="RANKING", pairwise=None, ranking=ties))
    log.flush()
    events = clean_traffic(150)
    expected = expected_pairs(events)
    send_traffic(events, log, pace=False)
    worker = start_processor()
    pairs = outputs(kafka_config, topics, "pairs", expect=0, timeout=60, settle=2, ids=expected)
    assert {p["pair_id"] for p in pairs} == expected
    dead = outputs(kafka_config, topics, "dead_letter", expect=3, timeout=20)
    by_class = Counter(d["error_class"] for d in dead)
    assert by_class == {"InputTooLarge": 1, "EventTimeSkew": 2}, by_class
    too_large = next(d for d in dead if d["error_class"] == "InputTooLarge")
    assert too_large["source_offset"]["topic"] == topics.inference and "truncated" in too_large["reason"]
    unmatched = outputs(kafka_config, topics, "unmatched", expect=1, timeout=20)
    assert [u["reason"] for u in unmatched if u["request_id"] == known["request_id"]] == ["NO_PAIRS"]
    assert worker.proc is not None and worker.proc.poll() is None  # still running
