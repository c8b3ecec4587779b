"""What an event says about its subject, in reserved ``preflog.*`` metadata keys.

Privacy facts ride in the events' and pairs' existing metadata maps (``metadata`` of an inference or a
feedback, ``inference_metadata`` / ``feedback_metadata`` of a pair), under keys that start with
``preflog.``. No schema changes: old readers, old files and the processor (which splices bytes and never
looks inside a map) keep working, and a record without these keys is an old record.

* ``preflog.subject``: the pseudonym of the person the data is about (:mod:`.pseudonym`);
* ``preflog.key``: the id of the data key the event's personal fields are sealed with (:mod:`.envelope`);
* ``preflog.consent``: the purposes the subject allowed, comma-separated from :data:`PURPOSES`
  (empty: none);
* ``preflog.retention_days``: how long the data may be kept, in days from the event's time;
* ``preflog.tenant``: on feedback sent through the ingestion API, the tenant of its key (the join
  refuses it when its inference belongs to another tenant).

These values are never sealed: readers select on them without any key. The SDK refuses metadata keys
under ``preflog.`` that callers set themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

__all__ = [
    "CONSENT",
    "KEY",
    "PREFIX",
    "PURPOSES",
    "RETENTION",
    "SUBJECT",
    "TENANT",
    "allows",
    "consent_allows",
    "consent_sql",
    "consent_text",
    "expired",
    "parse_consent",
    "retention_sql",
]

PREFIX = "preflog."
SUBJECT = "preflog.subject"
KEY = "preflog.key"
CONSENT = "preflog.consent"
RETENTION = "preflog.retention_days"
TENANT = "preflog.tenant"
#: the purposes a subject can allow: training sets (dataset build, export) and analytics (report)
PURPOSES = ("training", "analytics")


def parse_consent(value: str | Iterable[str] | None, where: str = "consent") -> tuple[str, ...]:
    """The purposes of ``value`` (a comma-separated text or a list), sorted; ValueError naming a bad one."""
    if value is None:
        return ()
    if not isinstance(value, (str, list, tuple, set, frozenset)):
        raise ValueError(f"{where}: expected purposes as a list or comma-separated text, got {type(value).__name__}")
    items = value.split(",") if isinstance(value, str) else list(value)
    out: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{where}: expected purposes as text, got {type(item).__name__}")
        name = item.strip().lower()
        if not name:
            continue
        if name not in PURPOSES:
            raise ValueError(f"{where}: unknown purpose {item!r}; choose from {', '.join(PURPOSES)}")
        out.add(name)
    return tuple(p for p in PURPOSES if p in out)


def consent_text(purposes: Sequence[str]) -> str:
    """The metadata value of ``purposes``."""
    return ",".join(p for p in PURPOSES if p in purposes)


def allows(metadata: Mapping[str, str] | None, purpose: str, unstated: Sequence[str]) -> bool:
    """Whether a record with ``metadata`` allows ``purpose``; ``unstated``: what a record stating nothing allows."""
    stated = (metadata or {}).get(CONSENT)
    purposes = unstated if stated is None else parse_consent(stated)
    return purpose in purposes


def consent_allows(consent: str | None, purpose: str, unstated: Sequence[str]) -> bool:
    """:func:`consent_sql` in Python: ``consent`` (a comma list; None: ``unstated``) allows ``purpose``."""
    return purpose in (unstated if consent is None else consent.split(","))


def expired(days: str | None, at: datetime | None, now: datetime) -> bool:
    """:func:`retention_sql` in Python: a retention of ``days`` from ``at`` ran out by ``now`` (no number: never)."""
    if days is None or at is None:
        return False
    try:
        limit = float(days)
    except (TypeError, ValueError):
        return False
    if at.tzinfo is None:  # a naive time is UTC, as the log's times are
        at = at.replace(tzinfo=timezone.utc)
    return limit <= (now - at).total_seconds() / 86400.0


def consent_sql(consent: str, purpose: str, unstated: Sequence[str]) -> str:
    """A DuckDB condition: ``consent`` (an expression of a ``preflog.consent`` value) allows ``purpose``.

    A NULL value (the record states no consent) allows what ``unstated`` allows. For a metadata map
    ``m`` pass ``m['preflog.consent']``.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; choose from {', '.join(PURPOSES)}")
    default = "'" + consent_text(unstated) + "'"
    return f"list_contains(string_split(coalesce({consent}, {default}), ','), '{purpose}')"


def retention_sql(days: str, event_time: str, now: str = "now()") -> str:
    """A DuckDB condition: a retention of ``days`` (an expression of a ``preflog.retention_days`` value) has run out.

    ``event_time`` is the record's time column (a timestamp); a record without a retention never expires.
    Compared in days, never as a timestamp plus an interval: whatever the value (``1e9``, ``inf``, ``nan``,
    text), the condition cannot overflow and fail the query (a value that is no number never expires).
    """
    age = f"(epoch_ms({now}) - epoch_ms({event_time})) / 86400000.0"
    return f"coalesce(TRY_CAST({days} AS DOUBLE) <= {age}, false)"
