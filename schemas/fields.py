"""Field-level checks and normalisers shared by the event builders (:mod:`.events`).

Each helper takes one field of what a caller passed, returns the value the
record should hold, and appends a ``field.path: reason`` line to ``problems``
for whatever is wrong, instead of raising; the builders collect every problem
before raising one :class:`~preflog.schemas.exceptions.ValidationError`.
Event times are parsed by :func:`to_datetime`, which the CLI uses too.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeGuard

from .shape import show

__all__ = [
    "EPOCH",
    "EVENT_TIME_RANGE",
    "event_time",
    "finite_number",
    "is_given",
    "is_int",
    "is_list",
    "object_field",
    "string_map",
    "to_datetime",
    "uuid_field",
]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: event times accepted, both ends included: from the epoch to the end of what a datetime holds
EVENT_TIME_RANGE = (EPOCH, datetime.max.replace(tzinfo=timezone.utc))


def to_datetime(value: Any) -> datetime:
    """An event time as an aware UTC datetime: datetime, epoch milliseconds, or ISO-8601 text.

    Args:
        value: A datetime with a time zone, epoch milliseconds (int), or ISO-8601 text with a UTC offset.

    Returns:
        The same instant in UTC.

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


def is_list(value: Any) -> TypeGuard[Sequence[Any]]:
    """Whether ``value`` is a sequence other than text or bytes."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def is_int(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is an int and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_given(value: Any) -> bool:
    """Not None and not empty text (other values are judged by the schema check, never by their truth value)."""
    return value is not None and not (isinstance(value, str) and not value)


def uuid_field(data: Mapping[str, Any], field: str, problems: list[str]) -> str | None:
    """``data[field]`` as canonical UUID text.

    Args:
        data: What the caller passed.
        field: The name of the id field.
        problems: Where a missing or malformed id is reported.

    Returns:
        The UUID as text, or None when it is missing or not a UUID.
    """
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


def event_time(data: Mapping[str, Any], problems: list[str]) -> datetime | None:
    """``data["event_time"]`` in UTC; now when it is not given.

    Args:
        data: What the caller passed.
        problems: Where an unreadable time or one before 1970 is reported.

    Returns:
        The event time, or None when it cannot be read.
    """
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


def object_field(value: Any, field: str, problems: list[str]) -> dict[str, Any]:
    """An optional object field as a dict (empty when not given or not an object, which is reported)."""
    found = _mapping(value, field, "an object", problems)
    return {} if found is None else dict(found)


def _mapping(value: Any, field: str, expected: str, problems: list[str]) -> Mapping[Any, Any] | None:
    """``value`` when it is a mapping; None when it is None or, reported as not ``expected``, anything else."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append(f"{field}: expected {expected}, got {type(value).__name__} {show(value)}")
        return None
    return value


def string_map(value: Any, field: str, problems: list[str]) -> dict[str, str]:
    """A map of text values; numbers and booleans become text, anything else is reported."""
    found = _mapping(value, field, "an object of text values", problems)
    if found is None:
        return {}
    out = {}
    for k, v in found.items():
        key = k if isinstance(k, str) else show(k)
        if isinstance(v, str):
            out[key] = v
        elif isinstance(v, (int, float, bool)) and not (is_int(v) and v.bit_length() > 64):
            out[key] = str(v)
        else:
            problems.append(f"{field}.{key}: values must be text or numbers, got {type(v).__name__} {show(v)}")
    return out


def finite_number(value: Any, field: str, problems: list[str]) -> Any:
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
