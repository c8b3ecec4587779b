"""Hostile records for the fault suite: each kind of bad input, with the outcome a correct pipeline gives it.

Every record is sent raw (bytes and key as given) beside valid traffic. Most
must become exactly one dead letter with a reason; a few are valid records in
disguise and must get their correct outcome (an unmatched reason, a pair).
Valid companions (an inference a bad feedback points at, the first copy of a
conflicting inference) are listed too, each with its own expected outcome, so
every record the suite sends is accounted for by its offset.

Bodies that the real schema cannot write (an enum index of -1, an int of 2**40,
invalid UTF-8) are written with a doctored copy of the schema whose field has
the same wire encoding (enum -> int, int -> long, string -> bytes) and framed
with the real schema's fingerprint.
"""

from __future__ import annotations

import copy
import io
import math
import random
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import fastavro

from preflog.schemas.codec import SOE_MAGIC, SingleObjectCodec
from preflog.schemas.registry import default_store, strip_uuid

__all__ = ["BadInput", "Expect", "bad_inputs"]

CODEC = SingleObjectCodec()


@dataclass(frozen=True)
class Expect:
    """Where a record must end up.

    ``table`` is dead_letter, unmatched, pairs or none (ignored: an identical
    duplicate). For dead letters ``detail`` is the expected error_class (None:
    any, with a reason); for unmatched the reason; for pairs the (chosen,
    rejected) indices. ``alternatives`` are other acceptable outcomes.
    """

    table: str
    detail: Any = None
    alternatives: tuple[Expect, ...] = ()

    def describe(self) -> str:
        text = self.table if self.detail is None else f"{self.table} {self.detail}"
        return " or ".join([text, *(a.describe() for a in self.alternatives)])


@dataclass
class BadInput:
    """One record to send raw."""

    kind: str
    role: str  # inference or feedback
    key: bytes | None
    value: bytes | None
    expect: Expect
    feedback_id: str | None = None  # for pairs and unmatched by feedback
    request_id: str | None = None
    companion: bool = False  # a valid helper record, not a bad input itself
    future: bool = False  # an event time far ahead: poisons stream time when accepted
    sent_at: dict[str, Any] = field(default_factory=dict)  # topic/partition/offset from the delivery report


def _writer_schema(record_type: str, retype: dict[str, Any]) -> Any:
    """The record type's schema with some fields given another type of the same wire encoding."""
    raw = copy.deepcopy(strip_uuid(default_store().latest(record_type).raw))
    for path, new_type in retype.items():
        node = raw
        *parents, leaf = path.split(".")
        for name in parents:
            node = _record_of(_field(node, name)["type"])
        _field(node, leaf)["type"] = new_type
    return fastavro.parse_schema(raw, named_schemas={})


def _field(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in record["fields"] if f["name"] == name)


def _record_of(node: Any) -> dict[str, Any]:
    """The record inside a union or array type."""
    if isinstance(node, list):
        return _record_of(next(b for b in node if b != "null"))
    if isinstance(node, dict) and node.get("type") == "array":
        return _record_of(node["items"])
    assert isinstance(node, dict) and node.get("type") == "record", node
    return node


def encode(record_type: str, record: dict[str, Any], retype: dict[str, Any] | None = None) -> bytes:
    """Single-object framed bytes; with ``retype``, the body is written by a doctored schema."""
    if not retype:
        return CODEC.encode(record_type, record)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, _writer_schema(record_type, retype), record)
    return SOE_MAGIC + default_store().latest(record_type).fingerprint + buf.getvalue()


def _inference(rng: random.Random, when: datetime, **overrides: Any) -> dict[str, Any]:
    rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    record: dict[str, Any] = {
        "request_id": rid,
        "event_time": when,
        "prompt": "Which answer is right?",
        "prompt_messages": None,
        "candidates": [
            {"index": 0, "text": "first", "messages": None, "completion_tokens": 3, "finish_reason": "stop"},
            {"index": 1, "text": "second", "messages": None, "completion_tokens": 3, "finish_reason": "stop"},
            {"index": 2, "text": "third", "messages": None, "completion_tokens": 3, "finish_reason": "stop"},
        ],
        "model": {"name": "acme-chat", "version": "2026.11", "checkpoint_hash": None},
        "prompt_tokens": 5,
        "sampling": {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "max_tokens": 64, "seed": 3, "extra": {}},
        "context": {"session_id": "s-bad", "user_id": "u-bad", "tenant": "acme", "service": "faults"},
        "metadata": {},
    }
    record.update(overrides)
    return record


