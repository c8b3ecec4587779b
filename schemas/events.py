"""Turn what callers pass (Python values or parsed JSON) into valid Avro-ready records.

``inference_record`` and ``feedback_record`` fill defaults, normalise
convenient shapes (a candidate given as a bare string, a model given by
name, an ISO-8601 event time), check every rule of the contract that the
Avro schema alone cannot express, and then (``check_schema``) that the
record fits the schema (:mod:`.shape`). Whatever a caller passes, a failed
check raises :class:`~preflog.schemas.exceptions.ValidationError` listing
every problem as ``field.path: reason``; no other exception escapes.

The rules include what the join processor relies on: candidate indices
0..n-1 each once, at most :data:`MAX_CANDIDATES` candidates (a ranking of n
makes up to n(n-1)/2 pairs), judged indices >= 0, distinct and within the
inference's candidates, chosen != rejected, finite scores, temperatures and
rating values, and event times from 1970 on (epoch milliseconds are never
negative; the decoder already bounds them at year 9999, and the join
dead-letters times far ahead of their record's timestamp). The producer SDK
also refuses event times after 2200.

The checks of single fields live in :mod:`.fields`, the rules on candidate
indices (which the join applies again) in :mod:`.references`; both are
re-exported here under their old names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .exceptions import ValidationError
from .fields import (
    EVENT_TIME_RANGE,
    event_time,
    finite_number,
    is_given,
    is_int,
    is_list,
    object_field,
    string_map,
    to_datetime,
    uuid_field,
)
from .messages import (
    conversation_problems,
    message_problems,
    normalise_conversation,
    normalise_messages,
    normalise_tools,
    tools_problems,
)
from .references import FEEDBACK_KINDS, MAX_CANDIDATES, PAYLOAD_FIELD, reference_problems
from .registry import default_store
from .shape import shape_problems, show

__all__ = [
    "EVENT_TIME_RANGE",
    "FEEDBACK_KINDS",
    "MAX_CANDIDATES",
    "MODEL_SOURCES",
    "feedback_record",
    "inference_record",
    "reference_problems",
    "to_datetime",
]

SOURCE_TYPES = ("HUMAN_ANNOTATOR", "END_USER", "REWARD_MODEL", "AI_CRITIC")
MODEL_SOURCES = ("REWARD_MODEL", "AI_CRITIC")


def _finish(record_type: str, record: dict[str, Any], problems: list[str], check_schema: bool) -> None:
    """Adds the schema's problems (except about fields already reported) and raises if there are any."""
    if check_schema:
        reported = [p.split(": ", 1)[0] for p in problems]
        for problem in shape_problems(record, default_store().latest(record_type).reader):
            field = problem.split(": ", 1)[0]
            if not any(_related(field, r) for r in reported):
                problems.append(problem)
    if problems:
        raise ValidationError(record_type, problems)


def _related(a: str, b: str) -> bool:
    """Whether one field path is the other or inside it."""
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((short + ".", short + "["))


def inference_record(data: Mapping[str, Any], check_schema: bool = True) -> dict[str, Any]:
    """A validated InferenceEvent record from ``data``; raises ValidationError.

    ``check_schema=False`` skips the schema check, for records that were just decoded.
    """
    problems: list[str] = []
    record = dict(data)
    record.pop("event_type", None)
    record["request_id"] = uuid_field(data, "request_id", problems)
    record["event_time"] = event_time(data, problems)

    prompt = data.get("prompt")
    messages = record["prompt_messages"] = normalise_messages(data.get("prompt_messages"))
    problems += message_problems(messages, "prompt_messages")
    if "conversation" in data:
        record["conversation"] = normalise_conversation(data["conversation"])
    if "tools" in data:
        record["tools"] = normalise_tools(data["tools"])
    problems += conversation_problems(record) + tools_problems(record.get("tools"))
    if not is_given(prompt) and is_list(messages):
        prompt = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages if isinstance(m, Mapping))
    if not is_given(prompt):
        problems.append("prompt: missing or empty (give prompt text or prompt_messages)")
    record["prompt"] = prompt
    record["candidates"] = _candidates(data.get("candidates"), problems)

    model = data.get("model")
    if isinstance(model, str):
        model = {"name": model}
    if isinstance(model, Mapping):
        model = dict(model)
        if not is_given(model.get("name")):
            problems.append("model.name: missing (name the model that served the request)")
    elif model is None:
        problems.append("model.name: missing (name the model that served the request)")
    else:
        problems.append(f"model: expected a name or an object with name, got {type(model).__name__} {show(model)}")
    record["model"] = model

    sampling = object_field(data.get("sampling"), "sampling", problems)
    for key in ("temperature", "top_p"):
        if key in sampling:
            sampling[key] = value = finite_number(sampling[key], f"sampling.{key}", problems)
            if not isinstance(value, float) or not math.isfinite(value):
                continue
            if key == "temperature" and value < 0:
                problems.append(f"sampling.temperature: {value} must be >= 0")
            if key == "top_p" and not 0 < value <= 1:
                problems.append(f"sampling.top_p: {value} must be in (0, 1]")
    sampling["extra"] = string_map(sampling.get("extra"), "sampling.extra", problems)
    record["sampling"] = sampling
    record["context"] = object_field(data.get("context"), "context", problems)
    record["metadata"] = string_map(data.get("metadata"), "metadata", problems)
    _finish("InferenceEvent", record, problems, check_schema)
    return record


