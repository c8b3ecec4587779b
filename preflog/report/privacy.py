"""What the report may read: consent to analytics, retention, erasure, and sealed logs opened, never read sealed.

The report is an ``analytics`` reading (:class:`preflog.dataset.consent.Purpose`). A row of the pairs or
unpaired table is left out for the first reason of :data:`REASONS` that applies, and counted:

* ``erased``: its subject's data key was erased (an erasure): its sealed fields read as nothing;
* ``no_consent``: its consent does not allow analytics (a row stating none allows what the
  ``privacy.unstated_consent`` setting says; the unpaired table has no metadata maps: its rows state none);
* ``expired``: its retention ran out before the report's time, counted from the inference's time.

A sealed log (personal fields ``pf1:<key id>:...``) is read through a view that opens them
(:func:`preflog.privacy.keyring.opened_view`, as :func:`preflog.sinks.scan.log_view` does with a keyring):
the answers' lengths are those of the texts, never of their ciphertext. The log is read opened from the
start when privacy is on (``privacy.enabled``); otherwise a table whose narrow rows show a sealed value
(an answer or a prompt, or the inference's ``preflog.key``) is read again, opened. Without the keys that
is an error naming the settings to give: no figure is ever computed over ciphertext.

The unmatched and dead-letter tables hold no text and no consent facts (ids, reasons, times): they are
read as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from preflog.dataset.consent import REASONS as CONSENT_REASONS
from preflog.dataset.consent import Purpose
from preflog.errors import PreflogError
from preflog.privacy.envelope import shape_sql
from preflog.privacy.fields import CONSENT, KEY, PURPOSES, RETENTION, SUBJECT

__all__ = ["FIX", "REASONS", "Privacy", "SealedLogError", "said"]

#: why the report leaves a row out, checked in this order, and how people read it
REASONS: dict[str, str] = {"erased": "erased", **CONSENT_REASONS}

#: the tables the report reads for their people's data, each with the expressions of its consent facts (over the
#: log's rows, before anything is opened: the ``preflog.*`` values are never sealed) and of a sealed value's shape
_FACTS: dict[str, dict[str, str]] = {
    "pairs": {
        "__inference_consent": f"inference_metadata['{CONSENT}']",
        "__feedback_consent": f"feedback_metadata['{CONSENT}']",
        "__retention_days": f"inference_metadata['{RETENTION}']",
        "__stated_subject": f"inference_metadata['{SUBJECT}']",
    },
    "unpaired": {
        "__inference_consent": "CAST(NULL AS VARCHAR)",
        "__feedback_consent": "CAST(NULL AS VARCHAR)",
        "__retention_days": "CAST(NULL AS VARCHAR)",
        "__stated_subject": "CAST(NULL AS VARCHAR)",
    },
}
_SEALED: dict[str, str] = {
    "pairs": f"{shape_sql('chosen')} OR {shape_sql('rejected')} OR inference_metadata['{KEY}'] IS NOT NULL",
    "unpaired": shape_sql("prompt"),
}
#: the settings that open a sealed log, named by the error of a report that cannot
FIX = (
    "set PREFLOG_PRIVACY__MASTER_KEY_FILE (or PREFLOG_PRIVACY__MASTER_KEY) to the master key the producers used, "
    "and PREFLOG_PRIVACY__KEYS_DIR or PREFLOG_PRIVACY__KEYS_TOPIC to their data keys"
)


class SealedLogError(PreflogError):
    """The log holds sealed personal fields the report cannot open (the message names the settings to give)."""


@dataclass
class Privacy:
    """How one report reads: its purpose (analytics, at its time), the keys of a sealed log, and what it left out.

    ``settings`` gives the keys (``None``: the environment's, read only when a sealed value is met) unless
    ``keyring`` (a :class:`preflog.privacy.keyring.Keyring`) is given; ``opened`` reads every table opened from
    the start (privacy on). ``left_out`` counts, per table of the report (``pairs``, ``signals``), the rows the
    selection takes but :data:`REASONS` leave out.
    """

    purpose: Purpose
    settings: Any = None
    keyring: Any = None
    opened: bool = False
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Any = None, now: datetime | None = None, keyring: Any = None) -> Privacy:
        """The report's privacy under ``settings`` (None: privacy's defaults, the environment's keys) at ``now``."""
        at = (now or datetime.now(timezone.utc)).replace(microsecond=0)
        p = getattr(settings, "privacy", None)
        unstated: Sequence[str] = PURPOSES if p is None else p.unstated_consent
        enabled = bool(p is not None and p.enabled)
        return cls(Purpose("analytics", tuple(unstated), at), settings, keyring, opened=enabled or keyring is not None)

    def keys(self) -> Any:
        """The keyring that opens the log (loaded once, from ``settings``).

        Raises:
            SealedLogError: no keys are configured, or they cannot be read (the message names the fix).
        """
        if self.keyring is None:
            from preflog.privacy.keyring import Keyring
            from preflog.privacy.keys import KeyError_
            from preflog.settings import load_settings

            try:
                self.keyring = Keyring.load(self.settings or load_settings())
            except KeyError_ as exc:
                raise SealedLogError(
                    "the audit log holds sealed personal fields, and the report reads them opened, never sealed: "
                    f"{FIX}. ({exc})"
                ) from None
        return self.keyring

    @staticmethod
    def facts(table: str) -> str:
        """The select list of ``table``'s consent facts (``__inference_consent``, ``__feedback_consent``, ...)."""
        return ", ".join(f"{expr} AS {name}" for name, expr in _FACTS[table].items())

    @staticmethod
    def sealed(table: str) -> str:
        """SQL: the row holds a sealed value (over the log's rows as they are, not opened)."""
        return _SEALED[table]

    def reason(self) -> str:
        """SQL of why a row is left out (a key of :data:`REASONS`), NULL when it is kept.

        Over a view with the columns of :meth:`facts`, ``inference_time`` and ``erased``.
        """
        consent = self.purpose.reason("__inference_consent", "__feedback_consent", "__retention_days", "inference_time")
        return f"CASE WHEN erased THEN 'erased' ELSE {consent} END"

    def total(self) -> dict[str, int]:
        """The rows left out, by reason, over every table (zeros included)."""
        return {r: sum(counts.get(r, 0) for counts in self.left_out.values()) for r in REASONS}

    def meta(self) -> dict[str, Any] | None:
        """The report's ``privacy`` entry: None for a log read as it is with nothing left out (as before privacy)."""
        total = self.total()
        if not any(total.values()) and self.keyring is None:
            return None
        return {
            "purpose": self.purpose.name,
            "unstated_consent": list(self.purpose.unstated),  # retention is measured to the report's generated_at
            "opened": self.keyring is not None,
            "left_out": total,
            "left_out_by_table": {t: dict(c) for t, c in self.left_out.items()},
        }


def said(meta: dict[str, Any] | None) -> str | None:
    """The line saying what a report left out (``... 3 erased, 5 without consent (pairs 7, signals 1)``) or None."""
    if not meta:
        return None
    parts = [f"{n:,} {REASONS.get(r, r)}" for r, n in meta["left_out"].items() if n]
    if not parts:
        return None
    tables = [f"{t} {sum(c.values()):,}" for t, c in meta.get("left_out_by_table", {}).items() if any(c.values())]
    return (f"rows left out for privacy (consent to analytics, retention, erasure): {', '.join(parts)} "
            f"({', '.join(tables)})")  # fmt: skip
