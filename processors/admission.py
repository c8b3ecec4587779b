"""What an input record must pass before it is joined: its size, decoding, validation, key and event time.

A record that fails becomes a dead letter (:class:`Rejection` says why, in
which error class and stage); nothing of it is stored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from preflog.schemas.codec import Codec
from preflog.schemas.events import MODEL_SOURCES, SOURCE_TYPES, feedback_record, inference_record
from preflog.schemas.exceptions import DecodeError, ValidationError
from preflog.schemas.fast_reader import Marks
from preflog.schemas.fields import EPOCH
from preflog.schemas.references import (
    FEEDBACK_KINDS,
    MAX_CANDIDATES,
    PAYLOAD_FIELD,
    reference_problems,
    references_fine,
)

if TYPE_CHECKING:
    from .join import JoinConfig

__all__ = ["Admitted", "Rejection", "admit", "ms"]

Record = dict[str, Any]
#: every kind's payload field of a feedback record, as a tuple
_PAYLOADS = itemgetter(*PAYLOAD_FIELD.values())
#: a UUID as ``str(uuid.UUID(text))`` writes it: such text is its own canonical form
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z").match


class Admitted(NamedTuple):
    """A record that passed: ``record`` validated; ``decoded`` is it as decoded, with ``marks``, when unchanged.

    ``decoded`` is set when validation left the decoded record as it was (the usual case): then ``record`` is
    that same object, and ``marks`` (if the codec's fast path decoded it) say where each field is in the value.
    ``event_ms`` is the record's event time in epoch milliseconds (set by :func:`admit`).
    """

    record: Record
    decoded: Record | None = None
    marks: Marks | None = None
    event_ms: int = 0


@dataclass(frozen=True)
class Rejection:
    """Why a record is dead-lettered instead of joined."""

    reason: str
    error_class: str
    stage: str


def ms(dt: Any) -> int:
    """A datetime in epoch milliseconds."""
    return int(dt.timestamp() * 1000)


def _clean_inference(r: Record) -> bool:
    """Whether :func:`inference_record` would return the decoded ``r`` unchanged, without a problem.

    False is not a verdict: the full validation then decides.
    """
    candidates, sampling = r["candidates"], r["sampling"]
    temperature, top_p = sampling.get("temperature"), sampling.get("top_p")
    return bool(
        _CANONICAL_UUID(r["request_id"])
        and r["event_time"] >= EPOCH
        and isinstance(r["prompt"], str)
        and r["prompt"]
        and 2 <= len(candidates) <= MAX_CANDIDATES
        and all(c["index"] == i for i, c in enumerate(candidates))
        and r["model"]["name"]
        and r.get("conversation") is None  # a turn's rules are checked in full
        and (temperature is None or (math.isfinite(temperature) and temperature >= 0))
        and (top_p is None or 0 < top_p <= 1)
    )


def _clean_feedback(r: Record) -> bool:
    """Whether :func:`feedback_record` would return the decoded ``r`` unchanged, without a problem."""
    kind, source = r["kind"], r["source"]
    if kind not in FEEDBACK_KINDS or source["type"] not in SOURCE_TYPES:
        return False
    if source["type"] in MODEL_SOURCES and not (source["name"] and source["version"]):
        return False
    if r[PAYLOAD_FIELD[kind]] is None or _PAYLOADS(r).count(None) != len(PAYLOAD_FIELD) - 1:
        return False  # the kind's payload missing, or another kind's set
    return bool(
        _CANONICAL_UUID(r["feedback_id"])
        and _CANONICAL_UUID(r["request_id"])
        and r["event_time"] >= EPOCH
        and (references_fine(r, None) or not reference_problems(r, None))
    )


def _validated(codec: Codec, record_type: str, value: bytes, topic: str) -> Admitted:
    """Decoded and validated; raises DecodeError or ValidationError."""
    decode_marked = getattr(codec, "decode_marked", None)
    if decode_marked is not None:
        decoded, marks = decode_marked(value, record_type, topic)
    else:
        decoded, marks = codec.decode(value, record_type, topic), None
    inference = record_type == "InferenceEvent"
    try:
        clean = _clean_inference(decoded) if inference else _clean_feedback(decoded)
    except Exception:  # a record of another shape (a custom codec): the full validation says what is wrong
        clean = False
    if clean:
        return Admitted(decoded, decoded, marks)
    validate = inference_record if inference else feedback_record
    return Admitted(validate(decoded, check_schema=False))


def admit(
    codec: Codec,
    config: JoinConfig,
    topic: str,
    record_type: str,
    key: bytes | None,
    value: bytes | None,
    timestamp_ms: int | None,
    wall_ms: Callable[[], int],
) -> Admitted | Rejection:
    """The decoded, validated record, or why it is rejected (checks in this order).

    Args:
        codec: decodes the value.
        config: the size and skew limits.
        topic: the record's topic.
        record_type: InferenceEvent or FeedbackEvent.
        key: the record's key (must be its request_id).
        value: its wire bytes.
        timestamp_ms: its Kafka timestamp (None or -1: none); the event time may not be far ahead of it.
        wall_ms: the worker's clock, which bounds a timestamp from the future.

    Returns:
        The record (:class:`Admitted`), or a :class:`Rejection`.
    """
    size = len(value or b"")
    if size > config.max_input_bytes:
        reason = (
            f"the value is {size} bytes, over max_input_bytes={config.max_input_bytes} "
            "(PREFLOG_PROCESSOR__MAX_INPUT_BYTES); it is not joined or stored"
        )
        return Rejection(reason, "InputTooLarge", "validate")
    try:
        admitted = _validated(codec, record_type, value or b"", topic)
    except DecodeError as exc:
        return Rejection(str(exc), "DecodeError", "decode")
    except ValidationError as exc:
        return Rejection(str(exc), "ValidationError", "validate")
    record = admitted.record
    rid = record["request_id"]
    if key is None or key.decode(errors="replace") != rid:
        reason = f"key {key!r} does not match request_id {rid}; producers must key records by request_id"
        return Rejection(reason, "KeyMismatch", "validate")
    event_ms = ms(record["event_time"])
    if timestamp_ms is not None and timestamp_ms > 0:  # -1: the record has no timestamp
        reference = min(timestamp_ms, wall_ms())
        if event_ms - reference > config.max_event_time_skew_ms:
            reason = (
                f"event_time {record['event_time'].isoformat()} ({event_ms} ms) is {event_ms - reference} ms "
                f"ahead of the record's Kafka timestamp {timestamp_ms} ms (or the worker's clock, if earlier: "
                f"{reference} ms); max_event_time_skew_s={config.max_event_time_skew_ms / 1000:g} "
                "(PREFLOG_PROCESSOR__MAX_EVENT_TIME_SKEW_S)"
            )
            return Rejection(reason, "EventTimeSkew", "validate")
    return Admitted(record, admitted.decoded, admitted.marks, event_ms)
