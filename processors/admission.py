"""What an input record must pass before it is joined: its size, decoding, validation, key and event time.

A record that fails becomes a dead letter (:class:`Rejection` says why, in
which error class and stage); nothing of it is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflog.schemas.codec import Codec
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.exceptions import DecodeError, ValidationError

if TYPE_CHECKING:
    from .join import JoinConfig

__all__ = ["Rejection", "admit", "ms"]

Record = dict[str, Any]


@dataclass(frozen=True)
class Rejection:
    """Why a record is dead-lettered instead of joined."""

    reason: str
    error_class: str
    stage: str


def ms(dt: Any) -> int:
    """A datetime in epoch milliseconds."""
    return int(dt.timestamp() * 1000)


def admit(
    codec: Codec,
    config: JoinConfig,
    topic: str,
    record_type: str,
    key: bytes | None,
    value: bytes | None,
    timestamp_ms: int | None,
    wall_ms: Callable[[], int],
) -> Record | Rejection:
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
        The record, or a :class:`Rejection`.
    """
    size = len(value or b"")
    if size > config.max_input_bytes:
        reason = (
            f"the value is {size} bytes, over max_input_bytes={config.max_input_bytes} "
            "(PREFLOG_PROCESSOR__MAX_INPUT_BYTES); it is not joined or stored"
        )
        return Rejection(reason, "InputTooLarge", "validate")
    try:
        decoded = codec.decode(value or b"", record_type, topic)
        if record_type == "InferenceEvent":
            record = inference_record(decoded, check_schema=False)
        else:
            record = feedback_record(decoded, check_schema=False)
    except DecodeError as exc:
        return Rejection(str(exc), "DecodeError", "decode")
    except ValidationError as exc:
        return Rejection(str(exc), "ValidationError", "validate")
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
    return record
