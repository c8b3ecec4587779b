"""One valid record of every schema type, as decoded records look (normalised)."""

from __future__ import annotations

import uuid
from typing import Any

from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record

from .conftest import T0, feedback, inference

IMAGE = {"uri": "file:///tmp/cat.png", "sha256": "0" * 64, "media_type": "image/png"}
OFFSET = {"topic": "preflog.inference.v1", "partition": 2, "offset": 41}


def all_samples() -> dict[str, dict[str, Any]]:
    inf = inference_record(inference())
    fb = feedback_record(feedback(inf["request_id"]))
    common = {
        "request_id": inf["request_id"],
        "feedback_id": fb["feedback_id"],
        "prompt": inf["prompt"],
        "prompt_messages": inf["prompt_messages"],
        "model": inf["model"],
        "sampling": inf["sampling"],
        "context": inf["context"],
        "source": fb["source"],
        "explicit": True,
        "inference_time": T0,
        "feedback_time": fb["event_time"],
        "inference_offset": OFFSET,
        "feedback_offset": {**OFFSET, "topic": "preflog.feedback.v1", "offset": 7},
    }
    pair = {
        **common,
        "pair_id": str(uuid.uuid4()),
        "feedback_kind": "SCORES",
        "chosen": "7",
        "rejected": "9",
        "chosen_messages": None,
        "rejected_messages": None,
        "chosen_index": 0,
        "rejected_index": 1,
        "chosen_score": 1.5,
        "rejected_score": -0.25,
        "margin": 1.75,
        "chosen_model": None,
        "rejected_model": {"name": "acme-mini", "version": None, "checkpoint_hash": None},
        "rationale": None,
        "join_latency_ms": 300_000,
        "inference_metadata": {"region": "eu"},
        "feedback_metadata": {},
    }
    unpaired = {
        **common,
        "signal_id": str(uuid.uuid4()),
        "feedback_kind": "RATING",
        "completion": "7",
        "completion_messages": None,
        "completion_index": 0,
        "label": True,
        "value": None,
        "signal": "thumbs",
        "completion_model": None,
    }
    unmatched = {
        "reason": "NO_FEEDBACK",
        "detail": "no feedback within 1h + 5m",
        "record_type": "InferenceEvent",
        "request_id": inf["request_id"],
        "feedback_id": None,
        "event_time": T0,
        "stream_time": T0,
        "value": b"\xc3\x01rest",
        "source_offset": OFFSET,
    }
    dead = {
        "reason": "pairwise.chosen: candidate 5 does not exist",
        "error_class": "InvalidReference",
        "stage": "join",
        "key": inf["request_id"].encode(),
        "value": b"\x00garbage",
        "source_offset": OFFSET,
        "failed_at": T0,
    }
    turn_inf = inference_record(
        inference(
            prompt_messages=[
                {"role": "user", "content": "What is in this photo?", "images": [IMAGE]},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "look", "arguments": {}}]},
                {"role": "tool", "content": "a cat", "tool_call_id": "c1", "name": "look"},
            ],
            conversation={"id": "conv-1", "turn": 1, "previous_request_id": str(uuid.uuid4()), "previous_candidate": 0},
            tools=[{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
        )
    )
    turn = {
        "request_id": turn_inf["request_id"],
        "conversation": turn_inf["conversation"],
        "event_time": T0,
        "prompt": turn_inf["prompt"],
        "prompt_messages": turn_inf["prompt_messages"],
        "tools": turn_inf["tools"],
        "candidates": turn_inf["candidates"],
        "model": turn_inf["model"],
        "context": turn_inf["context"],
        "inference_offset": OFFSET,
        "inference_metadata": {},
    }
    given = {
        "InferenceEvent": inf,
        "ConversationTurn": turn,
        "FeedbackEvent": fb,
        "PreferencePair": pair,
        "UnpairedSignal": unpaired,
        "UnmatchedRecord": unmatched,
        "DeadLetter": dead,
    }
    return {name: _complete(name, record) for name, record in given.items()}


def _complete(name: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record with every optional field filled in, as a decoder returns it."""
    codec = SingleObjectCodec()
    full = codec.decode(codec.encode(name, record), name)
    assert _contains(full, record), f"{name}: encoding lost a value"
    return full


def _contains(full: Any, given: Any) -> bool:
    if isinstance(given, dict):
        return all(_contains(full.get(k), v) for k, v in given.items())
    if isinstance(given, list):
        return len(full) == len(given) and all(_contains(f, g) for f, g in zip(full, given, strict=False))
    return bool(full == given)