def _feedback(rng: random.Random, rid: str, when: datetime | int, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "feedback_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "request_id": rid,
        "event_time": when,
        "kind": "PAIRWISE",
        "pairwise": {"chosen": 1, "rejected": 0},
        "ranking": None,
        "scores": None,
        "rating": None,
        "implicit": None,
        "source": {"type": "HUMAN_ANNOTATOR", "id": "annotator-bad", "name": None, "version": None},
        "explicit": True,
        "rationale": None,
        "metadata": {},
    }
    record.update(overrides)
    return record


DL = Expect("dead_letter")
Builder = Callable[[random.Random, datetime], list[BadInput]]


def _dl(error_class: str | None = None) -> Expect:
    return Expect("dead_letter", error_class)


def bad_inputs(seed: int, when: datetime, kinds: list[str] | None = None) -> list[BadInput]:
    """The bad records (and their companions) of every kind, or of ``kinds``; event times near ``when``."""
    rng = random.Random(seed)
    out: list[BadInput] = []
    for kind, build in BUILDERS.items():
        if kinds is None or kind in kinds:
            for record in build(rng, when):
                record.kind = kind
                out.append(record)
    return out


def _inf(rng: random.Random, when: datetime, **overrides: Any) -> tuple[str, dict[str, Any]]:
    record = _inference(rng, when, **overrides)
    return record["request_id"], record


def _companion(rid: str, record: dict[str, Any], expect: Expect) -> BadInput:
    return BadInput("", "inference", rid.encode(), encode("InferenceEvent", record), expect, None, rid, True)


def _lonely_inference(rng: random.Random, when: datetime) -> tuple[str, BadInput]:
    """A valid inference that will get no valid feedback: expected NO_FEEDBACK."""
    rid, record = _inf(rng, when)
    return rid, _companion(rid, record, Expect("unmatched", "NO_FEEDBACK"))


def _bad_feedback(retype: dict[str, Any] | None = None, expect: Expect = DL, **fields: Any) -> Builder:
    """A feedback for a lonely inference, with ``fields`` set (and ``retype`` to write what the schema cannot)."""

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = _lonely_inference(rng, when)
        fb = _feedback(rng, rid, when + timedelta(seconds=1), **fields)
        value = encode("FeedbackEvent", fb, retype)
        return [inf, BadInput("", "feedback", rid.encode(), value, expect, fb["feedback_id"], rid)]

    return build


def _bad_inference(retype: dict[str, Any] | None = None, expect: Expect = DL, **fields: Any) -> Builder:
    """An inference with ``fields`` set, and a valid feedback for it (which must then not pair)."""

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = _inf(rng, when, **fields)
        fb = _feedback(rng, rid, when + timedelta(seconds=1))
        bad = BadInput("", "inference", rid.encode(), encode("InferenceEvent", inf, retype), expect, None, rid)
        orphan = BadInput(
            "", "feedback", rid.encode(), encode("FeedbackEvent", fb), Expect("unmatched", "NO_INFERENCE"), None, rid
        )
        orphan.feedback_id, orphan.companion = fb["feedback_id"], True
        return [bad, orphan]

    return build


def _raw(role: str, value: Callable[[random.Random, datetime], bytes | None], expect: Expect | None = None) -> Builder:
    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return [BadInput("", role, rid.encode(), value(rng, when), expect or _dl("DecodeError"), None, rid)]

    return build


