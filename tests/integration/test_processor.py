"""Every join semantic, end to end: SDK -> embedded broker -> `preflog process` worker -> output topics."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from preflog.processors.pairs import pair_id
from preflog.producers import PreflogProducer
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record
from preflog.settings import TopicSettings

from ..conftest import feedback, inference
from .conftest import StartProcessor
from .processor_helpers import at, outputs

pytestmark = pytest.mark.integration
CODEC = SingleObjectCodec()


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
