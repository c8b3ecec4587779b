"""Invalid events get a clear error naming the field, and the SDK sends nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from preflog.producers import PreflogProducer
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record, to_datetime
from preflog.schemas.exceptions import ValidationError

from ..conftest import feedback, inference

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
