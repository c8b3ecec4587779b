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
with the real schema's fingerprint (``fault_records.py``). The builders
with logic of their own are in ``fault_cases.py``; this module holds the
table of every kind (:data:`BUILDERS`) and the generic builders it uses.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fault_cases import (
    beyond_datetime,
    conflicting_inference,
    confluent_framing,
    future_time,
    identical_duplicate,
    inference_key_mismatch,
    other_type,
    oversized,
    past_time,
    trailing_bytes,
    truncated,
    unknown_fingerprint,
    wrong_key,
)
from fault_records import (
    DL,
    BadInput,
    Builder,
    Expect,
    dead_letter,
    encode,
    feedback_body,
    inference_body,
    keyed_inference,
    lonely_inference,
)

from preflog.schemas.codec import SOE_MAGIC

__all__ = ["BUILDERS", "BadInput", "Expect", "bad_inputs"]


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


def _bad_feedback(retype: dict[str, Any] | None = None, expect: Expect = DL, **fields: Any) -> Builder:
    """A feedback for a lonely inference, with ``fields`` set (and ``retype`` to write what the schema cannot)."""

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid, inf = lonely_inference(rng, when)
        fb = feedback_body(rng, rid, when + timedelta(seconds=1), **fields)
        value = encode("FeedbackEvent", fb, retype)
        return [inf, BadInput("", "feedback", rid.encode(), value, expect, fb["feedback_id"], rid)]

    return build


def _bad_inference(retype: dict[str, Any] | None = None, expect: Expect = DL, **fields: Any) -> Builder:
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


def _raw(role: str, value: Callable[[random.Random, datetime], bytes | None], expect: Expect | None = None) -> Builder:
    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return [BadInput("", role, rid.encode(), value(rng, when), expect or dead_letter("DecodeError"), None, rid)]

    return build


def _utf8(role: str) -> Builder:
    bad = b"caf\xc3\x28 \xff\xfe"

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        if role == "inference":
            return _bad_inference({"prompt": "bytes"}, dead_letter("DecodeError"), prompt=bad)(rng, when)
        return _bad_feedback({"rationale": ["null", "bytes"]}, dead_letter("DecodeError"), rationale=bad)(rng, when)

    return build


def _nan_scores(value: float) -> Builder:
    scores = [{"index": 0, "score": value}, {"index": 1, "score": 0.5}, {"index": 2, "score": 0.1}]
    return _bad_feedback(None, dead_letter(), kind="SCORES", pairwise=None, scores=scores, source=_RM)


_RM = {"type": "REWARD_MODEL", "id": "rm", "name": "acme-rm", "version": "8"}

BUILDERS: dict[str, Builder] = {
    "garbage bytes (feedback)": _raw("feedback", lambda rng, _: b"\x13\x37" + rng.randbytes(30)),
    "garbage bytes (inference)": _raw("inference", lambda rng, _: rng.randbytes(25)),
    "truncated Avro (feedback)": _raw("feedback", truncated("feedback")),
    "truncated Avro (inference)": _raw("inference", truncated("inference")),
    "unknown schema fingerprint": _raw("feedback", unknown_fingerprint),
    "inference record on the feedback topic": other_type("feedback"),
    "feedback record on the inference topic": other_type("inference"),
    "Confluent framing where single-object is expected": _raw("feedback", confluent_framing),
    "empty value": _raw("feedback", lambda rng, _: b""),
    "null value (tombstone)": _raw("feedback", lambda rng, _: None),
    "only the magic bytes": _raw("feedback", lambda rng, _: SOE_MAGIC),
    "trailing bytes after the Avro body": trailing_bytes,
    "key does not match request_id (feedback)": wrong_key("other"),
    "missing key (feedback)": wrong_key("missing"),
    "key does not match request_id (inference)": inference_key_mismatch,
    "invalid UTF-8 in a string (inference prompt)": _utf8("inference"),
    "invalid UTF-8 in a string (feedback rationale)": _utf8("feedback"),
    "enum index -1 (feedback kind)": _bad_feedback({"kind": "int"}, DL, kind=-1),
    "enum index too large (feedback kind)": _bad_feedback({"kind": "int"}, dead_letter("DecodeError"), kind=9),
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
        None, dead_letter("InvalidReference"), pairwise={"chosen": 7, "rejected": 0}
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
        "inference", lambda rng, when: encode("InferenceEvent", inference_body(rng, when, request_id="not-a-uuid")), DL
    ),
    "reward model without name and version": _bad_feedback(None, DL, source={"type": "REWARD_MODEL", "id": "rm"}),
    "event time in year 9999 (feedback)": future_time("feedback"),
    "event time in year 9999 (inference)": future_time("inference"),
    "event time beyond the calendar (2**62 ms)": beyond_datetime,
    "event time in 1970 (inference, valid: expires at once)": past_time("inference"),
    "event time in 1970 (feedback, valid: no inference)": past_time("feedback"),
    "duplicate inference id with other content": conflicting_inference,
    "identical duplicate inference (valid: ignored)": identical_duplicate,
    "oversized value (1.2 MB prompt)": oversized,
}
