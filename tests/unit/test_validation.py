"""Invalid events get a clear error naming the field, and the SDK sends nothing."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import fastavro
import pytest

from preflog.producers import PreflogProducer
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record, to_datetime
from preflog.schemas.exceptions import ValidationError
from preflog.schemas.registry import default_store

from ..conftest import feedback, inference
from ..samples import all_samples

RID = "0b0f6c1e-52a4-4cbb-8f0f-3f4b8f6f9d11"


@dataclass(frozen=True)
class Case:
    name: str
    event_type: str
    event: dict[str, Any]
    message: str


CASES = [
    Case("missing request_id", "inference", inference(request_id=None), "request_id: missing"),
    Case("request_id not a UUID", "inference", inference(request_id="req-17"), "'req-17' is not a UUID"),
    Case("one candidate", "inference", inference(candidates=["only"]), "1 given, at least 2"),
    Case("no candidates", "inference", inference(candidates=None), "candidates: missing"),
    Case(
        "duplicate candidate index",
        "inference",
        inference(candidates=[{"index": 0, "text": "a"}, {"index": 0, "text": "b"}]),
        "must be 0..1, each once",
    ),
    Case("empty prompt", "inference", inference(prompt="", prompt_messages=None), "prompt: missing or empty"),
    Case("no model", "inference", inference(model=None), "model.name: missing"),
    Case("negative temperature", "inference", inference(sampling={"temperature": -1.0}), "must be >= 0"),
    Case("top_p out of range", "inference", inference(sampling={"top_p": 1.5}), "must be in (0, 1]"),
    Case("naive event_time", "inference", inference(event_time=datetime(2026, 1, 1)), "has no time zone"),
    Case(
        "wrong type in candidate",
        "inference",
        inference(candidates=[{"index": 0, "text": "a"}, {"index": 1, "text": 7}]),
        "candidates[1].text: expected text",
    ),
    Case("metadata not text", "inference", inference(metadata={"k": [1, 2]}), "metadata.k: values must be text"),
    Case(
        "chosen == rejected",
        "feedback",
        feedback(RID, pairwise={"chosen": 1, "rejected": 1}),
        "chosen and rejected are both candidate 1",
    ),
    Case(
        "negative index",
        "feedback",
        feedback(RID, pairwise={"chosen": -1, "rejected": 0}),
        "-1 is not a candidate index",
    ),
    Case("unknown kind", "feedback", feedback(RID, kind="VIBES"), "'VIBES' is not one of"),
    Case("payload missing", "feedback", feedback(RID, kind="RANKING", pairwise=None), "ranking: missing"),
    Case(
        "two payloads",
        "feedback",
        feedback(RID, scores=[{"index": 0, "score": 1.0}, {"index": 1, "score": 0.0}]),
        "scores: set, but kind is PAIRWISE",
    ),
    Case(
        "ranking of one",
        "feedback",
        feedback(RID, kind="RANKING", pairwise=None, ranking=[{"index": 0, "rank": 1}]),
        "ranking: 1 given, at least 2 candidates are needed",
    ),
    Case(
        "ranking repeats a candidate",
        "feedback",
        feedback(RID, kind="RANKING", pairwise=None, ranking=[{"index": 0, "rank": 1}, {"index": 0, "rank": 2}]),
        "candidate 0 appears twice",
    ),
    Case(
        "NaN score",
        "feedback",
        feedback(
            RID,
            kind="SCORES",
            pairwise=None,
            scores=[{"index": 0, "score": float("nan")}, {"index": 1, "score": 0.0}],
            source={"type": "REWARD_MODEL", "name": "rm", "version": "1"},
        ),
        "is not a finite number",
    ),
    Case(
        "reward model without version",
        "feedback",
        feedback(RID, source={"type": "REWARD_MODEL", "name": "rm"}),
        "needs the model's name and version",
    ),
    Case("unknown source", "feedback", feedback(RID, source={"type": "ORACLE"}), "source.type: 'ORACLE'"),
    Case("missing feedback_id", "feedback", feedback(RID, feedback_id=None), "feedback_id: missing"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_event_is_refused_with_its_reason(case: Case) -> None:
    check = inference_record if case.event_type == "inference" else feedback_record
    with pytest.raises(ValidationError) as info:
        check(case.event)
    assert any(case.message in p for p in info.value.problems), info.value.problems


def test_out_of_range_index_is_caught_when_the_candidate_count_is_known() -> None:
    fb = feedback(RID, pairwise={"chosen": 3, "rejected": 0})
    assert feedback_record(fb)["pairwise"]["chosen"] == 3  # unknown count: cannot tell yet
    with pytest.raises(ValidationError, match="candidate 3 does not exist; the inference has 3"):
        feedback_record(fb, candidate_count=3)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        inference_record(inference(request_id=None, candidates=["x"], model=None))
    assert len(info.value.problems) == 3


def test_convenient_shapes_are_normalised() -> None:
    record = inference_record(inference(candidates=["a", "b"], model="acme", event_time="2026-11-01T12:00:00Z"))
    assert record["candidates"] == [{"index": 0, "text": "a"}, {"index": 1, "text": "b"}]
    assert record["model"] == {"name": "acme"}
    assert record["event_time"] == to_datetime(1793534400000)
    fb = feedback_record(feedback(RID, kind="pairwise", source="end_user"))
    assert fb["kind"] == "PAIRWISE" and fb["source"]["type"] == "END_USER"


@pytest.fixture
def offline_producer() -> Iterator[PreflogProducer]:
    """A producer whose broker does not exist: records queue locally, and len() counts them."""
    producer = PreflogProducer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0}, SingleObjectCodec())
    yield producer
    producer._closed.set()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_sdk_sends_nothing_for_an_invalid_event(case: Case, offline_producer: PreflogProducer) -> None:
    log = offline_producer.log_inference if case.event_type == "inference" else offline_producer.log_feedback
    with pytest.raises(ValidationError):
        log(case.event)
    assert offline_producer.produced == 0
    offline_producer.log_inference(inference())
    assert offline_producer.produced == 1


def test_sdk_checks_indices_against_inference_it_logged(offline_producer: PreflogProducer) -> None:
    event = inference()
    offline_producer.log_inference(event)
    with pytest.raises(ValidationError, match="candidate 5 does not exist"):
        offline_producer.log_feedback(feedback(event["request_id"], pairwise={"chosen": 5, "rejected": 0}))
    assert offline_producer.produced == 1


def raw_encode(record_type: str, record: dict[str, Any]) -> bytes:
    """Avro single-object bytes straight from fastavro: what another producer could send, unvalidated."""
    schema = default_store().latest(record_type)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema.parsed, record)
    return b"\xc3\x01" + schema.fingerprint + buf.getvalue()


def decoded(record_type: str, **changes: Any) -> dict[str, Any]:
    sample = {**all_samples()[record_type], **changes}
    return SingleObjectCodec().decode(raw_encode(record_type, sample), record_type, "t")


def scored(*scores: float) -> dict[str, Any]:
    return {
        "kind": "SCORES",
        "pairwise": None,
        "scores": [{"index": i, "score": s} for i, s in enumerate(scores)],
        "source": {"type": "REWARD_MODEL", "id": None, "name": "rm", "version": "1"},
    }


@dataclass(frozen=True)
class JoinCase:
    name: str
    record_type: str
    changes: dict[str, Any]
    candidate_count: int | None
    field: str


SAMPLING = all_samples()["InferenceEvent"]["sampling"]
TWO = [{"index": 0, "text": "a"}, {"index": 1, "text": "b"}]
JOIN_CASES = [
    JoinCase(
        "NaN temperature",
        "InferenceEvent",
        {"sampling": {**SAMPLING, "temperature": math.nan}},
        None,
        "sampling.temperature",
    ),
    JoinCase("infinite top_p", "InferenceEvent", {"sampling": {**SAMPLING, "top_p": math.inf}}, None, "sampling.top_p"),
    JoinCase("duplicate candidate index", "InferenceEvent", {"candidates": [TWO[0], TWO[0]]}, None, "candidates"),
    JoinCase(
        "candidate index gap", "InferenceEvent", {"candidates": [TWO[0], {**TWO[1], "index": 5}]}, None, "candidates"
    ),
    JoinCase(
        "300 candidates",
        "InferenceEvent",
        {"candidates": [{"index": i, "text": "x"} for i in range(300)]},
        None,
        "candidates",
    ),
    JoinCase(
        "inference before 1970",
        "InferenceEvent",
        {"event_time": datetime(1960, 1, 1, tzinfo=timezone.utc)},
        None,
        "event_time",
    ),
    JoinCase(
        "feedback before 1970",
        "FeedbackEvent",
        {"event_time": datetime(1, 1, 1, tzinfo=timezone.utc)},
        None,
        "event_time",
    ),
    JoinCase("chosen == rejected", "FeedbackEvent", {"pairwise": {"chosen": 1, "rejected": 1}}, None, "pairwise"),
    JoinCase(
        "negative rejected", "FeedbackEvent", {"pairwise": {"chosen": 1, "rejected": -2}}, None, "pairwise.rejected"
    ),
    JoinCase(
        "chosen past the candidates", "FeedbackEvent", {"pairwise": {"chosen": 3, "rejected": 0}}, 3, "pairwise.chosen"
    ),
    JoinCase("NaN score", "FeedbackEvent", scored(1.0, math.nan), None, "scores[1].score"),
    JoinCase("score spread overflows", "FeedbackEvent", scored(1.5e308, -1.5e308), None, "scores"),
    JoinCase("more scores than candidates", "FeedbackEvent", scored(1.0, 0.5, 0.0), 2, "scores"),
    JoinCase(
        "ranking repeats a candidate",
        "FeedbackEvent",
        {"kind": "RANKING", "pairwise": None, "ranking": [{"index": 1, "rank": 1}, {"index": 1, "rank": 2}]},
        None,
        "ranking",
    ),
    JoinCase(
        "rank 0",
        "FeedbackEvent",
        {"kind": "RANKING", "pairwise": None, "ranking": [{"index": 0, "rank": 0}, {"index": 1, "rank": 2}]},
        None,
        "ranking[0].rank",
    ),
    JoinCase(
        "infinite rating value",
        "FeedbackEvent",
        {"kind": "RATING", "pairwise": None, "rating": {"index": 0, "label": True, "value": math.inf, "scale": None}},
        None,
        "rating.value",
    ),
    JoinCase(
        "NaN implicit value",
        "FeedbackEvent",
        {
            "kind": "IMPLICIT",
            "pairwise": None,
            "implicit": {"index": 0, "signal": "dwell", "label": True, "value": math.nan},
        },
        None,
        "implicit.value",
    ),
]


@pytest.mark.parametrize("case", JOIN_CASES, ids=[c.name for c in JOIN_CASES])
def test_decoded_records_are_checked_for_what_the_join_assumes(case: JoinCase) -> None:
    """What the processor does with each input (decode, then validate without the schema check) refuses it."""
    record = decoded(case.record_type, **case.changes)
    with pytest.raises(ValidationError) as info:
        if case.record_type == "InferenceEvent":
            inference_record(record, check_schema=False)
        else:
            feedback_record(record, candidate_count=case.candidate_count, check_schema=False)
    fields = [p.split(": ", 1)[0] for p in info.value.problems]
    assert case.field in fields, info.value.problems
