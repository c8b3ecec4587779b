"""Redaction of common personal data in text, before an event is encoded (a building block of issue 20).

Each redactor finds one kind of personal data and replaces it with a placeholder (``[EMAIL]``,
``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[IP]``). Where the kind has a check digit, the check decides:
a payment card must pass the Luhn check, an IBAN the ISO 13616 mod-97 check, an IP address must be one
(:mod:`ipaddress`), so order numbers, version strings and dates are left alone. A user-supplied
callable (``str -> str``) is a redactor too (kind ``custom``).

    text, counts = redact("write to ana@example.org", DEFAULT)   # ("write to [EMAIL]", {"email": 1})

The SDK applies the redactors the ``privacy.redact`` setting names (:func:`redactors`) to every text
field of an event before it is sealed and encoded (:func:`redact_record`), and counts the replacements
per kind in ``preflog_sdk_redactions_total{kind}`` (:func:`count`). Redaction is best effort: it finds
the formats it knows; a name or an address in free text is protected by sealing, not by redaction.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter as Metric

__all__ = [
    "DEFAULT",
    "REDACTIONS",
    "Redactor",
    "card",
    "count",
    "email",
    "iban",
    "ip",
    "luhn",
    "mod97",
    "phone",
    "redact",
    "redact_record",
    "redactors",
]

REDACTIONS = Metric("preflog_sdk_redactions", "Personal data the SDK redacted before encoding, by kind", ["kind"])


@dataclass(frozen=True)
class Redactor:
    """One kind of personal data: a pattern, a check of each match, and its placeholder."""

    kind: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] = lambda _: True

    def __call__(self, text: str) -> tuple[str, int]:
        """``text`` with every checked match replaced; how many were."""
        found = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal found
            if not self.check(match.group(0)):
                return match.group(0)
            found += 1
            return f"[{self.kind.upper()}]"

        return self.pattern.sub(replace, text), found


def luhn(digits: str) -> bool:
    """The Luhn check of a card number's digits."""
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def mod97(iban: str) -> bool:
    """The ISO 13616 check of an IBAN (spaces ignored): the rearranged number mod 97 is 1."""
    compact = iban.replace(" ", "").upper()
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _is_card(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    return 13 <= len(digits) <= 19 and luhn(digits)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_EDGE = r"(?<![\w.+-])"  # not inside a longer word, number or address
email = Redactor("email", re.compile(_EDGE + r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"))
iban = Redactor("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), mod97)
card = Redactor("card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _is_card)
phone = Redactor(
    "phone",
    re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}"  # +44 20 7946 0958, +1 (415) 555-0100
        r"|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"  # (415) 555-0100, 415-555-0100
    ),
)
ip = Redactor(
    "ip",
    re.compile(r"(?<![\w.:])(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w.:])"),
    _is_ip,
)
#: the built-in redactors, in the order they run (a card number is not a phone number)
DEFAULT: tuple[Redactor, ...] = (email, iban, card, phone, ip)


def redact(text: str, redactors: Iterable[Redactor | Callable[[str], str]] = DEFAULT) -> tuple[str, dict[str, int]]:
    """``text`` with every redactor applied in turn; the count of replacements per kind (only kinds found)."""
    counts: dict[str, int] = {}
    for redactor in redactors:
        if isinstance(redactor, Redactor):
            text, n = redactor(text)
            kind = redactor.kind
        else:
            changed = redactor(text)
            n, text, kind = int(changed != text), changed, "custom"
        if n:
            counts[kind] = counts.get(kind, 0) + n
    return text, counts


def redactors(
    names: Iterable[str], custom: Iterable[Callable[[str], str]] = ()
) -> tuple[Redactor | Callable[[str], str], ...]:
    """The built-in redactors ``names`` gives (``all`` for every one), in :data:`DEFAULT`'s order, then ``custom``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    wanted = set(names)
    known = {r.kind for r in DEFAULT}
    unknown = sorted(wanted - known - {"all"})
    if unknown:
        raise ValueError(f"unknown redactor(s) {unknown}; choose from {', '.join(sorted(known | {'all'}))}")
    chosen = [r for r in DEFAULT if "all" in wanted or r.kind in wanted]
    return (*chosen, *custom)


Redactors = Iterable[Redactor | Callable[[str], str]]


def _messages(messages: list[Mapping[str, Any]] | None, apply: Callable[[str], str]) -> list[dict[str, Any]] | None:
    if messages is None:
        return None
    return [{**m, "content": apply(m["content"])} if isinstance(m.get("content"), str) else dict(m) for m in messages]


def redact_record(
    record_type: str, record: Mapping[str, Any], chosen: Redactors
) -> tuple[dict[str, Any], Counter[str]]:
    """``record`` (an inference or feedback event, validated) with every text field redacted; counts per kind.

    Inference: prompt, prompt messages, candidates' texts and messages, metadata values. Feedback:
    rationale and metadata values. Ids, names and numbers are left as they are (ids are pseudonymised
    by the sealer). Reserved ``preflog.*`` metadata keys are never redacted.
    """
    chosen = tuple(chosen)
    counts: Counter[str] = Counter()

    def apply(text: str) -> str:
        out, found = redact(text, chosen)
        counts.update(found)
        return out

    out = dict(record)
    if record_type == "InferenceEvent":
        out["prompt"] = apply(record["prompt"])
        out["prompt_messages"] = _messages(record.get("prompt_messages"), apply)
        out["candidates"] = [
            {**c, "text": apply(c["text"]), "messages": _messages(c.get("messages"), apply)}
            for c in record["candidates"]
        ]
    elif record.get("rationale") is not None:
        out["rationale"] = apply(record["rationale"])
    if record.get("metadata"):
        out["metadata"] = {k: v if k.startswith("preflog.") else apply(v) for k, v in record["metadata"].items()}
    return out, counts


def count(counts: Mapping[str, int]) -> None:
    """Add ``counts`` (kind -> replacements) to ``preflog_sdk_redactions_total``."""
    for kind, n in counts.items():
        if n:
            REDACTIONS.labels(kind=kind).inc(n)
