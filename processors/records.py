"""Build what the processor emits: PreferencePair, UnpairedSignal, UnmatchedRecord and DeadLetter records."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

from .pairs import Preference, pair_id, signal_id, uuid5_text

__all__ = [
    "dead_letter",
    "dead_letter_id",
    "pair_record",
    "provenance",
    "signal_record",
    "turn_record",
    "unmatched_id",
    "unmatched_record",
]

Record = dict[str, Any]


def _candidate(inference: Record, index: int) -> Record:
    """The candidate whose ``index`` is ``index`` (an admitted inference's indices are distinct)."""
    candidates = inference["candidates"]
    if type(index) is int and 0 <= index < len(candidates):
        found: Record = candidates[index]
        if found["index"] == index:  # candidates in index order, as producers write them
            return found
    return next(c for c in candidates if c["index"] == index)


def _provenance(inference: Record, feedback: Record, inference_at: Record, feedback_at: Record) -> Record:
    return {
        "request_id": inference["request_id"],
        "feedback_id": feedback["feedback_id"],
        "feedback_kind": feedback["kind"],
        "prompt": inference["prompt"],
        "prompt_messages": inference.get("prompt_messages"),
        "conversation": inference.get("conversation"),
        "tools": inference.get("tools"),
        "model": inference["model"],
        "sampling": inference["sampling"],
        "context": inference["context"],
        "source": feedback["source"],
        "explicit": feedback["explicit"],
        "inference_time": inference["event_time"],
        "feedback_time": feedback["event_time"],
        "inference_offset": inference_at,
        "feedback_offset": feedback_at,
    }


def provenance(inference: Record, feedback: Record, inference_at: Record, feedback_at: Record) -> Record:
    """The fields every pair (and signal) of one judgement shares, to pass to :func:`pair_record`."""
    return _provenance(inference, feedback, inference_at, feedback_at)


def pair_record(
    inference: Record,
    feedback: Record,
    pref: Preference,
    inference_at: Record,
    feedback_at: Record,
    shared: Record | None = None,
) -> Record:
    """A PreferencePair from a joined inference and feedback (``shared``: their :func:`provenance`, if made)."""
    chosen, rejected = _candidate(inference, pref.chosen), _candidate(inference, pref.rejected)
    latency = feedback["event_time"] - inference["event_time"]
    return {
        **(shared or _provenance(inference, feedback, inference_at, feedback_at)),
        "pair_id": pair_id(feedback["feedback_id"], pref.chosen, pref.rejected),
        "chosen": chosen["text"],
        "rejected": rejected["text"],
        "chosen_messages": chosen.get("messages"),
        "rejected_messages": rejected.get("messages"),
        "chosen_index": pref.chosen,
        "rejected_index": pref.rejected,
        "chosen_score": pref.chosen_score,
        "rejected_score": pref.rejected_score,
        "margin": pref.margin,
        "chosen_model": chosen.get("model"),
        "rejected_model": rejected.get("model"),
        "rationale": feedback.get("rationale"),
        "join_latency_ms": int(latency.total_seconds() * 1000),
        "inference_metadata": inference.get("metadata") or {},
        "feedback_metadata": feedback.get("metadata") or {},
    }


def signal_record(inference: Record, feedback: Record, inference_at: Record, feedback_at: Record) -> Record:
    """An UnpairedSignal from a RATING or IMPLICIT feedback joined with its inference."""
    judged = feedback["rating"] if feedback["kind"] == "RATING" else feedback["implicit"]
    candidate = _candidate(inference, judged["index"])
    return {
        **_provenance(inference, feedback, inference_at, feedback_at),
        "signal_id": signal_id(feedback["feedback_id"], judged["index"]),
        "completion": candidate["text"],
        "completion_messages": candidate.get("messages"),
        "completion_index": judged["index"],
        "completion_model": candidate.get("model"),
        "label": judged["label"],
        "value": judged.get("value"),
        "signal": judged.get("signal") if feedback["kind"] == "IMPLICIT" else judged.get("scale"),
    }


def turn_record(inference: Record, inference_at: Record) -> Record:
    """A ConversationTurn: the inference of one turn as sent, kept for the turns that refer to it."""
    return {
        "request_id": inference["request_id"],
        "conversation": inference["conversation"],
        "event_time": inference["event_time"],
        "prompt": inference["prompt"],
        "prompt_messages": inference.get("prompt_messages"),
        "tools": inference.get("tools"),
        "candidates": inference["candidates"],
        "model": inference["model"],
        "context": inference["context"],
        "inference_offset": inference_at,
        "inference_metadata": inference.get("metadata") or {},
    }


def unmatched_id(reason: str, record_type: str, at: Record, value: bytes) -> str:
    """Deterministic id of one unmatched record: a re-emission after a crash gets the same one.

    It names where the record was read and digests its bytes, so a request_id used again (after
    late_retention, or in a recreated topic) is another record with another id.
    """
    where = f"{at['topic']}:{at['partition']}:{at['offset']}"
    digest = hashlib.sha256(value).hexdigest()
    return uuid5_text(f"unmatched:{reason}:{record_type}:{where}:{digest}")


def dead_letter_id(at: Record, error_class: str, value: bytes | None) -> str:
    """Deterministic id of one dead letter, from where its record was read and its whole value.

    Offsets repeat in a recreated topic; the value tells those records apart.
    """
    digest = hashlib.sha256(value or b"").hexdigest() if value is not None else "null"
    where = f"{at['topic']}:{at['partition']}:{at['offset']}"
    return uuid5_text(f"dead-letter:{where}:{error_class}:{digest}")


def unmatched_record(
    reason: str,
    detail: str,
    record_type: str,
    record: Record,
    stream_time_ms: int,
    value: bytes,
    at: Record,
    inference_at: Record | None = None,
) -> Record:
    """An UnmatchedRecord keeping the original bytes (``inference_at``: the inference it was joined with)."""
    return {
        "reason": reason,
        "unmatched_id": unmatched_id(reason, record_type, at, value),
        "detail": detail,
        "record_type": record_type,
        "request_id": record["request_id"],
        "feedback_id": record.get("feedback_id"),
        "event_time": record["event_time"],
        "stream_time": datetime.fromtimestamp(stream_time_ms / 1000, tz=timezone.utc),
        "value": value,
        "source_offset": at,
        "inference_offset": inference_at,
    }


def dead_letter(
    reason: str,
    error_class: str,
    stage: str,
    key: bytes | None,
    value: bytes | None,
    at: Record,
    failed_at: datetime | None = None,
    inference_at: Record | None = None,
) -> Record:
    """A DeadLetter keeping the original key and value.

    ``failed_at`` defaults to now; ``inference_at`` is the inference the record was joined with, if it failed
    after the join.
    """
    return {
        "reason": reason,
        "error_class": error_class,
        "dead_letter_id": dead_letter_id(at, error_class, value),
        "stage": stage,
        "key": key,
        "value": value,
        "source_offset": at,
        "failed_at": failed_at or datetime.now(timezone.utc),
        "inference_offset": inference_at,
    }
