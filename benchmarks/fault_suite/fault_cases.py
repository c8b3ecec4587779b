"""The builders of the fault suite's hostile inputs: generic ones (a bad field, a raw value) and special cases.

Each function here is a ``Builder`` (or makes one, or makes a raw value for
:func:`raw_record`): given a random generator and an event time, it
returns the records to send, each with its expected outcome.
:func:`bad_feedback` and :func:`bad_inference` set fields of an otherwise
valid record; the others build framing, key, time, duplicate and size cases.
The table that names them all is ``fault_inputs.BUILDERS``.
"""

from __future__ import annotations

import random
import struct
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from fault_records import (
    DL,
    BadInput,
    Builder,
    Expect,
    companion,
    dead_letter,
    encode,
    feedback_body,
    inference_body,
    keyed_inference,
    lonely_inference,
)

from preflog.schemas.codec import SOE_MAGIC

__all__ = [
    "bad_feedback",
    "bad_inference",
    "beyond_datetime",
    "conflicting_inference",
    "confluent_framing",
    "future_time",
    "identical_duplicate",
    "inference_key_mismatch",
    "other_type",
    "oversized",
    "past_time",
    "raw_record",
    "trailing_bytes",
    "truncated",
    "unknown_fingerprint",
    "wrong_key",
]


def bad_feedback(retype: dict[str, Any] | None = None, expect: Expect = DL, **fields: Any) -> Builder:
    """A feedback for a lonely inference, with ``fields`` set (and ``retype`` to write what the schema cannot)."""

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = lonely_inference(rng, when)
        fb = feedback_body(rng, rid, when + timedelta(seconds=1), **fields)
        value = encode("FeedbackEvent", fb, retype)
        return [inf, BadInput("", "feedback", rid.encode(), value, expect, fb["feedback_id"], rid)]

    return build


def bad_inference(retype: dict[str, Any] | None = None, expect: Expect = DL, **fields: Any) -> Builder:
    """An inference with ``fields`` set, and a valid feedback for it (which must then not pair)."""

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = keyed_inference(rng, when, **fields)
        fb = feedback_body(rng, rid, when + timedelta(seconds=1))
        bad = BadInput("", "inference", rid.encode(), encode("InferenceEvent", inf, retype), expect, None, rid)
        orphan = BadInput(
            "", "feedback", rid.encode(), encode("FeedbackEvent", fb), Expect("unmatched", "NO_INFERENCE"), None, rid
        )
        orphan.feedback_id, orphan.companion = fb["feedback_id"], True
        return [bad, orphan]

    return build


def raw_record(
    role: str, value: Callable[[random.Random, datetime], bytes | None], expect: Expect | None = None
) -> Builder:
    """One raw ``role`` record whose value ``value`` makes; expected a DecodeError dead letter unless ``expect``."""

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return [BadInput("", role, rid.encode(), value(rng, when), expect or dead_letter("DecodeError"), None, rid)]

    return build


