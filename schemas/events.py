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
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeGuard

from .exceptions import ValidationError
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

FEEDBACK_KINDS = ("PAIRWISE", "RANKING", "SCORES", "RATING", "IMPLICIT")
PAYLOAD_FIELD = {k: k.lower() for k in FEEDBACK_KINDS}
SOURCE_TYPES = ("HUMAN_ANNOTATOR", "END_USER", "REWARD_MODEL", "AI_CRITIC")
MODEL_SOURCES = ("REWARD_MODEL", "AI_CRITIC")
#: candidates per inference, and entries per ranking or scores judgement: 256 bounds one judgement at 32,640 pairs
MAX_CANDIDATES = 256
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: event times accepted, both ends included: from the epoch to the end of what a datetime holds
EVENT_TIME_RANGE = (EPOCH, datetime.max.replace(tzinfo=timezone.utc))


def to_datetime(value: Any) -> datetime:
    """An event time as an aware UTC datetime: datetime, epoch milliseconds, or ISO-8601 text.

    Raises:
        ValueError: anything else, a naive time, or a time outside the years 1..9999.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("datetime has no time zone; pass an aware datetime (e.g. datetime.now(timezone.utc))")
        return _utc(value)
    if isinstance(value, bool):
        raise ValueError(f"expected a timestamp, got {value!r}")
    if isinstance(value, int):
        try:
            return EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            raise ValueError(f"{show(value)} epoch milliseconds is outside the years 1..9999") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{show(value)} is not ISO-8601 (e.g. 2026-11-01T12:00:00Z)") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{show(value)} has no UTC offset; append Z or +00:00")
        return _utc(parsed)
    raise ValueError(f"expected an ISO-8601 string, epoch milliseconds or datetime, got {type(value).__name__}")


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00
        raise ValueError(f"{value.isoformat()} is outside the years 1..9999 in UTC") from None


def _is_list(value: Any) -> TypeGuard[Sequence[Any]]:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _given(value: Any) -> bool:
    """Not None and not empty text (other values are judged by the schema check, never by their truth value)."""
    return value is not None and not (isinstance(value, str) and not value)


def _uuid(data: Mapping[str, Any], field: str, problems: list[str]) -> str | None:
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value):
        problems.append(f"{field}: missing (a UUID is required)")
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        problems.append(f"{field}: expected a UUID as text, got {type(value).__name__} {show(value)}")
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        problems.append(f"{field}: {show(value)} is not a UUID")
        return None


def _event_time(data: Mapping[str, Any], problems: list[str]) -> datetime | None:
    value = data.get("event_time")
    if value is None:
        return datetime.now(timezone.utc)
    try:
        when = to_datetime(value)
    except ValueError as exc:
        problems.append(f"event_time: {exc}")
        return None
    if when < EVENT_TIME_RANGE[0]:
        problems.append(f"event_time: {when.isoformat()} is before 1970 (a negative epoch time)")
    return when


def _object(value: Any, field: str, problems: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{field}: expected an object, got {type(value).__name__} {show(value)}")
        return {}
    return dict(value)


def _string_map(value: Any, field: str, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{field}: expected an object of text values, got {type(value).__name__} {show(value)}")
        return {}
    out = {}
    for k, v in value.items():
        key = k if isinstance(k, str) else show(k)
        if isinstance(v, str):
            out[key] = v
        elif isinstance(v, (int, float, bool)) and not (_is_int(v) and v.bit_length() > 64):
            out[key] = str(v)
        else:
            problems.append(f"{field}.{key}: values must be text or numbers, got {type(v).__name__} {show(v)}")
    return out


def _number(value: Any, field: str, problems: list[str]) -> Any:
    """``value`` as a finite float when it is a number (other types are left for the schema check)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        problems.append(f"{field}: {show(value)} is not a finite number")
    return number


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
    record["request_id"] = _uuid(data, "request_id", problems)
    record["event_time"] = _event_time(data, problems)

    prompt = data.get("prompt")
    messages = data.get("prompt_messages")
    if not _given(prompt) and _is_list(messages):
        prompt = "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages if isinstance(m, Mapping))
    if not _given(prompt):
        problems.append("prompt: missing or empty (give prompt text or prompt_messages)")
    record["prompt"] = prompt
    record["candidates"] = _candidates(data.get("candidates"), problems)

    model = data.get("model")
    if isinstance(model, str):
        model = {"name": model}
    if isinstance(model, Mapping):
        model = dict(model)
        if not _given(model.get("name")):
            problems.append("model.name: missing (name the model that served the request)")
    elif model is None:
        problems.append("model.name: missing (name the model that served the request)")
    else:
        problems.append(f"model: expected a name or an object with name, got {type(model).__name__} {show(model)}")
    record["model"] = model

    sampling = _object(data.get("sampling"), "sampling", problems)
    for key in ("temperature", "top_p"):
        if key in sampling:
            sampling[key] = value = _number(sampling[key], f"sampling.{key}", problems)
            if not isinstance(value, float) or not math.isfinite(value):
                continue
            if key == "temperature" and value < 0:
                problems.append(f"sampling.temperature: {value} must be >= 0")
            if key == "top_p" and not 0 < value <= 1:
                problems.append(f"sampling.top_p: {value} must be in (0, 1]")
    sampling["extra"] = _string_map(sampling.get("extra"), "sampling.extra", problems)
    record["sampling"] = sampling
    record["context"] = _object(data.get("context"), "context", problems)
    record["metadata"] = _string_map(data.get("metadata"), "metadata", problems)
    _finish("InferenceEvent", record, problems, check_schema)
    return record


