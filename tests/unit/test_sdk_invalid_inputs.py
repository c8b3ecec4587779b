"""Every invalid input to log_inference/log_feedback is a ValidationError naming the field, and nothing is sent.

A caller's mistake must never surface as TypeError, AttributeError, KeyError,
OverflowError or a raw KafkaException from deep inside the SDK. The size
limits, the edge values that must still pass and a fuzz of every field are in
``test_sdk_limits.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest

from preflog.producers import PreflogProducer
from preflog.schemas.exceptions import ValidationError

from ..conftest import feedback, inference
from .sdk_helpers import INF, NAN, REWARD_MODEL, RID, offline_producer, scores, sent


@dataclass(frozen=True)
class Bad:
    name: str
    event_type: str  # inference or feedback
    fields: dict[str, Any]  # replace these fields of a valid event
    field: str  # the message must name this field


class NoTruth:
    """Like a numpy array: no truth value, and == answers with another one."""

    def __bool__(self) -> bool:
        raise ValueError("the truth value of an array is ambiguous")

    def __eq__(self, other: object) -> NoTruth:  # type: ignore[override]
        return NoTruth()

    __hash__ = None  # type: ignore[assignment]


CASES = [
    # -- inference: ids and times
    Bad("request_id None", "inference", {"request_id": None}, "request_id"),
    Bad("request_id int", "inference", {"request_id": 17}, "request_id"),
    Bad("request_id not a UUID", "inference", {"request_id": "req-17"}, "request_id"),
    Bad("request_id bytes", "inference", {"request_id": uuid.uuid4().bytes}, "request_id"),
    Bad("request_id list", "inference", {"request_id": [RID]}, "request_id"),
    Bad("naive datetime", "inference", {"event_time": datetime(2026, 1, 1)}, "event_time"),
    Bad("event_time not ISO", "inference", {"event_time": "yesterday at noon"}, "event_time"),
    Bad("event_time without offset", "inference", {"event_time": "2026-11-01T12:00:00"}, "event_time"),
    Bad("negative epoch", "inference", {"event_time": -1}, "event_time"),
    Bad("epoch in year 10000", "inference", {"event_time": 253_402_300_800_000}, "event_time"),
    Bad("epoch beyond a float", "inference", {"event_time": 10**400}, "event_time"),
    Bad("ISO year 10000", "inference", {"event_time": "10000-01-01T00:00:00Z"}, "event_time"),
    Bad("year 2300", "inference", {"event_time": datetime(2300, 1, 1, tzinfo=timezone.utc)}, "event_time"),
    Bad("event_time bool", "inference", {"event_time": True}, "event_time"),
    Bad("event_time float", "inference", {"event_time": 1.5e12}, "event_time"),
    # -- inference: text
    Bad("prompt None", "inference", {"prompt": None, "prompt_messages": None}, "prompt"),
    Bad("prompt int", "inference", {"prompt": 42}, "prompt"),
    Bad("prompt bytes", "inference", {"prompt": b"Name a prime"}, "prompt"),
    Bad("prompt lone surrogate", "inference", {"prompt": "Name a prime \ud800"}, "prompt"),
    Bad("prompt without a truth value", "inference", {"prompt": NoTruth()}, "prompt"),
    Bad("model name without a truth value", "inference", {"model": {"name": NoTruth()}}, "model.name"),
    Bad(
        "judge version without a truth value",
        "feedback",
        {"source": {**REWARD_MODEL, "version": NoTruth()}},
        "source.version",
    ),
    Bad("prompt_messages str", "inference", {"prompt_messages": "hello"}, "prompt_messages"),
    Bad("prompt_messages item not a dict", "inference", {"prompt_messages": ["hello"]}, "prompt_messages[0]"),
    Bad(
        "chat message without content",
        "inference",
        {"prompt_messages": [{"role": "user"}]},
        "prompt_messages[0].content",
    ),
    # -- inference: candidates
    Bad("candidates None", "inference", {"candidates": None}, "candidates"),
    Bad("candidates str", "inference", {"candidates": "ab"}, "candidates"),
    Bad("candidates dict", "inference", {"candidates": {"0": "a", "1": "b"}}, "candidates"),
    Bad("candidates of 1", "inference", {"candidates": ["only"]}, "candidates"),
    Bad("candidate int", "inference", {"candidates": [1, 2]}, "candidates[0]"),
    Bad("candidate None", "inference", {"candidates": ["a", None]}, "candidates[1]"),
    Bad("candidate text int", "inference", {"candidates": ["a", {"index": 1, "text": 7}]}, "candidates[1].text"),
    Bad("candidate text bytes", "inference", {"candidates": ["a", {"index": 1, "text": b"b"}]}, "candidates[1].text"),
    Bad("candidate text surrogate", "inference", {"candidates": ["a", "b\udcff"]}, "candidates[1].text"),
    Bad("candidate non-text keys", "inference", {"candidates": ["a", {1: "x", "text": "b"}]}, "candidates[1]"),
    Bad(
        "candidate unknown field", "inference", {"candidates": ["a", {"text": "b", "score": 1}]}, "candidates[1].score"
    ),
    Bad("negative candidate index", "inference", {"candidates": [{"index": -1, "text": "a"}, "b"]}, "candidates"),
    Bad("huge candidate index", "inference", {"candidates": ["a", {"index": 2**40, "text": "b"}]}, "candidates"),
    Bad("too many candidates", "inference", {"candidates": ["x"] * 257}, "candidates"),
    Bad(
        "completion_tokens beyond int32",
        "inference",
        {"candidates": ["a", {"text": "b", "completion_tokens": 2**31}]},
        "candidates[1].completion_tokens",
    ),
    # -- inference: model, sampling, context, metadata
    Bad("model None", "inference", {"model": None}, "model"),
    Bad("model int", "inference", {"model": 5}, "model"),
    Bad("model list", "inference", {"model": ["acme-chat"]}, "model"),
    Bad("model name int", "inference", {"model": {"name": 5}}, "model.name"),
    Bad("model unknown field", "inference", {"model": {"name": "acme", "size": "7b"}}, "model.size"),
    Bad("sampling str", "inference", {"sampling": "hot"}, "sampling"),
    Bad("sampling list", "inference", {"sampling": [0.7, 0.9]}, "sampling"),
    Bad("NaN temperature", "inference", {"sampling": {"temperature": NAN}}, "sampling.temperature"),
    Bad("infinite temperature", "inference", {"sampling": {"temperature": INF}}, "sampling.temperature"),
    Bad("temperature str", "inference", {"sampling": {"temperature": "hot"}}, "sampling.temperature"),
    Bad("temperature beyond a float", "inference", {"sampling": {"temperature": 10**400}}, "sampling.temperature"),
    Bad("NaN top_p", "inference", {"sampling": {"top_p": NAN}}, "sampling.top_p"),
    Bad("seed beyond int64", "inference", {"sampling": {"seed": 2**64}}, "sampling.seed"),
    Bad("max_tokens beyond int32", "inference", {"sampling": {"max_tokens": 2**40}}, "sampling.max_tokens"),
    Bad("top_k bool", "inference", {"sampling": {"top_k": True}}, "sampling.top_k"),
    Bad("sampling unknown field", "inference", {"sampling": {"temprature": 0.7}}, "sampling.temprature"),
    Bad("sampling.extra list", "inference", {"sampling": {"extra": ["stop"]}}, "sampling.extra"),
    Bad("context str", "inference", {"context": "s1"}, "context"),
    Bad("context unknown field", "inference", {"context": {"email": "a@b.c"}}, "context.email"),
    Bad("context user_id int", "inference", {"context": {"user_id": 5}}, "context.user_id"),
    Bad("metadata value list", "inference", {"metadata": {"k": [1, 2]}}, "metadata.k"),
    Bad("metadata value None", "inference", {"metadata": {"k": None}}, "metadata.k"),
    Bad("metadata str", "inference", {"metadata": "region=eu"}, "metadata"),
    Bad("metadata surrogate", "inference", {"metadata": {"k": "\ud800"}}, "metadata.k"),
    Bad("prompt_tokens str", "inference", {"prompt_tokens": "12"}, "prompt_tokens"),
    Bad("unknown top-level field", "inference", {"reqest_id": RID}, "reqest_id"),
    # -- feedback
    Bad("feedback_id None", "feedback", {"feedback_id": None}, "feedback_id"),
    Bad("feedback_id int", "feedback", {"feedback_id": 12}, "feedback_id"),
    Bad("feedback request_id bad", "feedback", {"request_id": "r-1"}, "request_id"),
    Bad("feedback naive datetime", "feedback", {"event_time": datetime(2026, 1, 1)}, "event_time"),
    Bad("feedback year 1900", "feedback", {"event_time": datetime(1900, 1, 1, tzinfo=timezone.utc)}, "event_time"),
    Bad("kind unknown", "feedback", {"kind": "VIBES"}, "kind"),
    Bad("kind None", "feedback", {"kind": None}, "kind"),
    Bad("kind int", "feedback", {"kind": 3}, "kind"),
    Bad("pairwise str", "feedback", {"pairwise": "1>0"}, "pairwise"),
    Bad("pairwise list", "feedback", {"pairwise": [1, 0]}, "pairwise"),
    Bad("chosen str", "feedback", {"pairwise": {"chosen": "1", "rejected": 0}}, "pairwise.chosen"),
    Bad("chosen bool", "feedback", {"pairwise": {"chosen": True, "rejected": 0}}, "pairwise.chosen"),
    Bad("chosen negative", "feedback", {"pairwise": {"chosen": -1, "rejected": 0}}, "pairwise.chosen"),
    Bad("chosen huge", "feedback", {"pairwise": {"chosen": 2**40, "rejected": 0}}, "pairwise.chosen"),
    Bad("chosen == rejected", "feedback", {"pairwise": {"chosen": 1, "rejected": 1}}, "pairwise"),
    Bad(
        "pairwise unknown field", "feedback", {"pairwise": {"chosen": 1, "rejected": 0, "margin": 2}}, "pairwise.margin"
    ),
    Bad("ranking str", "feedback", {"kind": "RANKING", "pairwise": None, "ranking": "0>1"}, "ranking"),
    Bad("ranking entry int", "feedback", {"kind": "RANKING", "pairwise": None, "ranking": [0, 1]}, "ranking[0]"),
    Bad(
        "rank float",
        "feedback",
        {"kind": "RANKING", "pairwise": None, "ranking": [{"index": 0, "rank": 1}, {"index": 1, "rank": 1.5}]},
        "ranking[1].rank",
    ),
    Bad(
        "rank 0",
        "feedback",
        {"kind": "RANKING", "pairwise": None, "ranking": [{"index": 0, "rank": 1}, {"index": 1, "rank": 0}]},
        "ranking[1].rank",
    ),
    Bad("scores NaN", "feedback", scores(0.5, NAN), "scores[1].score"),
    Bad("scores infinite", "feedback", scores(-INF, 0.5), "scores[0].score"),
    Bad("score beyond a float", "feedback", scores(1.0, 10**400), "scores[1].score"),
    Bad("score str", "feedback", scores(1.0, "high"), "scores[1].score"),
    Bad("scores whose spread overflows", "feedback", scores(1.7e308, -1.7e308), "scores"),
    Bad("scores dict", "feedback", {**scores(1.0, 0.0), "scores": {"0": 1.0}}, "scores"),
    Bad(
        "rating str",
        "feedback",
        {"kind": "RATING", "pairwise": None, "rating": "thumbs up"},
        "rating",
    ),
    Bad(
        "rating NaN value",
        "feedback",
        {"kind": "RATING", "pairwise": None, "rating": {"index": 0, "label": True, "value": NAN}},
        "rating.value",
    ),
    Bad(
        "rating label str",
        "feedback",
        {"kind": "RATING", "pairwise": None, "rating": {"index": 0, "label": "yes"}},
        "rating.label",
    ),
    Bad(
        "implicit without signal",
        "feedback",
        {"kind": "IMPLICIT", "pairwise": None, "implicit": {"index": 0, "label": True}},
        "implicit.signal",
    ),
    Bad("source None", "feedback", {"source": None}, "source"),
    Bad("source int", "feedback", {"source": 5}, "source"),
    Bad("source type unknown", "feedback", {"source": {"type": "ORACLE"}}, "source.type"),
    Bad("source type int", "feedback", {"source": {"type": 1}}, "source.type"),
    Bad("source id int", "feedback", {"source": {"type": "END_USER", "id": 5}}, "source.id"),
    Bad("source unknown field", "feedback", {"source": {"type": "END_USER", "email": "a@b.c"}}, "source.email"),
    Bad("reward model without version", "feedback", {"source": {"type": "REWARD_MODEL", "name": "rm"}}, "source"),
    Bad("explicit str", "feedback", {"explicit": "yes"}, "explicit"),
    Bad("rationale int", "feedback", {"rationale": 5}, "rationale"),
    Bad("rationale surrogate", "feedback", {"rationale": "\udcff"}, "rationale"),
    Bad("feedback metadata value dict", "feedback", {"metadata": {"k": {"a": 1}}}, "metadata.k"),
    Bad("feedback unknown field", "feedback", {"label": True}, "label"),
    Bad(  # it raised a bare KeyError
        "SCORES without scores", "feedback", {"kind": "SCORES", "pairwise": None, "source": REWARD_MODEL}, "scores"
    ),
]


@pytest.fixture
def offline() -> Iterator[PreflogProducer]:
    producer = offline_producer()
    yield producer
    producer._closed.set()


def names(problem: str, field: str) -> bool:
    """Whether ``problem`` (``path: reason``) is about ``field`` or something inside it."""
    path = problem.split(": ", 1)[0]
    return path == field or path.startswith((field + ".", field + "["))


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 43
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_input_is_a_validation_error_naming_the_field(case: Bad, offline: PreflogProducer) -> None:
    if case.event_type == "inference":
        event, log = {**inference(), **case.fields}, offline.log_inference
    else:
        event, log = {**feedback(RID), **case.fields}, offline.log_feedback
    with pytest.raises(ValidationError) as info:
        log(event)
    assert type(info.value) is ValidationError
    named = [p for p in info.value.problems if names(p, case.field)]
    assert named, f"no problem names {case.field!r}: {info.value.problems}"
    assert offline.produced == 0 and sent(offline) == []


def test_the_same_inputs_as_keyword_arguments(offline: PreflogProducer) -> None:
    with pytest.raises(ValidationError, match="sampling: expected an object"):
        offline.log_inference(**inference(sampling="hot"))
    with pytest.raises(ValidationError, match="event: expected a mapping"):
        offline.log_inference([("prompt", "p")])  # type: ignore[arg-type]
    assert sent(offline) == []


def test_every_problem_is_listed_at_once(offline: PreflogProducer) -> None:
    bad = inference(request_id=7, sampling={"temperature": NAN, "seed": 2**64}, context={"email": "x"}, prompt=1)
    with pytest.raises(ValidationError) as info:
        offline.log_inference(bad)
    fields = sorted(p.split(":")[0] for p in info.value.problems)
    assert fields == ["context.email", "prompt", "request_id", "sampling.seed", "sampling.temperature"]
