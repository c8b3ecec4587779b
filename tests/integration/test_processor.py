"""Every join semantic, end to end: SDK -> embedded broker -> `preflog process` worker -> output topics."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from preflog.deploy.broker import free_port
from preflog.processors.pairs import expand, pair_id
from preflog.producers import PreflogProducer
from preflog.producers.generator import TrafficProfile, generate
from preflog.producers.traffic import send_traffic
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record
from preflog.schemas.tables import TABLES
from preflog.settings import TopicSettings

from ..conftest import T0, feedback, inference
from ..kafka_helpers import read_topic
from .conftest import StartProcessor

pytestmark = pytest.mark.integration
CODEC = SingleObjectCodec()


def outputs(
    config: dict[str, Any],
    topics: TopicSettings,
    role: str,
    expect: int,
    timeout: float = 45,
    settle: float = 2,
    ids: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Decoded output records; with ``ids``, waits until every one of those pair_ids has arrived."""
    topic = getattr(topics, role)

    def done(msgs: list[Any]) -> bool:
        if ids is None:
            return len(msgs) >= expect
        return ids <= {CODEC.decode(m.value(), TABLES[role].record, topic)["pair_id"] for m in msgs}

    msgs = read_topic(config, topic, topics.partitions, expect, timeout=timeout, settle=settle, done=done)
    return [CODEC.decode(m.value() or b"", TABLES[role].record, topic) for m in msgs]


def at(minutes: float) -> Any:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def log(kafka_config: dict[str, Any], topics: TopicSettings) -> Any:
    with PreflogProducer(kafka_config, CODEC, topics) as producer:
        yield producer


def test_either_arrival_order_joins(
    log: PreflogProducer, kafka_config: dict[str, Any], topics: TopicSettings, start_processor: StartProcessor
) -> None:
    first, second = inference(), inference()
    fb_first = feedback(first["request_id"], event_time=at(1))
    fb_second = feedback(second["request_id"], event_time=at(1))
    log.log_inference(first)
    log.log_feedback(fb_first)
    log.log_feedback(fb_second)  # before its inference
    log.log_inference(second)
    log.flush()
    start_processor()
    pairs = outputs(kafka_config, topics, "pairs", expect=2)
    assert sorted(p["pair_id"] for p in pairs) == sorted(
        [pair_id(fb_first["feedback_id"], 0, 1), pair_id(fb_second["feedback_id"], 0, 1)]
    )
    pair = next(p for p in pairs if p["request_id"] == first["request_id"])
    assert (pair["prompt"], pair["chosen"], pair["rejected"]) == ("Name a prime number.", "7", "9")
    assert pair["model"] == first["model"] and pair["context"]["tenant"] == "acme"
    assert pair["source"]["type"] == "HUMAN_ANNOTATOR" and pair["rationale"] == "9 is not prime"
    assert pair["inference_offset"]["topic"] == topics.inference
    assert pair["feedback_offset"]["topic"] == topics.feedback
    assert pair["join_latency_ms"] == 60_000


def test_one_inference_many_judgements_each_yield_pairs(
    log: PreflogProducer, kafka_config: dict[str, Any], topics: TopicSettings, start_processor: StartProcessor
) -> None:
    inf = inference()
    rid = inf["request_id"]
    log.log_inference(inf)
    log.log_feedback(feedback(rid, event_time=at(1)))
    log.log_feedback(
        feedback(
            rid,
            event_time=at(2),
            kind="RANKING",
            pairwise=None,
            ranking=[{"index": 0, "rank": 2}, {"index": 1, "rank": 1}, {"index": 2, "rank": 2}],
        )
    )
    rm = {"type": "REWARD_MODEL", "id": "rm", "name": "acme-rm", "version": "8"}
    scores = [{"index": 0, "score": 0.2}, {"index": 1, "score": 1.0}, {"index": 2, "score": 0.9}]
    log.log_feedback(feedback(rid, event_time=at(3), kind="SCORES", pairwise=None, scores=scores, source=rm))
    log.log_feedback(
        feedback(
            rid,
            event_time=at(4),
            kind="IMPLICIT",
            pairwise=None,
            implicit={"index": 2, "signal": "copy", "label": True},
            source="END_USER",
        )
    )
    log.flush()
    start_processor(score_margin=0.5)
    pairs = outputs(kafka_config, topics, "pairs", expect=5)
    by_kind: dict[str, list[tuple[int, int]]] = {}
    for p in pairs:
        by_kind.setdefault(p["feedback_kind"], []).append((p["chosen_index"], p["rejected_index"]))
    by_kind = {kind: sorted(v) for kind, v in by_kind.items()}
    # ranking: 0 and 2 tie, so no pair between them; scores: 1.0 - 0.9 is under the 0.5 margin
    assert by_kind == {"PAIRWISE": [(0, 1)], "RANKING": [(1, 0), (1, 2)], "SCORES": [(1, 0), (2, 0)]}
    scored = next(p for p in pairs if p["feedback_kind"] == "SCORES" and p["chosen_index"] == 1)
    assert (scored["chosen_score"], scored["rejected_score"], scored["margin"]) == (1.0, 0.2, 0.8)
    assert scored["source"]["name"] == "acme-rm" and scored["source"]["version"] == "8"
    (signal,) = outputs(kafka_config, topics, "unpaired", expect=1)
    assert (signal["completion"], signal["label"], signal["signal"]) == ("11", True, "copy")


