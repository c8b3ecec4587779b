"""Turn what callers pass (Python values or parsed JSON) into valid Avro-ready records.

``inference_record`` and ``feedback_record`` fill defaults, normalise
convenient shapes (a candidate given as a bare string, a model given by
name, an ISO-8601 event time) and check every rule of the contract that the
Avro schema alone cannot express. A failed check raises
:class:`~preflog.schemas.exceptions.ValidationError` listing every problem.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate

from .exceptions import ValidationError
from .registry import default_store

__all__ = [
    "FEEDBACK_KINDS",
    "MODEL_SOURCES",
    "feedback_record",
    "inference_record",
    "reference_problems",
    "to_datetime",
]

FEEDBACK_KINDS = ("PAIRWISE", "RANKING", "SCORES", "RATING", "IMPLICIT")
PAYLOAD_FIELD = {k: k.lower() for k in FEEDBACK_KINDS}
SOURCE_TYPES = ("HUMAN_ANNOTATOR", "END_USER", "REWARD_MODEL", "AI_CRITIC")
MODEL_SOURCES = ("REWARD_MODEL", "AI_CRITIC")


def to_datetime(value: Any) -> datetime:
    """An event time as an aware UTC datetime: datetime, epoch milliseconds, or ISO-8601 text."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetime has no time zone; pass an aware datetime (e.g. datetime.now(timezone.utc))")
        return value.astimezone(timezone.utc)
    if isinstance(value, bool):
        raise ValueError(f"expected a timestamp, got {value!r}")
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset; append Z or +00:00")
        return parsed.astimezone(timezone.utc)
    raise ValueError(f"expected an ISO-8601 string, epoch milliseconds or datetime, got {type(value).__name__}")


def _uuid(data: Mapping[str, Any], field: str, problems: list[str]) -> str | None:
    value = data.get(field)
    if value is None or value == "":
        problems.append(f"{field}: missing (a UUID is required)")
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        problems.append(f"{field}: {value!r} is not a UUID")
        return None


def _event_time(data: Mapping[str, Any], problems: list[str]) -> datetime | None:
    value = data.get("event_time")
    if value is None:
        return datetime.now(timezone.utc)
    try:
        return to_datetime(value)
    except ValueError as exc:
        problems.append(f"event_time: {exc}")
        return None


def _string_map(value: Any, field: str, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{field}: expected an object of strings, got {type(value).__name__}")
        return {}
    out = {}
    for k, v in value.items():
        if isinstance(v, (str, int, float, bool)):
            out[str(k)] = v if isinstance(v, str) else str(v)
        else:
            problems.append(f"{field}.{k}: values must be text or numbers, got {type(v).__name__}")
    return out


def _avro_check(record_type: str, record: dict[str, Any], problems: list[str], check_schema: bool) -> None:
    if problems:
        raise ValidationError(record_type, problems)
    if not check_schema:
        return
    try:
        validate(record, default_store().latest(record_type).parsed, raise_errors=True)
    except AvroValidationError as exc:
        raise ValidationError(record_type, [str(e) for e in exc.errors]) from None


def inference_record(data: Mapping[str, Any], check_schema: bool = True) -> dict[str, Any]:
    """A validated InferenceEvent record from ``data``; raises ValidationError.

    ``check_schema=False`` skips the Avro type check, for records that were just decoded.
    """
    problems: list[str] = []
    record = dict(data)
    record.pop("event_type", None)
    record["request_id"] = _uuid(data, "request_id", problems)
    record["event_time"] = _event_time(data, problems)

    prompt = data.get("prompt")
    messages = data.get("prompt_messages")
    if not prompt and messages:
        prompt = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages if isinstance(m, Mapping))
    if not prompt:
        problems.append("prompt: missing or empty (give prompt text or prompt_messages)")
    record["prompt"] = prompt

    raw = data.get("candidates")
    candidates: list[Any] = []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        problems.append("candidates: missing (a list of at least 2 outputs is required)")
    else:
        for i, c in enumerate(raw):
            candidates.append({"index": i, "text": c} if isinstance(c, str) else {"index": i, **c})
        if len(candidates) < 2:
            problems.append(f"candidates: {len(candidates)} given, at least 2 are needed for a comparison")
        indices = [c.get("index") for c in candidates if isinstance(c, dict)]
        if sorted(i for i in indices if isinstance(i, int)) != list(range(len(candidates))):
            problems.append(f"candidates: indices {indices} must be 0..{len(candidates) - 1}, each once")
    record["candidates"] = candidates

    model = data.get("model")
    if isinstance(model, str):
        model = {"name": model}
    if not isinstance(model, Mapping) or not model.get("name"):
        problems.append("model.name: missing (name the model that served the request)")
    record["model"] = model

    sampling = dict(data.get("sampling") or {})
    temperature, top_p = sampling.get("temperature"), sampling.get("top_p")
    if isinstance(temperature, (int, float)) and (temperature < 0 or math.isnan(temperature)):
        problems.append(f"sampling.temperature: {temperature} must be >= 0")
    if isinstance(top_p, (int, float)) and not 0 < top_p <= 1:
        problems.append(f"sampling.top_p: {top_p} must be in (0, 1]")
    for key in ("temperature", "top_p"):
        if isinstance(sampling.get(key), int) and not isinstance(sampling.get(key), bool):
            sampling[key] = float(sampling[key])
    sampling["extra"] = _string_map(sampling.get("extra"), "sampling.extra", problems)
    record["sampling"] = sampling
    record["context"] = dict(data.get("context") or {})
    record["metadata"] = _string_map(data.get("metadata"), "metadata", problems)
    _avro_check("InferenceEvent", record, problems, check_schema)
    return record


