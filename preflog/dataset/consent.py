"""What consent and retention leave out: of a dataset build (purpose ``training``) and of the report (``analytics``).

The facts ride in reserved metadata keys (:mod:`preflog.privacy.fields`): ``preflog.consent`` and
``preflog.retention_days`` of the inference (a pair's ``inference_metadata``) and of the feedback
(``feedback_metadata``). A row is left out for the first reason of :data:`REASONS` that applies:

* ``erased``: the row is sealed and its subject's data key was erased (:mod:`preflog.privacy.keyring`);
* ``no_consent``: the inference's consent does not allow the purpose (an inference stating none allows
  what ``unstated`` says: the ``privacy.unstated_consent`` setting), or the feedback states a consent that
  does not (a feedback stating none restricts nothing);
* ``expired``: the inference's retention ran out before the reading's time (``now``), counted from the
  inference's time.

The unpaired table (ratings, implicit signals) has no metadata maps: its rows state no retention, and
their consent is their data key's when sealed (the key record carries it), else ``unstated``. Only these
values and the inference time are read, never a text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from preflog.privacy.fields import CONSENT, PURPOSES, RETENTION, consent_sql, parse_consent, retention_sql

__all__ = ["COLUMNS", "REASONS", "Purpose", "columns", "count_left_out", "privacy_columns", "sql_time"]

#: why a row is left out, checked in this order (the first that applies counts), and how people read it
REASONS: dict[str, str] = {
    "erased": "erased at their subject's request",
    "no_consent": "without consent",
    "expired": "past their retention",
}
#: the columns a sealed log's build's selected rows carry for :class:`Purpose` (with their value where a row has
#: none; :func:`columns` gives those of a log that is not sealed): the
#: inference's and the feedback's consent, the inference's retention and time, so that a later build
#: (``--since``) checks the rows it takes from a previous build's state again (a retention runs out
#: meanwhile) without the log. Scalars, not the metadata maps: a build carries them through every sort.
COLUMNS: dict[str, str] = {
    "inference_time": "CAST(NULL AS TIMESTAMP WITH TIME ZONE)",
    "consent": "CAST(NULL AS VARCHAR)",
    "feedback_consent": "CAST(NULL AS VARCHAR)",
    "retention_days": "CAST(NULL AS VARCHAR)",
    "subject": "CAST(NULL AS VARCHAR)",
    "erased": "false",
}



def privacy_columns(inference: str | None, feedback: str | None, sealed: bool = False) -> str:
    """The select list of :data:`COLUMNS` from metadata maps ``inference`` and ``feedback`` (None: a table without).

    A ``sealed`` relation (a keyring's view) has the columns ``subject``, ``erased`` and ``subject_consent``; a
    row stating no consent of its own takes its data key's, and the list has ``subject`` and ``erased``
    (:func:`columns`). A build of a log that is not sealed carries neither (every byte counts in a build
    at its memory limit).
    """

    def value(column: str | None, key: str) -> str:
        return f"{column}['{key}']" if column else "CAST(NULL AS VARCHAR)"

    consent = f"coalesce({value(inference, CONSENT)}, subject_consent)" if sealed else value(inference, CONSENT)
    keyring = ", subject, erased" if sealed else ""
    return (
        f"inference_time, {consent} AS consent, {value(feedback, CONSENT)} AS feedback_consent, "
        f"{value(inference, RETENTION)} AS retention_days{keyring}"
    )


def columns(sealed: bool) -> dict[str, str]:
    """:data:`COLUMNS` of a build: a sealed log's rows carry ``subject`` and ``erased`` too."""
    return COLUMNS if sealed else {c: v for c, v in COLUMNS.items() if c not in ("subject", "erased")}


def sql_time(at: datetime) -> str:
    """``at`` as a DuckDB timestamp literal (UTC)."""
    return f"TIMESTAMPTZ '{at.astimezone(timezone.utc).isoformat()}'"


@dataclass(frozen=True)
class Purpose:
    """What a reading uses rows for (``training`` or ``analytics``), what unstated consent allows, and its time."""

    name: str
    unstated: tuple[str, ...]
    now: datetime  # retention is measured to it

    def __post_init__(self) -> None:
        if self.name not in PURPOSES:
            raise ValueError(f"unknown purpose {self.name!r}; choose from {', '.join(PURPOSES)}")
        object.__setattr__(self, "unstated", parse_consent(self.unstated, "unstated consent"))

    def reason(
        self,
        consent: str = "consent",
        feedback_consent: str = "feedback_consent",
        retention_days: str = "retention_days",
        time: str = "inference_time",
        erased: str = "false",
    ) -> str:
        """The SQL expression of why a row is left out (a key of :data:`REASONS`), NULL when it is kept.

        The arguments are expressions of the inference's consent, the feedback's, the inference's retention
        (``preflog.*`` metadata values; NULL where not stated) and its time, by default :data:`COLUMNS`; and of
        whether the row was erased (a keyring view's ``erased``; by default no row is).
        """
        allowed = (
            f"{consent_sql(consent, self.name, self.unstated)} AND {consent_sql(feedback_consent, self.name, PURPOSES)}"
        )
        expired = retention_sql(retention_days, time, sql_time(self.now))
        return (
            f"CASE WHEN {erased} THEN 'erased' WHEN NOT ({allowed}) THEN 'no_consent' "
            f"WHEN {expired} THEN 'expired' END"
        )


def count_left_out(con: Any, query: str, args: Sequence[Any] = ()) -> dict[str, int]:
    """The rows of ``query`` per value of its ``reason`` column: every key of :data:`REASONS`, zeros included."""
    counted = f"SELECT reason, count(*) FROM ({query}) WHERE reason IS NOT NULL GROUP BY ALL"
    found = dict(con.execute(counted, list(args)).fetchall())
    return {reason: int(found.get(reason, 0)) for reason in REASONS}