def _truncated(role: str) -> Callable[[random.Random, datetime], bytes]:
    def value(rng: random.Random, when: datetime) -> bytes:
        if role == "inference":
            data = encode("InferenceEvent", _inference(rng, when))
        else:
            data = encode("FeedbackEvent", _feedback(rng, str(uuid.uuid4()), when))
        return data[: len(data) // 2]

    return value


def _unknown_fingerprint(rng: random.Random, when: datetime) -> bytes:
    data = encode("FeedbackEvent", _feedback(rng, str(uuid.uuid4()), when))
    return SOE_MAGIC + rng.randbytes(8) + data[10:]


def _confluent(rng: random.Random, when: datetime) -> bytes:
    data = encode("FeedbackEvent", _feedback(rng, str(uuid.uuid4()), when))
    return b"\x00" + struct.pack(">I", 1) + data[10:]


def _other_type(role: str) -> Builder:
    """An InferenceEvent on the feedback topic or the reverse, keyed correctly."""

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = _inf(rng, when)
        if role == "feedback":
            value = encode("InferenceEvent", inf)
        else:
            value = encode("FeedbackEvent", _feedback(rng, rid, when))
        return [BadInput("", role, rid.encode(), value, _dl("DecodeError"), None, rid)]

    return build


def _trailing(rng: random.Random, when: datetime) -> list[BadInput]:
    rid, inf = _lonely_inference(rng, when)
    fb = _feedback(rng, rid, when + timedelta(seconds=1))
    value = encode("FeedbackEvent", fb) + b"\x00\x00junk"
    return [inf, BadInput("", "feedback", rid.encode(), value, _dl("DecodeError"), fb["feedback_id"], rid)]


def _key(kind: str) -> Builder:
    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = _lonely_inference(rng, when)
        fb = _feedback(rng, rid, when + timedelta(seconds=1))
        key = None if kind == "missing" else str(uuid.uuid4()).encode()
        value = encode("FeedbackEvent", fb)
        return [inf, BadInput("", "feedback", key, value, _dl("KeyMismatch"), fb["feedback_id"], rid)]

    return build


def _inference_key_mismatch(rng: random.Random, when: datetime) -> list[BadInput]:
    _, inf = _inf(rng, when)
    return [BadInput("", "inference", str(uuid.uuid4()).encode(), encode("InferenceEvent", inf), _dl("KeyMismatch"))]


def _conflicting(rng: random.Random, when: datetime) -> list[BadInput]:
    """An inference, a feedback that pairs with it, then the same request_id with other content."""
    rid, inf = _inf(rng, when)
    fb = _feedback(rng, rid, when + timedelta(seconds=1))
    other = {**inf, "prompt": "something else entirely"}
    return [
        _companion(rid, inf, Expect("none")),  # its pair is the feedback's outcome
        BadInput(
            "",
            "feedback",
            rid.encode(),
            encode("FeedbackEvent", fb),
            Expect("pairs", (1, 0)),
            fb["feedback_id"],
            rid,
            True,
        ),
        BadInput(
            "", "inference", rid.encode(), encode("InferenceEvent", other), _dl("ConflictingInference"), None, rid
        ),
    ]


def _identical_duplicate(rng: random.Random, when: datetime) -> list[BadInput]:
    rid, inf = _lonely_inference(rng, when)
    return [inf, BadInput("", "inference", rid.encode(), inf.value, Expect("none"), None, rid)]


def _oversized(rng: random.Random, when: datetime) -> list[BadInput]:
    """A 1.2 MB prompt and a feedback for it: either a pair, or the inference dead-lettered as too large and
    the feedback unmatched NO_INFERENCE."""
    rid, inf = _inf(rng, when, prompt="x" * 1_200_000)
    fb = _feedback(rng, rid, when + timedelta(seconds=1))
    refused = Expect("dead_letter", None, (Expect("none"),))
    either = Expect("unmatched", "NO_INFERENCE", (Expect("pairs", (1, 0)),))
    return [
        BadInput("", "inference", rid.encode(), encode("InferenceEvent", inf), refused, None, rid),
        BadInput("", "feedback", rid.encode(), encode("FeedbackEvent", fb), either, fb["feedback_id"], rid),
    ]


def _future(role: str) -> Builder:
    """Event time in year 9999: far ahead of any Kafka timestamp."""
    far = datetime(9999, 1, 1, tzinfo=timezone.utc)

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = _lonely_inference(rng, when)
        if role == "feedback":
            fb = _feedback(rng, rid, far)
            record = BadInput("", "feedback", rid.encode(), encode("FeedbackEvent", fb), _dl(), fb["feedback_id"], rid)
            record.future = True
            return [inf, record]
        rid2, bad = _inf(rng, far)
        record = BadInput("", "inference", rid2.encode(), encode("InferenceEvent", bad), _dl(), None, rid2)
        record.future = True
        return [record]

    return build


def _past(role: str) -> Builder:
    """Event time 1970: a valid record whose window closed long ago."""
    past = datetime(1970, 1, 2, tzinfo=timezone.utc)

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        if role == "inference":
            rid, inf = _inf(rng, past)
            return [
                BadInput(
                    "",
                    "inference",
                    rid.encode(),
                    encode("InferenceEvent", inf),
                    Expect("unmatched", "NO_FEEDBACK"),
                    None,
                    rid,
                )
            ]
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        fb = _feedback(rng, rid, past)
        expect = Expect("unmatched", "NO_INFERENCE")
        return [BadInput("", "feedback", rid.encode(), encode("FeedbackEvent", fb), expect, fb["feedback_id"], rid)]

    return build


def _beyond_datetime(rng: random.Random, when: datetime) -> list[BadInput]:
    """event_time = 2**62 ms: beyond any calendar a reader can represent."""
    rid, inf = _lonely_inference(rng, when)
    fb = _feedback(rng, rid, 2**62)
    value = encode("FeedbackEvent", fb, {"event_time": "long"})
    return [inf, BadInput("", "feedback", rid.encode(), value, _dl(), fb["feedback_id"], rid)]


def _utf8(role: str) -> Builder:
    bad = b"caf\xc3\x28 \xff\xfe"

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        if role == "inference":
            return _bad_inference({"prompt": "bytes"}, _dl("DecodeError"), prompt=bad)(rng, when)
        return _bad_feedback({"rationale": ["null", "bytes"]}, _dl("DecodeError"), rationale=bad)(rng, when)

    return build


def _nan_scores(value: float) -> Builder:
    scores = [{"index": 0, "score": value}, {"index": 1, "score": 0.5}, {"index": 2, "score": 0.1}]
    return _bad_feedback(None, _dl(), kind="SCORES", pairwise=None, scores=scores, source=_RM)


_RM = {"type": "REWARD_MODEL", "id": "rm", "name": "acme-rm", "version": "8"}

BUILDERS: dict[str, Builder] = {
    "garbage bytes (feedback)": _raw("feedback", lambda rng, _: b"\x13\x37" + rng.randbytes(30)),
    "garbage bytes (inference)": _raw("inference", lambda rng, _: rng.randbytes(25)),
    "truncated Avro (feedback)": _raw("feedback", _truncated("feedback")),
    "truncated Avro (inference)": _raw("inference", _truncated("inference")),
    "unknown schema fingerprint": _raw("feedback", _unknown_fingerprint),
    "inference record on the feedback topic": _other_type("feedback"),
    "feedback record on the inference topic": _other_type("inference"),
    "Confluent framing where single-object is expected": _raw("feedback", _confluent),
    "empty value": _raw("feedback", lambda rng, _: b""),
    "null value (tombstone)": _raw("feedback", lambda rng, _: None),
    "only the magic bytes": _raw("feedback", lambda rng, _: SOE_MAGIC),
    "trailing bytes after the Avro body": _trailing,
    "key does not match request_id (feedback)": _key("other"),
    "missing key (feedback)": _key("missing"),
    "key does not match request_id (inference)": _inference_key_mismatch,
    "invalid UTF-8 in a string (inference prompt)": _utf8("inference"),
    "invalid UTF-8 in a string (feedback rationale)": _utf8("feedback"),
    "enum index -1 (feedback kind)": _bad_feedback({"kind": "int"}, DL, kind=-1),
    "enum index too large (feedback kind)": _bad_feedback({"kind": "int"}, _dl("DecodeError"), kind=9),
    "enum index -1 (source type)": _bad_feedback({"source.type": "int"}, DL, source={**_RM, "type": -1}),
    "int beyond 32 bits (pairwise.chosen)": _bad_feedback(
        {"pairwise.chosen": "long"}, DL, pairwise={"chosen": 2**40, "rejected": 0}
    ),
    "int beyond 32 bits (inference sampling.top_k)": _bad_inference(
        {"sampling.top_k": ["null", "long"]}, DL, sampling={"top_k": 2**40, "extra": {}}
    ),
    "int beyond 32 bits (candidate index)": _bad_inference(
        {"candidates.index": "long"},
        DL,
        candidates=[{"index": 0, "text": "a"}, {"index": 2**33 + 1, "text": "b"}],
    ),
    "candidate index that does not exist": _bad_feedback(
        None, _dl("InvalidReference"), pairwise={"chosen": 7, "rejected": 0}
    ),
    "negative candidate index": _bad_feedback(None, DL, pairwise={"chosen": -1, "rejected": 0}),
    "chosen equals rejected": _bad_feedback(None, DL, pairwise={"chosen": 1, "rejected": 1}),
    "ranking names a candidate twice": _bad_feedback(
        None, DL, kind="RANKING", pairwise=None, ranking=[{"index": 0, "rank": 1}, {"index": 0, "rank": 2}]
    ),
    "zero-length ranking array": _bad_feedback(None, DL, kind="RANKING", pairwise=None, ranking=[]),
    "payload of another kind": _bad_feedback(None, DL, kind="RANKING"),
    "NaN score": _nan_scores(math.nan),
    "infinite score": _nan_scores(math.inf),
    "negative infinite score": _nan_scores(-math.inf),
    "NaN temperature (inference)": _bad_inference(None, DL, sampling={"temperature": math.nan, "extra": {}}),
    "zero-length candidates array": _bad_inference(None, DL, candidates=[]),
    "request_id that is not a UUID": _raw(
        "inference", lambda rng, when: encode("InferenceEvent", _inference(rng, when, request_id="not-a-uuid")), DL
    ),
    "reward model without name and version": _bad_feedback(None, DL, source={"type": "REWARD_MODEL", "id": "rm"}),
    "event time in year 9999 (feedback)": _future("feedback"),
    "event time in year 9999 (inference)": _future("inference"),
    "event time beyond the calendar (2**62 ms)": _beyond_datetime,
    "event time in 1970 (inference, valid: expires at once)": _past("inference"),
    "event time in 1970 (feedback, valid: no inference)": _past("feedback"),
    "duplicate inference id with other content": _conflicting,
    "identical duplicate inference (valid: ignored)": _identical_duplicate,
    "oversized value (1.2 MB prompt)": _oversized,
}