def truncated(role: str) -> Callable[[random.Random, datetime], bytes]:
    """A raw value: a valid ``role`` record cut in half (the body ends inside a field)."""

    def value(rng: random.Random, when: datetime) -> bytes:
        if role == "inference":
            data = encode("InferenceEvent", inference_body(rng, when))
        else:
            data = encode("FeedbackEvent", feedback_body(rng, str(uuid.uuid4()), when))
        return data[: len(data) // 2]

    return value


def unknown_fingerprint(rng: random.Random, when: datetime) -> bytes:
    """A raw value: single-object framing with a fingerprint no schema version has."""
    data = encode("FeedbackEvent", feedback_body(rng, str(uuid.uuid4()), when))
    return SOE_MAGIC + rng.randbytes(8) + data[10:]


def confluent_framing(rng: random.Random, when: datetime) -> bytes:
    """A raw value: a feedback body in Confluent framing (magic 0, schema id 1)."""
    data = encode("FeedbackEvent", feedback_body(rng, str(uuid.uuid4()), when))
    return b"\x00" + struct.pack(">I", 1) + data[10:]


def other_type(role: str) -> Builder:
    """An InferenceEvent on the feedback topic or the reverse, keyed correctly."""

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = keyed_inference(rng, when)
        if role == "feedback":
            value = encode("InferenceEvent", inf)
        else:
            value = encode("FeedbackEvent", feedback_body(rng, rid, when))
        return [BadInput("", role, rid.encode(), value, dead_letter("DecodeError"), None, rid)]

    return build


def trailing_bytes(rng: random.Random, when: datetime) -> list[BadInput]:
    """A feedback followed by junk bytes after its Avro body: a DecodeError."""
    rid, inf = lonely_inference(rng, when)
    fb = feedback_body(rng, rid, when + timedelta(seconds=1))
    value = encode("FeedbackEvent", fb) + b"\x00\x00junk"
    return [inf, BadInput("", "feedback", rid.encode(), value, dead_letter("DecodeError"), fb["feedback_id"], rid)]


def wrong_key(kind: str) -> Builder:
    """A feedback keyed by another request_id (``kind`` "other") or with no key ("missing")."""

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = lonely_inference(rng, when)
        fb = feedback_body(rng, rid, when + timedelta(seconds=1))
        key = None if kind == "missing" else str(uuid.uuid4()).encode()
        value = encode("FeedbackEvent", fb)
        return [inf, BadInput("", "feedback", key, value, dead_letter("KeyMismatch"), fb["feedback_id"], rid)]

    return build


def inference_key_mismatch(rng: random.Random, when: datetime) -> list[BadInput]:
    """An inference keyed by another request_id: a KeyMismatch dead letter."""
    _, inf = keyed_inference(rng, when)
    return [
        BadInput("", "inference", str(uuid.uuid4()).encode(), encode("InferenceEvent", inf), dead_letter("KeyMismatch"))
    ]


def conflicting_inference(rng: random.Random, when: datetime) -> list[BadInput]:
    """An inference, a feedback that pairs with it, then the same request_id with other content."""
    rid, inf = keyed_inference(rng, when)
    fb = feedback_body(rng, rid, when + timedelta(seconds=1))
    other = {**inf, "prompt": "something else entirely"}
    return [
        companion(rid, inf, Expect("none")),  # its pair is the feedback's outcome
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
            "",
            "inference",
            rid.encode(),
            encode("InferenceEvent", other),
            dead_letter("ConflictingInference"),
            None,
            rid,
        ),
    ]


def identical_duplicate(rng: random.Random, when: datetime) -> list[BadInput]:
    """The same inference sent twice, byte for byte: the copy is ignored."""
    rid, inf = lonely_inference(rng, when)
    return [inf, BadInput("", "inference", rid.encode(), inf.value, Expect("none"), None, rid)]


def oversized(rng: random.Random, when: datetime) -> list[BadInput]:
    """A 1.2 MB prompt and a feedback for it.

    Either a pair, or the inference dead-lettered as too large and the feedback unmatched NO_INFERENCE.
    """
    rid, inf = keyed_inference(rng, when, prompt="x" * 1_200_000)
    fb = feedback_body(rng, rid, when + timedelta(seconds=1))
    refused = Expect("dead_letter", None, (Expect("none"),))
    either = Expect("unmatched", "NO_INFERENCE", (Expect("pairs", (1, 0)),))
    return [
        BadInput("", "inference", rid.encode(), encode("InferenceEvent", inf), refused, None, rid),
        BadInput("", "feedback", rid.encode(), encode("FeedbackEvent", fb), either, fb["feedback_id"], rid),
    ]


def future_time(role: str) -> Builder:
    """Event time in year 9999: far ahead of any Kafka timestamp."""
    far = datetime(9999, 1, 1, tzinfo=timezone.utc)

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = lonely_inference(rng, when)
        if role == "feedback":
            fb = feedback_body(rng, rid, far)
            record = BadInput(
                "", "feedback", rid.encode(), encode("FeedbackEvent", fb), dead_letter(), fb["feedback_id"], rid
            )
            record.future = True
            return [inf, record]
        rid2, bad = keyed_inference(rng, far)
        record = BadInput("", "inference", rid2.encode(), encode("InferenceEvent", bad), dead_letter(), None, rid2)
        record.future = True
        return [record]

    return build


def past_time(role: str) -> Builder:
    """Event time 1970: a valid record whose window closed long ago."""
    past = datetime(1970, 1, 2, tzinfo=timezone.utc)

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        if role == "inference":
            rid, inf = keyed_inference(rng, past)
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
        fb = feedback_body(rng, rid, past)
        expect = Expect("unmatched", "NO_INFERENCE")
        return [BadInput("", "feedback", rid.encode(), encode("FeedbackEvent", fb), expect, fb["feedback_id"], rid)]

    return build


def beyond_datetime(rng: random.Random, when: datetime) -> list[BadInput]:
    """event_time = 2**62 ms: beyond any calendar a reader can represent."""
    rid, inf = lonely_inference(rng, when)
    fb = feedback_body(rng, rid, 2**62)
    value = encode("FeedbackEvent", fb, {"event_time": "long"})
    return [inf, BadInput("", "feedback", rid.encode(), value, dead_letter(), fb["feedback_id"], rid)]
