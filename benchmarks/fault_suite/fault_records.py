"""The vocabulary of the fault suite's hostile inputs: what a record is, where it must end up, how it is written.

:class:`BadInput` is one record sent raw, :class:`Expect` its expected
outcome. :func:`encode` frames a record as single-object Avro; given
``retype`` it writes the body with a doctored copy of the schema whose field
has the same wire encoding (enum -> int, int -> long, string -> bytes), so a
body the real schema cannot write still carries the real fingerprint. The
record templates and the valid companions are shared by every builder in
``fault_inputs.py`` and ``fault_cases.py``.
"""

from __future__ import annotations

import copy
import io
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import fastavro

from preflog.schemas.codec import SOE_MAGIC, SingleObjectCodec
from preflog.schemas.registry import default_store, strip_uuid

__all__ = [
    "CODEC",
    "DL",
    "BadInput",
    "Builder",
    "Expect",
    "companion",
    "dead_letter",
    "encode",
    "feedback_body",
    "inference_body",
    "keyed_inference",
    "lonely_inference",
]

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
    """The field ``name`` of a record schema."""
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


def inference_body(rng: random.Random, when: datetime, **overrides: Any) -> dict[str, Any]:
    """A valid InferenceEvent record, three candidates, request_id from ``rng``; ``overrides`` replace fields."""
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


def feedback_body(rng: random.Random, rid: str, when: datetime | int, **overrides: Any) -> dict[str, Any]:
    """A valid PAIRWISE FeedbackEvent record (1 over 0) for ``rid``; ``overrides`` replace fields."""
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


def dead_letter(error_class: str | None = None) -> Expect:
    """A dead letter of ``error_class`` (None: any class, with a reason)."""
    return Expect("dead_letter", error_class)


def keyed_inference(rng: random.Random, when: datetime, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """An inference record and its request_id."""
    record = inference_body(rng, when, **overrides)
    return record["request_id"], record


def companion(rid: str, record: dict[str, Any], expect: Expect) -> BadInput:
    """A valid inference sent beside a bad record, with its own expected outcome."""
    return BadInput("", "inference", rid.encode(), encode("InferenceEvent", record), expect, None, rid, True)


def lonely_inference(rng: random.Random, when: datetime) -> tuple[str, BadInput]:
    """A valid inference that will get no valid feedback: expected NO_FEEDBACK."""
    rid, record = keyed_inference(rng, when)
    return rid, companion(rid, record, Expect("unmatched", "NO_FEEDBACK"))
