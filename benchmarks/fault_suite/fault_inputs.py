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
from datetime import datetime

from fault_cases import (
    bad_feedback,
    bad_inference,
    beyond_datetime,
    conflicting_inference,
    confluent_framing,
    future_time,
    identical_duplicate,
    inference_key_mismatch,
    other_type,
    oversized,
    past_time,
    raw_record,
    trailing_bytes,
    truncated,
    unknown_fingerprint,
    wrong_key,
)
from fault_records import DL, BadInput, Builder, Expect, dead_letter, encode, inference_body

from preflog.schemas.codec import SOE_MAGIC

__all__ = ["BUILDERS", "BadInput", "Expect", "bad_inputs"]


def bad_inputs(seed: int, when: datetime, kinds: list[str] | None = None) -> list[BadInput]:
    """The bad records (and their companions) of every kind, or of ``kinds``; event times near ``when``.

    Their random stream is their own: with the traffic generator's (``Random(seed)`` too), a companion drew the
    request_id of a generated request in one seed out of 13, and conflicted with it by design.
    """
    rng = random.Random(f"preflog-faults/bad-inputs/{seed}")
    out: list[BadInput] = []
    for kind, build in BUILDERS.items():
        if kinds is None or kind in kinds:
            for record in build(rng, when):
                record.kind = kind
                out.append(record)
    return out


def _utf8(role: str) -> Builder:
    """A string field holding invalid UTF-8 (the prompt of an inference, or the rationale of a feedback)."""
    bad = b"caf\xc3\x28 \xff\xfe"

    def build(rng: random.Random, when: datetime) -> list[BadInput]:
        if role == "inference":
            return bad_inference({"prompt": "bytes"}, dead_letter("DecodeError"), prompt=bad)(rng, when)
        return bad_feedback({"rationale": ["null", "bytes"]}, dead_letter("DecodeError"), rationale=bad)(rng, when)

    return build


def _nan_scores(value: float) -> Builder:
    """A SCORES feedback by a reward model whose first score is ``value`` (NaN or infinite)."""
    scores = [{"index": 0, "score": value}, {"index": 1, "score": 0.5}, {"index": 2, "score": 0.1}]
    return bad_feedback(None, dead_letter(), kind="SCORES", pairwise=None, scores=scores, source=_RM)


_RM = {"type": "REWARD_MODEL", "id": "rm", "name": "acme-rm", "version": "8"}

BUILDERS: dict[str, Builder] = {
    "garbage bytes (feedback)": raw_record("feedback", lambda rng, _: b"\x13\x37" + rng.randbytes(30)),
    "garbage bytes (inference)": raw_record("inference", lambda rng, _: rng.randbytes(25)),
    "truncated Avro (feedback)": raw_record("feedback", truncated("feedback")),
    "truncated Avro (inference)": raw_record("inference", truncated("inference")),
    "unknown schema fingerprint": raw_record("feedback", unknown_fingerprint),
    "inference record on the feedback topic": other_type("feedback"),
    "feedback record on the inference topic": other_type("inference"),
    "Confluent framing where single-object is expected": raw_record("feedback", confluent_framing),
    "empty value": raw_record("feedback", lambda rng, _: b""),
    "null value (tombstone)": raw_record("feedback", lambda rng, _: None),
    "only the magic bytes": raw_record("feedback", lambda rng, _: SOE_MAGIC),
    "trailing bytes after the Avro body": trailing_bytes,
    "key does not match request_id (feedback)": wrong_key("other"),
    "missing key (feedback)": wrong_key("missing"),
    "key does not match request_id (inference)": inference_key_mismatch,
    "invalid UTF-8 in a string (inference prompt)": _utf8("inference"),
    "invalid UTF-8 in a string (feedback rationale)": _utf8("feedback"),
    "enum index -1 (feedback kind)": bad_feedback({"kind": "int"}, DL, kind=-1),
    "enum index too large (feedback kind)": bad_feedback({"kind": "int"}, dead_letter("DecodeError"), kind=9),
    "enum index -1 (source type)": bad_feedback({"source.type": "int"}, DL, source={**_RM, "type": -1}),
    "int beyond 32 bits (pairwise.chosen)": bad_feedback(
        {"pairwise.chosen": "long"}, DL, pairwise={"chosen": 2**40, "rejected": 0}
    ),
    "int beyond 32 bits (inference sampling.top_k)": bad_inference(
        {"sampling.top_k": ["null", "long"]}, DL, sampling={"top_k": 2**40, "extra": {}}
    ),
    "int beyond 32 bits (candidate index)": bad_inference(
        {"candidates.index": "long"},
        DL,
        candidates=[{"index": 0, "text": "a"}, {"index": 2**33 + 1, "text": "b"}],
    ),
    "candidate index that does not exist": bad_feedback(
        None, dead_letter("InvalidReference"), pairwise={"chosen": 7, "rejected": 0}
    ),
    "negative candidate index": bad_feedback(None, DL, pairwise={"chosen": -1, "rejected": 0}),
    "chosen equals rejected": bad_feedback(None, DL, pairwise={"chosen": 1, "rejected": 1}),
    "ranking names a candidate twice": bad_feedback(
        None, DL, kind="RANKING", pairwise=None, ranking=[{"index": 0, "rank": 1}, {"index": 0, "rank": 2}]
    ),
    "zero-length ranking array": bad_feedback(None, DL, kind="RANKING", pairwise=None, ranking=[]),
    "payload of another kind": bad_feedback(None, DL, kind="RANKING"),
    "NaN score": _nan_scores(math.nan),
    "infinite score": _nan_scores(math.inf),
    "negative infinite score": _nan_scores(-math.inf),
    "NaN temperature (inference)": bad_inference(None, DL, sampling={"temperature": math.nan, "extra": {}}),
    "zero-length candidates array": bad_inference(None, DL, candidates=[]),
    "request_id that is not a UUID": raw_record(
        "inference", lambda rng, when: encode("InferenceEvent", inference_body(rng, when, request_id="not-a-uuid")), DL
    ),
    "reward model without name and version": bad_feedback(None, DL, source={"type": "REWARD_MODEL", "id": "rm"}),
    "event time in year 9999 (feedback)": future_time("feedback"),
    "event time in year 9999 (inference)": future_time("inference"),
    "event time beyond the calendar (2**62 ms)": beyond_datetime,
    "event time in 1970 (inference, valid: expires at once)": past_time("inference"),
    "event time in 1970 (feedback, valid: no inference)": past_time("feedback"),
    "duplicate inference id with other content": conflicting_inference,
    "identical duplicate inference (valid: ignored)": identical_duplicate,
    "oversized value (1.2 MB prompt)": oversized,
}