def test_duplicates_are_idempotent_and_conflicts_dead_lettered(
    log: PreflogProducer, kafka_config: dict[str, Any], topics: TopicSettings, start_processor: StartProcessor
) -> None:
    inf = inference()
    fb = feedback(inf["request_id"], event_time=at(1))
    log.log_inference(inf)
    log.log_inference(inf)  # identical retry: ignored
    log.log_inference({**inf, "prompt": "changed"})  # same request_id, other content
    log.log_feedback(fb)
    log.log_feedback(fb)  # redelivery: no second pair
    log.flush()
    start_processor()
    (dead,) = outputs(kafka_config, topics, "dead_letter", expect=1)
    assert len(outputs(kafka_config, topics, "pairs", expect=1, settle=4)) == 1
    assert dead["error_class"] == "ConflictingInference" and inf["request_id"] in dead["reason"]
    assert CODEC.decode(dead["value"], "InferenceEvent")["prompt"] == "changed"


def test_invalid_references_and_garbage_go_to_dead_letter(
    log: PreflogProducer, kafka_config: dict[str, Any], topics: TopicSettings, start_processor: StartProcessor
) -> None:
    inf = inference()
    rid = inf["request_id"]
    log.log_inference(inf)
    bad_index = feedback_record(feedback(rid, event_time=at(1), pairwise={"chosen": 4, "rejected": 0}))
    same = feedback_record(feedback(rid, event_time=at(1)))
    same["pairwise"] = {"chosen": 1, "rejected": 1}
    unknown = feedback_record(
        feedback(
            rid,
            event_time=at(1),
            kind="RANKING",
            pairwise=None,
            ranking=[{"index": 0, "rank": 1}, {"index": 9, "rank": 2}],
        )
    )
    for record in (bad_index, same, unknown):  # a producer that skipped the SDK's checks
        log.send(topics.feedback, rid, CODEC.encode("FeedbackEvent", record))
    log.send(topics.feedback, rid, b"\x00\x01garbage")
    log.flush()
    start_processor()
    dead = outputs(kafka_config, topics, "dead_letter", expect=4)
    reasons = sorted(d["reason"] for d in dead)
    assert any("candidate 4 does not exist" in r for r in reasons)
    assert any("chosen and rejected are both candidate 1" in r for r in reasons)
    assert any("ranking[1].index: candidate 9 does not exist" in r for r in reasons)
    garbage = next(d for d in dead if d["error_class"] == "DecodeError")
    assert garbage["value"] == b"\x00\x01garbage" and garbage["stage"] == "decode"
    assert garbage["source_offset"]["topic"] == topics.feedback
    assert outputs(kafka_config, topics, "pairs", expect=1, timeout=2, settle=0) == []


def test_expiry_by_stream_time_and_late_feedback(
    log: PreflogProducer, kafka_config: dict[str, Any], topics: TopicSettings, start_processor: StartProcessor
) -> None:
    lonely, answered = inference(), inference()
    orphan = feedback(str(uuid.uuid4()), event_time=at(0))
    log.log_inference(lonely)
    log.log_inference(answered)
    log.log_feedback(orphan)
    # the test window is 10 min + 1 min grace; these move every partition's stream time past it
    movers = [inference(event_time=at(12)) for _ in range(40)]
    for m in movers:
        log.log_inference(m)
    log.flush()
    log.log_feedback(feedback(answered["request_id"], event_time=at(12.5)))  # after expiry: LATE
    log.flush()
    start_processor()
    unmatched = outputs(kafka_config, topics, "unmatched", expect=3)
    unmatched = [u for u in unmatched if u["request_id"] not in {m["request_id"] for m in movers}]
    by_id = {u["request_id"]: u for u in unmatched}
    assert by_id[orphan["request_id"]]["reason"] == "NO_INFERENCE"
    assert by_id[lonely["request_id"]]["reason"] == "NO_FEEDBACK"
    assert CODEC.decode(by_id[lonely["request_id"]]["value"], "InferenceEvent")["request_id"] == lonely["request_id"]
    late = [u for u in unmatched if u["reason"] == "LATE"]
    assert len(late) == 1 and late[0]["request_id"] == answered["request_id"]


def test_expiry_happens_when_traffic_stops(
    log: PreflogProducer, kafka_config: dict[str, Any], topics: TopicSettings, start_processor: StartProcessor
) -> None:
    lonely = inference()
    log.log_inference(lonely)
    log.flush()
    start_processor(window_s=2, grace_s=1, idle_timeout_s=2)
    (unmatched,) = outputs(kafka_config, topics, "unmatched", expect=1, timeout=60)
    assert unmatched["reason"] == "NO_FEEDBACK" and unmatched["request_id"] == lonely["request_id"]


def expected_pairs(events: list[Any]) -> set[str]:
    """What one correct worker produces for generated traffic (all within the window; invalid events make none)."""
    inferences = {e.key for e in events if e.event_type == "inference" and e.invalid_reason is None}
    ids = set()
    for e in events:
        if e.event_type == "feedback" and e.invalid_reason is None and e.key in inferences and e.record:
            ids |= {pair_id(e.record["feedback_id"], p.chosen, p.rejected) for p in expand(e.record)}
    return ids


def clean_traffic(requests: int) -> list[Any]:
    return generate(TrafficProfile(requests=requests, invalid=0.0, rate=50), start=T0)


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
    print("re-read directly after a consumer skip:", _metric(port, "preflog_processor_refetched_total"))


def _metric(port: int, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.split()[-1])
        for line in body.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


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
    read = [_metric(port, "preflog_processor_events_in_total") for port in ports]
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
