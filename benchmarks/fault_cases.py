"""The fault suite's hostile inputs that need a builder of their own (framing, keys, times, duplicates, size).

Each function here is a ``Builder`` (or makes one, or makes a raw value for
``fault_inputs._raw``): given a random generator and an event time, it
returns the records to send, each with its expected outcome. The table that
names them is ``fault_inputs.BUILDERS``.
"""

from __future__ import annotations

import random
import struct
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from fault_records import (
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
    "beyond_datetime",
    "conflicting_inference",
    "confluent_framing",
    "future_time",
    "identical_duplicate",
    "inference_key_mismatch",
    "other_type",
    "oversized",
    "past_time",
    "trailing_bytes",
    "truncated",
    "unknown_fingerprint",
    "wrong_key",
]


def truncated(role: str) -> Callable[[random.Random, datetime], bytes]:
    def value(rng: random.Random, when: datetime) -> bytes:
        if role == "inference":
            data = encode("InferenceEvent", inference_body(rng, when))
        else:
            data = encode("FeedbackEvent", feedback_body(rng, str(uuid.uuid4()), when))
        return data[: len(data) // 2]

    return value


def unknown_fingerprint(rng: random.Random, when: datetime) -> bytes:
    data = encode("FeedbackEvent", feedback_body(rng, str(uuid.uuid4()), when))
    return SOE_MAGIC + rng.randbytes(8) + data[10:]


def confluent_framing(rng: random.Random, when: datetime) -> bytes:
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
    rid, inf = lonely_inference(rng, when)
    fb = feedback_body(rng, rid, when + timedelta(seconds=1))
    value = encode("FeedbackEvent", fb) + b"\x00\x00junk"
    return [inf, BadInput("", "feedback", rid.encode(), value, dead_letter("DecodeError"), fb["feedback_id"], rid)]


def wrong_key(kind: str) -> Builder:
    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = lonely_inference(rng, when)
        fb = feedback_body(rng, rid, when + timedelta(seconds=1))
        key = None if kind == "missing" else str(uuid.uuid4()).encode()
        value = encode("FeedbackEvent", fb)
        return [inf, BadInput("", "feedback", key, value, dead_letter("KeyMismatch"), fb["feedback_id"], rid)]

    return build


def inference_key_mismatch(rng: random.Random, when: datetime) -> list[BadInput]:
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
    rid, inf = lonely_inference(rng, when)
    return [inf, BadInput("", "inference", rid.encode(), inf.value, Expect("none"), None, rid)]


def oversized(rng: random.Random, when: datetime) -> list[BadInput]:
    """A 1.2 MB prompt and a feedback for it: either a pair, or the inference dead-lettered as too large and
    the feedback unmatched NO_INFERENCE."""
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
