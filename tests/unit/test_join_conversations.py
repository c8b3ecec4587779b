"""The join over the event shapes of schema version 2: conversation turns, tool-call trajectories, image references."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from preflog.privacy.keys import generate_master
from preflog.privacy.sealer import Privacy, Sealer
from preflog.privacy.store import DirKeyStore
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import inference_record
from preflog.schemas.registry import SchemaStore, default_store

from ..conftest import feedback, inference
from .join_harness import FB, INF, Harness, roles

IMAGE = {"uri": "s3://photos/p1.png", "sha256": "ab" * 32, "media_type": "image/png"}
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
TRAJECTORY = [
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "weather", "arguments": {"city": "Y"}}]},
    {"role": "tool", "content": "-3 C, snow", "tool_call_id": "c1", "name": "weather"},
    {"role": "assistant", "content": "It is -3 C and snowing in Oslo."},
]


def turn(previous: str | None = None, candidate: int | None = None, number: int = 1, **more: Any) -> dict[str, Any]:
    conversation = {"id": "conv-7", "turn": number, "previous_request_id": previous, "previous_candidate": candidate}
    return inference(
        prompt_messages=[{"role": "user", "content": "And tomorrow, in this place?", "images": [IMAGE]}],
        conversation=conversation,
        tools=TOOLS,
        candidates=[{"text": "Snow again.", "messages": TRAJECTORY}, "I cannot know."],
        **more,
    )


def pairwise(rid: str) -> dict[str, Any]:
    return feedback(rid)


def test_a_turn_by_reference_is_kept_on_the_turns_topic_and_its_pair_carries_conversation_and_tools() -> None:
    h = Harness()
    previous = str(uuid.uuid4())
    event = turn(previous, 1)
    out = h.send(INF, event)
    assert roles(out) == ["turns"]
    stored = h.codec.decode(out[0].value, "ConversationTurn")
    sent = h.codec.decode(h.codec.encode("InferenceEvent", inference_record(event)), "InferenceEvent")
    assert stored["request_id"] == sent["request_id"] and stored["conversation"] == sent["conversation"]
    assert stored["prompt_messages"] == sent["prompt_messages"] and stored["candidates"] == sent["candidates"]
    assert stored["inference_offset"] == {"topic": INF, "partition": 0, "offset": 0}
    assert stored["conversation"]["previous_request_id"] == previous

    pairs = h.send(FB, pairwise(event["request_id"]))
    assert roles(pairs) == ["pairs"]
    pair = h.codec.decode(pairs[0].value, "PreferencePair")
    assert pair["conversation"] == sent["conversation"] and pair["tools"] == sent["tools"]
    assert pair["prompt_messages"] == sent["prompt_messages"]  # the turn's own messages: readers resolve the rest
    assert pair["prompt_messages"][0]["images"] == [IMAGE]
    assert [m["role"] for m in pair["chosen_messages"]] == ["assistant", "tool", "assistant"]
    assert pair["chosen_messages"][0]["tool_calls"] == [{"id": "c1", "name": "weather", "arguments": '{"city":"Y"}'}]
    assert pair["rejected_messages"] is None and pair["rejected"] == "I cannot know."


def test_a_repeated_turn_is_kept_once_and_a_conflicting_one_is_dead_lettered_without_a_turn() -> None:
    h = Harness()
    event = turn(None, None, number=0)
    assert roles(h.send(INF, event)) == ["turns"]
    assert h.send(INF, event) == []  # the same bytes again: a duplicate
    conflicting = {**event, "prompt_messages": [{"role": "user", "content": "something else"}]}
    assert roles(h.send(INF, conflicting)) == ["dead_letter"]


def test_an_inference_outside_a_conversation_gives_no_turn() -> None:
    h = Harness()
    event = inference()
    assert h.send(INF, event) == []
    assert roles(h.send(FB, pairwise(event["request_id"]))) == ["pairs"]


def test_an_inference_written_with_version_1_joins_with_the_new_fields_empty() -> None:
    store = default_store()
    old = SchemaStore.__new__(SchemaStore)
    old.__dict__.update(store.__dict__)
    old._versions = {**store._versions, "InferenceEvent": [store.versions("InferenceEvent")[0]]}
    event = inference_record(inference())
    v1 = {k: v for k, v in event.items() if k not in ("conversation", "tools")}
    value = SingleObjectCodec(old).encode("InferenceEvent", v1)
    h = Harness()
    assert h.raw(INF, event["request_id"].encode(), value) == []
    pairs = h.send(FB, pairwise(event["request_id"]))
    pair = h.codec.decode(pairs[0].value, "PreferencePair")
    assert pair["conversation"] is None and pair["tools"] is None
    assert pair["prompt_messages"] == [
        {"role": "user", "content": "Name a prime number.", "name": None, "tool_calls": None, "tool_call_id": None,
         "images": None}
    ]  # fmt: skip


def test_a_turn_that_breaks_the_conversation_rules_is_dead_lettered_with_the_field_named() -> None:
    h = Harness()
    event = inference_record(turn(str(uuid.uuid4()), 0))
    event["conversation"] = {**event["conversation"], "previous_candidate": None}  # a producer that skipped the SDK
    value = h.codec.encode("InferenceEvent", event)
    out = h.raw(INF, event["request_id"].encode(), value)
    assert roles(out) == ["dead_letter"]
    assert "conversation.previous_candidate" in out[0].record["reason"]


def test_pairs_of_a_turn_are_spliced_byte_for_byte_as_encoding_the_record_gives() -> None:
    h = Harness()
    event = turn(str(uuid.uuid4()), 0)
    h.send(INF, event)
    calls = []
    real = h.joiner.splicer.pair

    def spy(*args: Any) -> bytes:
        calls.append(1)
        return real(*args)

    h.joiner.splicer.pair = spy  # type: ignore[method-assign,assignment]
    ranking = [{"index": 0, "rank": 1}, {"index": 1, "rank": 2}]
    fb = feedback(event["request_id"], kind="RANKING", pairwise=None, ranking=ranking)
    pairs = h.send(FB, fb)
    assert calls and roles(pairs) == ["pairs"]
    assert pairs[0].value == h.codec.encode("PreferencePair", pairs[0].record)


def test_a_sealed_agent_turn_passes_the_join_s_full_validation(tmp_path: Path) -> None:
    sealer = Sealer(b"0123456789abcdef-test-secret", generate_master(tmp_path / "m.key"), DirKeyStore(tmp_path / "k"))
    event = inference_record(turn(str(uuid.uuid4()), 0))
    value = SingleObjectCodec().encode("InferenceEvent", sealer.inference(event, Privacy()))
    h = Harness()
    out = h.raw(INF, event["request_id"].encode(), value)
    assert roles(out) == ["turns"], [e.record.get("reason") for e in out]
    arguments = h.codec.decode(out[0].value, "ConversationTurn")["candidates"][0]["messages"][0]["tool_calls"][0]
    assert arguments["arguments"].startswith("pf1:")  # still sealed: the join never opens it