def reference_problems(feedback: Mapping[str, Any], candidate_count: int | None) -> list[str]:
    """What is wrong with the candidate indices ``feedback`` names.

    With ``candidate_count`` None only checks that need no inference run
    (negative indices, chosen == rejected, duplicates).
    """
    problems: list[str] = []
    kind = str(feedback.get("kind"))

    def check(index: Any, where: str) -> None:
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            problems.append(f"{where}: {index!r} is not a candidate index (an integer >= 0)")
        elif candidate_count is not None and index >= candidate_count:
            n = candidate_count
            problems.append(f"{where}: candidate {index} does not exist; the inference has {n} (0..{n - 1})")

    payload = feedback.get(PAYLOAD_FIELD[kind]) if kind in PAYLOAD_FIELD else None
    if payload is None:
        return problems
    if kind == "PAIRWISE":
        check(payload.get("chosen"), "pairwise.chosen")
        check(payload.get("rejected"), "pairwise.rejected")
        if payload.get("chosen") == payload.get("rejected"):
            problems.append(f"pairwise: chosen and rejected are both candidate {payload.get('chosen')}")
    elif kind in ("RANKING", "SCORES"):
        field = PAYLOAD_FIELD[kind]
        if not isinstance(payload, Sequence) or len(payload) < 2:
            given = len(payload) if isinstance(payload, Sequence) else 0
            problems.append(f"{field}: {given} given, at least 2 candidates are needed")
            return problems
        seen: set[Any] = set()
        for n, entry in enumerate(payload):
            index = entry.get("index") if isinstance(entry, Mapping) else None
            check(index, f"{field}[{n}].index")
            if index in seen:
                problems.append(f"{field}: candidate {index} appears twice")
            seen.add(index)
            score = entry.get("score") if isinstance(entry, Mapping) else None
            if kind == "SCORES" and isinstance(score, float) and not math.isfinite(score):
                problems.append(f"scores[{n}].score: {score} is not a finite number")
            rank = entry.get("rank") if isinstance(entry, Mapping) else None
            if kind == "RANKING" and isinstance(rank, int) and rank < 1:
                problems.append(f"ranking[{n}].rank: {rank} must be >= 1 (1 is best)")
    else:
        check(payload.get("index"), f"{PAYLOAD_FIELD[kind]}.index")
    return problems


def feedback_record(
    data: Mapping[str, Any], candidate_count: int | None = None, check_schema: bool = True
) -> dict[str, Any]:
    """A validated FeedbackEvent record from ``data``; raises ValidationError.

    ``candidate_count``, when known, also checks that every index exists.
    """
    problems: list[str] = []
    record = dict(data)
    record.pop("event_type", None)
    record["feedback_id"] = _uuid(data, "feedback_id", problems)
    record["request_id"] = _uuid(data, "request_id", problems)
    record["event_time"] = _event_time(data, problems)
    kind = str(data.get("kind", "")).upper()
    record["kind"] = kind
    if kind not in FEEDBACK_KINDS:
        problems.append(f"kind: {data.get('kind')!r} is not one of {', '.join(FEEDBACK_KINDS)}")
    else:
        for other_kind, field in PAYLOAD_FIELD.items():
            if other_kind != kind and data.get(field) is not None:
                problems.append(f"{field}: set, but kind is {kind} (set only the {PAYLOAD_FIELD[kind]} field)")
        if data.get(PAYLOAD_FIELD[kind]) is None:
            problems.append(f"{PAYLOAD_FIELD[kind]}: missing; kind {kind} needs it")
        if kind == "SCORES":
            record["scores"] = [
                {**s, "score": float(s["score"])} if isinstance(s, Mapping) and isinstance(s.get("score"), int) else s
                for s in data["scores"] or []
            ]
    problems += reference_problems(record, candidate_count)

    source = data.get("source")
    if isinstance(source, str):
        source = {"type": source}
    if not isinstance(source, Mapping):
        problems.append(f"source: missing (one of {', '.join(SOURCE_TYPES)}, with its id)")
    else:
        source = {**source, "type": str(source.get("type", "")).upper()}
        if source["type"] not in SOURCE_TYPES:
            problems.append(f"source.type: {source.get('type')!r} is not one of {', '.join(SOURCE_TYPES)}")
        elif source["type"] in MODEL_SOURCES and not (source.get("name") and source.get("version")):
            problems.append(f"source: a {source['type']} judgement needs the model's name and version")
    record["source"] = source
    record.setdefault("explicit", kind not in ("IMPLICIT",))
    record["metadata"] = _string_map(data.get("metadata"), "metadata", problems)
    _avro_check("FeedbackEvent", record, problems, check_schema)
    return record