def _candidates(raw: Any, problems: list[str]) -> list[Any]:
    if raw is None:
        problems.append("candidates: missing (a list of at least 2 outputs is required)")
        return []
    if not is_list(raw):
        problems.append(
            f"candidates: expected a list of outputs (text, or objects with text), got {type(raw).__name__}"
        )
        return []
    candidates: list[Any] = []
    for i, c in enumerate(raw):
        if isinstance(c, str):
            candidates.append({"index": i, "text": c})
        elif isinstance(c, Mapping):
            candidate = {"index": i} | dict(c)
            if "messages" in candidate:
                candidate["messages"] = normalise_messages(candidate["messages"])
                if candidate["messages"] == []:  # no messages: the answer is its text (a history continues with it)
                    candidate["messages"] = None
                problems += message_problems(candidate["messages"], f"candidates[{i}].messages")
            candidates.append(candidate)
        else:
            problems.append(f"candidates[{i}]: expected text or an object with text, got {type(c).__name__} {show(c)}")
            candidates.append(c)
    n = len(candidates)
    if n < 2:
        problems.append(f"candidates: {n} given, at least 2 are needed for a comparison")
    elif n > MAX_CANDIDATES:
        problems.append(f"candidates: {n} given, at most {MAX_CANDIDATES} are accepted")
    else:
        indices = [c.get("index") if isinstance(c, dict) else None for c in candidates]
        if sorted(i for i in indices if is_int(i)) != list(range(n)):
            problems.append(f"candidates: indices {show(indices, 120)} must be 0..{n - 1}, each once")
    return candidates


def feedback_record(
    data: Mapping[str, Any], candidate_count: int | None = None, check_schema: bool = True
) -> dict[str, Any]:
    """A validated FeedbackEvent record from ``data``; raises ValidationError.

    ``candidate_count``, when known, also checks that every index exists.
    """
    problems: list[str] = []
    record = dict(data)
    record.pop("event_type", None)
    record["feedback_id"] = uuid_field(data, "feedback_id", problems)
    record["request_id"] = uuid_field(data, "request_id", problems)
    record["event_time"] = event_time(data, problems)
    given = data.get("kind")
    kind = given.upper() if isinstance(given, str) else ""
    record["kind"] = kind
    if given is None:
        problems.append(f"kind: missing (one of {', '.join(FEEDBACK_KINDS)})")
    elif kind not in FEEDBACK_KINDS:
        problems.append(f"kind: {show(given)} is not one of {', '.join(FEEDBACK_KINDS)}")
    else:
        for other_kind, field in PAYLOAD_FIELD.items():
            if other_kind != kind and data.get(field) is not None:
                problems.append(f"{field}: set, but kind is {kind} (set only the {PAYLOAD_FIELD[kind]} field)")
        if data.get(PAYLOAD_FIELD[kind]) is None:
            problems.append(f"{PAYLOAD_FIELD[kind]}: missing; kind {kind} needs it")
        if kind == "SCORES" and is_list(data.get("scores")):
            record["scores"] = [_with_float_score(s) for s in data["scores"]]
    problems += reference_problems(record, candidate_count)

    source = data.get("source")
    if isinstance(source, str):
        source = {"type": source}
    if source is None:
        problems.append(f"source: missing (one of {', '.join(SOURCE_TYPES)}, with its id)")
    elif not isinstance(source, Mapping):
        problems.append(f"source: expected a type or an object with type, got {type(source).__name__} {show(source)}")
    else:
        source = dict(source)
        if isinstance(source.get("type"), str):
            source["type"] = source["type"].upper()
        if source.get("type") not in SOURCE_TYPES:
            problems.append(f"source.type: {show(source.get('type'))} is not one of {', '.join(SOURCE_TYPES)}")
        elif source["type"] in MODEL_SOURCES and not (is_given(source.get("name")) and is_given(source.get("version"))):
            problems.append(f"source: a {source['type']} judgement needs the model's name and version")
    record["source"] = source
    record.setdefault("explicit", kind not in ("IMPLICIT",))
    record["metadata"] = string_map(data.get("metadata"), "metadata", problems)
    _finish("FeedbackEvent", record, problems, check_schema)
    return record


def _with_float_score(entry: Any) -> Any:
    """A scores entry with an int score as a float (a too-large int is left for the finite check)."""
    if isinstance(entry, Mapping) and is_int(entry.get("score")):
        try:
            return {**entry, "score": float(entry["score"])}
        except OverflowError:
            return entry
    return entry
