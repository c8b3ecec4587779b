"""Rules for chat messages, tool calls, image references and conversation turns that Avro cannot express.

:func:`normalise_messages` and :func:`normalise_tools` accept the convenient
shapes callers have at hand (tool-call arguments and the tools list as
Python objects, as OpenAI's and TRL's formats give them) and turn them into
the JSON text the schema holds. :func:`message_problems` and
:func:`conversation_problems` list what is wrong, as ``field.path: reason``.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from preflog.privacy.envelope import sealed

from .fields import is_given, is_int, is_list
from .references import MAX_CANDIDATES

__all__ = [
    "conversation_problems",
    "message_problems",
    "normalise_conversation",
    "normalise_messages",
    "normalise_tools",
    "tools_problems",
]

_SHA256 = re.compile(r"[0-9a-f]{64}").fullmatch
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch


def _as_json_text(value: Any) -> Any:
    """A dict or list as compact JSON text; anything else unchanged (checked later)."""
    if isinstance(value, (Mapping, list, tuple)):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            return value
    return value


def normalise_messages(messages: Any) -> Any:
    """``messages`` with each tool call's arguments as JSON text (a dict is accepted)."""
    if not is_list(messages):
        return messages
    out = []
    for m in messages:
        calls = m.get("tool_calls") if isinstance(m, Mapping) else None
        if is_list(calls):
            m = {**m, "tool_calls": [_call(c) for c in calls]}
        out.append(m)
    return out


def _call(call: Any) -> Any:
    if not isinstance(call, Mapping):
        return call
    call = dict(call)
    function = call.pop("function", None)  # OpenAI's shape: {"id", "type": "function", "function": {...}}
    call.pop("type", None)
    if isinstance(function, Mapping):
        call.setdefault("name", function.get("name"))
        call.setdefault("arguments", function.get("arguments"))
    call["arguments"] = _as_json_text(call.get("arguments", {}))
    return call


def normalise_tools(tools: Any) -> Any:
    """The tools list as JSON text (a list of function specs is accepted)."""
    return _as_json_text(tools)


def tools_problems(tools: Any) -> list[str]:
    """What is wrong with the ``tools`` field (JSON text of a list of objects), if anything."""
    if tools is None:
        return []
    if not isinstance(tools, str):
        return [f"tools: expected a list of function specs (or its JSON text), got {type(tools).__name__}"]
    try:
        parsed = json.loads(tools)
    except json.JSONDecodeError as exc:
        return [f"tools: not valid JSON ({exc.msg} at character {exc.pos})"]
    except RecursionError:
        return ["tools: nested too deeply"]
    if not isinstance(parsed, list) or not all(isinstance(t, dict) for t in parsed):
        return ["tools: must be a JSON array of objects (function specs)"]
    return []


def message_problems(messages: Any, path: str) -> list[str]:
    """What is wrong with the tool calls and image references of ``messages`` (the schema checks the rest)."""
    if not is_list(messages):
        return []
    problems: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            continue
        at = f"{path}[{i}]"
        calls, images = m.get("tool_calls"), m.get("images")  # not lists: the schema check says what they are
        for j, call in enumerate(calls if is_list(calls) else []):
            args = call.get("arguments") if isinstance(call, Mapping) else None
            if not isinstance(args, str) or sealed(args):  # sealed by privacy: checked before it was sealed
                continue
            try:
                parsed = json.loads(args)
            except (ValueError, RecursionError):
                problems.append(f"{at}.tool_calls[{j}].arguments: not valid JSON (give an object or its JSON text)")
                continue
            if not isinstance(parsed, dict):
                problems.append(f"{at}.tool_calls[{j}].arguments: must be a JSON object")
        if m.get("role") == "tool" and not is_given(m.get("tool_call_id")):
            problems.append(f"{at}.tool_call_id: missing; a tool message names the call it answers")
        for j, image in enumerate(images if is_list(images) else []):
            if not isinstance(image, Mapping):
                continue
            digest, media = image.get("sha256"), image.get("media_type")
            if isinstance(digest, str) and not _SHA256(digest):
                problems.append(f"{at}.images[{j}].sha256: must be 64 lowercase hex digits (SHA-256 of the bytes)")
            if isinstance(media, str) and not media.startswith("image/"):
                problems.append(f"{at}.images[{j}].media_type: {media!r} is not an image/* media type")
            if not is_given(image.get("uri")):
                problems.append(f"{at}.images[{j}].uri: missing; images travel by reference, never as bytes")
    return problems


def normalise_conversation(conv: Any) -> Any:
    """``conv`` with previous_request_id as canonical UUID text (a UUID object or any form is accepted)."""
    if not isinstance(conv, Mapping):
        return conv
    conv = {"previous_request_id": None, "previous_candidate": None} | dict(conv)
    previous = conv["previous_request_id"]
    if previous is not None:
        with contextlib.suppress(TypeError, ValueError, AttributeError):  # reported by conversation_problems
            conv["previous_request_id"] = str(previous if isinstance(previous, uuid.UUID) else uuid.UUID(previous))
    return conv


def conversation_problems(record: Mapping[str, Any]) -> list[str]:
    """What is wrong with an inference's ``conversation``, if anything."""
    conv = record.get("conversation")
    if conv is None:
        return []
    if not isinstance(conv, Mapping):
        return [f"conversation: expected an object with id and turn, got {type(conv).__name__}"]
    problems: list[str] = []
    if not is_given(conv.get("id")):
        problems.append("conversation.id: missing (the conversation's id)")
    turn, previous, candidate = conv.get("turn"), conv.get("previous_request_id"), conv.get("previous_candidate")
    if not is_int(turn) or turn < 0:
        problems.append("conversation.turn: must be an integer >= 0 (the turn's number, from 0)")
    if record.get("prompt_messages") is None:
        problems.append("prompt_messages: missing; a conversation turn gives its messages")
    if previous is None:
        if candidate is not None:
            problems.append("conversation.previous_candidate: set without previous_request_id")
        return problems
    if not isinstance(previous, str) or not _UUID(previous.lower()):
        problems.append("conversation.previous_request_id: must be the previous turn's request_id (a UUID)")
    elif previous.lower() == str(record.get("request_id", "")).lower():
        problems.append("conversation.previous_request_id: is the turn's own request_id")
    if is_int(turn) and turn < 1:
        problems.append("conversation.turn: a turn with a previous turn is turn 1 or later")
    if not is_int(candidate) or not 0 <= candidate < MAX_CANDIDATES:
        problems.append(
            "conversation.previous_candidate: missing or out of range; name the index of the previous turn's "
            "candidate the conversation continued with"
        )
    return problems