def _candidates(raw: Any, problems: list[str]) -> list[Any]:
    if raw is None:
        problems.append("candidates: missing (a list of at least 2 outputs is required)")
        return []
    if not _is_list(raw):
        problems.append(
            f"candidates: expected a list of outputs (text, or objects with text), got {type(raw).__name__}"
        )
        return []
    candidates: list[Any] = []
    for i, c in enumerate(raw):
        if isinstance(c, str):
            candidates.append({"index": i, "text": c})
        elif isinstance(c, Mapping):
            candidates.append({"index": i} | dict(c))
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
        if sorted(i for i in indices if _is_int(i)) != list(range(n)):
            problems.append(f"candidates: indices {show(indices, 120)} must be 0..{n - 1}, each once")
    return candidates


def reference_problems(feedback: Mapping[str, Any], candidate_count: int | None) -> list[str]:
    """What is wrong with the candidate indices (and scores) ``feedback`` gives.

    With ``candidate_count`` None only checks that need no inference run
    (negative indices, chosen == rejected, duplicates, non-finite scores).
    """
    problems: list[str] = []
    kind = feedback.get("kind")
    field = PAYLOAD_FIELD.get(kind) if isinstance(kind, str) else None
    payload = feedback.get(field) if field else None
    if field is None or payload is None:
        return problems

    def check(index: Any, where: str) -> bool:
        if not _is_int(index) or index < 0:
            problems.append(f"{where}: {show(index)} is not a candidate index (an integer >= 0)")
            return False
        if candidate_count is not None and index >= candidate_count:
            n = candidate_count
            problems.append(f"{where}: candidate {index} does not exist; the inference has {n} (0..{n - 1})")
            return False
        return True

    if kind in ("RANKING", "SCORES"):
        _entries(payload, field, candidate_count, check, problems)
    elif not isinstance(payload, Mapping):
        problems.append(f"{field}: expected an object, got {type(payload).__name__} {show(payload)}")
    elif kind == "PAIRWISE":
        chosen, rejected = payload.get("chosen"), payload.get("rejected")
        if check(chosen, "pairwise.chosen") & check(rejected, "pairwise.rejected") and chosen == rejected:
            problems.append(f"pairwise: chosen and rejected are both candidate {chosen}")
    else:
        check(payload.get("index"), f"{field}.index")
        value = payload.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            _number(value, f"{field}.value", problems)
    return problems


def _entries(payload: Any, field: str, candidate_count: int | None, check: Any, problems: list[str]) -> None:
    """The checks of a RANKING or SCORES payload: a list of {index, rank} or {index, score}."""
    if not _is_list(payload):
        problems.append(f"{field}: expected a list of objects with index, got {type(payload).__name__} {show(payload)}")
        return
    if len(payload) < 2:
        problems.append(f"{field}: {len(payload)} given, at least 2 candidates are needed")
        return
    if len(payload) > min(MAX_CANDIDATES, candidate_count or MAX_CANDIDATES):
        limit = f"the inference has {candidate_count}" if candidate_count else f"at most {MAX_CANDIDATES} are accepted"
        problems.append(f"{field}: {len(payload)} entries, but {limit}")
        return
    seen: set[Any] = set()
    finite: list[float] = []
    for n, entry in enumerate(payload):
        if not isinstance(entry, Mapping):
            problems.append(f"{field}[{n}]: expected an object with index, got {type(entry).__name__} {show(entry)}")
            continue
        index = entry.get("index")
        if check(index, f"{field}[{n}].index"):
            if index in seen:
                problems.append(f"{field}: candidate {index} appears twice")
            seen.add(index)
        if field == "scores":
            score = entry.get("score")
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                before = len(problems)
                number = _number(score, f"scores[{n}].score", problems)
                if len(problems) == before:
                    finite.append(number)
        else:
            rank = entry.get("rank")
            if _is_int(rank) and rank < 1:
                problems.append(f"ranking[{n}].rank: {rank} must be >= 1 (1 is best)")
    if len(finite) > 1 and not math.isfinite(max(finite) - min(finite)):
        problems.append(f"scores: the spread {max(finite)} - ({min(finite)}) overflows a double; scale the scores down")


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
        if kind == "SCORES" and _is_list(data["scores"]):
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
        elif source["type"] in MODEL_SOURCES and not (_given(source.get("name")) and _given(source.get("version"))):
            problems.append(f"source: a {source['type']} judgement needs the model's name and version")
    record["source"] = source
    record.setdefault("explicit", kind not in ("IMPLICIT",))
    record["metadata"] = _string_map(data.get("metadata"), "metadata", problems)
    _finish("FeedbackEvent", record, problems, check_schema)
    return record


def _with_float_score(entry: Any) -> Any:
    """A scores entry with an int score as a float (a too-large int is left for the finite check)."""
    if isinstance(entry, Mapping) and _is_int(entry.get("score")):
        try:
            return {**entry, "score": float(entry["score"])}
        except OverflowError:
            return entry
    return entry
