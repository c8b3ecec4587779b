"""What the SDK refuses in conversation turns, tool calls, tools and image references, field by field."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from preflog.schemas.events import inference_record
from preflog.schemas.exceptions import ValidationError

from ..conftest import inference

PREV = str(uuid.uuid4())


def image(**changes: str) -> dict[str, str]:
    return {"uri": "s3://b/k", "sha256": "ab" * 32, "media_type": "image/png"} | changes


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        inference_record(inference(**overrides))
    return caught.value.problems


@pytest.mark.parametrize(
    ("conversation", "field"),
    [
        ({"turn": 0}, "conversation.id"),
        ({"id": "c", "turn": -1}, "conversation.turn"),
        ({"id": "c", "turn": 2, "previous_request_id": PREV}, "conversation.previous_candidate"),
        ({"id": "c", "turn": 0, "previous_request_id": PREV, "previous_candidate": 0}, "conversation.turn"),
        ({"id": "c", "turn": 1, "previous_request_id": "not-a-uuid", "previous_candidate": 0},
         "conversation.previous_request_id"),
        ({"id": "c", "turn": 0, "previous_candidate": 1}, "conversation.previous_candidate"),
    ],
)  # fmt: skip
def test_a_turn_that_breaks_a_rule_is_refused_naming_the_field(conversation: dict[str, Any], field: str) -> None:
    assert any(p.startswith(field + ":") for p in problems(conversation=conversation))


def test_a_turn_cannot_refer_to_itself_and_needs_its_messages() -> None:
    rid = str(uuid.uuid4())
    found = problems(
        request_id=rid,
        prompt="hi",
        prompt_messages=None,
        conversation={"id": "c", "turn": 1, "previous_request_id": rid, "previous_candidate": 0},
    )
    assert any("own request_id" in p for p in found)
    assert any(p.startswith("prompt_messages:") for p in found)


def test_a_valid_turn_is_normalised_tool_arguments_and_tools_to_json_text_ids_canonical() -> None:
    record = inference_record(
        inference(
            conversation={"id": "c", "turn": 3, "previous_request_id": PREV.upper(), "previous_candidate": 1},
            tools=[{"type": "function", "function": {"name": "f"}}],
            candidates=[
                {"text": "a", "messages": [{"role": "assistant", "content": "", "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}]},
                "b",
            ],
        )
    )  # fmt: skip
    assert record["conversation"]["previous_request_id"] == PREV
    assert json.loads(record["tools"]) == [{"type": "function", "function": {"name": "f"}}]
    call = record["candidates"][0]["messages"][0]["tool_calls"][0]
    assert call == {"id": "1", "name": "f", "arguments": '{"x":1}'}


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"role": "tool", "content": "42"}, "prompt_messages[0].tool_call_id"),
        ({"role": "assistant", "content": "", "tool_calls": [{"id": "1", "name": "f", "arguments": "[1]"}]},
         "prompt_messages[0].tool_calls[0].arguments"),
        ({"role": "assistant", "content": "", "tool_calls": [{"id": "1", "name": "f", "arguments": "{oops"}]},
         "prompt_messages[0].tool_calls[0].arguments"),
        ({"role": "user", "content": "x", "images": [image(sha256="AB" * 32)]},
         "prompt_messages[0].images[0].sha256"),
        ({"role": "user", "content": "x", "images": [image(media_type="text/html")]},
         "prompt_messages[0].images[0].media_type"),
        ({"role": "user", "content": "x", "images": [image(uri="")]},
         "prompt_messages[0].images[0].uri"),
    ],
)  # fmt: skip
def test_a_broken_tool_call_or_image_reference_is_refused_naming_the_field(message: dict[str, Any], field: str) -> None:
    assert any(p.startswith(field + ":") for p in problems(prompt_messages=[message]))


def test_tools_must_be_a_list_of_objects() -> None:
    assert any(p.startswith("tools:") for p in problems(tools={"name": "f"}))
    assert any(p.startswith("tools:") for p in problems(tools="[1, 2]"))


HOSTILE = [-0.45, True, {"": [1]}, "text", [1, None, "x"], [[]], [{"": {}}], 10**30, None, float("inf")]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["images", "tool_calls", "tool_call_id", "name", "content", "role"])
def test_any_value_of_a_message_field_is_a_validation_error_or_fine(field: str, value: Any) -> None:
    """Found by Schemathesis: ``images`` given a number was a 500 (iterated as a list)."""
    for where in ("prompt_messages", "candidates"):
        message = {"role": "assistant", "content": "x", field: value}
        event = (
            inference(prompt_messages=[message])
            if where == "prompt_messages"
            else inference(candidates=[{"text": "a", "messages": [message]}, "b"])
        )
        try:
            inference_record(event)
        except ValidationError as exc:
            assert exc.problems


@pytest.mark.parametrize("value", [*HOSTILE, "[" * 100_000, '{"a": ' * 100_000])
def test_any_value_of_tools_conversation_or_arguments_is_a_validation_error_or_fine(value: Any) -> None:
    call = {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "name": "f", "arguments": value}]}
    for event in (inference(tools=value), inference(conversation=value), inference(prompt_messages=[call])):
        try:
            inference_record(event)
        except ValidationError as exc:
            assert exc.problems
